"""What cannot be exported: a SpecError, so the command reports it as a problem of the spec, not a crash."""
from __future__ import annotations

from ..errors import Problem, SpecError


class ExportError(SpecError):
    """A model, or a setting of one of its layers, that has no ONNX form; the message names it."""

    def __init__(self, message: str):
        super().__init__([Problem(message)])

    @property
    def message(self) -> str:
        return self.problems[0].message
