"""Every name a spec may use, by family, as Markdown: read from the registries (`specc vocabulary`, and the
README's table, which a test keeps equal to this)."""
from __future__ import annotations

import re

from pydantic_core import PydanticUndefined

from ..layers import LAYERS, Layer
from ..layers.activations import ACTIVATIONS
from ..layers.constraints import CONSTRAINTS
from ..layers.initializers import INITIALIZERS
from ..layers.regularizers import REGULARIZERS
from ..registry import Registry
from ..train.callbacks import CALLBACKS
from ..train.losses import LOSSES
from ..train.metrics import METRICS
from ..train.optimizers import OPTIMIZERS, OptimizerSettings
from ..train.schedules import SCHEDULES

COMMON = set(Layer.model_fields)  # inputs, name, trainable: every layer has them
# what every optimizer takes besides its learning rate, said once below the table
OPTIMIZER_COMMON = {name: field for name, field in OptimizerSettings.model_fields.items() if name != "learning_rate"}


WEIGHT_ARGUMENT = re.compile(r"(.+)_(initializer|regularizer|constraint)$")


def _arguments(config, common=None) -> str:
    """`units, activation='linear', use_bias=True`: the required arguments, then the others with defaults;
    `common` arguments are left out where their default is the common one. A layer's weight arguments follow,
    one entry per weight (`kernel: glorot_uniform` stands for kernel_initializer='glorot_uniform',
    kernel_regularizer and kernel_constraint)."""
    common = common or {}
    fields = {name: field for name, field in config.model_fields.items() if name not in COMMON | {"type"}
              and not (name in common and field.default == common[name].default)}
    weight_arguments = {name: field for name, field in fields.items()
                        if issubclass(config, Layer) and WEIGHT_ARGUMENT.match(name)}
    fields = {name: field for name, field in fields.items() if name not in weight_arguments}
    required = [name for name, field in fields.items() if field.default is PydanticUndefined
                and field.default_factory is None]
    optional = [f"{field.alias or name}={field.default!r}" for name, field in fields.items()
                if name not in required and field.default_factory is None]
    required = [fields[name].alias or name for name in required]
    weights = [f"{name.removesuffix('_initializer')}: {field.default}" for name, field in weight_arguments.items()
               if name.endswith("_initializer")]
    if "activity_regularizer" in weight_arguments:
        weights.append("activity_regularizer")
    return ", ".join(required + optional) + (f"; weights: {', '.join(weights)}" if weights else "")


def _shown(registry: Registry) -> dict[str, str]:
    """Each name as the tables show it: `name` (`alias`, ...)."""
    aliased: dict[str, list[str]] = {name: [] for name in registry}
    for alias in registry.names(with_aliases=True):
        canonical = registry.canonical(alias)
        assert canonical is not None, "every name a registry lists is known to it"
        if canonical != alias:
            aliased[canonical].append(alias)
    return {name: f"`{name}`" + (f" ({', '.join(f'`{a}`' for a in aliases)})" if aliases else "")
            for name, aliases in aliased.items()}


def _names(registry: Registry) -> str:
    return ", ".join(_shown(registry).values())


def _configs(what: str, registry: Registry, common=None) -> list[str]:
    shown = _shown(registry)
    return [f"| {what} | arguments (Keras' defaults) |", "|---|---|",
            *(f"| {shown[name]} | {_arguments(registry[name], common)} |" for name in registry.names()), ""]


def vocabulary_markdown() -> str:
    common = ", ".join(f"{name}={field.default!r}" for name, field in OPTIMIZER_COMMON.items())
    lines = [*_configs("layer type", LAYERS), *_configs("optimizer", OPTIMIZERS, OPTIMIZER_COMMON),
             f"Every optimizer also takes {common} (at most one of the clipping arguments); its "
             "`learning_rate` is a number or a schedule, `{type: CosineDecay, initial_learning_rate: 0.1, "
             "decay_steps: 1000}`:", "", *_configs("learning-rate schedule", SCHEDULES), *_configs("loss", LOSSES),
             *_configs("metric", METRICS), *_configs("callback", CALLBACKS), "| family | names |", "|---|---|"]
    for family, registry in (("activations", ACTIVATIONS),):
        lines.append(f"| {family} | {_names(registry)} |")
    lines += ["", "A layer's weights take Keras' arguments: `kernel: glorot_uniform` above stands for "
              "`kernel_initializer` (default `glorot_uniform`), `kernel_regularizer` and `kernel_constraint`, each "
              "a name or `{type: NAME, ...arguments}`:", "",
              *_configs("initializer", INITIALIZERS), *_configs("regularizer", REGULARIZERS),
              *_configs("constraint", CONSTRAINTS)]
    return "\n".join(lines).rstrip("\n") + "\n"
