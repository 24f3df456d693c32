"""rnnlab.fast: everything that exists only for speed, behind one object, `FastPath`.

The lecture's engine (rnnlab.nn) runs on NumPy alone and imports nothing from here. Where Numba is
installed, `import rnnlab` imports this package, which registers one FastPath as
`rnnlab.settings.fast`; the driver then asks `settings.loop_for(cell, kernel, *arrays)` for the time
loop and gets this package's compiled one, or None for its own NumPy loop. Nothing here imports
Numba until a compiled loop is first asked for, so `import rnnlab` stays quick.

    loop.py            the compiled time loop's forward and backward (what the driver calls)
    fused.py           the loops' source, generated per cell and compiled by Numba with the cell inlined
    packed.py          the recurrent GEMM on W_hh^T packed once per sequence (an LLVM-IR micro-kernel)
    threads.py         the thread policy: how many threads each GEMM and time loop gets, and whose
    blas.py            NumPy's own BLAS by name: the transposed copy (omatcopy)
    sample_compiled.py the char model's whole per-character step, compiled (sample.generate)
    optim_compiled.py  Adam's update in one compiled pass (optim.Adam)

Which compiled loop runs, stated once (loop.py): with gradients, the whole loop in one compiled call
(its per-step GEMM by NumPy's BLAS called from Numba, or on W_hh^T packed once where that BLAS
cannot be called, or in Numba for one small sequence), saving the activations backward needs.
Under no_grad() nothing is saved, and where the step has a GEMM the hidden units are shared among
threads, each running the whole loop for its own units (threads.step_parts). BENCHMARKS.md has what
each of these buys.
"""
from __future__ import annotations

import importlib

from ..settings import settings
from .optim_compiled import compiled_adam  # NumPy alone until first called

__all__ = ["FastPath"]


class FastPath:
    """The fast path as rnnlab.settings holds it, with its state in one place:

    compiled   {(what, cell definition[, dtype]): compiled code}: the loops of each cell and dtype
               (fused.loops_for) and the CompiledLoop around them, its sampler, Adam's update. Made
               once per process; Numba's disk cache serves later runs.
    policy     the thread policy's readings of the machine and its helper threads (threads.Policy).
    missing    why Numba cannot run here, once an import failed (then every loop is NumPy's).
    """

    def __init__(self):
        self.compiled: dict = {}
        self.missing: str | None = None
        self._fused = None  # the fused module once imported: every layer call and Adam step asks for it
        from .threads import Policy

        self.policy = Policy()

    def fused(self):
        """The fused module (imports numba on first call), or None where numba fails to import."""
        if self._fused is None and self.missing is None:
            try:
                self._fused = importlib.import_module(f"{__name__}.fused")
            except ImportError as error:  # a broken numba install: run on NumPy
                self.missing = f"numba failed to import ({error})"
                settings.fast_missing = self.missing
        return self._fused

    def loop_for(self, cell, kernel: str, *arrays):
        """The compiled loop (loop.CompiledLoop) for this cell and dtype, or None for the NumPy loop."""
        if self.fused() is None:
            if kernel == "numba":
                raise RuntimeError(f"kernel 'numba' is unavailable: {self.missing}")
            return None
        if not dtype_ok(*arrays):
            if kernel == "numba":
                raise TypeError(f"kernel 'numba' takes float32 or float64 arrays of one dtype; got "
                                f"{sorted({str(a.dtype) for a in arrays if a is not None})}")
            return None
        key = ("loop", cell, arrays[0].dtype)
        loop = self.compiled.get(key)  # made once: a layer asks twice a call (its forward and backward)
        if loop is None:
            from .loop import CompiledLoop

            loop = self.compiled[key] = CompiledLoop(cell, arrays[0].dtype)
        return loop

    def adam(self, *arrays):
        """Adam's update compiled (optim_compiled.py) where it takes these arrays, else None."""
        if self.fused() is None or not dtype_ok(*arrays):
            return None
        return compiled_adam(self)

    def sampler(self, model, state):
        """A compiled sampler for a char model from this state (sample_compiled.py), or None."""
        if self.fused() is None:
            return None
        from .sample_compiled import compiled_sampler

        return compiled_sampler(self, model, state)

    def matmul(self, a, b):
        """a @ b on the thread policy's threads (threads.matmul)."""
        from . import threads

        return threads.matmul(a, b)

    def describe(self) -> str:
        """One line for a run's log: the time loop's code and the threads."""
        from . import threads

        if self.fused() is None:
            return f"time loop in NumPy ({self.missing}), {threads.describe()}"
        import numba

        return f"time loop compiled (Numba {numba.__version__}), {threads.describe()}"


def dtype_ok(*arrays) -> bool:
    """Numba's loops take float32 or float64 arrays, all of one dtype (None entries are skipped)."""
    dtype = arrays[0].dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        return False
    for a in arrays:  # a loop, not all(genexpr): every layer call asks
        if a is not None and a.dtype != dtype:
            return False
    return True


settings.fast = FastPath()
