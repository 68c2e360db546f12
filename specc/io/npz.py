"""Reading .npz archives safely: every member's .npy header is checked before any data is unpacked, nothing is
ever unpickled, and what is wrong with a file is said in plain words."""
from __future__ import annotations

import hashlib
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from numpy.lib import format as npy

from ..runtime.heap import machine_memory, show_bytes
from .files import FileProblem, open_regular

# Deflate cannot pack data tighter than about 1030:1, and only a run of one repeated byte gets there; real arrays
# stay far below this. An array that unpacks to more than this multiple of its packed size (and to more than
# EXPANSION_FLOOR) is a zip bomb.
MAX_EXPANSION = 500
EXPANSION_FLOOR = 64 * 2 ** 20


# A zip member's local header: its signature, 22 bytes this reader does not need, the lengths of its name and
# of its extra field (which then follow it, before the member's data)
LOCAL_HEADER = struct.Struct("<4s22xHH")

MEMORY_BYTES = machine_memory()  # arrays that could never fit are refused before any is unpacked


class NpzError(FileProblem):
    """What is wrong with an .npz file."""


@dataclass(frozen=True)
class ArrayHeader:
    """What an .npy member declares, read without unpacking its data."""
    name: str
    shape: tuple
    dtype: np.dtype
    nbytes: int
    member: Optional[zipfile.ZipInfo]  # (None in a folder of .npy files)
    fortran_order: bool
    data_offset: Optional[int]  # where the values start in the file, when they are stored as they are

    @property
    def compressed(self) -> bool:
        return self.data_offset is None


def read_npy_header(stream, name: str, size: int, holder: str) -> tuple[Optional[tuple], str]:
    """(shape, fortran_order, dtype, header bytes) of the .npy array `name` that `stream` starts, checked against
    the `size` its holder has for it; else (None, what is wrong). Arrays of Python objects are refused."""
    try:
        version = npy.read_magic(stream)
    except ValueError:
        return None, f"array '{name}' is not an .npy array (it does not start as one)"
    if version == (1, 0):
        shape, fortran_order, dtype = npy.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = npy.read_array_header_2_0(stream)
    else:
        return None, f"array '{name}' is in .npy format {version[0]}.{version[1]}, which is not read " \
                     "(arrays of numbers are saved in format 1.0 or 2.0)"
    header_bytes = stream.tell()
    if dtype.hasobject:
        return None, f"array '{name}' holds Python objects, which are never loaded " \
                     "(save numbers, e.g. np.asarray(x, dtype=np.float32))"
    if any(n < 0 for n in shape):
        return None, f"array '{name}' is damaged: its header declares the shape {shape}"
    declared = header_bytes + math.prod(shape) * dtype.itemsize
    if size != declared:
        return None, f"array '{name}' is damaged: its header declares shape {shape} of {dtype} " \
                     f"({show_bytes(declared)}), but {holder} {show_bytes(size)} for it"
    return (shape, fortran_order, dtype, header_bytes), ""


_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError)


