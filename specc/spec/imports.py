"""Models imported from other specs (`{from: other.yaml, model: NAME, weights: W.npz}`): each other spec
read once, and the weights files to load into the imported models once they are built."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import KeyPath, Problem, SpecError, did_you_mean
from . import load_spec
from .format import GraphModel, ImportedModel, SequentialModel, Spec, SubModel


@dataclass
class ImportedWeights:
    key: str            # weights prefix in this model
    weights: Path
    their_prefix: str   # weights prefix in the other spec's weights file


class Imports:
    """Resolves the `from:` entries of the spec at `path`; `weights` lists what to load once it is compiled."""

    def __init__(self, path: Path):
        self.folder = path.parent
        self.weights: list[ImportedWeights] = []
        self._specs: dict[Path, Optional[Spec]] = {}

    def __call__(self, entry: ImportedModel, path: KeyPath) -> GraphModel | SequentialModel:
        other = self._spec(self.folder / entry.from_)
        definition: SubModel
        if entry.model is None:
            definition, their_prefix = other, ""
        elif entry.model in other.models:
            definition, their_prefix = other.models[entry.model], entry.model + "/"
        else:
            raise SpecError([Problem(f"{entry.from_} defines no model '{entry.model}'"
                                     f"{did_you_mean(entry.model, other.models)}", path + ("model",))])
        if isinstance(definition, ImportedModel):
            raise SpecError([Problem(f"'{entry.model}' in {entry.from_} is itself imported; import it from "
                                     f"{definition.from_} directly", path + ("model",))])
        if entry.weights is not None:
            key = "/".join(str(part) for i, part in enumerate(path) if i % 2 == 1)
            self.weights.append(ImportedWeights(key, self.folder / entry.weights, their_prefix))
        return definition

    def _spec(self, path: Path) -> Spec:
        """Another spec, read once however many models come from it; its problems are reported once."""
        key = path.resolve()
        if key not in self._specs:
            try:
                self._specs[key] = load_spec(path)[0]
            except SpecError:
                self._specs[key] = None
                raise
        spec = self._specs[key]
        if spec is None:
            raise SpecError([])  # already reported
        return spec
