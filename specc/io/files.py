"""Opening only regular files: a device such as /dev/zero never ends, a named pipe waits for a writer that
may never come, and a huge file is refused by its size before it is read."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Optional


class FileProblem(Exception):
    """What is wrong with a file, one sentence per problem (each reads after the file's name)."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def open_regular(path: str | Path, what: str, max_bytes: Optional[int] = None) -> BinaryIO:
    """`path` open for reading in binary, when it is a regular file (of at most `max_bytes`); else FileProblem.

    Anything else is refused before it is opened: reading a device such as /dev/zero never ends, and opening a
    named pipe waits for a writer that may never come."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise FileProblem(["no such file"]) from None
    except OSError as e:
        raise FileProblem([f"cannot be opened ({e.strerror or e})"]) from None
    _check_regular(status, what, max_bytes)
    # O_NONBLOCK: should a pipe take the file's place after the check, opening it still returns at once
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise FileProblem([f"cannot be opened ({e.strerror or e})"]) from None
    try:
        _check_regular(os.fstat(fd), what, max_bytes)
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(status: os.stat_result, what: str, max_bytes: Optional[int]):
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "not a regular file")
        raise FileProblem([f"is {kind}, not {what}; only regular files are read"])
    if max_bytes is not None and status.st_size > max_bytes:
        raise FileProblem([f"has {status.st_size:,} bytes; {what} may have at most {max_bytes:,} "
                           f"({max_bytes / 2 ** 20:,.0f} MiB)"])