class NpzArchive:
    """An .npz file open for reading, every member's header checked: `headers` by array name; `read` unpacks.

    Refused (NpzError) before any data is unpacked: a path that is not a regular file, a file that is not a zip
    archive, members that are not .npy arrays, arrays of Python objects (never unpickled), and arrays whose
    declared size does not match the archive or would unpack far beyond what the archive holds."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = open_regular(path, "an .npz file")
        except FileProblem as e:
            raise NpzError(e.messages) from None
        try:
            self._zip = self._open_zip()
            self.headers = self._read_headers()
        except OSError as e:
            self.close()
            raise NpzError([f"cannot be read ({e.strerror or e})"]) from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def _open_zip(self) -> zipfile.ZipFile:
        magic = self._file.read(6)
        self._file.seek(0)
        if magic == b"\x93NUMPY":
            raise NpzError(["is a single .npy array, not an .npz archive of named arrays (np.savez writes one; or "
                            "put one NAME.npy per array in a folder and name the folder)"])
        if not magic.startswith(b"PK"):  # np.load would take it for a pickle and suggest loading it unsafely
            raise NpzError(["is not an .npz file (an .npz is a zip archive of named arrays, as np.savez writes)"])
        try:
            return zipfile.ZipFile(self._file)
        except zipfile.BadZipFile as e:  # it starts like a zip archive, yet its table of contents is not there
            raise NpzError([f"is truncated or damaged: it starts as an .npz archive, but the archive's index at "
                            f"its end is missing or broken (was it written or copied only in part?) "
                            f"({type(e).__name__}: {e})"]) from None
        except (ValueError, EOFError, NotImplementedError) as e:
            raise NpzError([f"is not a readable .npz file ({type(e).__name__}: {e})"]) from None

    def _read_headers(self) -> dict[str, ArrayHeader]:
        headers: dict[str, ArrayHeader] = {}
        problems: list[str] = []
        for member in self._zip.infolist():
            if not member.filename.endswith(".npy") or member.is_dir():
                problems.append(f"holds '{member.filename}', which is not an .npy array (an .npz holds only "
                                ".npy arrays, as np.savez writes)")
                continue
            name = member.filename[:-len(".npy")]
            if name in headers:
                problems.append(f"holds two arrays named '{name}'")
                continue
            try:
                header, problem = self._header(name, member)
            except _DAMAGED as e:
                header, problem = None, f"array '{name}' is damaged ({type(e).__name__}: {e})"
            if header is None:  # then `problem` says why
                problems.append(problem)
            else:
                headers[name] = header
        if problems:
            raise NpzError(problems)
        return headers

    def _header(self, name: str, member: zipfile.ZipInfo) -> tuple[Optional[ArrayHeader], str]:
        with self._zip.open(member) as stream:
            read, problem = read_npy_header(stream, name, member.file_size, "the archive holds")
        if read is None:
            return None, problem
        shape, fortran_order, dtype, header_bytes = read
        declared = header_bytes + math.prod(shape) * dtype.itemsize
        if declared > EXPANSION_FLOOR and declared > MAX_EXPANSION * member.compress_size:
            return None, f"array '{name}' would unpack from {show_bytes(member.compress_size)} to " \
                         f"{show_bytes(declared)} ({declared // max(member.compress_size, 1):,} times): like a " \
                         "zip bomb, it is not read (save genuine data uncompressed, with np.savez)"
        offset = self._data_offset(member, header_bytes)
        if offset is not None and offset + declared - header_bytes > os.fstat(self._file.fileno()).st_size:
            return None, f"array '{name}' is damaged: its values would end beyond the end of the file"
        return ArrayHeader(name, shape, dtype, declared - header_bytes, member, fortran_order, offset), ""

    def _data_offset(self, member: zipfile.ZipInfo, header_bytes: int) -> Optional[int]:
        """Where a member stored without compression (as np.savez writes) has its values in the file; None for
        a compressed or encrypted one. The zip's local header before the data has its own name and extra field
        lengths, which may differ from the central directory's."""
        if member.compress_type != zipfile.ZIP_STORED or member.flag_bits & 0x1:
            return None
        self._file.seek(member.header_offset)
        local = self._file.read(LOCAL_HEADER.size)
        if len(local) != LOCAL_HEADER.size:
            return None
        signature, name_length, extra_length = LOCAL_HEADER.unpack(local)
        if signature != b"PK\x03\x04":
            return None
        return member.header_offset + LOCAL_HEADER.size + name_length + extra_length + header_bytes

    def map(self, name: str) -> np.ndarray:
        """An array stored without compression, memory-mapped read-only: its rows are read from the file when
        indexed, never all at once."""
        return _mapped(self._file, self.headers[name])

    def identity(self) -> str:
        """sha256 (hex) of what the archive's index says of every member: names, sizes and the CRC-32 of their
        contents. Any rewrite with other values changes it; reading it costs nothing beyond the headers."""
        return _digest(f"{h.name}:{h.dtype.str}:{h.shape}:{h.member.file_size}:{h.member.CRC}"
                       for h in self.headers.values() if h.member is not None)

    def stamps(self) -> list[tuple[str, int, int]]:
        """(path, size, modification time in ns) of the file, as opened."""
        status = os.fstat(self._file.fileno())
        return [(str(self.path), status.st_size, status.st_mtime_ns)]

    def read(self, names: Optional[Iterable[str]] = None) -> dict[str, np.ndarray]:
        """The named arrays (by default all), unpacked; NpzError names every one that is damaged."""
        names = list(self.headers if names is None else names)
        _check_fits(sum(self.headers[name].nbytes for name in names),
                    any(self.headers[name].compressed for name in names))
        arrays, problems = {}, []
        for name in names:
            try:
                with self._zip.open(self.headers[name].member) as stream:  # type: ignore[arg-type]
                    arrays[name] = npy.read_array(stream, allow_pickle=False)
                    stream.read(1)  # reaching the end checks the member's CRC
            except _DAMAGED as e:
                problems.append(f"array '{name}' is damaged ({type(e).__name__}: {e})")
        if problems:
            raise NpzError(problems)
        return arrays


