"""Plain helpers several test files import: the shipped digits spec, edited; the `specc` command run
in-process; a progress display that stops a run; Keras, or a skipped test; checks that a registry's names and
arguments are Keras'. Fixtures are in conftest.py."""
from __future__ import annotations

import contextlib
import inspect
import io
from dataclasses import dataclass
from pathlib import Path

from benchmarks.keras_reference import import_keras as keras_on_a_backend
from specc.cli import main

ROOT = Path(__file__).parents[1]
DIGITS = ROOT / "specs" / "digits.yaml"
DIGITS_DATA = ROOT / "specs" / "data" / "digits.npz"
DIGITS_FIT = "{epochs: 30, batch_size: 32, shuffle: true}"


def digits(tmp_path: Path, fit: str = DIGITS_FIT, name: str = "digits", **replace) -> Path:
    """The digits spec with another `fit:` section (and other edits), reading the shipped data."""
    text = DIGITS.read_text()
    edits = {f"fit: {DIGITS_FIT}": f"fit: {fit}", "path: data/digits.npz": f"path: {DIGITS_DATA}", **replace}
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


class StopAfter:
    """A progress display that counts batches and epochs, and asks to stop after `batches` or `epochs`."""

    def __init__(self, batches: int = 10 ** 9, epochs: int = 10 ** 9):
        self.limit, self.epoch_limit, self.batches, self.epochs = batches, epochs, 0, 0

    def __call__(self) -> bool:
        return self.batches >= self.limit or self.epochs >= self.epoch_limit

    def epoch_begin(self, epoch, first_batch=0):
        pass

    def batch_end(self, batch, logs, rows=0):
        self.batches += 1

    def epoch_end(self, logs):
        self.epochs += 1

    def message(self, text, always=False):
        pass


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args) -> Result:
    """The `specc` command in-process, as the executable runs it (`specc.cli.main`): exit status and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
    result = Result(code, out.getvalue(), err.getvalue())
    # the internal-error path is for bugs: no input a test gives, however hostile, may reach it
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def import_keras():
    """Keras on an installed backend (KERAS_BACKEND, or else JAX, else torch: `keras_reference` chooses for
    the tests and the benchmarks alike); the test is skipped without one."""
    import pytest
    try:
        return keras_on_a_backend()
    except ImportError as e:
        pytest.skip(f"Keras with one of its backends is not installed ({e})")


# -- every name a spec can use has a reference, and Keras' arguments -------------------------------------

def assert_same_names(registry, table, what: str):
    missing, unknown = sorted(set(registry) - set(table)), sorted(set(table) - set(registry))
    assert not missing and not unknown, (f"{what}: registered without a reference here: {missing}; "
                                         f"referenced here but not registered: {unknown}")


def same_default(ours, theirs) -> bool:
    """Equal, or written differently: a single number for a pair, lists for tuples, "linear" for no activation."""
    return (ours == theirs or (ours == "linear" and theirs is None)
            or (isinstance(ours, int) and isinstance(theirs, tuple) and set(theirs) == {ours})
            or (isinstance(ours, list) and as_lists(ours) == as_lists(theirs)))


def as_lists(value):
    """Tuples, at any depth, as lists."""
    return [as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


def keras_class_of(module, name: str):
    """The class of `module` named `name` (e.g. "reduce_lr_on_plateau" -> ReduceLROnPlateau)."""
    wanted = name.replace("_", "").lower()
    found = [v for k, v in vars(module).items() if inspect.isclass(v) and k.lower() == wanted]
    assert len(found) == 1, f"no Keras class for '{name}' in {module.__name__}"
    return found[0]


def assert_keras_arguments(settings_class, keras_class, skip: set[str]):
    """Each of specc's settings is an argument of the Keras class, with the same default where both have one."""
    parameters = inspect.signature(keras_class).parameters
    for field_name, info in settings_class.model_fields.items():
        name = info.alias or field_name  # the spec's key (`output_shape` of MultiHeadAttention)
        if name in skip:
            continue
        assert name in parameters, f"{keras_class.__name__} has no argument '{name}'"
        theirs = parameters[name].default
        if info.is_required() or theirs is inspect.Parameter.empty:
            continue
        assert same_default(info.default, theirs), \
            f"{keras_class.__name__}({name}=...): specc's default {info.default!r}, Keras' {theirs!r}"


def keras_class_by_alias(module, registry, name: str):
    """Keras' class (in keras.initializers, keras.regularizers, ...) for one of specc's names: the one named by
    the CamelCase alias specc accepts for it (Keras' own string names are not all usable: `get("constant")`
    fails in Keras)."""
    canonical = registry.canonical(name)
    found = [alias for alias in registry.names(with_aliases=True)
             if registry.canonical(alias) == canonical and alias[0].isupper() and hasattr(module, alias)]
    assert found, f"no Keras class among the aliases of '{name}'"
    return getattr(module, found[0])
