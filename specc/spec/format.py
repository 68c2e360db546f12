"""The spec format, version 1, as pydantic models. Everything a spec may say is declared here."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, NonNegativeFloat,
                      NonNegativeInt, PositiveFloat, PositiveInt, Tag, field_validator)

from ..layers import LAYER_TYPES, TimeDistributed


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


Names = Union[str, list[str]]


def names(value: Names | None) -> list[str]:
    """A name or a list of names, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Input(Strict):
    shape: list[PositiveInt] = Field(description="Shape without the batch dimension, e.g. [28, 28, 1].")
    dtype: Literal["float32", "int32", "int64"] = "float32"


class Call(Strict):
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
    return Annotated[Union[tuple(Annotated[m, Tag(t)] for m, t in members)], Discriminator(tag_of)]


LayerConfig = _union([(cls, cls.__name__) for cls in LAYER_TYPES], _entry_tag)
TimeDistributed.model_rebuild(_types_namespace={"LayerConfig": LayerConfig})
LayerEntry = _union([(cls, cls.__name__) for cls in LAYER_TYPES] + [(Call, "call")], _entry_tag)


class GraphModel(Strict):
    """A functional model: named inputs, layers wired by name, named outputs."""
    inputs: dict[str, Input] = Field(min_length=1)
    layers: dict[str, LayerEntry] = Field(default_factory=dict)
    models: dict[str, "SubModel"] = Field(default_factory=dict)
    outputs: Names
    trainable: bool = True


class SequentialModel(Strict):
    """A plain stack of layers, each applied to the previous one's output."""
    input: Input
    sequential: list[LayerConfig] = Field(min_length=1)
    trainable: bool = True


class ImportedModel(Strict):
    """A model defined in another spec, optionally with trained weights."""
    from_: str = Field(alias="from", description="Path of the other spec, relative to this one.")
    model: Optional[str] = Field(None, description="Sub-model of that spec; default: the spec's whole model.")
    weights: Optional[str] = Field(None, description="A weights .npz of that spec, relative to this one.")
    trainable: bool = True


def _model_tag(value):
    if isinstance(value, dict):
        return "sequential" if "sequential" in value else "from" if "from" in value else "graph"
    return {SequentialModel: "sequential", ImportedModel: "from"}.get(type(value), "graph")


SubModel = _union([(GraphModel, "graph"), (SequentialModel, "sequential"), (ImportedModel, "from")],
                  _model_tag)
GraphModel.model_rebuild()


def _lowercase_type(value):
    if isinstance(value, str):
        return {"type": value.lower()}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return {**value, "type": value["type"].lower()}
    return value


class SGD(Strict):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    nesterov: bool = False


class RMSprop(Strict):
    type: Literal["rmsprop"]
    learning_rate: PositiveFloat = 0.001
    rho: Annotated[float, Field(gt=0, lt=1)] = 0.9
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = False


class Adam(Strict):
    type: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta_2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    epsilon: PositiveFloat = 1e-7


Optimizer = Annotated[Union[SGD, RMSprop, Adam], Field(discriminator="type")]

