"""BLAS thread limits for explore's small GEMMs."""
from __future__ import annotations

import contextlib


def one_blas_thread():
    """BLAS on one thread inside the block: explore's GEMMs are small (one time step of a few sequences),
    and a second BLAS thread fighting a busy machine for its cores slows them down several times."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - declared as a dependency; keep working without it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
