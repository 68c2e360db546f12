"""Value checks over arrays of any size. Each array is summarized once, in chunks (its finite range, whether it
holds NaN or infinite values, whether its values are whole numbers), and the summaries of a large file are
remembered per file, so the next run starts at once; a rule the summary says is broken reads the array again
only to find the first row that breaks it."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..runtime.heap import show_bytes
from .npz import NpyFolder, NpzArchive
from .rows import row_chunks
from .weights import write_text

CHUNK_BYTES = 64 * 2 ** 20  # of one array, read at a time
REMEMBERED_BYTES = 64 * 2 ** 20  # files holding at least this much have their summaries kept between runs
PROGRESS_BYTES = 2 ** 30  # checking more than this says how far it has got
KEPT_FILES = 256  # summaries of this many files are kept at most, the most recently checked


@dataclass(frozen=True)
class Summary:
    """What the value rules need to know of an array: lo and hi, its least and greatest finite values (inf and
    -inf when it has none); whether any value is NaN or infinite; whether every finite value is whole."""
    lo: float = float("inf")
    hi: float = float("-inf")
    nonfinite: bool = False
    integral: bool = True

    def merged(self, other: "Summary") -> "Summary":
        return Summary(min(self.lo, other.lo), max(self.hi, other.hi), self.nonfinite or other.nonfinite,
                       self.integral and other.integral)


@dataclass(frozen=True)
class Rule:
    """A condition every value of an array meets: `broken` tells from its summary whether some value does not,
    `bad` marks the values of a chunk that do not, `words(value, row)` says what is wrong with the first."""
    broken: Callable[[Summary], bool]
    bad: Callable[[np.ndarray], np.ndarray]
    words: Callable[[object, int], str]


def first_problem(parts: list[np.ndarray], rule: Rule) -> tuple[int, str]:
    """(part, words) for the first value of the parts that breaks `rule`, its row counted within its part."""
    for index, part in enumerate(parts):
        for first, chunk in row_chunks(part, CHUNK_BYTES):
            bad = rule.bad(chunk)
            if bad.any():
                at = tuple(np.argwhere(bad)[0])
                return index, rule.words(chunk[at], first + int(at[0]))
    raise AssertionError("the summary and the values disagree")  # the file changed while it was read


class Summaries:
    """The summaries of the arrays of data files, computed when first needed and kept in a cache folder for
    files of REMEMBERED_BYTES or more: the file's path, size, modification time and index (names, shapes and
    each array's CRC-32) must all be the same for a kept summary to be used. `say` shows progress lines."""

    def __init__(self, folder: Optional[Path] = None, say: Optional[Callable[[str], None]] = None):
        self.folder = folder if folder is not None else cache_folder()
        self.say = say or (lambda text: print(text, file=sys.stderr))

    def of(self, archive: NpzArchive | NpyFolder, arrays: dict[str, np.ndarray], shown_as: str) -> dict[str, Summary]:
        """Summaries of `arrays` (by name: arrays of `archive`, mapped or read), computed unless kept."""
        key = _file_key(archive)
        kept = self._kept().get(key, {}) if key else {}
        found = {name: Summary(*kept[name]) for name in arrays if name in kept}
        missing = {name: array for name, array in arrays.items() if name not in found}
        if missing:
            found.update(self._summarize(missing, shown_as))
            if key:
                self._keep(key, {**kept, **{name: astuple(found[name]) for name in missing}})
        return found

    def _summarize(self, arrays: dict[str, np.ndarray], shown_as: str) -> dict[str, Summary]:
        from ..kernels.data import value_summary  # (numba: commands that only read headers never load it)
        total = sum(array.nbytes for array in arrays.values())
        shown = total >= PROGRESS_BYTES
        done, said = 0, time.monotonic()
        summaries = {}
        for name, array in arrays.items():
            summary = Summary()
            for _, chunk in row_chunks(array.reshape(-1) if array.ndim < 2 else array, CHUNK_BYTES):
                summary = summary.merged(Summary(*value_summary(np.ascontiguousarray(chunk).reshape(-1))))
                done += chunk.nbytes
                if shown and time.monotonic() - said > 2:
                    self.say(f"Checking the values of {shown_as} ({show_bytes(total)}, once; the result is "
                             f"remembered): {100 * done / total:.0f}%")
                    said = time.monotonic()
            summaries[name] = summary
        return summaries

    def _kept(self) -> dict:
        try:
            kept = json.loads((self.folder / "summaries.json").read_text())
        except (OSError, ValueError):
            return {}
        return kept if isinstance(kept, dict) else {}

    def _keep(self, key: str, summaries: dict):
        """Best effort: a folder that cannot be written only means the next run checks again."""
        kept = self._kept()
        kept.pop(key, None)
        kept[key] = summaries
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text(self.folder / "summaries.json", json.dumps(dict(list(kept.items())[-KEPT_FILES:])))
        except OSError:
            pass


def cache_folder() -> Path:
    """$SPECC_CACHE, else $XDG_CACHE_HOME/specc, else ~/.cache/specc."""
    if os.environ.get("SPECC_CACHE"):
        return Path(os.environ["SPECC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "specc"


def _file_key(archive: NpzArchive | NpyFolder) -> Optional[str]:
    """What identifies a file's contents for its kept summaries; None for a file too small to keep them."""
    stamps = archive.stamps()
    if sum(size for _, size, _ in stamps) < REMEMBERED_BYTES:
        return None
    where = [(os.path.realpath(path), size, time) for path, size, time in stamps]
    return hashlib.sha256(f"{where}:{archive.identity()}".encode()).hexdigest()