class NpyFolder:
    """A folder of .npy files, one array each (NAME.npy, as np.save writes), read as an .npz archive whose arrays
    lie unpacked: the same headers and checks, mapped or read the same way. Its identity is its files' names,
    layouts, sizes and modification times (a folder has no index of checksums)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._files = {f.stem: f for f in sorted(self.path.iterdir()) if f.suffix == ".npy"}
        except OSError as e:
            raise NpzError([f"cannot be read ({e.strerror or e})"]) from None
        if not self._files:
            raise NpzError(["is a folder without .npy files (a dataset folder holds one NAME.npy per array, as "
                            "np.save writes; or name an .npz file)"])
        self.headers: dict[str, ArrayHeader] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        problems = []
        for name, file in self._files.items():
            try:
                with open_regular(file, "an .npy file") as stream:
                    status = os.fstat(stream.fileno())
                    read, problem = read_npy_header(stream, name, status.st_size, "the file has")
            except FileProblem as e:
                read, problem = None, "; ".join(f"{file.name} {message}" for message in e.messages)
            except _DAMAGED as e:
                read, problem = None, f"array '{name}' is damaged ({type(e).__name__}: {e})"
            if read is None:
                problems.append(problem)
                continue
            shape, fortran_order, dtype, header_bytes = read
            self.headers[name] = ArrayHeader(name, shape, dtype, status.st_size - header_bytes, None, fortran_order,
                                             header_bytes)
            self._stamps[name] = (status.st_size, status.st_mtime_ns)
        if problems:
            raise NpzError(problems)

    def __enter__(self) -> "NpyFolder":
        return self

    def __exit__(self, *exc):
        pass

    def map(self, name: str) -> np.ndarray:
        with open_regular(self._files[name], "an .npy file") as file:
            return _mapped(file, self.headers[name])

    def read(self, names: Optional[Iterable[str]] = None) -> dict[str, np.ndarray]:
        names = list(self.headers if names is None else names)
        _check_fits(sum(self.headers[name].nbytes for name in names), compressed=False)
        return {name: np.array(self.map(name)) for name in names}

    def identity(self) -> str:
        return _digest(f"{name}:{h.dtype.str}:{h.shape}:{self._stamps[name]}" for name, h in self.headers.items())

    def stamps(self) -> list[tuple[str, int, int]]:
        return [(str(self._files[name]), *stamp) for name, stamp in self._stamps.items()]


def open_arrays(path: str | Path) -> NpzArchive | NpyFolder:
    """The named arrays of an .npz file, or of a folder of .npy files (a folder named *.npz is refused as not
    an .npz file)."""
    return NpyFolder(path) if Path(path).is_dir() and Path(path).suffix != ".npz" else NpzArchive(path)


def _mapped(file, header: ArrayHeader) -> np.ndarray:
    if header.data_offset is None:
        raise ValueError(f"array '{header.name}' is compressed; it cannot be mapped")
    if header.nbytes == 0:  # mmap cannot map nothing
        return np.empty(header.shape, header.dtype)
    return np.memmap(file, header.dtype, "r", header.data_offset, header.shape, "F" if header.fortran_order else "C")


def _digest(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(f"{line};".encode())
    return digest.hexdigest()


def _check_fits(total: int, compressed: bool):
    if MEMORY_BYTES is not None and total > MEMORY_BYTES:
        stored = "; saved with np.savez (uncompressed) it would be read as needed instead" if compressed else ""
        raise NpzError([f"holds arrays of {show_bytes(total)}, more than this machine's memory "
                        f"({show_bytes(MEMORY_BYTES)}){stored}"])


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, each header checked before any data is unpacked; else NpzError."""
    with NpzArchive(path) as archive:
        return archive.read()
