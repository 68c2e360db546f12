"""What every layer type is: a pydantic config that also knows its shapes, weights, forward and backward.

A layer object holds configuration only. Weights live outside it (the executor passes them in as a dict
of arrays), so one layer can be called at many nodes and every call shares the same weights. A layer type
is one class registered in LAYERS by `@LAYERS.register()`, in one file of this package.

    output_shape(input_shapes)            shape rule; raises ShapeError with a sentence a user can act on;
                                          a list of shapes when the call makes several outputs
    output_count()                        how many tensors a call makes (1; an RNN with return_state: 1 + its
                                          states); the graph names them NAME.0, NAME.1, ... in Keras' order,
                                          forward returns them as a tuple and backward gets a list of their
                                          gradients, None for an output that gets none
    weight_shapes(input_shapes)           {name: shape}, Keras names and layouts
    init_weights(shapes, rng)             {name: array}, Keras default initializers
    state_weights                         names of weights that training does not learn but a forward pass in
                                          training may update in place (BatchNormalization's moving statistics)
    forward(weights, xs, training)        -> (y, cache); `training` is False, or a Training: truthy, it turns on
                                             training-only behaviour and draws that step's noise (training.rng())
    backward(weights, grads, cache, dy, need_dx)
                                          -> [dx for each input]; adds weight gradients into `grads`.
                                             When need_dx is False no input needs a gradient (a graph input,
                                             or only frozen layers upstream): return [None] and skip the work.
                                             None also stands for an input that has no gradient (ids).
    call_arguments                        fields that are arguments of Keras' call, not of its constructor
                                          (`use_causal_mask`): keys of the entry all the same
    tensor_arguments                      those of them that name tensors (an RNN's `initial_state: [h, c]`):
                                          they are inputs of the node after the entry's `inputs:` (forward's
                                          xs, backward's dx, in the order call_tensors() lists them)
    arity                                 how many inputs it takes (None: two or more)

Masks (Keras' masking): a mask marks which steps of a sequence count, a bool array of a tensor's shape
without its last axis ((batch, steps) for (batch, steps, features)). A layer that makes one from nothing
says so in makes_masks() (Embedding with mask_zero, Masking); a graph with such a layer carries every
tensor's mask (None for most) from node to node; otherwise masks cost nothing.

    supports_masking                      Keras' flag: the layer passes its first input's mask on (the default
                                          compute_mask); a layer without it drops the masks it is given
    compute_mask(xs, masks)               its output's mask (a list, one per output, when several), from its
                                          inputs and their masks (None where an input has none)
    reads_masks                           forward is called as forward(weights, xs, training, masks=[mask of
                                          each input]) when its graph carries masks; it keeps in its cache
                                          what its backward needs of them (RNNs: masked steps carry the state)
    makes_masks()                         whether it makes a mask from unmasked inputs
    accepts_integers                      whether its inputs may be integer ids
    id_limit()                            ids it reads must lie in [0, id_limit()); None when it reads none
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

import numpy as np
from pydantic import Field

from ..registry import Config, Name, Registry
from .constraints import CONSTRAINTS, Constraint
from .initializers import INITIALIZERS, Initializer, initializer
from .regularizers import REGULARIZERS, Regularizer

Shape = tuple  # of int, without the batch dimension


class ShapeError(ValueError):
    """A layer cannot take the shapes it is given; the message says why in the user's terms."""


class InputsError(ShapeError):
    """The inputs as given do not fit (how many, their dtypes): reported at the entry's `inputs:`, verbatim."""


NO_SEED = 2 ** 32 - 1  # stands for a layer without `seed:` in Training.rng (numpy seeds are non-negative)


@dataclass(frozen=True)
class Training:
    """The forward pass of one training step: truthy, and the source of that step's noise.

    Each node of a graph sees its own Training (`at(node index)`, nested through sub-models and wrappers), so
    every call of a layer draws its own noise, and a step's noise depends only on the seed, the step and the
    node: the same run gives the same numbers, a resumed run too, and a second forward of one step (a
    finite-difference check) draws the same masks. `frozen` is set inside a frozen model or wrapper:
    BatchNormalization then runs in inference mode, as Keras 3's does. `losses` collects the step's
    penalties on layer outputs (activity regularizers), one list for the whole step."""
    seed: int = 0
    step: tuple[int, ...] = ()
    where: tuple[int, ...] = ()
    frozen: bool = False
    losses: list[float] = field(default_factory=list, compare=False)

    def __bool__(self) -> bool:
        return True

    def at(self, index: int) -> "Training":
        return Training(self.seed, self.step, (*self.where, index), self.frozen, self.losses)

    def freeze(self) -> "Training":
        return Training(self.seed, self.step, self.where, True, self.losses)

    def rng(self, seed: Optional[int] = None) -> np.random.Generator:
        """The generator of this node at this step; `seed` is a layer's own `seed:` argument."""
        return np.random.default_rng([self.seed, *self.step, *self.where, NO_SEED if seed is None else seed])


