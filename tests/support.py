"""What several test files share: the shipped digits spec, edited, and the `specc` command run in-process."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

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
    assert "Traceback" not in result.stderr, result.stderr
    return result


def import_keras():
    """Keras on an installed backend (KERAS_BACKEND, or else JAX, else torch); the test is skipped without one."""
    import pytest
    if "KERAS_BACKEND" not in os.environ:
        for backend in ("jax", "torch"):
            if importlib.util.find_spec(backend):
                os.environ["KERAS_BACKEND"] = backend
                break
    return pytest.importorskip("keras", exc_type=ImportError)
