"""Cases of the recurrent layers: every option that changes the maths, through time and in both directions.
(States passed between layers, initial_state, return_state and masks: tests/test_recurrent.py, which also
compares them with Keras.)"""
from . import case


def rnn_cases(type_name: str, **extra) -> list:
    """The options LSTM, GRU and SimpleRNN share, each in a case of its own."""
    entry = {"type": type_name, **extra}
    return [
        case({**entry, "units": 3}, (4, 2)),
        case({**entry, "units": 2, "return_sequences": True}, (3, 3)),
        case({**entry, "units": 2, "use_bias": False, "return_sequences": True}, (3, 2)),
        case({**entry, "units": 3, "go_backwards": True}, (4, 2)),
        case({**entry, "units": 2, "go_backwards": True, "return_sequences": True}, (3, 2)),
        case({**entry, "units": 2, "activation": "relu"}, (3, 3)),
        # noise in training: Keras' inference output must match, and the gradients finite differences
        case({**entry, "units": 3, "dropout": 0.4, "return_sequences": True}, (4, 3), keras_training=False),
        case({**entry, "units": 3, "recurrent_dropout": 0.4, "seed": 3}, (4, 2), keras_training=False),
    ]


CASES = {
    "LSTM": [*rnn_cases("LSTM"),
             case({"type": "LSTM", "units": 2, "return_sequences": True, "activation": "relu",
                   "recurrent_activation": "tanh"}, (3, 3))],
    "GRU": [*rnn_cases("GRU"),
            *rnn_cases("GRU", reset_after=False),
            case({"type": "GRU", "units": 2, "recurrent_activation": "hard_sigmoid", "return_sequences": True},
                 (3, 2))],
    "SimpleRNN": [*rnn_cases("SimpleRNN"),
                  case({"type": "SimpleRNN", "units": 3, "activation": "sigmoid"}, (4, 2))],
}

# the inner layer is named as Keras' default would be, so the Keras comparison finds `forward_lstm/...`
LSTM_LAYER = {"type": "LSTM", "units": 2, "name": "lstm"}
CASES["Bidirectional"] = [
    case({"type": "Bidirectional", "layer": LSTM_LAYER}, (3, 2)),
    case({"type": "Bidirectional", "layer": {**LSTM_LAYER, "return_sequences": True}}, (3, 2)),
    *[case({"type": "Bidirectional", "merge_mode": mode, "layer": {**LSTM_LAYER, "return_sequences": True}}, (3, 2))
      for mode in ("sum", "mul", "ave")],
    # (not with the layer's go_backwards: Keras' fused bidirectional GRU and LSTM paths ignore it)
    case({"type": "Bidirectional", "layer": {"type": "GRU", "units": 3, "name": "gru"}}, (4, 2)),
    case({"type": "Bidirectional", "layer": {"type": "GRU", "units": 2, "name": "gru", "reset_after": False,
                                             "return_sequences": True}}, (3, 2)),
    case({"type": "Bidirectional", "merge_mode": "concat",
          "layer": {"type": "SimpleRNN", "units": 2, "name": "simple_rnn", "return_sequences": True}}, (3, 3)),
]
# (the masks it makes: tests/test_recurrent.py)
CASES["Masking"] = [case({"type": "Masking"}, (3, 2)), case({"type": "Masking", "mask_value": 0.5}, (2, 3, 2))]
