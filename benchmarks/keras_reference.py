"""The guide's models written with Keras 3's functional API: the reference that specc is measured against
(the benchmark's Keras peer) and checked against (tests/test_keras_interop.py).

Each model is keyed by its spec in specs/ (`MODELS["headline"]` is specs/headline.yaml) and names its layers
as the spec does, so specc's weights file ("<layer>/<weight>", "<model>/<layer>/<weight>" inside a
sub-model, in Keras' names and layouts) loads into it by name. Images are channels-last, as in specc.

Keras is imported inside functions only: this module imports where Keras is not installed, and Keras must
not be imported before `import_keras` has chosen its backend.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

import numpy as np

from .workloads import loss_weights

BACKENDS = ("jax", "torch")  # in order of preference, where KERAS_BACKEND does not name one


def import_keras(backend: Optional[str] = None):
    """Keras on `backend`, else on KERAS_BACKEND, else on the first of BACKENDS that is installed.

    Keras reads KERAS_BACKEND once, when first imported; its own default, TensorFlow, is not one specc is
    compared with. Raises ImportError when Keras or the backend is missing."""
    if backend is not None:
        os.environ["KERAS_BACKEND"] = backend
    elif "KERAS_BACKEND" not in os.environ:
        installed = [name for name in BACKENDS if importlib.util.find_spec(name)]
        if installed:
            os.environ["KERAS_BACKEND"] = installed[0]
    import keras
    return keras


# ==========================================================================================================
# The models, one function per spec, each given the keras module
# ==========================================================================================================

def digits(keras):
    L = keras.layers
    images = keras.Input((8, 8), name="images")
    x = L.Flatten(name="pixels")(images)
    x = L.Dense(64, activation="relu", name="scaled")(x)
    x = L.Dense(64, activation="relu", name="hidden")(x)
    return keras.Model(images, L.Dense(10, activation="softmax", name="digit")(x))


def digits_convnet(keras):
    L = keras.layers
    images = keras.Input((8, 8), name="images")
    x = L.Rescaling(0.0625, name="scaled")(L.Reshape((8, 8, 1), name="image")(images))
    x = L.ReLU(name="relu")(L.BatchNormalization(name="conv_bn")(L.Conv2D(16, 3, padding="same", name="conv")(x)))
    x = L.Flatten(name="flat")(L.MaxPooling2D(2, name="pooled")(x))
    x = L.ReLU(name="hidden_relu")(L.BatchNormalization(name="hidden_bn")(L.Dense(64, name="hidden")(x)))
    x = L.Dropout(0.2, name="dropout")(x)
    return keras.Model(images, L.Dense(10, activation="softmax", name="digit")(x))


def dense(keras):
    L = keras.layers
    pixels = keras.Input((784,), name="pixels")
    x = L.Dense(64, activation="relu", name="dense_1")(pixels)
    x = L.Dense(64, activation="relu", name="dense_2")(x)
    return keras.Model(pixels, L.Dense(10, activation="softmax", name="digit")(x))


def headline(keras):
    L = keras.layers
    main_input = keras.Input((100,), dtype="int32", name="main_input")
    aux_input = keras.Input((5,), name="aux_input")
    x = L.Embedding(10000, 512, name="embedding")(main_input)
    lstm = L.LSTM(32, name="lstm")(x)
    aux_output = L.Dense(1, activation="sigmoid", name="aux_output")(lstm)
    x = L.Concatenate(name="merged")([lstm, aux_input])
    for name in ("dense_1", "dense_2", "dense_3"):
        x = L.Dense(64, activation="relu", name=name)(x)
    main_output = L.Dense(1, activation="sigmoid", name="main_output")(x)
    return keras.Model([main_input, aux_input], [main_output, aux_output])


def shared_lstm(keras):
    L = keras.layers
    tweet_a = keras.Input((280, 256), name="tweet_a")
    tweet_b = keras.Input((280, 256), name="tweet_b")
    shared = L.LSTM(64, name="shared_lstm")  # one layer called twice: the same weights
    merged = L.Concatenate(name="merged")([shared(tweet_a), shared(tweet_b)])
    return keras.Model([tweet_a, tweet_b], L.Dense(1, activation="sigmoid", name="same_author")(merged))


def shared_vision(keras):
    L = keras.layers
    digit_input = keras.Input((27, 27, 1), name="digit_input")
    x = L.Conv2D(64, 3, name="conv_1")(digit_input)
    x = L.Conv2D(64, 3, name="conv_2")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    vision_model = keras.Model(digit_input, L.Flatten(name="out")(x), name="vision_model")
    digit_a = keras.Input((27, 27, 1), name="digit_a")
    digit_b = keras.Input((27, 27, 1), name="digit_b")
    merged = L.Concatenate(name="merged")([vision_model(digit_a), vision_model(digit_b)])
    return keras.Model([digit_a, digit_b], L.Dense(1, activation="sigmoid", name="same")(merged))


def inception(keras):
    L = keras.layers
    input_img = keras.Input((256, 256, 3), name="input_img")
    tower_1 = L.Conv2D(64, 1, padding="same", activation="relu", name="tower_1a")(input_img)
    tower_1 = L.Conv2D(64, 3, padding="same", activation="relu", name="tower_1")(tower_1)
    tower_2 = L.Conv2D(64, 1, padding="same", activation="relu", name="tower_2a")(input_img)
    tower_2 = L.Conv2D(64, 5, padding="same", activation="relu", name="tower_2")(tower_2)
    tower_3 = L.MaxPooling2D(3, strides=1, padding="same", name="tower_3a")(input_img)
    tower_3 = L.Conv2D(64, 1, padding="same", activation="relu", name="tower_3")(tower_3)
    module = L.Concatenate(axis=-1, name="module")([tower_1, tower_2, tower_3])
    x = L.MaxPooling2D(16, name="pooled")(module)  # the spec's small classifier head
    x = L.Flatten(name="flat")(x)
    return keras.Model(input_img, L.Dense(10, activation="softmax", name="label")(x))


def residual(keras):
    L = keras.layers
    x = keras.Input((256, 256, 3), name="x")
    y = L.Conv2D(3, 3, padding="same", name="y")(x)
    return keras.Model(x, L.Add(name="z")([x, y]))


def mnist_convnet(keras):
    L = keras.layers
    image = keras.Input((28, 28, 1), name="image")
    x = L.Conv2D(32, 3, activation="relu", name="conv2d")(image)
    x = L.MaxPooling2D(2, name="max_pooling2d")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2d_1")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d_1")(x)
    x = L.Dropout(0.5, name="dropout")(L.Flatten(name="flatten")(x))
    return keras.Model(image, L.Dense(10, activation="softmax", name="digit")(x))


def text_classifier(keras):
    L = keras.layers
    tokens = keras.Input((500,), dtype="int32", name="tokens")
    x = L.Embedding(20000, 128, name="embedding")(tokens)
    x = L.Dropout(0.5, name="dropout")(x)
    x = L.Conv1D(128, 7, strides=3, activation="relu", name="conv1d")(x)
    x = L.Conv1D(128, 7, strides=3, activation="relu", name="conv1d_1")(x)
    x = L.GlobalMaxPooling1D(name="pooled")(x)
    x = L.Dropout(0.5, name="dropout_1")(L.Dense(128, activation="relu", name="dense")(x))
    return keras.Model(tokens, L.Dense(1, activation="sigmoid", name="predictions")(x))


def timeseries_fcn(keras):
    L = keras.layers
    series = keras.Input((500, 1), name="series")
    x = series
    for i in (1, 2, 3):
        x = L.Conv1D(64, 3, padding="same", name=f"conv{i}")(x)
        x = L.ReLU(name=f"relu{i}")(L.BatchNormalization(name=f"bn{i}")(x))
    x = L.GlobalAveragePooling1D(name="pooled")(x)
    return keras.Model(series, L.Dense(2, activation="softmax", name="label")(x))


def mini_xception(keras):
    L = keras.layers
    image = keras.Input((180, 180, 3), name="image")
    x = L.Rescaling(1.0 / 255, name="rescaling")(image)
    x = L.Conv2D(128, 3, strides=2, padding="same", name="entry_conv")(x)
    x = L.Activation("relu", name="entry_relu")(L.BatchNormalization(name="entry_bn")(x))
    previous = x
    for i, size in enumerate((256, 512, 728), 1):
        b = f"block{i}"
        x = L.Activation("relu", name=f"{b}_relu_a")(x)
        x = L.BatchNormalization(name=f"{b}_bn_a")(L.SeparableConv2D(size, 3, padding="same", name=f"{b}_sep_a")(x))
        x = L.Activation("relu", name=f"{b}_relu_b")(x)
        x = L.BatchNormalization(name=f"{b}_bn_b")(L.SeparableConv2D(size, 3, padding="same", name=f"{b}_sep_b")(x))
        x = L.MaxPooling2D(3, strides=2, padding="same", name=f"{b}_pool")(x)
        shortcut = L.Conv2D(size, 1, strides=2, padding="same", name=f"{b}_shortcut")(previous)
        x = previous = L.Add(name=f"{b}_add")([x, shortcut])
    x = L.BatchNormalization(name="exit_bn")(L.SeparableConv2D(1024, 3, padding="same", name="exit_sep")(x))
    x = L.GlobalAveragePooling2D(name="pooled")(L.Activation("relu", name="exit_relu")(x))
    x = L.Dropout(0.25, name="dropout")(x)
    return keras.Model(image, L.Dense(1, name="logit")(x))


def conv_autoencoder(keras):
    L = keras.layers
    noisy = keras.Input((28, 28, 1), name="noisy")
    x = L.Conv2D(32, 3, activation="relu", padding="same", name="conv2d")(noisy)
    x = L.MaxPooling2D(2, padding="same", name="max_pooling2d")(x)
    x = L.Conv2D(32, 3, activation="relu", padding="same", name="conv2d_1")(x)
    x = L.MaxPooling2D(2, padding="same", name="max_pooling2d_1")(x)
    x = L.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same", name="conv2d_transpose")(x)
    x = L.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same", name="conv2d_transpose_1")(x)
    return keras.Model(noisy, L.Conv2D(1, 3, activation="sigmoid", padding="same", name="clean")(x))



def position_embedding(keras, sequence_length: int, name: str):
    """Keras-Hub's PositionEmbedding (not a keras.layers class): the first `steps` rows of a learned
    (sequence_length, features) table `embeddings`, broadcast over the batch; the input gives only its shape."""

    class PositionEmbedding(keras.layers.Layer):
        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=(sequence_length, input_shape[-1]), name="embeddings",
                                              initializer="glorot_uniform")

        def call(self, inputs):
            shape = keras.ops.shape(inputs)
            return keras.ops.broadcast_to(self.embeddings[:shape[-2]], shape)

    return PositionEmbedding(name=name)


def transformer_classifier(keras):
    L = keras.layers
    tokens = keras.Input((200,), dtype="int32", name="tokens")
    token_emb = L.Embedding(20000, 32, name="token_emb")(tokens)
    x = L.Add(name="embedded")([token_emb, position_embedding(keras, 200, "pos_emb")(token_emb)])
    attended = L.Dropout(0.1, name="dropout1")(L.MultiHeadAttention(2, 32, name="attention")(x, x))
    x = L.LayerNormalization(epsilon=1e-6, name="layernorm1")(L.Add(name="residual1")([x, attended]))
    ffn = L.Dense(32, name="ffn_2")(L.Dense(32, activation="relu", name="ffn_1")(x))
    x = L.Add(name="residual2")([x, L.Dropout(0.1, name="dropout2")(ffn)])
    x = L.GlobalAveragePooling1D(name="pooled")(L.LayerNormalization(epsilon=1e-6, name="layernorm2")(x))
    x = L.Dense(20, activation="relu", name="dense")(L.Dropout(0.1, name="dropout3")(x))
    return keras.Model(tokens, L.Dense(2, activation="softmax", name="predictions")(L.Dropout(0.1, name="dropout4")(x)))


def timeseries_transformer(keras):
    L = keras.layers
    series = keras.Input((500, 1), name="series")
    x = series
    for block in (1, 2, 3, 4):
        p = f"block{block}_"
        normed = L.LayerNormalization(epsilon=1e-6, name=f"{p}norm1")(x)
        attended = L.MultiHeadAttention(4, 256, dropout=0.25, name=f"{p}attention")(normed, normed)
        res = L.Add(name=f"{p}residual1")([L.Dropout(0.25, name=f"{p}dropout1")(attended), x])
        normed = L.LayerNormalization(epsilon=1e-6, name=f"{p}norm2")(res)
        y = L.Conv1D(4, 1, activation="relu", name=f"{p}conv1")(normed)
        y = L.Conv1D(1, 1, name=f"{p}conv2")(L.Dropout(0.25, name=f"{p}dropout2")(y))
        x = L.Add(name=f"{p}residual2")([y, res])
    x = L.GlobalAveragePooling1D(data_format="channels_first", name="pooled")(x)  # over the one feature
    x = L.Dropout(0.4, name="mlp_dropout")(L.Dense(128, activation="relu", name="mlp")(x))
    return keras.Model(series, L.Dense(2, activation="softmax", name="label")(x))


def bidirectional_imdb(keras):
    L = keras.layers
    tokens = keras.Input((200,), dtype="int32", name="tokens")
    x = L.Embedding(20000, 128, name="embedding")(tokens)
    x = L.Bidirectional(L.LSTM(64, return_sequences=True, name="lstm"), name="bidirectional")(x)
    x = L.Bidirectional(L.LSTM(64, name="lstm"), name="bidirectional_1")(x)
    return keras.Model(tokens, L.Dense(1, activation="sigmoid", name="predictions")(x))


def lstm_seq2seq(keras):
    L = keras.layers
    encoder_inputs = keras.Input((16, 71), name="encoder_inputs")
    decoder_inputs = keras.Input((59, 93), name="decoder_inputs")
    _, h, c = L.LSTM(256, return_state=True, name="encoder")(encoder_inputs)
    decoded, _, _ = L.LSTM(256, return_sequences=True, return_state=True, name="decoder")(
        decoder_inputs, initial_state=[h, c])
    return keras.Model([encoder_inputs, decoder_inputs], L.Dense(93, activation="softmax", name="dense")(decoded))


def masked_gru(keras):
    L = keras.layers
    tokens = keras.Input((200,), dtype="int32", name="tokens")
    x = L.Embedding(5000, 16, mask_zero=True, name="embedding")(tokens)
    x = L.GRU(32, name="gru")(x)
    return keras.Model(tokens, L.Dense(1, activation="sigmoid", name="predictions")(x))


MODELS = {"digits": digits, "digits_convnet": digits_convnet, "dense": dense, "headline": headline,
          "shared_lstm": shared_lstm, "shared_vision": shared_vision, "inception": inception, "residual": residual,
          "mnist_convnet": mnist_convnet, "text_classifier": text_classifier, "timeseries_fcn": timeseries_fcn,
          "mini_xception": mini_xception, "conv_autoencoder": conv_autoencoder,
          "transformer_classifier": transformer_classifier, "timeseries_transformer": timeseries_transformer,
          "bidirectional_imdb": bidirectional_imdb, "lstm_seq2seq": lstm_seq2seq, "masked_gru": masked_gru}

def build(spec: str, backend: Optional[str] = None):
    """The Keras model of specs/<spec>.yaml, untrained."""
    return MODELS[spec](import_keras(backend))


# ==========================================================================================================
# What specc's model carries besides its layers: weights, the compile section, the data's layout
# ==========================================================================================================

def keyed_layers(net, prefix: str = ""):
    """(key prefix, layer) of every layer with weights, its weights keyed as specc keys them: "<layer>/",
    and "<model>/<layer>/" inside a sub-model (listed once however often it is called)."""
    for layer in net.layers:
        if hasattr(layer, "layers"):
            yield from keyed_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            yield f"{prefix}{layer.name}/", layer


def weight_keys(prefix: str, layer) -> list[str]:
    """The specc keys of a layer's weights, in the layer's order: Keras' variable path below the layer
    (`query/kernel` of a MultiHeadAttention), without an RNN's cell level (an LSTM's `lstm_cell/`)."""
    return [prefix + "/".join(part for part in w.path.removeprefix(f"{layer.name}/").split("/")
                              if not part.endswith("_cell"))
            for w in layer.weights]


def load_specc_weights(net, arrays: dict[str, np.ndarray]) -> set[str]:
    """Set every layer's weights from specc's arrays (a KeyError names a weight specc does not have); returns
    the keys that no layer took (none, when the models match)."""
    left = dict(arrays)
    for prefix, layer in keyed_layers(net):
        layer.set_weights([left.pop(key) for key in weight_keys(prefix, layer)])
    return set(left)


def specc_keyed_weights(net) -> dict[str, np.ndarray]:
    """The model's weights keyed as in specc's weights file."""
    return {key: value for prefix, layer in keyed_layers(net)
            for key, value in zip(weight_keys(prefix, layer), layer.get_weights())}


def optimizer_like(config):
    """Keras' optimizer for the spec's `compile.optimizer` settings (specc takes Keras' names and defaults)."""
    keras = import_keras()
    if config.type == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=config.beta_1,
                                     beta_2=config.beta_2, epsilon=config.epsilon)
    if config.type == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=config.learning_rate, rho=config.rho,
                                        momentum=config.momentum, epsilon=config.epsilon, centered=config.centered)
    return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum,
                                nesterov=config.nesterov)