LossName = Literal["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                   "mse", "mean_squared_error", "mae", "mean_absolute_error"]
MetricName = Literal["accuracy", "acc", "mse", "mae"]


class Compile(Strict):
    optimizer: Optimizer = Field(default_factory=lambda: RMSprop(type="rmsprop"),
                                 description="A name (sgd, rmsprop, adam) or {type: name, ...settings}.")
    loss: Union[LossName, dict[str, LossName]] = Field(
        description="One loss for every output, or {output: loss}.")
    loss_weights: Optional[Union[dict[str, NonNegativeFloat], list[NonNegativeFloat]]] = None
    metrics: Union[list[MetricName], dict[str, list[MetricName]]] = Field(default_factory=list)

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer_by_name(cls, value):
        return _lowercase_type(value)


def _path_shorthand(value):
    return {"path": value} if isinstance(value, str) else value


class DataSource(Strict):
    path: str = Field(description="An .npz file, relative to the spec file.")
    inputs: Optional[dict[str, str]] = Field(None, description="{model input: array name}; default: same names.")
    targets: Optional[dict[str, str]] = Field(None, description="{model output: array name}; default: same names.")
    sample_weight: Optional[str] = Field(
        None, description="Array of one weight per row: each row's loss is multiplied by it (Keras' sample_weight).")


Source = Annotated[DataSource, BeforeValidator(_path_shorthand)]


class Data(Strict):
    train: Source
    validation: Optional[Source] = None
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # `validation` with `validation_split` is refused by the compiler, which can point at the key


Mode = Literal["auto", "min", "max"]
MONITOR = Field("val_loss", description="A name the run logs: loss, val_loss, accuracy, val_accuracy, ...")
MODE = Field("auto", description="min, max, or auto: max for names with 'acc' in them, else min.")


class EarlyStopping(Strict):
    """Stop when the monitored quantity stops improving (Keras' EarlyStopping)."""
    type: Literal["early_stopping"]
    monitor: str = MONITOR
    min_delta: NonNegativeFloat = 0.0
    patience: NonNegativeInt = 0
    mode: Mode = MODE
    baseline: Optional[float] = None
    restore_best_weights: bool = False
    start_from_epoch: NonNegativeInt = 0


class ModelCheckpoint(Strict):
    """Save a checkpoint (weights, optimizer state, progress) after every epoch, or only when it is the best."""
    type: Literal["model_checkpoint"]
    filepath: Optional[str] = Field(
        None, description="Relative to the run folder; may use {epoch} and logged names, e.g. "
                          "'best.{epoch:03d}.npz'. Default: best.npz with save_best_only, else checkpoint.npz.")
    monitor: str = MONITOR
    mode: Mode = MODE
    save_best_only: bool = False
    save_weights_only: bool = Field(False, description="Write a plain weights file instead of a checkpoint.")

    @property
    def path(self) -> str:
        return self.filepath or ("best.npz" if self.save_best_only else "checkpoint.npz")


class ReduceLROnPlateau(Strict):
    """Multiply the learning rate by `factor` when the monitored quantity stops improving."""
    type: Literal["reduce_lr_on_plateau"]
    monitor: str = MONITOR
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: NonNegativeInt = 10
    mode: Mode = MODE
    min_delta: NonNegativeFloat = 1e-4
    cooldown: NonNegativeInt = 0
    min_lr: NonNegativeFloat = 0.0


class CSVLogger(Strict):
    """Write the history after every epoch (the run folder's history.csv already is one)."""
    type: Literal["csv_logger"]
    filename: str = "history.csv"
    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","


class TerminateOnNaN(Strict):
    """Stop when the loss becomes NaN or infinite. specc always does; the entry is accepted for Keras users."""
    type: Literal["terminate_on_nan"]


CALLBACK_TYPES = {"early_stopping": EarlyStopping, "model_checkpoint": ModelCheckpoint,
                  "reduce_lr_on_plateau": ReduceLROnPlateau, "csv_logger": CSVLogger,
                  "terminate_on_nan": TerminateOnNaN}


def _callback_by_name(value):
    """`early_stopping`, `{type: early_stopping, ...}`, and Keras' class names (`EarlyStopping`) alike."""
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        squeezed = value["type"].replace("_", "").lower()
        known = {name.replace("_", ""): name for name in CALLBACK_TYPES}
        if squeezed in known:
            return {**value, "type": known[squeezed]}
    return value


Callback = Annotated[Union[EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger, TerminateOnNaN],
                     Field(discriminator="type"), BeforeValidator(_callback_by_name)]
ClassIndex = Annotated[int, Field(strict=False, ge=0)]  # JSON keys are strings: "0" is class 0


class Fit(Strict):
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 32
    shuffle: bool = True
    class_weight: Optional[dict[ClassIndex, NonNegativeFloat]] = Field(
        None, description="{class index: weight}: each training row's loss is multiplied by its class's "
                          "weight (1 for classes not listed). One output only, as in Keras.")
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