TrainingFlag = Union[bool, Training]

# A weight argument (`kernel_initializer: he_normal`, `{type: l2, l2: 0.001}`) as the spec gives it: a name
# (also the form of every default) or a validated config; built from the registries at import time, which a
# type checker cannot follow.
if TYPE_CHECKING:
    InitializerArgument = Union[str, Initializer]
    RegularizerArgument = Union[str, Regularizer]
    ConstraintArgument = Union[str, Constraint]
else:
    InitializerArgument = INITIALIZERS.argument()
    RegularizerArgument = REGULARIZERS.argument()
    ConstraintArgument = CONSTRAINTS.argument()


def show_shape(shape: Shape) -> str:
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


class Layer(Config):
    inputs: Optional[Union[str, list[str]]] = Field(
        None, description="Tensor(s) this layer is applied to; without it the entry only defines the layer.")
    name: Optional[Name] = Field(None, description="Layer name inside a `sequential:` list.")
    trainable: bool = Field(True, description="false freezes this layer's weights.")

    arity: ClassVar[Optional[int]] = 1
    accepts_integers: ClassVar[bool] = False
    state_weights: ClassVar[frozenset[str]] = frozenset()
    call_arguments: ClassVar[frozenset[str]] = frozenset()
    tensor_arguments: ClassVar[tuple[str, ...]] = ()
    supports_masking: ClassVar[bool] = False
    reads_masks: ClassVar[bool] = False

    @property
    def input_names(self) -> list[str]:
        if self.inputs is None:
            return []
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)

    def call_tensors(self) -> list[str]:
        """The tensors its tensor-valued call arguments name, in order: inputs of the node after `inputs:`."""
        tensors: list[str] = []
        for argument in self.tensor_arguments:
            value = getattr(self, argument)
            tensors += [] if value is None else [value] if isinstance(value, str) else list(value)
        return tensors

    def output_count(self) -> int:
        return 1

    def makes_masks(self) -> bool:
        return False

    def compute_mask(self, xs: list[np.ndarray], masks: list[Optional[np.ndarray]]) -> Any:
        return masks[0] if self.supports_masking and masks else None

    def id_limit(self) -> Optional[int]:
        return None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {}

    def weight_argument(self, weight: str, kind: str) -> Any:
        """The layer's argument of this kind ("initializer", "regularizer", "constraint") for a weight, by
        Keras' naming: kernel -> kernel_initializer, recurrent_kernel -> recurrent_initializer, depthwise_kernel
        -> depthwise_initializer, embeddings -> embeddings_initializer, gamma -> gamma_initializer. None when
        the layer has no such argument, or it is not set."""
        stem = weight.removesuffix("_kernel") if weight != "kernel" else weight
        return getattr(self, f"{stem}_{kind}", None)

    def check_weight_arguments(self, shapes: dict[str, Shape]):
        """ShapeError for an argument that cannot apply to its weight's shape (a constant array of another
        shape, an identity or orthogonal rule on a weight that is not a matrix)."""
        for name, shape in shapes.items():
            for kind in ("initializer", "regularizer"):
                value = self.weight_argument(name, kind)
                if value is not None and not isinstance(value, str):
                    problem = value.shape_problem(tuple(shape))
                    if problem:
                        stem = name.removesuffix("_kernel") if name != "kernel" else name
                        raise ShapeError(f"{stem}_{kind}: {problem}")

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Each weight from its initializer argument, drawn in order from `rng`; for a weight without one,
        Keras' defaults: glorot-uniform kernels, zeros for everything else."""
        return {name: initializer(self.weight_argument(name, "initializer")
                                  or ("glorot_uniform" if name.endswith("kernel") else "zeros"))(shape, rng)
                for name, shape in shapes.items()}

    def forward(self, weights: dict[str, np.ndarray], xs: list[np.ndarray], training: TrainingFlag) -> tuple[Any, Any]:
        raise NotImplementedError

    def backward(self, weights: dict[str, np.ndarray], grads: dict[str, np.ndarray], cache: Any,
                 dy: np.ndarray, need_dx: bool = True) -> list:
        raise NotImplementedError


LAYERS: Registry[type[Layer]] = Registry("layer type", sorted_names=True)


class KernelArguments(Config):
    """Keras' arguments for a layer's `kernel`."""
    kernel_initializer: InitializerArgument = "glorot_uniform"
    kernel_regularizer: Optional[RegularizerArgument] = None
    kernel_constraint: Optional[ConstraintArgument] = None


class BiasArguments(Config):
    """Keras' arguments for a layer's `bias`."""
    bias_initializer: InitializerArgument = "zeros"
    bias_regularizer: Optional[RegularizerArgument] = None
    bias_constraint: Optional[ConstraintArgument] = None


class ActivityArguments(Config):
    """A penalty on the layer's output, added to the loss in training (divided by the batch size, as Keras 3)."""
    activity_regularizer: Optional[RegularizerArgument] = None
