"""A Keras 3 model as a spec: Sequential and functional models of the layers specc has, nested models,
shared layers and wrappers included; weights under specc's keys.

A layer is read back through the same contract as export: its class name is the entry's `type:`, and each
of its config values that specc's config class has a field for becomes that field (left out where it is the
default). A layer whose class specc does not have (a Lambda, a custom class), or that sets an argument specc
does not have, is one NotImportable error naming it."""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import pydantic

from ..graph.compile import keras_name
from ..layers import LAYERS
from ..layers.constraints import CONSTRAINTS
from ..layers.initializers import INITIALIZERS
from ..layers.regularizers import REGULARIZERS
from ..registry import Registry
from ..train.losses import LOSSES
from ..train.metrics import METRICS
from ..train.optimizers import OPTIMIZERS
from .export import SPEC_ONLY, WEIGHT_ARGUMENTS

WEIGHT_REGISTRIES: dict[str, Registry] = {"initializer": INITIALIZERS, "regularizer": REGULARIZERS,
                                          "constraint": CONSTRAINTS}
# every Keras layer's config, and Bidirectional's copy of its layer run backward (specc always makes that one)
KERAS_ONLY = {"name", "trainable", "dtype", "autocast", "backward_layer"}
IMPLIED = {"data_format": "channels_last"}  # what specc always does, which Keras' config says


class NotImportable(ValueError):
    """A part of the Keras model that a spec cannot express; the message names it."""


def plain(value):
    """Keras' config values as YAML writes them: tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, float):  # Keras keeps float32: 0.0010000000474974513 is the 0.001 it was given
        return float(str(np.float32(value)))
    return value


def _same(ours, theirs) -> bool:
    """Equal, or the same written as Keras writes it (a pair of equal ints for one int, None for linear)."""
    ours, theirs = plain(ours), plain(theirs)
    return (ours == theirs or (ours in ("linear", None) and theirs in ("linear", None))
            or (isinstance(theirs, int) and isinstance(ours, list) and set(ours) == {theirs}))


def registered(registry: Registry, value, where: str):
    """A serialized Keras object ({"class_name", "config"}) or a name, as the spec writes it: a name, or
    {type: name, ...arguments} when it has arguments."""
    if value is None or isinstance(value, str):
        return value
    name = _canonical(registry, value["class_name"])
    if name is None:
        raise NotImportable(f"{where}: {registry.unknown(value['class_name'])}")
    fields = registry[name].model_fields
    given = {k: plain(v) for k, v in value.get("config", {}).items()
             if k in fields and v is not None and not _same(fields[k].default, v)}
    return {"type": name, **given} if given else name


def _canonical(registry: Registry, keras_name: str):
    """The registered name of a Keras class name: as an alias, or as the name of the entry's class."""
    def squeezed(name: str) -> str:
        return name.replace("_", "").lower()
    for name in registry.names(with_aliases=True):
        if squeezed(name) == squeezed(keras_name):
            return registry.canonical(name)
    for name, entry in registry.items():
        if squeezed(entry.__name__.removesuffix("Settings")) == squeezed(keras_name):
            return name
    return None


def _keras_defaults(keras_class) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(keras_class).parameters.items()
            if p.default is not inspect.Parameter.empty}


