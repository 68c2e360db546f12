"""The layer cases every layer test walks: one module of this package per family of layer types, each with
`CASES = {type name: [Case, ...]}`; LAYER_CASES merges them, so a new family is a new file here."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Case:
    """A layer entry of a spec (without `inputs:`), the shapes of its inputs (without the batch axis), their
    dtype, and the other layers it names (a wrapper's `layer:`), defined beside it in the spec."""
    entry: dict
    shapes: tuple
    dtype: str = "float32"
    named: dict = field(default_factory=dict)
    keras_training: bool = True  # False for layers that draw noise: their training step cannot match Keras'
    keras_module: Optional[str] = None  # where Keras' class is when not in keras.layers ("keras_hub.layers")

    @property
    def id(self) -> str:
        settings = ",".join(f"{k}={v}" for k, v in self.entry.items() if k != "type")
        return f"{self.entry['type']}({settings})" + "".join(map(str, self.shapes))


def case(entry: dict, *shapes: tuple, dtype: str = "float32", named: Optional[dict] = None,
         keras_training: bool = True, keras_module: Optional[str] = None) -> Case:
    return Case(entry, shapes, dtype, named or {}, keras_training, keras_module)



def _merged() -> dict[str, list[Case]]:
    merged: dict[str, list[Case]] = {}
    for module in pkgutil.iter_modules(__path__):
        for name, cases in importlib.import_module(f"{__name__}.{module.name}").CASES.items():
            assert name not in merged, f"{name} has cases in two modules"
            merged[name] = cases
    return merged


LAYER_CASES = _merged()
