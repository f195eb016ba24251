"""Reading a pickled ``.npy`` (Cellpose's ``*_seg.npy``) without running anything it names.

Cellpose saves its results as a ``.npy`` holding a pickled dict (``masks``, ``outlines``, ``flows``,
``diameter`` ...). ``np.load(allow_pickle=True)`` would run whatever the file names; this reader's
unpickler admits only arrays, dicts, lists, tuples, text and numbers, and refuses anything else
naming what it found, so a file from anywhere can be read.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from medviz.errors import DataError

#: The only globals a Cellpose ``_seg.npy`` needs: how numpy rebuilds arrays, dtypes and scalars.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "bool"),
    ("builtins", "bytes"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise DataError(f"it names {module}.{name}, which is not an array, dict, list, text or number")
        return super().find_class(module, name)


def load_pickled_npy(path: Path) -> object:
    """The object a pickled ``.npy`` holds (a plain array is returned as it is), read with an
    unpickler that admits arrays, dicts, lists, text and numbers only."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            if not dtype.hasobject:
                handle.seek(0)
                return np.load(handle, allow_pickle=False)
            value = _ArraysOnly(handle).load()
    except DataError as err:
        raise DataError(f"{path}: refused to read ({err})") from err
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, IndexError) as err:
        raise DataError(f"{path}: not a readable .npy ({type(err).__name__}: {err})") from err
    if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
        return value.item()
    if isinstance(value, np.ndarray) and shape == () and value.size == 1:
        return value.reshape(()).item()
    return value
