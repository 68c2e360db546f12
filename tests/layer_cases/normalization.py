"""Cases of the normalization and preprocessing layers: every option that changes the maths. The training-step
comparison runs BatchNormalization on batch statistics and checks its moving statistics after the step.
An adapted Normalization (statistics as weights) is compared with Keras' adapt in tests/test_normalization.py."""
from . import case

CASES = {
    "BatchNormalization": [
        case({"type": "BatchNormalization"}, (5,)),
        case({"type": "BatchNormalization", "momentum": 0.5, "epsilon": 0.1}, (3, 4)),
        case({"type": "BatchNormalization", "axis": 1}, (3, 2, 2)),  # channels first: a moved axis
        case({"type": "BatchNormalization", "axis": -2, "center": False}, (3, 4)),
        case({"type": "BatchNormalization", "scale": False}, (2, 2, 3)),
    ],
    "LayerNormalization": [
        case({"type": "LayerNormalization"}, (6,)),
        case({"type": "LayerNormalization", "axis": 1, "epsilon": 0.1}, (4, 3)),  # not the last axis
        case({"type": "LayerNormalization", "axis": [-2, -1]}, (2, 3, 4)),
        case({"type": "LayerNormalization", "axis": [1, 3], "center": False}, (2, 3, 4)),
        case({"type": "LayerNormalization", "scale": False}, (3, 5)),
    ],
    "UnitNormalization": [
        case({"type": "UnitNormalization"}, (4,)),
        case({"type": "UnitNormalization", "axis": [1, 2]}, (3, 2, 2)),
        case({"type": "UnitNormalization", "axis": 1}, (3, 4)),
    ],
    "Rescaling": [
        case({"type": "Rescaling", "scale": 0.5}, (3,)),
        case({"type": "Rescaling", "scale": 2.0, "offset": -1.0}, (2, 3)),
        case({"type": "Rescaling", "scale": [0.5, 2.0, -1.0], "offset": [1.0, 0.0, 3.0]}, (2, 3)),
    ],
    "Normalization": [
        case({"type": "Normalization", "mean": [1.0, -2.0, 0.5], "variance": [4.0, 0.25, 1.0]}, (3,)),
        case({"type": "Normalization", "mean": 2.0, "variance": 9.0, "axis": None}, (2, 3)),
        case({"type": "Normalization", "axis": 1, "mean": [0.5, -1.0], "variance": [2.0, 3.0]}, (2, 3)),
        case({"type": "Normalization", "axis": [1, 2], "mean": [[0.0, 1.0], [2.0, 3.0]],
              "variance": [[1.0, 2.0], [0.5, 4.0]]}, (2, 2)),
        case({"type": "Normalization", "mean": [1.0, 2.0], "variance": [4.0, 0.0], "invert": True}, (2,)),
    ],
}
