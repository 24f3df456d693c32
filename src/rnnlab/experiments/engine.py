"""Where the runs of a sweep execute: this process, joblib (loky) workers, Dask or Ray.

    engine="local", jobs=1     runs one after the other in this process (a progress bar per run)
    engine="local", jobs=N     joblib's loky processes on this machine
    engine="dask"              dask.distributed: a LocalCluster of `jobs` processes, or with
                               address="tcp://host:8786" the workers of a running scheduler
    engine="ray"               Ray (optional: pip install ray): a local Ray, or address="auto" / "ray://..."

Runs are independent and seed their own generators, so the numbers do not depend on the engine.
Each worker pins its BLAS threads (threadpoolctl) to its share of the cores: a sweep is parallel
across runs, and BLAS threads fighting over the same cores slow every run down. Results come
back as runs finish; `on_result(index, row)` sees each at once (the sweep stores it), so Ctrl-C
loses no finished run: it raises SweepInterrupted after the workers are stopped.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager

from ..settings import cores, settings
from .registry import EXPERIMENTS, RunSpec

ENGINES = ("local", "dask", "ray")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the message says how many runs finished and were kept."""


def run_spec(spec: RunSpec, progress: bool = False) -> dict:
    """Train and evaluate one run; the row carries its metric's name, success and wall time."""
    start = time.perf_counter()
    experiment = EXPERIMENTS[spec.experiment]
    row = {**experiment.runner(spec, progress), "metric": experiment.metric}
    row["success"] = experiment.succeeded(row)
    row["seconds"] = time.perf_counter() - start
    return row


def _work(index: int, spec: RunSpec, threads: int | None, driver: int) -> tuple[int, dict]:
    """One run in a worker, its BLAS pinned to `threads` (None: this machine's cores / the worker's
    threads, within the worker's own OPENBLAS_NUM_THREADS if it was started with one)."""
    from threadpoolctl import threadpool_limits

    if os.getpid() != driver and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: no worker tracebacks
    if threads is None:
        threads = max(1, min(settings.max_threads(), cores() // _worker_threads()))
    with threadpool_limits(limits=threads), settings.pinned(threads):  # every pool, and the policy's ceiling
        return index, run_spec(spec)


def _worker_threads() -> int:
    """Tasks this Dask worker runs at once (1 elsewhere)."""
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def check_engine(engine: str, jobs: int, address: str | None) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if address is not None and engine == "local":
        raise ValueError("--address joins a Dask scheduler or a Ray cluster: give --engine dask or --engine ray")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")


def run_specs(specs: list[RunSpec], engine: str = "local", jobs: int = 1, address: str | None = None,
              progress: bool = False, on_result=None, label: str = "runs") -> list[dict]:
    """Run every spec on the engine; rows in the order of `specs`. on_result(index, row) as each finishes."""
    check_engine(engine, jobs, address)
    rows: list[dict | None] = [None] * len(specs)
    if not specs:
        return []

    def finished(index, row):
        rows[index] = row
        if on_result is not None:
            on_result(index, row)
        if bar is not None:
            bar.update(1)

    inline = engine == "local" and (jobs == 1 or len(specs) == 1)
    workers = min(jobs, len(specs))
    bar = None
    if progress and not inline:
        from tqdm.auto import tqdm

        where = f"{engine} at {address}" if address else f"{engine}, {workers} worker{'s' * (workers > 1)}"
        bar = tqdm(total=len(specs), desc=f"{label} ({where})", unit="run", dynamic_ncols=True)
    try:
        if inline:
            for index, spec in enumerate(specs):
                finished(index, run_spec(spec, progress))
        elif engine == "local":
            _run_joblib(specs, workers, finished)
        elif engine == "dask":
            _run_dask(specs, workers, address, finished)
        else:
            _run_ray(specs, workers, address, finished)
    except KeyboardInterrupt:
        done = sum(row is not None for row in rows)
        raise SweepInterrupted(f"interrupted: {done} of {len(specs)} runs had finished and are kept; "
                               "run the same command again to resume") from None
    finally:
        if bar is not None:
            bar.close()
    return rows


def _run_joblib(specs, workers, finished) -> None:
    from joblib import Parallel, delayed

    threads = max(1, cores() // workers)
    driver = os.getpid()
    results = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")(
        delayed(_work)(i, spec, threads, driver) for i, spec in enumerate(specs))
    try:
        for index, row in results:
            finished(index, row)
    except KeyboardInterrupt:
        results.close()
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)
        raise


@contextmanager
def _quiet(*names):
    """Dask logs the cluster's start and stop, and warnings when it is torn down mid-task: not ours to show."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while worker processes start (an ignored signal stays ignored in a child)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_dask(specs, workers, address, finished) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("--engine dask needs dask.distributed: pip install 'rnnlab[dask]'") from None

    driver = os.getpid()
    with _quiet("distributed", "tornado", "asyncio"):
        if address is None:  # this machine: one single-threaded worker process per job
            with _sigint_ignored():  # the worker processes inherit it: Ctrl-C is the driver's alone
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
            threads = max(1, cores() // workers)
        else:
            try:
                cluster, client = None, Client(address, timeout="10s")
            except OSError as error:
                raise OSError(f"cannot reach the Dask scheduler at {address}: {error}") from None
            threads = None  # each worker takes its machine's cores / its threads
        try:
            futures = [client.submit(_work, i, spec, threads, driver, pure=False,
                                     key=f"rnnlab-{spec.key()}-{i}") for i, spec in enumerate(specs)]
            for future in as_completed(futures):
                finished(*future.result())
        except KeyboardInterrupt:
            client.cancel(futures)
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _run_ray(specs, workers, address, finished) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray, an optional extra: pip install 'rnnlab[ray]' "
                          "(or use --engine dask)") from None
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    threads = max(1, cores() // workers) if address is None else None
    work = ray.remote(num_cpus=1)(_work)
    pending = [work.remote(i, spec, threads, os.getpid()) for i, spec in enumerate(specs)]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            finished(*ray.get(ready[0]))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
