"""Cases of the activation layers with arguments (the Activation layer's cases are in core.py)."""
from . import case

CASES = {
    "ReLU": [case({"type": "ReLU"}, (2, 5)),
             case({"type": "ReLU", "max_value": 0.8}, (6,)),
             case({"type": "ReLU", "negative_slope": 0.1}, (6,)),  # leaky
             case({"type": "ReLU", "threshold": 0.4, "negative_slope": 0.2, "max_value": 1.5}, (3, 4))],
    "LeakyReLU": [case({"type": "LeakyReLU"}, (2, 5)),
                  case({"type": "LeakyReLU", "negative_slope": 0.05}, (6,))],
    "PReLU": [case({"type": "PReLU"}, (2, 5)),
              case({"type": "PReLU", "shared_axes": [1, 2]}, (3, 2, 4)),  # one alpha per channel
              case({"type": "PReLU", "shared_axes": 1}, (3, 4))],
    "ELU": [case({"type": "ELU"}, (2, 5)),
            case({"type": "ELU", "alpha": 0.5}, (6,))],
    "Softmax": [case({"type": "Softmax"}, (2, 5)),
                case({"type": "Softmax", "axis": 1}, (3, 4)),
                case({"type": "Softmax", "axis": [1, 2]}, (3, 2, 2))],
}
