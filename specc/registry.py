"""Registries: the names of one family (layers, activations, initializers, optimizers, losses, metrics,
callbacks), each entry declared once where it is implemented.

The spec format's unions, `specc schema`, the "known: ..." lists and suggestions in error messages and the
README's tables are all read from here, so a new entry needs no edit anywhere else.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Callable, Generic, Iterator, Literal, Optional, TypeVar, Union, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from .errors import did_you_mean, listed

T = TypeVar("T")


class Config(BaseModel):
    """A part of the spec format: unknown keys are errors, values keep the type they were written with."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False)


NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


def _identifier(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid name: names of inputs, layers and models are letters, digits, "
                         "'_' and '-' ('.' will select one output of a layer, '/' separates the parts of weight "
                         "keys)")
    return name


Name = Annotated[str, AfterValidator(_identifier)]  # of an input, a layer or a model: part of weight keys


def type_tag(config: type[BaseModel]) -> str:
    """The `type:` value that selects a config class in a spec (its Literal)."""
    return get_args(config.model_fields["type"].annotation)[0]


class Registry(Generic[T]):
    """Entries by name, in the order they were registered; aliases resolve to their entry's name."""

    def __init__(self, family: str, sorted_names: bool = False):
        self.family = family  # as said in messages: "unknown optimizer 'x'"
        self.sorted_names = sorted_names  # list names alphabetically rather than in registration order
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.family} '{key}' is registered twice")
        self._entries[name] = entry
        self._aliases.update({alias: name for alias in aliases})
        return entry

    def register(self, name: Optional[str] = None, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Class decorator; the name defaults to the class's `type:` tag."""
        def decorate(entry):
            return self.add(name or type_tag(entry), entry, aliases)
        return decorate

    def canonical(self, name: str) -> Optional[str]:
        """The entry's own name for a name or an alias; None for an unknown name."""
        return name if name in self._entries else self._aliases.get(name)

    def __getitem__(self, name: str) -> T:
        canonical = self.canonical(name)
        if canonical is None:
            raise KeyError(self.unknown(name))
        return self._entries[canonical]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, with_aliases: bool = False) -> list[str]:
        names = [*self._entries, *self._aliases] if with_aliases else list(self._entries)
        return sorted(names, key=str.lower) if self.sorted_names else names

    def make(self, name: str, **settings) -> Any:
        """The config of an entry by its name or alias, with its default settings where none are given (the
        entries are config classes whose `type:` is their name)."""
        return self[name](type=self.canonical(name), **settings)  # type: ignore[operator]

    def entries(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def spelled(self, value):
        """A name, or `{type: name, ...}`, with an alias made the entry's own name; anything else unchanged
        (validation says what is wrong with it)."""
        if isinstance(value, str) and value in self:
            return self.canonical(value)
        if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] in self:
            return {**value, "type": self.canonical(value["type"])}
        return value

    def settings(self, value):
        """A spec value for an entry's settings — a bare name, or `{type: NAME, ...}`, NAME any of its names or
        aliases spelled in any case, with or without underscores (Keras' class names: `BinaryCrossentropy`) —
        as `{type: the entry's own name, ...}`; anything else unchanged (validation says what is wrong)."""
        if isinstance(value, str):
            value = {"type": value}
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            name = value["type"]
            squeezed = {n.replace("_", "").lower(): n for n in self.names(with_aliases=True)}
            known = self.canonical(name) or self.canonical(squeezed.get(name.replace("_", "").lower(), ""))
            if known is not None:
                return {**value, "type": known}
        return value

    def argument(self) -> Any:
        """A spec value naming an entry: a bare name (kept as written: the entry with its default settings) or
        `{type: NAME, ...settings}` (the entry's config class, chosen by `type:`); aliases accepted for both."""
        configs = Annotated[Union[tuple(self.entries())], Field(discriminator="type")]  # type: ignore[valid-type]
        # aliases in the names too: a default may be written as Keras writes it (Embedding's "uniform")
        return Annotated[Union[Literal[tuple(self.names(with_aliases=True))], configs],
                         BeforeValidator(self.spelled, json_schema_input_type=self.written())]

    def written(self) -> Any:
        """What a spec may write for an entry, for the JSON Schema: any of its names or aliases, bare or as
        the `type:` of its settings."""
        spelled: list[Any] = [Literal[tuple(self.names(with_aliases=True))]]
        for name, entry in self.items():
            config: Any = entry
            names: Any = Literal[tuple(n for n in self.names(with_aliases=True) if self.canonical(n) == name)]
            spelled.append(create_model(config.__name__, __base__=config, type=(names, ...)))
        return Union[tuple(spelled)]

    def unknown(self, name: str) -> str:
        """The message for a name that is not registered, with a suggestion for a near miss."""
        return (f"unknown {self.family} '{name}'{did_you_mean(name, self.names(with_aliases=True))}; "
                f"known: {listed(self.names())}")
