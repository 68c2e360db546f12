"""Cases of the merge layers beyond Add, Subtract and Concatenate (whose cases are in core.py)."""
from . import case

CASES = {
    "Multiply": [case({"type": "Multiply"}, (3, 2), (3, 2)),
                 case({"type": "Multiply"}, (4,), (4,), (4,)),
                 case({"type": "Multiply"}, (3, 4), (1, 4)),  # broadcast as Keras does
                 case({"type": "Multiply"}, (2, 3, 4), (4,))],  # a smaller rank
    "Average": [case({"type": "Average"}, (3, 2), (3, 2)),
                case({"type": "Average"}, (4,), (4,), (4,)),
                case({"type": "Average"}, (3, 1), (3, 4))],
    "Maximum": [case({"type": "Maximum"}, (3, 2), (3, 2)),
                case({"type": "Maximum"}, (4,), (4,), (4,)),
                case({"type": "Maximum"}, (2, 3), (3,))],
    "Minimum": [case({"type": "Minimum"}, (3, 2), (3, 2)),
                case({"type": "Minimum"}, (4,), (4,), (4,)),
                case({"type": "Minimum"}, (1, 3), (2, 1))],
    "Dot": [case({"type": "Dot", "axes": 1}, (4,), (4,)),  # -> (None, 1)
            case({"type": "Dot", "axes": 2}, (3, 4), (5, 4)),  # -> (None, 3, 5)
            case({"type": "Dot", "axes": [1, 2]}, (3, 4), (2, 3)),  # -> (None, 4, 2)
            case({"type": "Dot", "axes": -1}, (2, 3, 4), (4,)),  # -> (None, 2, 3)
            case({"type": "Dot", "axes": [2, 1], "normalize": True}, (3, 4), (4, 2)),
            case({"type": "Dot", "axes": 1, "normalize": True}, (5,), (5,))],
}
