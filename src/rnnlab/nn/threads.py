"""How many BLAS threads each GEMM of the time loop gets: the driver's thread policy.

    with threads.time_loop(B, H, G):      # around the per-step recurrence of one sequence
        for t in range(T): h @ W_hh^T ...  # (B, H) x (H, G*H): threads by its size

A GEMM gets one thread per THREAD_FLOPS of work, no more than the cores other programs leave free
(the 1-minute load average), at most `allowed()`. On a quiet machine a second thread pays from about
a million flops on: the per-step (32, 128) x (128, 512) took 75 us on one thread and 61 us on two,
(64, 256) x (256, 1024) 433 and 275 us (benchmarks/thread_policy.py, 2-core VM). On a machine where
other programs run, a GEMM split over more threads than there are free cores waits for descheduled
workers: (32, 128) x (128, 512) took 16 ms on two threads on this project's 2-core machine under a
load of 6, and the output layer's (6400, 256) x (256, 65) a second. So the load average decides
first: where other programs keep the other cores running, every GEMM runs on one thread. It is read
from the threads running at an instant (Linux's /proc), the lower median of the last seconds'
readings, not from the 1-minute load average, which reacts in a minute and counts rnnlab's own
threads and programs that ran only in turns with it.

allowed(): `set_threads(n)` (the CLI's --threads) if called, else the user's OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS / MKL_NUM_THREADS, else the cores this process may run on. The user's number is a
ceiling the policy never exceeds; the policy only ever uses fewer threads.
"""
from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections import deque
from contextlib import contextmanager

THREAD_FLOPS = 1 << 20  # ~1 MFLOP, ~20 us of one core: below it a second thread does not pay (measured on 2 cores)
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_user_threads: int | None = None  # set_threads(n)
_controller = None  # threadpoolctl's view of the BLAS libraries loaded, made on first use
_free = (-1e9, 1)  # (when read, free cores): free_cores()' last answer
_ceiling = (-1e9, 1)  # (when read, the environment's or the affinity's ceiling): allowed()'s last reading
_readings: deque = deque(maxlen=5)  # busy_elsewhere()' last instant readings (when, value), one a second at most
READINGS_WINDOW = 5.0  # seconds: readings older than this no longer count
_own = None  # (wall time, CPU time, cores used): own_cores()' last reading
LOAD_WINDOW = 60.0  # seconds: the 1-minute load average is an exponential mean with this time constant


def set_threads(n: int | None) -> None:
    """Use at most n BLAS threads (None: back to the environment's or the core count), everywhere:
    also the GEMMs outside any time loop (the output layer, the optimizer's) keep to n."""
    global _user_threads
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"threads must be a positive integer; got {n!r}")
    _user_threads = n
    _set(allowed())  # process-wide until changed again


@contextmanager
def pinned(n: int):
    """set_threads(n) inside the block, the ceiling before it after: a sweep worker's share of the
    cores. threadpoolctl alone would hold BLAS at n, but the policy reads its ceiling from here, so
    the all-steps GEMMs would ask for more again."""
    previous = _user_threads
    set_threads(n)
    try:
        yield
    finally:
        set_threads(previous)


def allowed() -> int:
    """The most BLAS threads rnnlab may use (see the module docstring). The environment and the CPU
    affinity are read at most once a second: every GEMM asks, and a read took ~27 us, a sixth of a
    (1, 25, 100) LSTM forward's Python time."""
    global _ceiling
    if _user_threads is not None:
        return _user_threads
    now = time.monotonic()
    if now - _ceiling[0] > 1.0:
        _ceiling = (now, _environment_ceiling())
    return _ceiling[1]