class _Reader:
    def __init__(self, keras):
        self.keras = keras

    def layer_entry(self, layer, models: dict) -> dict:
        type_name = type(layer).__name__
        if type_name not in LAYERS or getattr(self.keras.layers, type_name, None) is not type(layer):
            raise NotImportable(f"layer '{layer.name}' is a {type(layer).__module__}.{type_name}, which a spec "
                                f"cannot express; specc's layer types: {', '.join(LAYERS.names())}")
        config_class = LAYERS[type_name]
        fields = config_class.model_fields
        config = layer.get_config()
        defaults = _keras_defaults(type(layer))
        entry: dict[str, Any] = {"type": type_name}
        for key, value in config.items():
            if key == "layer" and "layer" in fields:
                entry["layer"] = self.wrapped(getattr(layer, "layer", None), value, models)
            elif key in fields and key not in SPEC_ONLY:
                kind = key.rsplit("_", 1)[-1]
                default = fields[key].default
                if kind in WEIGHT_ARGUMENTS:
                    registry = WEIGHT_REGISTRIES[kind]
                    value = registered(registry, value, f"layer '{layer.name}' {key}")
                    if isinstance(default, str) and isinstance(value, str):  # `uniform` is random_uniform
                        default = registry.canonical(default)
                if not _same(default, value):
                    entry[key] = plain(value)
            elif key in IMPLIED and value != IMPLIED[key] or \
                    key not in KERAS_ONLY | set(IMPLIED) and key in defaults and not _same(defaults[key], value):
                raise NotImportable(f"layer '{layer.name}' ({type_name}) sets {key}={value!r}, which specc's "
                                    f"{type_name} does not have")
        if not layer.trainable:
            entry["trainable"] = False
        try:
            config_class.model_validate(_ints_where_refused(config_class, entry))
        except ValueError as e:
            raise NotImportable(f"layer '{layer.name}' ({type_name}): {e}") from None
        return entry

    def wrapped(self, inner, config: dict, models: dict):
        """What a wrapper applies: a model by name (defined under `models:`), or a layer inline (as it was
        given to the wrapper: Bidirectional holds a renamed copy)."""
        if isinstance(inner, self.keras.Model):
            models[inner.name] = self.model(inner)
            return inner.name
        inner = self.keras.layers.deserialize(config)
        entry = self.layer_entry(inner, models)
        # Bidirectional keeps its layer as "forward_<name>"; specc names the directions from <name>
        name = inner.name.removeprefix("forward_") if config.get("config", {}).get("go_backwards") is not None \
            and inner.name.startswith("forward_") else inner.name
        if name != keras_name(type(inner).__name__):
            entry["name"] = name
        return entry

    def model(self, net) -> dict:
        """A model's section: inputs, models, layers, outputs (a Sequential one as a chain of layers)."""
        if not hasattr(net, "_nodes_by_depth"):  # a Sequential: its layers in order
            net = net._functional if getattr(net, "_functional", None) is not None else net
        if not hasattr(net, "_nodes_by_depth"):
            raise NotImportable(f"model '{net.name}' has no known input shape; build it with keras.Input first")
        names: dict[int, str] = {}
        inputs = {}
        for tensor in net.inputs:
            name = tensor._keras_history.operation.name
            inputs[name] = {"shape": list(tensor.shape[1:])}
            if tensor.dtype != "float32":
                inputs[name]["dtype"] = tensor.dtype
            names[id(tensor)] = name
        models: dict[str, dict] = {}
        layers: dict[str, dict] = {}
        called: set[int] = set()
        for depth in sorted(net._nodes_by_depth, reverse=True):
            for node in net._nodes_by_depth[depth]:
                operation = node.operation
                if node.is_input or operation is None:
                    continue
                given = [names[id(t)] for t in self.keras.tree.flatten(node.arguments.args)
                         if id(t) in names]
                entry_inputs = given[0] if len(given) == 1 else given
                name = operation.name
                tensor_options = {k: [names[id(t)] for t in self.keras.tree.flatten(v)]
                                  for k, v in node.arguments.kwargs.items()
                                  if any(id(t) in names for t in self.keras.tree.flatten(v))}
                if isinstance(operation, self.keras.Model):
                    if name not in models:
                        models[name] = self.model(operation)
                    entry = {"call": name, "inputs": entry_inputs}
                elif id(operation) in called:
                    entry = {"call": name, "inputs": entry_inputs}
                else:
                    entry = {**self.layer_entry(operation, models), "inputs": entry_inputs, **tensor_options}
                if id(operation) in called or name in layers:
                    name = _unused(f"{name}_call", layers, inputs)
                called.add(id(operation))
                layers[name] = entry
                for i, tensor in enumerate(node.outputs):
                    names[id(tensor)] = name if len(node.outputs) == 1 else f"{name}.{i}"
        section: dict[str, Any] = {"inputs": inputs}
        if models:
            section["models"] = models
        section["layers"] = layers
        section["outputs"] = [names[id(t)] for t in net.outputs]
        if not net.trainable:
            section["trainable"] = False
        return section


def _ints_where_refused(config_class, entry: dict) -> dict:
    """Keras writes (2, 2) for an int-or-tuple argument given 2; where specc's field takes an int only, a
    list of equal ints becomes that int (in place). Returns the entry."""
    try:
        config_class.model_validate(entry)
    except pydantic.ValidationError as e:
        for error in e.errors():
            key, value = error["loc"][0] if error["loc"] else None, None
            value = entry.get(key) if isinstance(key, str) else None
            if isinstance(value, list) and value and all(type(v) is int and v == value[0] for v in value):
                entry[key] = value[0]
    return entry


