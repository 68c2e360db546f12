"""TimeDistributed: one layer or model applied to every step of a sequence, with one set of weights."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Union

from pydantic import Field

from .base import Layer

if TYPE_CHECKING:
    from ..spec.format import LayerConfig


class TimeDistributed(Layer):
    """Applies `layer` to each step along axis 1: (batch, steps, ...) -> (batch, steps, ...).

    `layer` is the name of a layer or model defined elsewhere in the spec (its weights are shared), or an
    inline layer config such as `{type: Dense, units: 8}`. The graph compiler resolves it; the executor
    folds the steps into the batch, runs the inner layer once, and unfolds the result."""
    type: Literal["TimeDistributed"]
    # the union of every layer type; resolved in spec.format, which knows them all
    layer: Union[str, "LayerConfig"] = Field(description="A layer or model name, or an inline layer config.")
