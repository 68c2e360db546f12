"""Cases of the attention layers: every option that changes the maths, with two inputs and with three.
Dropout cases draw noise, so they skip the Keras training step (tests/test_attention.py checks their
statistics)."""
from . import case

MHA = {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3}

CASES = {
    "MultiHeadAttention": [
        case(MHA, (4, 5), (3, 5)),
        case(MHA, (4, 5), (3, 6), (3, 2)),  # [query, value, key] of different features
        case({**MHA, "use_causal_mask": True}, (4, 5), (4, 5)),
        case({**MHA, "use_causal_mask": True}, (5, 3), (3, 4)),  # more query steps than key steps
        case({**MHA, "use_bias": False}, (3, 4), (2, 4)),
        case({**MHA, "attention_axes": [1]}, (3, 4), (2, 4)),  # the default, written out
        # Keras on JAX fails for value_dim != key_dim (tests/test_attention.py checks that against numpy)
        case({**MHA, "value_dim": 3, "output_shape": 3}, (3, 4), (2, 5)),
        case({**MHA, "num_heads": 1, "output_shape": [2, 3]}, (3, 4), (3, 4)),
        case({**MHA, "dropout": 0.3}, (4, 5), (3, 5), keras_training=False),
    ],
    "Attention": [
        case({"type": "Attention"}, (4, 3), (2, 3)),
        case({"type": "Attention"}, (4, 3), (2, 5), (2, 3)),
        case({"type": "Attention", "use_scale": True}, (4, 3), (2, 3)),
        case({"type": "Attention", "use_causal_mask": True}, (4, 3), (4, 2), (4, 3)),
        case({"type": "Attention", "score_mode": "concat"}, (4, 3), (2, 3)),
        case({"type": "Attention", "score_mode": "concat", "use_scale": True}, (3, 2), (4, 5), (4, 2)),
        case({"type": "Attention", "dropout": 0.4}, (4, 3), (5, 3), keras_training=False),
    ],
    "AdditiveAttention": [
        case({"type": "AdditiveAttention"}, (4, 3), (2, 3)),
        case({"type": "AdditiveAttention", "use_scale": False}, (3, 2), (4, 5), (4, 2)),
        case({"type": "AdditiveAttention", "use_causal_mask": True}, (3, 2), (3, 2)),
        case({"type": "AdditiveAttention", "dropout": 0.4}, (4, 3), (5, 3), keras_training=False),
    ],
    "PositionEmbedding": [
        case({"type": "PositionEmbedding", "sequence_length": 4}, (4, 3), keras_module="keras_hub.layers"),
        case({"type": "PositionEmbedding", "sequence_length": 6}, (3, 2), keras_module="keras_hub.layers"),
        case({"type": "PositionEmbedding", "sequence_length": 3}, (2, 3, 2), keras_module="keras_hub.layers"),
    ],
}