def _environment_ceiling() -> int:
    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cores()


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores the rest of the machine leaves free: those this process may use, less the threads other
    programs keep running (busy_elsewhere()). Read at most once a second."""
    global _free
    now = time.monotonic()
    if now - _free[0] > 1.0:
        usable = cores()
        _free = (now, max(1, min(usable, int(usable - busy_elsewhere() + 0.5))))
    return _free[1]


def busy_elsewhere() -> float:
    """Threads of other programs running or ready to run, over the last few seconds.

    Where Linux's /proc says so: the threads running system-wide at an instant less this process's
    own, the lower median of the readings of the last five seconds (a second or more apart), so that
    a neighbour is seen within three seconds and a moment's spike is not, while a reading taken
    before rnnlab sat idle (e.g. as another program started) is soon forgotten. Elsewhere: the
    1-minute load average less what this process kept busy (own_cores()), which reacts in a minute,
    not seconds, and counts as busy a program that ran only in turns with rnnlab (as the
    benchmark's two workers do).
    """
    value = _running_elsewhere()
    if value is None:
        try:
            return max(0.0, os.getloadavg()[0] - own_cores())
        except (AttributeError, OSError):  # no load average either: assume the machine is ours
            return 0.0
    now = time.monotonic()
    _readings.append((now, value))
    # the lower median: with two readings that disagree (one taken as another program was starting up,
    # one now) the cores count as free; a neighbour counts once most readings see it
    return float(statistics.median_low(v for when, v in _readings if now - when <= READINGS_WINDOW))


def _running_elsewhere() -> int | None:
    """Threads of other programs running or runnable now (Linux), None where /proc cannot say."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])  # "0.52 0.58 0.59 3/412 12345"
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # the thread ended meanwhile
                continue
            own += stat[stat.rindex(b")") + 2:][:1] == b"R"  # the state follows the name in parentheses
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def own_cores() -> float:
    """The cores this process kept busy, averaged as the kernel averages the load (an exponential mean
    over a minute), so that its own threads do not count as other programs' load: counted as one
    thread, an idle 2-core machine read as busy after a minute of rnnlab on two threads (load 1.5),
    and the policy halved its own threads. One thread is assumed until there is a history."""
    global _own
    wall, cpu = time.monotonic(), time.process_time()
    if _own is None:
        _own = (wall, cpu, 1.0)
    else:
        elapsed = wall - _own[0]
        if elapsed > 0:
            weight = math.exp(-elapsed / LOAD_WINDOW)
            _own = (wall, cpu, weight * _own[2] + (1 - weight) * (cpu - _own[1]) / elapsed)
    return _own[2]


def for_gemm(m: int, k: int, n: int) -> int:
    """Threads for one (m, k) x (k, n) GEMM: one per THREAD_FLOPS of work, no more than the cores
    other programs leave free, within allowed()."""
    return max(1, min(allowed(), (2 * m * k * n) // THREAD_FLOPS, free_cores()))


def gemm(m: int, k: int, n: int):
    """The limit for one GEMM outside a time loop (the all-steps GEMMs, the output layer's)."""
    return limit(for_gemm(m, k, n))


def _blas():
    """threadpoolctl's controllers of the BLAS libraries loaded (made on first use: numpy's is)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@functools.cache
def blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's among them) when first asked."""
    return tuple(lib for lib in _blas().lib_controllers if lib.user_api == "blas")


def _set(n: int) -> None:
    for lib in blas_libraries():
        lib.set_num_threads(n)  # one ctypes call: ~5 us, against ~100 us for threadpoolctl's limit()


@contextmanager
def limit(n: int):
    """BLAS runs on at most n threads inside the block; the setting in force before comes back after
    (read from the library each time: someone else, e.g. threadpoolctl in the caller, may have set it)."""
    libs = blas_libraries()
    saved = min((lib.get_num_threads() for lib in libs), default=n)
    if n == saved:
        yield
        return
    _set(n)
    try:
        yield
    finally:
        _set(saved)


def time_loop(B: int, H: int, G: int):
    """The limit for a time loop whose step GEMM is h (B, H) x W_hh^T (H, G*H)."""
    return limit(for_gemm(B, H, G * H))


def describe() -> str:
    """One line for logs: the ceiling and where it comes from."""
    if _user_threads is not None:
        source = "--threads"
    else:
        source = next((var for var in ENV_VARS if os.environ.get(var, "").strip().isdigit()), "cores available")
    return f"BLAS threads <= {allowed()} ({source}), one per MFLOP of a GEMM, {free_cores()} core(s) free of other programs"


def speed_line() -> str:
    """What a training run's log says about its speed setup: the time loop's code and the threads."""
    from .backend import describe as time_loop_code

    return f"{time_loop_code()}, {describe()}"
