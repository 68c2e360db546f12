"""Cases of the guide's layer types."""
from specc.layers.activations import ACTIVATIONS

from . import case

CASES = {
    # every activation through the layer, so Keras checks each name's meaning too
    "Activation": [case({"type": "Activation", "activation": name}, (2, 5)) for name in ACTIVATIONS],
    "Subtract": [case({"type": "Subtract"}, (3, 2), (3, 2))],
    "Add": [case({"type": "Add"}, (3, 2), (3, 2)),
            case({"type": "Add"}, (4,), (4,), (4,))],
    "Concatenate": [case({"type": "Concatenate"}, (3,), (2,)),
                    case({"type": "Concatenate", "axis": 1}, (2, 3), (1, 3)),
                    case({"type": "Concatenate", "axis": -2}, (2, 3), (1, 3), (3, 3))],
    "Dense": [case({"type": "Dense", "units": 4, "activation": "tanh"}, (5,)),
              case({"type": "Dense", "units": 3, "activation": "softmax"}, (2, 5)),
              case({"type": "Dense", "units": 2, "use_bias": False}, (4,)),
              # on the last axis of rank 3 and 4 inputs
              case({"type": "Dense", "units": 3, "activation": "relu"}, (4, 5)),
              case({"type": "Dense", "units": 2, "activation": "sigmoid"}, (2, 3, 4))],
    "Embedding": [case({"type": "Embedding", "input_dim": 7, "output_dim": 3}, (4,), dtype="int32"),
                  case({"type": "Embedding", "input_dim": 5, "output_dim": 2}, (2, 3), dtype="int32")],
    "Flatten": [case({"type": "Flatten"}, (3, 2, 2))],
    "MaxPooling2D": [case({"type": "MaxPooling2D"}, (4, 4, 2)),
                     case({"type": "MaxPooling2D", "pool_size": 3, "strides": 2, "padding": "same"}, (5, 5, 2)),
                     case({"type": "MaxPooling2D", "pool_size": [2, 3], "strides": 1}, (4, 5, 1))],
    "TimeDistributed": [
        case({"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2, "activation": "tanh"}}, (3, 4)),
        case({"type": "TimeDistributed", "layer": "proj"}, (3, 5), named={"proj": {"type": "Dense", "units": 3}}),
        case({"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 2, "kernel_size": 2}}, (2, 4, 4, 1)),
    ],
}
