"""Where the runs of a sweep execute: in this process, or spread over worker processes."""
from __future__ import annotations

import os
import time

from .registry import EXPERIMENTS, RunSpec


def run_spec(spec: RunSpec, progress: bool = False) -> dict:
    """Train and evaluate one run; the row carries its metric's name and its wall time."""
    start = time.perf_counter()
    experiment = EXPERIMENTS[spec.experiment]
    row = {**experiment.runner(spec, progress), "metric": experiment.metric}
    row["seconds"] = time.perf_counter() - start
    return row


def _single_threaded_blas():
    """Worker processes each get one BLAS thread: a sweep is parallel across runs, and BLAS
    threads fighting over the same cores slow everything down (set before numpy loads)."""
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for key, value in saved.items():
        if value is None:
            os.environ[key] = "1"
    return saved


def run_all(specs: list[RunSpec], jobs: int, progress: bool) -> list[dict]:
    if jobs == 1 or len(specs) == 1:
        return [run_spec(spec, progress) for spec in specs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(jobs, len(specs))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), desc=f"{specs[0].experiment}: runs on {workers} processes", unit="run",
                   dynamic_ncols=True)
    rows: list[dict | None] = [None] * len(specs)
    saved = _single_threaded_blas()  # kept while workers may start: they read it when they import numpy
    try:  # spawn: fresh interpreters (fork would copy the parent's BLAS threads and locks)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_spec, spec): i for i, spec in enumerate(specs)}
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
                if bar is not None:
                    bar.update(1)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
        if bar is not None:
            bar.close()
    return rows
