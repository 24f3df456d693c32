"""NumPy's own BLAS, called by name: its libraries' handles (handles(), which fused.numpy_blas() also
finds its GEMMs in), and what NumPy has no fast function for: the transposed copy.

np.copyto(out, W.T) walks down W's columns one element at a time, and where a row of W is a power of
two long each column's elements fall into the same cache sets. OpenBLAS's omatcopy copies in blocks.
The compiled training forward copies W_hh^T once per layer and call (BENCHMARKS.md has the gain).

Shapes: a (N, K) -> out (K, N), both C-ordered.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from . import threads

# CBLAS omatcopy by name in NumPy's wheels (scipy-openblas, ILP64), other ILP64 builds, plain OpenBLAS
_NAMES = (("scipy_cblas_somatcopy64_", "scipy_cblas_domatcopy64_", ctypes.c_int64),
          ("cblas_somatcopy64_", "cblas_domatcopy64_", ctypes.c_int64),
          ("cblas_somatcopy", "cblas_domatcopy", ctypes.c_int32))
ROW_MAJOR, TRANS = 101, 112  # CblasRowMajor, CblasTrans


def handles():
    """(path, ctypes handle) of each BLAS library NumPy loaded (threadpoolctl's list), where it opens."""
    for lib in threads.blas_libraries():
        try:
            yield lib.filepath, ctypes.CDLL(lib.filepath)
        except OSError:
            continue


@functools.cache
def _omatcopy() -> dict:
    """{np.float32: somatcopy, np.float64: domatcopy} of the BLAS NumPy loaded, each checked on a small
    matrix; {} where there is none (another BLAS, or a name that does not answer as CBLAS's)."""
    for _, handle in handles():
        for single, double, index in _NAMES:
            if not (hasattr(handle, single) and hasattr(handle, double)):
                continue
            found = {}
            for dtype, name, real in ((np.float32, single, ctypes.c_float), (np.float64, double, ctypes.c_double)):
                fn = getattr(handle, name)
                fn.restype = None
                fn.argtypes = [ctypes.c_int, ctypes.c_int, index, index, real, ctypes.c_void_p, index,
                               ctypes.c_void_p, index]
                found[dtype] = fn
            if all(_works(fn, dtype) for dtype, fn in found.items()):
                return found
    return {}


def _works(fn, dtype) -> bool:
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    out = np.zeros((3, 2), dtype)
    fn(ROW_MAJOR, TRANS, 2, 3, 1.0, a.ctypes.data, 3, out.ctypes.data, 2)
    return bool(np.array_equal(out, a.T))


def transpose(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a.T: one omatcopy call where NumPy's BLAS has it and both are C-ordered, else np.copyto."""
    if a.ndim != 2 or out.shape != a.shape[::-1]:
        raise ValueError(f"transpose takes a 2-D a and out of its transposed shape; got {a.shape} and {out.shape}")
    fn = _omatcopy().get(a.dtype.type) if a.dtype == out.dtype else None
    if fn is None or a.size == 0 or not (a.flags.c_contiguous and out.flags.c_contiguous):
        np.copyto(out, a.T)
        return out
    N, K = a.shape
    fn(ROW_MAJOR, TRANS, N, K, 1.0, a.ctypes.data, K, out.ctypes.data, N)
    return out
