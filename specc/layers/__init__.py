"""Every layer type a spec can name. Adding a type: one file here and one entry in LAYER_TYPES."""
from .activations import Activation
from .base import Layer, Shape, ShapeError, show_shape
from .conv import Conv2D, MaxPooling2D
from .dense import Dense
from .embedding import Embedding
from .merge import Add, Concatenate
from .recurrent import LSTM
from .reshape import Flatten
from .wrappers import TimeDistributed

LAYER_TYPES: tuple[type[Layer], ...] = (Dense, Activation, Flatten, Concatenate, Add,
                                         TimeDistributed, Embedding, LSTM, Conv2D, MaxPooling2D)
LAYER_NAMES = tuple(cls.__name__ for cls in LAYER_TYPES)

__all__ = ["Layer", "Shape", "ShapeError", "show_shape", "LAYER_TYPES", "LAYER_NAMES",
           *LAYER_NAMES]