def _unused(stem: str, *taken: dict) -> str:
    name, i = stem, 0
    while any(name in names for names in taken):
        i += 1
        name = f"{stem}_{i}"
    return name


def compile_section(net) -> dict:
    """The spec's `compile:` from the Keras model's compile settings (mse and rmsprop when it has none)."""
    config = net.get_compile_config() if getattr(net, "compiled", False) else None
    if not config:
        return {"loss": "mse"}
    section: dict[str, Any] = {}
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict):
        section["optimizer"] = registered(OPTIMIZERS, _learning_rate(optimizer), "the optimizer")
    elif isinstance(optimizer, str):
        section["optimizer"] = optimizer
    section["loss"] = _per_output(LOSSES, config.get("loss") or "mse", "the loss")
    if config.get("loss_weights") is not None:
        section["loss_weights"] = plain(config["loss_weights"])
    metrics = config.get("metrics")
    if metrics:
        section["metrics"] = _per_output(METRICS, metrics, "a metric")
    return section


def _learning_rate(optimizer: dict) -> dict:
    """A schedule as the spec writes it: {type: ClassName, ...arguments}."""
    rate = optimizer.get("config", {}).get("learning_rate")
    if isinstance(rate, dict) and "class_name" in rate:
        schedule = {k: v for k, v in rate.get("config", {}).items() if k != "name"}
        optimizer = {**optimizer, "config": {**optimizer["config"], "learning_rate": {"type": rate["class_name"],
                                                                                       **schedule}}}
    return optimizer


def _per_output(registry: Registry, value, what: str):
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _per_output(registry, v, what) for k, v in value.items()}
    if isinstance(value, list):
        return [_per_output(registry, v, what) for v in value]
    entry = registered(registry, value, what)
    if isinstance(value, dict) and isinstance(entry, str) and value.get("config", {}).get("name") not in (None, entry):
        return {"type": entry, "name": value["config"]["name"]} if registry is METRICS else entry
    return entry


def spec_of(net) -> dict:
    """The spec (plain data, as YAML writes it) of a Keras model."""
    from . import import_keras
    reader = _Reader(import_keras())
    return {"specc": 1, "name": net.name, **reader.model(net), "compile": compile_section(net)}


MODELS = {"Functional", "Sequential", "Model", "InputLayer"}  # what holds layers, not a layer type


def _saved_config(keras_file) -> dict:
    """The model's config in a .keras file (a zip with config.json), read before Keras builds anything."""
    import json
    import zipfile
    try:
        with zipfile.ZipFile(keras_file) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise NotImportable(f"is not a Keras 3 .keras file ({e})") from None


def check_layers(saved: dict):
    """Every layer in a saved model's config is of a type specc has: a Lambda or a custom class is refused by
    name before Keras would deserialize (and run) anything. `saved` is a serialized layer or model."""
    type_name, config = saved.get("class_name"), saved.get("config") or {}
    if type_name not in MODELS and (type_name not in LAYERS or saved.get("registered_name") not in (None, type_name)
                                    or not str(saved.get("module", "")).startswith("keras")):
        raise NotImportable(f"layer '{config.get('name')}' is a {type_name}, which a spec cannot express; specc's "
                            f"layer types: {', '.join(LAYERS.names())}")
    for held in [*config.get("layers", []), config.get("layer")]:  # a model's layers, a wrapper's layer
        if isinstance(held, dict):
            check_layers(held)


def import_model(keras_file, spec_path, weights_path=None) -> dict[str, Any]:
    """Read a .keras file; write its spec (YAML) and, when asked, its weights under specc's keys. Returns the
    spec written."""
    import yaml

    from ..io.weights import save_arrays, write_text
    from ..model import load
    from . import import_keras
    from .export import get_weights
    keras = import_keras()
    check_layers(_saved_config(keras_file))
    with warnings.catch_warnings():  # an optimizer saved before its first step has no state to load: fine
        warnings.simplefilter("ignore")
        try:
            net = keras.saving.load_model(str(keras_file), compile=True, safe_mode=True)
        except (ValueError, TypeError) as e:
            raise NotImportable(f"Keras cannot read it: {e}") from None
    spec = spec_of(net)
    write_text(spec_path, yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    if weights_path is not None:
        save_arrays(weights_path, get_weights(load(spec_path).graph, net))
    return spec
