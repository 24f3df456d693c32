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

A worker that dies mid-run (killed for memory, a crash in native code) costs only its run: the run
is tried again on a fresh worker, up to RETRIES more times, then the sweep ends with SweepFailed
naming it, once the other runs have finished (and been stored). On the local engine the runs that
shared the dead pool are retried one at a time, so a death is blamed on the run that caused it;
Dask's scheduler does the same (`allowed-failures`, one task per single-threaded worker). A Dask
sweep left without any worker for NO_WORKERS_GRACE seconds ends with SweepFailed instead of waiting
forever. Workers started here die with the sweep's process (Linux: PR_SET_PDEATHSIG), even
when it is killed outright.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from ..settings import cores, settings
from .registry import EXPERIMENTS, RunSpec

ENGINES = ("local", "dask", "ray")
RETRIES = 2               # a run whose worker dies is tried this many more times
NO_WORKERS_GRACE = 60.0   # seconds a Dask sweep waits with no worker before it gives up
POLL = 0.5                # seconds between checks while waiting (Ctrl-C lands at once either way)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the message says how many runs finished and were kept."""


class SweepFailed(RuntimeError):
    """Runs that killed their workers RETRIES + 1 times, or a Dask sweep with no worker left; the
    message names them and says how many runs finished and were kept."""


def describe(spec: RunSpec) -> str:
    """'temporal-order rnn T=10 seed 1': how a run is named in messages."""
    return f"{spec.experiment} {spec.cell}{'' if spec.T is None else f' T={spec.T}'} seed {spec.seed}"


def die_with_parent(expected_parent: int | None = None) -> None:
    """In a worker process: be killed when the process that started it dies (Linux), so no worker
    outlives a sweep whose process was killed outright. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if expected_parent is not None and os.getppid() != expected_parent:  # it died before prctl took effect
        os._exit(1)


def _worker_start(driver: int) -> None:
    """A local worker's first act: Ctrl-C is the driver's to handle, and the driver's death is its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(driver)


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

    if os.getpid() != driver:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: no worker tracebacks
        die_with_parent()
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
              progress: bool = False, on_result=None, label: str = "runs", work=None) -> list[dict]:
    """Run every spec on the engine; rows in the order of `specs`. on_result(index, row) as each finishes.

    work(index, spec, threads, driver) -> (index, row) is what a worker runs (default `_work`; a
    module-level function, for the workers to import). SweepFailed if runs kept killing workers."""
    work = work or _work
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
        from ..display import progress_bar

        where = f"{engine} at {address}" if address else f"{engine}, {workers} worker{'s' * (workers > 1)}"
        bar = progress_bar(total=len(specs), desc=f"{label} ({where})", unit="run", dynamic_ncols=True)
    kept = lambda: f"{sum(row is not None for row in rows)} of {len(specs)} runs had finished and are kept"
    try:
        if inline:
            for index, spec in enumerate(specs):
                finished(index, run_spec(spec, progress))
        elif engine == "local":
            failed = _run_loky(specs, workers, finished, work)
        elif engine == "dask":
            failed = _run_dask(specs, workers, address, finished, work)
        else:
            failed = _run_ray(specs, workers, address, finished)
    except KeyboardInterrupt:
        raise SweepInterrupted(f"interrupted: {kept()}; run the same command again to resume") from None
    except SweepFailed as error:
        raise SweepFailed(f"{error}; {kept()}; run the same command again to resume") from None
    finally:
        if bar is not None:
            bar.close()
    if not inline and failed:
        names = ", ".join(describe(specs[i]) for i in failed)
        times = f"{RETRIES + 1} times" if address is None else "every time it was tried"  # a remote scheduler's own count
        raise SweepFailed(f"{'run' if len(failed) == 1 else 'runs'} {names}: the worker died {times} "
                          f"(killed for memory, or a crash outside Python?); {kept()}; run the same command "
                          "again to retry")
    return rows


