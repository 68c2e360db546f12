"""The spec format, version 1, as pydantic models: the sections of a spec and how they nest.

The vocabularies (layer types, optimizers, losses, metrics, callbacks) come from their registries, each
filled where its entries are implemented; this module only builds the unions that select among them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Optional, Union

from pydantic import BeforeValidator, Discriminator, Field, NonNegativeFloat, PositiveInt, Tag

from ..layers import LAYERS, Layer, Wrapper
from ..registry import Config, Name, Registry
from ..train.callbacks import CALLBACKS, CallbackSettings
from ..train.losses import LOSSES, LossSettings, canonical_loss
from ..train.metrics import METRICS, MetricSettings, canonical_metric
from ..train.optimizers import OPTIMIZERS, OptimizerSettings, RMSprop

Names = Union[str, list[str]]


def names(value: Names | None) -> list[str]:
    """A name or a list of names, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Input(Config):
    shape: list[PositiveInt] = Field(description="Shape without the batch dimension, e.g. [28, 28, 1].")
    dtype: Literal["float32", "int32", "int64"] = "float32"


class Call(Config):
    """Calls a layer or model defined elsewhere again: a new node, the same weights."""
    call: str = Field(description="Name of the layer or model to call.")
    inputs: Names = Field(description="Tensor(s) to call it on.")

    @property
    def input_names(self) -> list[str]:
        return names(self.inputs)


def _entry_tag(value):
    if isinstance(value, dict):
        return "call" if "call" in value and "type" not in value else value.get("type")
    return getattr(value, "type", "call")


def _union(members, tag_of):
    return Annotated[Union[tuple(Annotated[m, Tag(t)] for t, m in members)], Discriminator(tag_of)]


# The unions below are built from the registries at import time, which a type checker cannot follow:
# it sees the base class (or the plain type) that every member of each union shares.
if TYPE_CHECKING:
    LayerConfig = Layer
    LayerEntry = Union[Layer, Call]
else:
    LayerConfig = _union(LAYERS.items(), _entry_tag)
    LayerEntry = _union([*LAYERS.items(), ("call", Call)], _entry_tag)
for _wrapper in LAYERS.entries():
    if issubclass(_wrapper, Wrapper):
        _wrapper.model_rebuild(_types_namespace={"LayerConfig": LayerConfig})


class GraphModel(Config):
    """A functional model: named inputs, layers wired by name, named outputs."""
    inputs: dict[Name, Input] = Field(min_length=1)
    layers: dict[Name, LayerEntry] = Field(default_factory=dict)
    models: dict[Name, "SubModel"] = Field(default_factory=dict)
    outputs: Names
    trainable: bool = True


class SequentialModel(Config):
    """A plain stack of layers, each applied to the previous one's output."""
    input: Input
    sequential: list[LayerConfig] = Field(min_length=1)
    trainable: bool = True


class ImportedModel(Config):
    """A model defined in another spec, optionally with trained weights."""
    from_: str = Field(alias="from", description="Path of the other spec, relative to this one.")
    model: Optional[str] = Field(None, description="Sub-model of that spec; default: the spec's whole model.")
    weights: Optional[str] = Field(None, description="A weights .npz of that spec, relative to this one.")
    trainable: bool = True


def _model_tag(value):
    if isinstance(value, dict):
        return "sequential" if "sequential" in value else "from" if "from" in value else "graph"
    return {SequentialModel: "sequential", ImportedModel: "from"}.get(type(value), "graph")


if TYPE_CHECKING:  # the discriminated union as a type checker can read it
    SubModel = Union[GraphModel, SequentialModel, ImportedModel]
else:
    SubModel = _union([("graph", GraphModel), ("sequential", SequentialModel), ("from", ImportedModel)],
                      _model_tag)
GraphModel.model_rebuild()


def _by_tag(registry: Registry):
    """The union of a registry's config classes, selected by their `type:`."""
    return Annotated[Union[tuple(registry.entries())], Field(discriminator="type")]


def _optimizer_by_name(value):
    """Keras' identifiers (`adam`) and class names (`Adam`) alike; a bare name is the optimizer with its
    default arguments."""
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] in OPTIMIZERS:
        return {**value, "type": OPTIMIZERS.canonical(value["type"])}
    return value


if TYPE_CHECKING:  # built from the registries at import time; a type checker sees what they all share
    Optimizer = OptimizerSettings
    Loss = LossSettings
    Metric = MetricSettings
else:
    Optimizer = Annotated[_by_tag(OPTIMIZERS),
                          BeforeValidator(_optimizer_by_name, json_schema_input_type=OPTIMIZERS.written())]
    Loss = _by_tag(LOSSES)
    Metric = _by_tag(METRICS)


def _per_output(canonical):
    """A field's value as one entry or {output: entry}, each entry through `canonical` (a dict with a string
    `type:` is one entry; any other dict maps outputs)."""
    def normalize(value):
        if isinstance(value, dict) and not isinstance(value.get("type"), str):
            return {key: canonical(entry) for key, entry in value.items()}
        return canonical(value)
    return normalize


