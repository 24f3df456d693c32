"""Which code runs the driver's time loop (driver.py): Numba's compiled steps or NumPy's ufuncs.

    "numba"  each step is one GEMM (NumPy's BLAS) and one compiled call for the cell's step (fused.py)
    "numpy"  the driver's NumPy sweep: one GEMM and the cell's step on (B, H) arrays, NumPy alone
    None     Numba where it is installed, else NumPy: what kernel="fast" uses

Numba is a core dependency; nothing here imports it until a Numba sweep is first asked for, so
`import rnnlab` stays quick, and where numba cannot import the time loop runs in NumPy.
"""
from __future__ import annotations

import importlib.util

import numpy as np

BACKENDS = ("numba", "numpy")

_fused = None  # the module fused.py once imported
_missing = None  # why the Numba sweeps cannot run here, once known


def fused_or_none():
    """The Numba sweeps (fused.py, imported on first call), or None where numba cannot run."""
    global _fused, _missing
    if _fused is None and _missing is None:
        if importlib.util.find_spec("numba") is None:
            _missing = "numba is not installed (pip install numba)"
        else:
            try:
                from . import fused
            except ImportError as error:  # a broken numba install: run on NumPy
                _missing = f"numba failed to import ({error})"
            else:
                _fused = fused
    return _fused


def numba_available() -> bool:
    return fused_or_none() is not None


def describe() -> str:
    """One line for a run's log: which code runs the time loop, and why not Numba's where it cannot."""
    if fused_or_none() is not None:
        import numba

        return f"time loop compiled (Numba {numba.__version__})"
    return f"time loop in NumPy ({_missing})"


def resolve(backend: str | None):
    """The fused module when the time loop should run in Numba, None when it should run in NumPy."""
    if backend == "numpy":
        return None
    if backend is None:
        return fused_or_none()
    if backend == "numba":
        module = fused_or_none()
        if module is None:
            raise RuntimeError(f"kernel 'numba' is unavailable: {_missing}")
        return module
    raise ValueError(f"backend must be one of {BACKENDS} or None; got {backend!r}")


def sweep_dtype_ok(*arrays) -> bool:
    """Numba's steps take float32 or float64 arrays, all of one dtype (None entries are skipped)."""
    dtype = arrays[0].dtype
    return dtype.kind == "f" and dtype.itemsize in (4, 8) and all(a is None or a.dtype == dtype for a in arrays)


def sweeps_for(backend: str | None, *arrays):
    """The fused module if Numba does this time loop's gate arithmetic (asked for or available, and
    the arrays' dtype suits it), else None for the NumPy sweep."""
    module = resolve(backend)
    if module is not None and not sweep_dtype_ok(*arrays):
        if backend == "numba":
            raise TypeError(f"kernel 'numba' takes float32 or float64 arrays of one dtype; got "
                            f"{sorted({str(a.dtype) for a in arrays if a is not None})}")
        return None
    return module


def whole_loop(B: int, G: int, H: int) -> bool:
    """Run the whole time loop in one compiled call (fused.*_sweep) rather than one step at a time
    from Python: for one sequence at a time whose step GEMM (B, H) @ (H, G*H) is small, where BLAS
    does not pay for its call. Measured (LSTM, forward + backward per step): H = 100: 4.8 us in one
    call, 7.9 us from Python; H = 128: 7.1 vs 9.9 us; H = 256: 27 vs 22 us, so BLAS from there on."""
    return B == 1 and G * H * H <= 1 << 17


def live_mask(mask, T: int, B: int, dtype) -> np.ndarray:
    """The (T, B) mask Numba's steps take, from a (T, B, 1) mask or None (every step live)."""
    return np.ones((T, B), dtype) if mask is None else np.ascontiguousarray(mask[:, :, 0], dtype=dtype)


def state_or_zeros(d, shape, dtype) -> np.ndarray:
    """A fresh, writable (B, H) copy of a state gradient, or zeros where none came."""
    return np.zeros(shape, dtype) if d is None else np.array(d, dtype=dtype)


def outputs(hs: np.ndarray, mask) -> np.ndarray:
    """y (T, B, H) from hs (T+1, B, H): h_1 .. h_T, zero past each sequence's end. Without a mask, a
    read-only view rather than a copy: the cache keeps hs for backward, so nobody may write to it."""
    if mask is not None:
        return hs[1:] * mask
    y = hs[1:]
    y.flags.writeable = False
    return y
