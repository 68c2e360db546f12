"""Cases of the pooling layer types (MaxPooling2D's are with the guide's layers in core.py)."""
from . import case

CASES = {
    "MaxPooling1D": [case({"type": "MaxPooling1D"}, (6, 3)),
                     case({"type": "MaxPooling1D", "pool_size": 3, "strides": 2}, (8, 2)),
                     case({"type": "MaxPooling1D", "pool_size": 3, "strides": 2, "padding": "same"}, (6, 2)),
                     case({"type": "MaxPooling1D", "pool_size": 2, "strides": 1, "padding": "same"}, (5, 3))],
    "AveragePooling1D": [case({"type": "AveragePooling1D", "pool_size": 2}, (7, 3)),
                         case({"type": "AveragePooling1D", "pool_size": 3, "strides": 1}, (6, 2)),
                         # edge windows hold 2 of 3 steps: they average 2
                         case({"type": "AveragePooling1D", "pool_size": 3, "strides": 2, "padding": "same"}, (6, 2))],
    "AveragePooling2D": [case({"type": "AveragePooling2D", "pool_size": 2}, (4, 5, 2)),
                         case({"type": "AveragePooling2D", "pool_size": [2, 3], "strides": [1, 2]}, (4, 7, 3)),
                         case({"type": "AveragePooling2D", "pool_size": 3, "strides": 2, "padding": "same"},
                              (5, 6, 2)),
                         case({"type": "AveragePooling2D", "pool_size": 2, "strides": 1, "padding": "same"},
                              (3, 4, 2))],
    "GlobalAveragePooling1D": [case({"type": "GlobalAveragePooling1D"}, (5, 3)),
                               case({"type": "GlobalAveragePooling1D", "keepdims": True}, (4, 2))],
    "GlobalAveragePooling2D": [case({"type": "GlobalAveragePooling2D"}, (3, 4, 2)),
                               case({"type": "GlobalAveragePooling2D", "keepdims": True}, (2, 3, 3))],
    "GlobalMaxPooling1D": [case({"type": "GlobalMaxPooling1D"}, (5, 3)),
                           case({"type": "GlobalMaxPooling1D", "keepdims": True}, (4, 2))],
    "GlobalMaxPooling2D": [case({"type": "GlobalMaxPooling2D"}, (3, 4, 2)),
                           case({"type": "GlobalMaxPooling2D", "keepdims": True}, (2, 3, 3))],
}
