"""Reading ``.npy`` arrays -- files of their own or members of an ``.npz`` -- a block of rows at a time.

``np.load`` of an ``.npz`` member reads the whole array into memory (a 224 px PathMNIST split is
many GB). Here the array's header is read alone (shape and dtype, without the data), and rows are
read in order from the member's stream, compressed or not, so memory holds one block at a time.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO

import numpy as np

from medviz.data.readers.dtypes import ValueRange, value_range
from medviz.errors import DataError

log = logging.getLogger("medviz")

#: What a damaged or truncated archive raises while it is read.
BROKEN = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class NpyArray:
    """One array on disk: ``file`` (an .npy, or the .npz holding it as ``member``), its shape and dtype."""

    file: Path
    member: str | None
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def source(self) -> str:
        """The file and member, as messages name them."""
        return f"{self.file} ({self.member})" if self.member else str(self.file)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


def _read_header(handle: IO[bytes], file: Path, member: str | None) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(handle)
    if dtype.hasobject:
        where = f"{file} ({member})" if member else str(file)
        raise DataError(f"{where} holds Python objects, not pixel values; save the images as a numeric array")
    return tuple(shape), fortran_order, dtype


def npz_arrays(file: Path) -> dict[str, NpyArray]:
    """Every array of an ``.npz``, by name, from the headers alone."""
    found = {}
    try:
        with zipfile.ZipFile(file) as archive:
            for name in archive.namelist():
                if name.endswith(".npy"):
                    with archive.open(name) as handle:
                        shape, fortran, dtype = _read_header(handle, file, name[:-4])
                    found[name[:-4]] = NpyArray(file, name[:-4], shape, dtype, fortran)
    except BROKEN as err:
        raise DataError(f"{file} is truncated or not an npz file ({err}). Delete it and get it again.") from None
    return found


def npy_array(file: Path) -> NpyArray:
    """A plain ``.npy`` file's array, from its header."""
    try:
        with open(file, "rb") as handle:
            shape, fortran, dtype = _read_header(handle, file, None)
    except BROKEN as err:
        raise DataError(f"{file} is truncated or not an .npy file ({err}). Save it again.") from None
    return NpyArray(file, None, shape, dtype, fortran)


class NpyBlocks:
    """Rows of :class:`NpyArray` s, block by block; read forward in order, each stream is read once.

    Use as a context manager (it keeps the current stream open between blocks).
    """

    def __init__(self) -> None:
        self._open: tuple[NpyArray, zipfile.ZipFile, IO[bytes], int] | None = None
        self._whole: dict[NpyArray, np.ndarray] = {}

    def __enter__(self) -> NpyBlocks:
        return self

    def __exit__(self, *exc) -> None:
        self._close()
        self._whole.clear()

    def _close(self) -> None:
        if self._open is not None:
            self._open[2].close()
            self._open[1].close()
            self._open = None

    def rows(self, array: NpyArray, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``array`` as an array (stop - start, *shape[1:]) in its dtype."""
        try:
            if array.member is None:
                return np.array(np.load(array.file, mmap_mode="r", allow_pickle=False)[start:stop])
            if array.fortran_order:  # rows are not contiguous on disk: read the array once, whole
                if array not in self._whole:
                    log.info(f"{array.source} is stored in Fortran order: it is read whole, not block by block")
                    with np.load(array.file, allow_pickle=False) as npz:
                        self._whole = {array: npz[array.member]}
                return np.array(self._whole[array][start:stop])
            return self._stream_rows(array, start, stop)
        except BROKEN as err:
            raise DataError(f"{array.source} could not be read ({err}). Get the file again.") from None

    def all_rows(self, array: NpyArray, block_bytes: int = 32 * 2**20) -> Iterator[np.ndarray]:
        """Every row of ``array``, in blocks of about ``block_bytes``."""
        step = max(1, block_bytes // max(array.row_bytes, 1))
        for start in range(0, array.shape[0], step):
            yield self.rows(array, start, min(start + step, array.shape[0]))

    def _stream_rows(self, array: NpyArray, start: int, stop: int) -> np.ndarray:
        if self._open is None or self._open[0] != array or self._open[3] > start:
            self._close()
            archive = zipfile.ZipFile(array.file)
            handle = archive.open(f"{array.member}.npy")
            _read_header(handle, array.file, array.member)
            self._open = (array, archive, handle, 0)
        _, archive, handle, at = self._open
        if at < start:
            handle.seek((start - at) * array.row_bytes, 1)
        wanted = (stop - start) * array.row_bytes
        data = handle.read(wanted)
        if len(data) != wanted:
            raise DataError(f"{array.source} ends before its {array.shape[0]} rows: the file is truncated")
        self._open = (array, archive, handle, stop)
        return np.frombuffer(data, dtype=array.dtype).reshape((stop - start, *array.shape[1:]))


def arrays_value_range(arrays: Sequence[NpyArray]) -> ValueRange:
    """The values' range over every row of ``arrays``, read block by block (a pass over the data:
    only for dtypes whose conversion depends on it)."""
    with NpyBlocks() as blocks:
        return value_range(chain.from_iterable(blocks.all_rows(array) for array in arrays))
