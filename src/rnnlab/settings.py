"""rnnlab's settings: the one object that holds what changes how rnnlab computes, `rnnlab.settings`.

    rnnlab.settings.threads = 2     # at most 2 BLAS threads (the CLI's --threads); None: the environment's
    rnnlab.settings.fast            # the compiled path (rnnlab.fast) where it loaded, else None
    rnnlab.settings.fast_missing    # why there is none, in words
    rnnlab.settings.cells           # the cells known by name (rnnlab.register_cell, RNNLAB_CELLS)
    print(rnnlab.settings)          # all of it, and which code runs the time loop

Which time loop a layer runs is its `kernel` argument ("fast", "numba", "numpy", "reference");
`loop_for` below is the one place that turns it into the loop itself: rnnlab.fast's compiled loop
where it is loaded and takes the arrays, else nn/driver.py's NumPy loop. rnnlab.fast registers itself
here when `import rnnlab` finds Numba (rnnlab/__init__.py); nothing of it is imported otherwise.

Caches that do not change what a call computes (the compiled code, the thread policy's readings of
the machine's load) belong to the fast path: `settings.fast.compiled`, `settings.fast.policy`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

KERNELS = ("fast", "numba", "numpy", "reference")
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def environment_threads() -> int:
    """The user's OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS, else the cores available."""
    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cores()


class Settings:
    """See the module docstring. One instance, `rnnlab.settings`."""

    def __init__(self):
        self._threads: int | None = None  # set by the user (--threads), else None
        self.fast = None  # rnnlab.fast.FastPath, registered by rnnlab.fast itself
        self.fast_missing = "numba is not installed (pip install numba)"
        self._cells = None  # the cell registry, made on first use

    @property
    def cells(self):
        """The cells known by name (nn/cells/definition.py's CellRegistry): built-in, registered by
        rnnlab.register_cell, or loaded from RNNLAB_CELLS files."""
        if self._cells is None:
            from .nn.cells.definition import CellRegistry

            self._cells = CellRegistry()
        return self._cells

    @property
    def threads(self) -> int | None:
        return self._threads

    @threads.setter
    def threads(self, n: int | None) -> None:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"threads must be a positive integer; got {n!r}")
        self._threads = n
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self.max_threads(), user_api="blas")  # process-wide until changed again

    def max_threads(self) -> int:
        """The most BLAS threads rnnlab may use: `threads` if set, else the environment's, else the cores."""
        return self._threads if self._threads is not None else environment_threads()

    @contextmanager
    def pinned(self, n: int):
        """threads = n inside the block, the setting before it after (a sweep worker's share of the cores)."""
        previous = self._threads
        self.threads = n
        try:
            yield
        finally:
            self.threads = previous

    def numba_available(self) -> bool:
        """Whether the compiled loops can run here (rnnlab.fast loaded, and Numba imports)."""
        return self.fast is not None and self.fast.fused() is not None

    def require_numba(self) -> None:
        """One clear error where kernel "numba" cannot run here."""
        if not self.numba_available():
            raise RuntimeError(f"kernel 'numba' is unavailable: {self.fast_missing}")

    def loop_for(self, cell, kernel: str, *arrays):
        """The compiled time loop (an object with forward and backward, rnnlab.fast) for this cell, kernel
        and these arrays' dtype, or None where nn/driver.py's NumPy loop runs: kernel "numpy", no fast
        path, or a dtype the compiled loops do not take. kernel "numba" without it is an error."""
        if kernel not in KERNELS[:3]:
            raise ValueError(f"kernel must be one of {KERNELS[:3]} here; got {kernel!r}")
        if kernel == "numpy":
            return None
        if self.fast is None:
            if kernel == "numba":
                raise RuntimeError(f"kernel 'numba' is unavailable: {self.fast_missing}")
            return None
        return self.fast.loop_for(cell, kernel, *arrays)

    def matmul(self, a, b):
        """a (M, K) @ b (K, N) for the layers around the recurrence (Linear): on the fast path's thread
        policy where it is loaded (so that BLAS's and rnnlab's thread pools never take turns), else NumPy's."""
        if self.fast is not None:
            return self.fast.matmul(a, b)
        return a @ b

    def describe(self) -> str:
        """One line for a run's log: which code runs the time loop, and the threads."""
        if self.fast is not None:
            return self.fast.describe()
        return f"time loop in NumPy ({self.fast_missing}), BLAS threads <= {self.max_threads()}"

    def __repr__(self) -> str:
        return f"rnnlab.settings(threads={self._threads}): {self.describe()}"


settings = Settings()