def _run_loky(specs, workers, finished, work) -> list[int]:
    """The local engine: loky worker processes, at most `workers` runs in flight. Returns the runs that
    killed their worker RETRIES + 1 times (each of those deaths with no other run in flight)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from joblib.executor import get_memmapping_executor  # joblib's own reusable pool, which its Parallel shares
    from joblib.externals.loky.process_executor import BrokenProcessPool

    threads = max(1, cores() // workers)
    driver = os.getpid()
    queue = list(range(len(specs)))       # runs not yet started, in order
    suspects: list[int] = []              # in flight when a pool broke: each next runs alone, so a death is its own
    deaths = [0] * len(specs)
    failed: list[int] = []
    in_flight: dict = {}                  # future -> run index
    executor = None
    try:
        while queue or suspects or in_flight:
            alone = bool(suspects)
            while (suspects or queue) and len(in_flight) < (1 if alone else workers) and not (alone and in_flight):
                index = suspects.pop(0) if alone else queue.pop(0)
                if executor is None:
                    executor = get_memmapping_executor(workers, initializer=_worker_start, initargs=(driver,))
                in_flight[executor.submit(work, index, specs[index], threads, driver)] = index
            done, _ = wait(list(in_flight), timeout=POLL, return_when=FIRST_COMPLETED)
            broken = []
            for future in done:
                index = in_flight.pop(future)
                try:
                    finished(*future.result())
                except BrokenProcessPool:
                    broken.append(index)
            if broken:  # the pool is gone: every run in it comes back
                broken += list(in_flight.values())
                in_flight.clear()
                executor = None  # get_memmapping_executor makes a fresh one
                if len(broken) == 1:  # it ran alone: the death was its own
                    deaths[broken[0]] += 1
                    target = failed if deaths[broken[0]] > RETRIES else suspects
                    target.append(broken[0])
                else:
                    suspects.extend(sorted(broken))
        return failed
    except BaseException:
        if in_flight and executor is not None:  # Ctrl-C or an error in a run: stop the rest now
            for future in in_flight:
                future.cancel()
            executor.shutdown(wait=False, kill_workers=True)
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
def _ctrl_c_held():
    """While a LocalCluster starts: SIGINT blocked in this thread, so the cluster's loop thread, and the
    worker processes it starts (now and on any restart), inherit a mask that never delivers it (Ctrl-C
    is the driver's alone), while a Ctrl-C meanwhile stays pending here and lands once they are up.
    (Ignoring it instead would drop a Ctrl-C pressed during the start.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: ignored while the workers start
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_dask(specs, workers, address, finished, work) -> list[int]:
    try:
        import dask
        from dask.distributed import Client, LocalCluster, wait
        from distributed import KilledWorker
    except ImportError:
        raise ImportError("--engine dask needs dask.distributed: pip install 'rnnlab[dask]'") from None

    driver = os.getpid()
    failed: list[int] = []
    # A task is blamed for the deaths of workers it was running on (one task per single-threaded
    # worker), and given up after RETRIES + 1 of them.
    settings = {"distributed.scheduler.allowed-failures": RETRIES, "distributed.scheduler.worker-saturation": 1.0}
    cluster = client = None
    futures = {}
    with _quiet("distributed", "tornado", "asyncio"), dask.config.set(settings):
        try:
            if address is None:  # this machine: one single-threaded worker process per job
                with _ctrl_c_held():
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.CRITICAL)
                client = Client(cluster)  # its nannies live in this process; each worker dies with it (_work)
                threads = max(1, cores() // workers)
            else:
                try:
                    client = Client(address, timeout="10s")
                except OSError as error:
                    raise OSError(f"cannot reach the Dask scheduler at {address}: {error}") from None
                threads = None  # each worker takes its machine's cores / its threads
            futures = {client.submit(work, i, spec, threads, driver, pure=False,
                                     key=f"rnnlab-{spec.key()}-{i}"): i for i, spec in enumerate(specs)}
            pending, alone_since = set(futures), None
            while pending:  # polled, not blocked on: Ctrl-C lands at once, and the workers are watched
                try:
                    done, pending = wait(pending, timeout=POLL, return_when="FIRST_COMPLETED")
                except TimeoutError:  # none finished in POLL seconds
                    done = ()
                for future in done:
                    try:
                        finished(*future.result())
                    except KilledWorker:
                        failed.append(futures[future])
                if pending and not client.scheduler_info(n_workers=1).get("workers"):
                    alone_since = alone_since or time.monotonic()
                    if time.monotonic() - alone_since > NO_WORKERS_GRACE:
                        raise SweepFailed(f"no Dask worker left for {NO_WORKERS_GRACE:g} s ({len(pending)} runs "
                                          "unfinished; were the workers killed for memory?)")
                else:
                    alone_since = None
            return sorted(failed)
        except BaseException:
            if client is not None and futures:
                client.cancel(list(futures))
            raise
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


def _run_ray(specs, workers, address, finished) -> list[int]:
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
        return []
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