def _one_or_per_output(value) -> str:
    return "per_output" if isinstance(value, dict) and "type" not in value else "one"


def _one_or_mapping(entry):
    """One entry for every output, or {output: entry}: told apart by `type:`, so an error is reported once,
    where it is."""
    return Annotated[Union[Annotated[entry, Tag("one")], Annotated[dict[str, entry], Tag("per_output")]],
                     Discriminator(_one_or_per_output)]


if TYPE_CHECKING:  # a type checker sees what every member shares
    LossEntry = Union[LossSettings, dict[str, LossSettings]]
else:
    LossEntry = _one_or_mapping(Loss)


def _entries(canonical):
    """A list of entries, or {output: list of entries}, each entry through `canonical`."""
    def normalize(value):
        if isinstance(value, list):
            return [canonical(entry) for entry in value]
        if isinstance(value, dict):
            return {key: [canonical(e) for e in entries] if isinstance(entries, list) else entries
                    for key, entries in value.items()}
        return value
    return normalize


class Compile(Config):
    optimizer: Optimizer = Field(default_factory=lambda: RMSprop(type="rmsprop"),
                                 description=f"A name ({', '.join(OPTIMIZERS)}) or {{type: name, ...settings}}.")
    loss: Annotated[LossEntry, BeforeValidator(_per_output(canonical_loss), json_schema_input_type=Union[
            LOSSES.written(), dict[str, LOSSES.written()]])] = Field(
        description="One loss for every output, or {output: loss}; a loss is a name or {type: name, ...arguments}.")
    loss_weights: Optional[Union[dict[str, NonNegativeFloat], list[NonNegativeFloat]]] = None
    metrics: Annotated[Union[list[Metric], dict[str, list[Metric]]], BeforeValidator(
            _entries(canonical_metric), json_schema_input_type=Union[list[METRICS.written()],
                                                                     dict[str, list[METRICS.written()]]])] = (
        Field(default_factory=list, description="Metrics of every output, or {output: metrics}; a metric is a name "
                                                "or {type: name, ...arguments, name: its history column}."))

    def loss_of(self, output: str) -> Optional[LossSettings]:
        """The loss of one output (None when a per-output loss leaves it out)."""
        return self.loss.get(output) if isinstance(self.loss, dict) else self.loss

    def metrics_of(self, output: str) -> list[MetricSettings]:
        return list(self.metrics.get(output, []) if isinstance(self.metrics, dict) else self.metrics)


def _path_shorthand(value):
    return {"path": value} if isinstance(value, (str, list)) else value


class DataSource(Config):
    path: Union[str, list[str]] = Field(
        description="An .npz file relative to the spec file, or its shards: a list of files or a glob pattern "
                    "(data/train-*.npz, in name order) whose files hold the same arrays, their rows one after another.")
    inputs: Optional[dict[str, str]] = Field(None, description="{model input: array name}; default: same names.")
    targets: Optional[dict[str, str]] = Field(None, description="{model output: array name}; default: same names.")
    sample_weight: Optional[str] = Field(
        None, description="Array of one weight per row: each row's loss is multiplied by it (Keras' sample_weight).")


Source = Annotated[DataSource, BeforeValidator(_path_shorthand,
                                               json_schema_input_type=Union[str, list[str], DataSource])]


class Data(Config):
    train: Source
    validation: Optional[Source] = None
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # `validation` with `validation_split` is refused by the compiler, which can point at the key


def _callback_by_name(value):
    """`early_stopping`, `{type: early_stopping, ...}`, and Keras' class names (`EarlyStopping`) alike."""
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        squeezed = value["type"].replace("_", "").lower()
        known = {name.replace("_", ""): name for name in CALLBACKS}
        if squeezed in known:
            return {**value, "type": known[squeezed]}
    return value


if TYPE_CHECKING:  # built from the registry at import time; a type checker sees the settings' base class
    Callback = CallbackSettings
else:
    Callback = Annotated[_by_tag(CALLBACKS),
                         BeforeValidator(_callback_by_name, json_schema_input_type=CALLBACKS.written())]
ClassIndex = Annotated[int, Field(strict=False, ge=0)]  # JSON keys are strings: "0" is class 0


class Fit(Config):
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 32
    shuffle: bool = True
    # default= by keyword: type checkers only see a default given that way, and Spec.fit calls `Fit()`
    class_weight: Optional[dict[ClassIndex, NonNegativeFloat]] = Field(
        default=None, description="{class index: weight}: each training row's loss is multiplied by its "
                                  "class's weight (1 for classes not listed). One output only, as in Keras.")
    callbacks: list[Callback] = Field(default_factory=list)


class Spec(GraphModel):
    """A whole spec file."""
    specc: Literal[1] = Field(description="Format version.")
    name: str = Field("model", pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    seed: int = 0
    compile: Compile
    data: Optional[Data] = None
    fit: Fit = Field(default_factory=Fit)


KEY_ORDER = ("specc", "name", "seed", "inputs", "models", "layers", "outputs", "compile", "data", "fit")
