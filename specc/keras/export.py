"""A spec as the equivalent Keras 3 functional model, compiled as the spec says, holding specc's weights.

The mapping is generic, by the spec's contract: a layer entry's `type:` is the Keras class name and its
fields are the constructor's arguments; a loss, metric, optimizer or schedule config's class is named like
Keras' class and its fields are that class's arguments. So a new layer type, loss or optimizer needs nothing
here. Sub-models become nested keras.Model objects, a layer called at several nodes is one Keras layer called
several times, and a wrapper (TimeDistributed) wraps the Keras object of what it applies.

Weights are matched by name: specc's key "<layer key>/<weight>" is the Keras variable whose path ends with
"<layer>/<weight>" (an RNN cell's level left out), so the same function serves export, import and the keras
engine (`keras_variables`).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from ..graph import Graph, GraphLayer, LayerCall
from ..graph.compile import keras_name
from ..graph.nodes import ModelCall, WrapperCall
from ..layers import Layer
from ..registry import Config
from . import KerasMissing, import_keras

SPEC_ONLY = {"type", "inputs", "name", "trainable"}  # fields of every layer entry, not Keras arguments
WEIGHT_ARGUMENTS = {"initializer": "initializers", "regularizer": "regularizers", "constraint": "constraints"}


def keras_class(module, name: str):
    """The class of a Keras module whose name is `name` written any way: `he_normal` -> HeNormal,
    `l1_l2` -> L1L2, `MeanSquaredError` -> MeanSquaredError. LookupError when there is none."""
    wanted = name.replace("_", "").lower()
    found = [value for key, value in vars(module).items()
             if inspect.isclass(value) and key.replace("_", "").lower() == wanted]
    if not found:
        raise LookupError(f"Keras has no {module.__name__.rsplit('.', 1)[-1]} class '{name}'")
    return found[0]


def layer_class(keras, name: str):
    """Keras' layer class of a type name: in keras.layers, or Keras-Hub's (PositionEmbedding)."""
    if hasattr(keras.layers, name):
        return getattr(keras.layers, name)
    try:
        import keras_hub
    except ImportError:
        raise KerasMissing(f"{name} is a Keras-Hub layer: install it with pip install keras-hub") from None
    return getattr(keras_hub.layers, name)


def arguments(config: Config, leave_out: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The arguments a config was given, by their names in the spec (a field's alias where it has one: Keras'
    argument names); Keras' defaults are specc's: the others need not be said."""
    return {field.alias or name: getattr(config, name) for name, field in type(config).model_fields.items()
            if name in config.model_fields_set and name not in leave_out and name != "type"}


def keras_object(module, value):
    """An initializer, regularizer, constraint or schedule: a name, or a config whose `type:` names the class."""
    if isinstance(value, str):
        return keras_class(module, value)()
    return keras_class(module, value.type)(**arguments(value))


def layer_arguments(keras, config: Layer) -> dict[str, Any]:
    """A layer entry's Keras constructor arguments; weight arguments as Keras objects."""
    given = arguments(config, SPEC_ONLY | config.call_arguments | {"layer"})
    for name, value in given.items():
        kind = name.rsplit("_", 1)[-1]
        if kind in WEIGHT_ARGUMENTS and value is not None:
            given[name] = keras_object(getattr(keras, WEIGHT_ARGUMENTS[kind]), value)
    return given


def keras_loss(keras, loss):
    return keras_class(keras.losses, type(loss).__name__)(**arguments(loss, {"name"}))


def keras_metric(keras, metric, column: str):
    """The Keras metric named after its history column, so Keras logs what specc logs."""
    return keras_class(keras.metrics, type(metric).__name__)(**arguments(metric, {"name"}), name=column)


def keras_optimizer(keras, settings):
    given = arguments(settings)
    if "learning_rate" in given and not isinstance(given["learning_rate"], (int, float)):
        given["learning_rate"] = keras_object(keras.optimizers.schedules, given["learning_rate"])
    return keras_class(keras.optimizers, type(settings).__name__)(**given)


