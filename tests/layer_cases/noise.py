"""Cases of the noise layers: their training steps draw noise Keras' cannot match (keras_training=False);
tests/test_noise.py checks its statistics instead. The gradient checks run in training, through the masks."""
from . import case

CASES = {
    "Dropout": [case({"type": "Dropout", "rate": 0.5}, (3, 4), keras_training=False),
                case({"type": "Dropout", "rate": 0.3, "noise_shape": [None, 1, 4], "seed": 7}, (3, 4),
                     keras_training=False),
                case({"type": "Dropout", "rate": 1.0}, (5,), keras_training=False)],
    "SpatialDropout1D": [case({"type": "SpatialDropout1D", "rate": 0.4}, (5, 3), keras_training=False)],
    "SpatialDropout2D": [case({"type": "SpatialDropout2D", "rate": 0.4, "seed": 1}, (3, 3, 4),
                              keras_training=False)],
    "GaussianNoise": [case({"type": "GaussianNoise", "stddev": 0.5}, (2, 5), keras_training=False)],
    "GaussianDropout": [case({"type": "GaussianDropout", "rate": 0.3}, (2, 5), keras_training=False)],
    "AlphaDropout": [case({"type": "AlphaDropout", "rate": 0.2}, (2, 5), keras_training=False),
                     case({"type": "AlphaDropout", "rate": 0.5, "noise_shape": [None, 2, 1]}, (2, 5),
                          keras_training=False)],
}