def _keras_like(module, config, name: Optional[str] = None):
    """A spec's loss or metric for Keras: its name when it has no arguments (as a user writes it), else the
    Keras class of that name built with the same arguments."""
    options = config.model_dump(exclude={"type", "name"}, exclude_defaults=True)
    if not options and name is None:
        return config.type
    wanted = type(config).__name__.lower()
    (keras_class,) = [v for k, v in vars(module).items() if isinstance(v, type) and k.lower() == wanted]
    return keras_class(**options, **({"name": name} if name else {}))


def compile_like_spec(net, model) -> None:
    """Compile `net` with the spec's optimizer, losses, loss weights and metrics, as a user writes it: plain
    values for one output, dicts by output name for several (see `keras_targets`)."""
    keras = import_keras()
    compile_spec, outputs = model.spec.compile, model.graph.outputs
    losses = {o: _keras_like(keras.losses, compile_spec.loss_of(o)) for o in outputs}
    metrics = {o: [_keras_like(keras.metrics, m, m.name) for m in compile_spec.metrics_of(o)] for o in outputs}
    if len(outputs) == 1:
        (output,) = outputs
        net.compile(optimizer=optimizer_like(compile_spec.optimizer), loss=losses[output], metrics=metrics[output])
    else:
        net.compile(optimizer=optimizer_like(compile_spec.optimizer), loss=losses,
                    loss_weights=loss_weights(model), metrics=metrics)


def keras_inputs(net, arrays: dict[str, np.ndarray]):
    """The input arrays in the order of the Keras model's inputs (one array alone, as a user passes it)."""
    given = [arrays[tensor.name] for tensor in net.inputs]
    return given if len(given) > 1 else given[0]


def keras_targets(model, arrays: dict[str, np.ndarray]):
    """The target arrays as `compile_like_spec` expects them: one array, or a dict by output name."""
    outputs = model.graph.outputs
    return arrays[outputs[0]] if len(outputs) == 1 else {name: arrays[name] for name in outputs}
