"""Cases of the layer types that move values (Flatten's is with the guide's layers in core.py)."""
from . import case

CASES = {
    "Reshape": [case({"type": "Reshape", "target_shape": [3, 4]}, (2, 6)),
                case({"type": "Reshape", "target_shape": [2, -1, 3]}, (12,)),
                case({"type": "Reshape", "target_shape": [-1]}, (2, 3, 2))],
    "Permute": [case({"type": "Permute", "dims": [2, 1]}, (3, 4)),
                case({"type": "Permute", "dims": [3, 1, 2]}, (2, 3, 4))],
    "RepeatVector": [case({"type": "RepeatVector", "n": 3}, (4,))],
    "UpSampling1D": [case({"type": "UpSampling1D"}, (3, 2)),
                     case({"type": "UpSampling1D", "size": 3}, (2, 4))],
    "UpSampling2D": [case({"type": "UpSampling2D"}, (2, 3, 2)),
                     case({"type": "UpSampling2D", "size": [3, 2]}, (2, 2, 3)),
                     case({"type": "UpSampling2D", "interpolation": "bilinear"}, (3, 4, 2)),
                     case({"type": "UpSampling2D", "size": [3, 4], "interpolation": "bilinear"}, (3, 2, 2)),
                     case({"type": "UpSampling2D", "size": [1, 2], "interpolation": "bilinear"}, (1, 3, 1))],
    "ZeroPadding1D": [case({"type": "ZeroPadding1D"}, (3, 2)),
                      case({"type": "ZeroPadding1D", "padding": [2, 0]}, (3, 2))],
    "ZeroPadding2D": [case({"type": "ZeroPadding2D"}, (2, 3, 2)),
                      case({"type": "ZeroPadding2D", "padding": [2, 1]}, (2, 2, 1)),
                      case({"type": "ZeroPadding2D", "padding": [[0, 2], [1, 3]]}, (2, 3, 2))],
    "Cropping1D": [case({"type": "Cropping1D"}, (4, 2)),
                   case({"type": "Cropping1D", "cropping": [0, 2]}, (5, 3))],
    "Cropping2D": [case({"type": "Cropping2D"}, (2, 3, 2)),
                   case({"type": "Cropping2D", "cropping": 1}, (4, 4, 2)),
                   case({"type": "Cropping2D", "cropping": [1, 2]}, (4, 5, 1)),
                   case({"type": "Cropping2D", "cropping": [[0, 2], [3, 1]]}, (4, 6, 2))],
}
