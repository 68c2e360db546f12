"""Every name a spec may use, by family, as Markdown: read from the registries (`specc vocabulary`, and the
README's table, which a test keeps equal to this)."""
from __future__ import annotations

from pydantic_core import PydanticUndefined

from ..layers import LAYERS, Layer
from ..layers.activations import ACTIVATIONS
from ..layers.initializers import INITIALIZERS
from ..registry import Registry
from ..train.callbacks import CALLBACKS
from ..train.losses import LOSSES
from ..train.metrics import METRICS
from ..train.optimizers import OPTIMIZERS

COMMON = set(Layer.model_fields)  # inputs, name, trainable: every layer has them


def _arguments(config) -> str:
    """`units, activation='linear', use_bias=True`: the required arguments, then the others with defaults."""
    fields = {name: field for name, field in config.model_fields.items() if name not in COMMON | {"type"}}
    required = [name for name, field in fields.items() if field.default is PydanticUndefined
                and field.default_factory is None]
    optional = [f"{name}={field.default!r}" for name, field in fields.items()
                if name not in required and field.default_factory is None]
    return ", ".join(required + optional)


def _names(registry: Registry) -> str:
    aliased: dict[str, list[str]] = {name: [] for name in registry}
    for alias in registry.names(with_aliases=True):
        canonical = registry.canonical(alias)
        assert canonical is not None, "every name a registry lists is known to it"
        if canonical != alias:
            aliased[canonical].append(alias)
    return ", ".join(f"`{name}`" + (f" ({', '.join(f'`{a}`' for a in aliases)})" if aliases else "")
                     for name, aliases in aliased.items())


def _configs(what: str, registry: Registry) -> list[str]:
    return [f"| {what} | arguments (Keras' defaults) |", "|---|---|",
            *(f"| `{name}` | {_arguments(registry[name])} |" for name in registry.names()), ""]


def vocabulary_markdown() -> str:
    lines = [*_configs("layer type", LAYERS), *_configs("optimizer", OPTIMIZERS), *_configs("callback", CALLBACKS),
             "| family | names |", "|---|---|"]
    for family, registry in (("activations", ACTIVATIONS), ("initializers", INITIALIZERS), ("losses", LOSSES),
                             ("metrics", METRICS)):
        lines.append(f"| {family} | {_names(registry)} |")
    return "\n".join(lines) + "\n"