class _Builder:
    """Keras objects for a graph's layers, each made once, however often it is called."""

    def __init__(self, keras) -> None:
        self.keras = keras
        self.made: dict[GraphLayer, Any] = {}
        self.initializers: list[tuple[Any, str, Any]] = []  # (layer, attribute, the initializer it was given)

    def layer(self, layer: GraphLayer, inline_of: Optional[str] = None):
        if layer in self.made:
            return self.made[layer]
        keras = self.keras
        if isinstance(layer, ModelCall):
            made = self.model(layer.graph, layer.name)
        elif isinstance(layer, WrapperCall):
            assert layer.inner is not None, "a compiled graph has every wrapper resolved"
            inner = self.layer(layer.inner, inline_of=layer.name)
            made = layer_class(keras, type(layer.config).__name__)(
                inner, name=layer.name, **layer_arguments(keras, layer.config))
        else:
            assert isinstance(layer, LayerCall)
            config = layer.config
            # an inline wrapped layer shares its wrapper's name in the graph; in Keras it has its own
            made = self.plain_layer(config, layer.name if layer.name != inline_of else _own_name(config))
        made.trainable = layer.trainable
        self.made[layer] = made
        return made

    def plain_layer(self, config: Layer, name: str):
        """The Keras layer of a config; one that holds an inline layer config (Bidirectional) gets its layer."""
        inner = getattr(config, "layer", None)
        held = [self.plain_layer(inner, _own_name(inner))] if isinstance(inner, Layer) else []
        keras_class = layer_class(self.keras, type(config).__name__)
        made = keras_class(*held, name=name, **layer_arguments(self.keras, config))
        self.zero_initializers(made)
        return made

    def zero_initializers(self, made):
        """Build with zeros: specc's weights replace them, and Keras' random initializers each compile a
        program per weight shape. The spec's initializers are put back after building (restore())."""
        for part in made._flatten_layers(include_self=True, recursive=True):
            for attribute, value in list(vars(part).items()):
                if attribute.endswith("_initializer") and isinstance(value, self.keras.initializers.Initializer):
                    self.initializers.append((part, attribute, value))
                    setattr(part, attribute, self.keras.initializers.Zeros())

    def restore(self):
        for part, attribute, value in reversed(self.initializers):  # a part met twice was saved as zeros once
            setattr(part, attribute, value)
        self.initializers.clear()

    def model(self, graph: Graph, name: str):
        keras = self.keras
        tensors = {n: keras.Input(shape, dtype=graph.input_dtypes[n], name=n) for n, shape in graph.inputs.items()}
        inputs = list(tensors.values())
        for node in graph.nodes:
            made = self.layer(node.layer)
            names, options = _call_of(node)
            for argument, value in options.items():
                if argument in node.layer.config.tensor_arguments:  # type: ignore[attr-defined]
                    options[argument] = tensors[value] if isinstance(value, str) else [tensors[t] for t in value]
            given = [tensors[t] for t in names]
            if len(given) > 1 and _takes_separate_inputs(made):  # MultiHeadAttention(query, value, key)
                made_outputs = made(*given, **options)
            else:
                made_outputs = made(_one_or_all(given), **options)
            if len(node.outputs) == 1:
                tensors[node.outputs[0]] = made_outputs
            else:
                tensors.update(zip(node.outputs, made_outputs))
        outputs = []
        for output in graph.outputs:
            tensor = tensors[output]
            if tensor._keras_history.operation.name != output:  # Keras names an output after its layer
                tensor = keras.layers.Identity(name=output)(tensor)
            outputs.append(tensor)
        return keras.Model(_one_or_all(inputs), _one_or_all(outputs), name=name)


def _own_name(config: Layer) -> str:
    return config.name or keras_name(type(config).__name__)


def _call_of(node) -> tuple[list[str], dict[str, Any]]:
    """The tensors a node passes as inputs, and its call arguments as the entry gives them: a layer entry's
    tensor arguments (an RNN's initial_state) are the last inputs of the node it defines."""
    config = getattr(node.layer, "config", None)
    if config is None:
        return list(node.inputs), {}
    options = {k: getattr(config, k) for k in config.call_arguments
               if k in config.model_fields_set and getattr(config, k) is not None}
    extra = config.call_tensors()
    if extra and list(node.inputs[-len(extra):]) == extra:
        return list(node.inputs[:-len(extra)]), options
    return list(node.inputs), {k: v for k, v in options.items() if k not in config.tensor_arguments}


