"""Problems found in a spec or its data, each tied to a place a user can open in an editor."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:
    from .spec import StandIn

KeyPath = tuple  # of str | int: the keys leading from the document root to a value


def dotted(path: KeyPath) -> str:
    out = ""
    for key in path:
        if not isinstance(key, int) and (not str(key).isprintable() or not str(key).strip()):
            key = repr(key)  # a blank name, or one with a tab or a newline, is shown as such, on one line
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a near-miss name, else ''."""
    choices = [str(c) for c in choices]
    lowered: dict[str, str] = {}
    for choice in choices:  # of names differing in case only (an entry and its alias), the first
        lowered.setdefault(choice.lower(), choice)
    match = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""


def listed(names: Iterable[str], shown: int = 16) -> str:
    """Names for a message, comma-separated; a long list is cut, saying where the whole of it is."""
    names = [str(n) for n in names]
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f", ... ({len(names)} in all: `specc vocabulary` lists them)"


@dataclass
class Problem:
    message: str
    path: KeyPath = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None
    at_key: bool = False  # point at the key itself (an unknown name) rather than at its value

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        key = dotted(self.path)
        return ": ".join(part for part in (where, key, self.message) if part)

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column,
                "path": dotted(self.path), "message": self.message}


@dataclass
class SpecError(Exception):
    """What a user can fix: one or more problems in a spec, its data, a weights file, a checkpoint, a run
    folder or the machine's room for them, each located; str() is the full report, one problem a line. The
    command prints it and exits 1; anything else that escapes is a bug in specc."""
    problems: list[Problem] = field(default_factory=list)
    stand_in: Optional[StandIn] = None  # a whole spec standing in for a broken one, for later stages to check the rest

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def fail(message: str, path: KeyPath = (), file: str | None = None) -> SpecError:
    return SpecError([Problem(message, tuple(path), file)])
