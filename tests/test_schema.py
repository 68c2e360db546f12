"""`specc schema` tells the truth: every spec the loader accepts (the shipped specs, the README's examples, the
forms a spec may take) is valid under it, and specs the loader refuses for their form are not."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from support import run

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    result = run("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator, spec: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(spec)]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_is_valid_under_the_schema(validator, path):
    assert problems(validator, yaml.safe_load(path.read_text())) == []


def test_the_readme_examples_are_valid_under_the_schema(validator):
    blocks = re.findall(r"```yaml\n(specc: 1\b.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    for block in blocks:
        assert problems(validator, yaml.safe_load(block)) == []


BASE = {"specc": 1, "inputs": {"x": {"shape": [4]}}, "layers": {"out": {"type": "Dense", "units": 2, "inputs": "x"}},
        "outputs": ["out"], "compile": {"loss": "mse"}}

ACCEPTED = {  # forms the loader takes: each must be in the schema
    "bare optimizer": {"compile": {"loss": "mse", "optimizer": "adam"}},
    "optimizer class name": {"compile": {"loss": "mse", "optimizer": "Adam"}},
    "optimizer with a schedule": {"compile": {"loss": "mse", "optimizer": {
        "type": "adamw", "learning_rate": {"type": "CosineDecay", "initial_learning_rate": 0.1, "decay_steps": 10}}}},
    "loss with arguments": {"compile": {"loss": {"type": "huber", "delta": 2.0}}},
    "loss per output": {"compile": {"loss": {"out": "mae"}}},
    "metrics with arguments": {"compile": {"loss": "mse", "metrics": ["mae", {"type": "auc", "name": "pr_auc",
                                                                            "curve": "PR"}]}},
    "data path shorthand": {"data": {"train": "train.npz", "validation": {"path": "val.npz"}}},
    "callback by Keras' class name": {"fit": {"callbacks": ["EarlyStopping", {"type": "ReduceLROnPlateau"}]}},
    "weight arguments": {"layers": {"out": {"type": "Dense", "units": 2, "inputs": "x", "kernel_initializer":
                                            "HeNormal", "kernel_regularizer": {"type": "l2", "l2": 0.1},
                                            "bias_constraint": "non_neg"}}},
}
REFUSED = {  # forms the loader refuses: the schema refuses them too
    "unknown layer type": {"layers": {"out": {"type": "Dense2", "units": 2, "inputs": "x"}}},
    "unknown key": {"layers": {"out": {"type": "Dense", "unitz": 2, "inputs": "x"}}},
    "wrong value type": {"layers": {"out": {"type": "Dense", "units": "two", "inputs": "x"}}},
    "unknown optimizer": {"compile": {"loss": "mse", "optimizer": "adamm"}},
    "unknown loss": {"compile": {"loss": "msee"}},
    "unknown initializer": {"layers": {"out": {"type": "Dense", "units": 2, "inputs": "x",
                                               "kernel_initializer": "he_normall"}}},
    "missing outputs": {"outputs": None},
}


def edited(changes: dict) -> dict:
    spec = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize("name", ACCEPTED)
def test_forms_the_loader_accepts_are_in_the_schema(validator, name, tmp_path):
    spec = edited(ACCEPTED[name])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert run("validate", path).returncode == 0
    assert problems(validator, spec) == []


@pytest.mark.parametrize("name", REFUSED)
def test_forms_the_loader_refuses_are_not(validator, name, tmp_path):
    spec = edited(REFUSED[name])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert run("validate", path).returncode == 1
    assert problems(validator, spec)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_renders_without_a_warning(path):
    """`specc render` writes every default as the format takes it: no serializer warning."""
    import warnings

    from specc.spec import load_spec, render
    spec, _ = load_spec(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render(spec)
