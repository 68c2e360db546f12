"""Reading .npz archives safely: never unpickles, and says in plain words what is wrong with a file."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


class NpzError(Exception):
    """What is wrong with a file, one sentence per problem (each reads after the file's name)."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise NpzError(["is a single .npy array, not an .npz archive of named arrays (np.savez writes one)"])
        if not magic.startswith(b"PK"):  # np.load would take it for a pickle and suggest loading it unsafely
            raise NpzError(["is not an .npz file (an .npz is a zip archive of named arrays, as np.savez writes)"])
        arrays, problems = {}, []
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        problems.append(f"array '{name}' holds Python objects, which are never loaded "
                                        "(save numbers, e.g. np.asarray(x, dtype=np.float32))")
                    else:
                        problems.append(f"array '{name}' cannot be read: {e}")
                except (zipfile.BadZipFile, EOFError, OSError) as e:
                    problems.append(f"array '{name}' is damaged ({type(e).__name__}: {e})")
        if problems:
            raise NpzError(problems)
        return arrays
    except FileNotFoundError:
        raise NpzError(["no such file"]) from None
    except IsADirectoryError:
        raise NpzError(["is a directory, not an .npz file"]) from None
    except zipfile.BadZipFile as e:  # it starts like a zip archive, yet its table of contents is not there
        raise NpzError([f"is truncated or damaged: it starts as an .npz archive, but the archive's index at its "
                        f"end is missing or broken (was it written or copied only in part?) "
                        f"({type(e).__name__}: {e})"]) from None
    except (ValueError, OSError, EOFError) as e:
        raise NpzError([f"is not a readable .npz file ({type(e).__name__}: {e})"]) from None
