"""Every layer type a spec can name: one module of this package per family, each type registered in LAYERS
where it is defined. Importing the package imports every module in it, so a new file is all a type needs."""
import importlib
import pkgutil

from .base import LAYERS, InputsError, Layer, Shape, ShapeError, Training, TrainingFlag, show_shape
from .wrappers import TimeDistributed, Wrapper

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")



def __getattr__(name: str):
    """Every registered type by its name: `from specc.layers import Dense`."""
    if name in LAYERS:
        return LAYERS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LAYERS", "InputsError", "Layer", "Shape", "ShapeError", "Training", "TrainingFlag", "show_shape",
           "TimeDistributed", "Wrapper"]