def _takes_separate_inputs(made) -> bool:
    """Whether a layer's call takes its several inputs as separate arguments rather than one list."""
    first = next(iter(inspect.signature(made.call).parameters), "inputs")
    return first != "inputs"


def _one_or_all(items: list):
    return items[0] if len(items) == 1 else items


def keras_model(model, weights: Optional[dict[str, np.ndarray]] = None, compiled: bool = True):
    """The Keras model of a loaded spec (specc.Model), holding `weights` (default: the model's own, its
    initial weights unless loaded or trained), compiled with the spec's optimizer, losses and metrics."""
    keras = import_keras()
    builder = _Builder(keras)
    try:
        net = builder.model(model.graph, model.name)
    finally:
        builder.restore()
    set_weights(model.graph, net, model.get_weights() if weights is None else weights)
    if compiled:
        compile_like_spec(keras, net, model)
    return net


def compile_like_spec(keras, net, model):
    """Compile with the spec's optimizer, each output's loss, loss weight and metrics (named as specc logs
    them); one output's as plain values, several by output name."""
    objective = model._objective()
    outputs = model.graph.outputs
    losses = {o: keras_loss(keras, objective.losses[o]) for o in outputs}
    metrics = {o: [keras_metric(keras, metric, column) for column, metric in objective.metrics[o].items()]
               for o in outputs}
    optimizer = keras_optimizer(keras, model.spec.compile.optimizer)
    if len(outputs) == 1:
        (output,) = outputs
        net.compile(optimizer=optimizer, loss=losses[output], metrics=metrics[output])
    else:
        net.compile(optimizer=optimizer, loss=losses, loss_weights=dict(objective.weights), metrics=metrics)


# -- weights ----------------------------------------------------------------------------------------------

def paired_layers(graph: Graph, net) -> Iterator[tuple[LayerCall, Any]]:
    """Each layer of the graph that holds weights with its Keras layer in `net`, found by name: nested
    models and wrapped layers included, each once."""
    seen: set[GraphLayer] = set()

    def visit(layer: GraphLayer, made) -> Iterator[tuple[LayerCall, Any]]:
        if layer in seen:
            return
        seen.add(layer)
        if isinstance(layer, ModelCall):
            for inner in layer.graph.layers.values():
                yield from visit(inner, made.get_layer(inner.name))
        elif isinstance(layer, WrapperCall):
            assert layer.inner is not None, "a compiled graph has every wrapper resolved"
            yield from visit(layer.inner, made.layer)
        elif isinstance(layer, LayerCall):
            yield layer, made

    for layer in graph.layers.values():
        yield from visit(layer, net.get_layer(layer.name))


def _weight_path(variable) -> str:
    """A variable's path without an RNN cell's level (specc keys leave it out)."""
    return "/".join(part for part in variable.path.split("/") if not part.endswith("_cell"))


def keras_variables(graph: Graph, net) -> dict[str, Any]:
    """Each of specc's weight keys with the Keras variable that holds that weight."""
    found = {}
    for layer, made in paired_layers(graph, net):
        paths = [(_weight_path(v), v) for v in made.weights if "seed_generator" not in v.path]
        for name in layer.weight_shapes:
            matches = [v for path, v in paths if f"/{path}".endswith(f"/{name}")]
            if len(matches) != 1:
                raise LookupError(f"Keras' layer '{made.name}' has {len(matches)} weights ending in '{name}' "
                                  f"({', '.join(p for p, _ in paths) or 'none'}); specc's key {layer.key}/{name}")
            found[f"{layer.key}/{name}"] = matches[0]
    return found


def set_weights(graph: Graph, net, weights: dict[str, np.ndarray]):
    for key, variable in keras_variables(graph, net).items():
        variable.assign(weights[key])


def get_weights(graph: Graph, net) -> dict[str, np.ndarray]:
    """The Keras model's weights under specc's keys."""
    return {key: np.asarray(variable.numpy()) for key, variable in keras_variables(graph, net).items()}


def export_keras(model, path: Union[str, Path]):
    """Write the model as a .keras file (Keras' own format: architecture, compile settings, weights)."""
    net = keras_model(model)
    net.save(str(path))
    return net
