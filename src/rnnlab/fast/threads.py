"""How many threads each GEMM and time loop gets, and whose: the driver's thread policy.

    with threads.time_loop(B, H, G, shared) as parts:  # around the per-step recurrence of one sequence
        for t in range(T): h @ W_hh^T ...  # (B, H) x (H, G*H): threads by its size
    threads.matmul(a, b)                   # an all-steps GEMM (input projection, output layer)

Under no_grad() the threads are rnnlab's own helpers: a time loop's hidden units shared among them
(`parts`, each part a whole loop over its units, driver.py), a GEMM's rows; BLAS runs on one thread
in each. With gradients they are BLAS's threads (see "one thread pool at a time" below).

A GEMM gets one thread per THREAD_FLOPS of work, no more than the cores other programs leave free,
at most `allowed()`: on a machine where other programs run, a GEMM split over more threads than there
are free cores waits for descheduled workers, so the load decides first. The load is read from the
threads running at an instant (Linux's /proc), the lower median of the last seconds' readings, not
from the 1-minute load average, which reacts in a minute and counts rnnlab's own threads. What each
threshold buys: BENCHMARKS.md and benchmarks/thread_policy.py.

allowed(): rnnlab.settings.threads (the CLI's --threads) if set, else the user's OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS / MKL_NUM_THREADS, else the cores this process may run on. The user's number is a
ceiling the policy never exceeds; the policy only ever uses fewer threads.

What the policy remembers between calls (its readings, its helper threads) is one object, Policy,
held by the fast path: rnnlab.settings.fast.policy.
"""
from __future__ import annotations

import functools
import math
import os
import statistics
import threading
import time
from collections import deque

import numpy as np

from ..nn.module import is_grad_enabled
from ..settings import ENV_VARS, cores, environment_threads, settings

THREAD_FLOPS = 1 << 20  # ~1 MFLOP: below it a second thread does not pay (benchmarks/thread_policy.py)
READINGS_WINDOW = 5.0  # seconds: readings older than this no longer count
LOAD_WINDOW = 60.0  # seconds: the 1-minute load average is an exponential mean with this time constant


class Policy:
    """What the thread policy remembers between calls, in one place (rnnlab.settings.fast.policy)."""

    def __init__(self):
        self.free = (-1e9, 1)  # (when read, free cores): free_cores()' last answer
        self.ceiling = (-1e9, 1)  # (when read, the environment's ceiling): allowed()'s last reading
        self.readings: deque = deque(maxlen=5)  # busy_elsewhere()' last instant readings (when, value)
        self.own = None  # (wall time, CPU time, cores used): own_cores()' last reading
        self.helpers: list = []  # rnnlab's helper threads, which run the parts after the first
        self.running = threading.Lock()  # held by the call whose parts the helpers run


def policy() -> Policy:
    return settings.fast.policy


def allowed() -> int:
    """The most BLAS threads rnnlab may use (see the module docstring). The environment is read at
    most once a second: every GEMM asks, and reading it costs a fair share of a small forward."""
    if settings.threads is not None:
        return settings.threads
    state, now = policy(), time.monotonic()
    if now - state.ceiling[0] > 1.0:
        state.ceiling = (now, environment_threads())
    return state.ceiling[1]


def free_cores() -> int:
    """Cores the rest of the machine leaves free: those this process may use, less the threads other
    programs keep running (busy_elsewhere()). Read at most once a second."""
    state, now = policy(), time.monotonic()
    if now - state.free[0] > 1.0:
        usable = cores()
        state.free = (now, max(1, min(usable, int(usable - busy_elsewhere() + 0.5))))
    return state.free[1]


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
    now, readings = time.monotonic(), policy().readings
    readings.append((now, value))
    # the lower median: with two readings that disagree (one taken as another program was starting up,
    # one now) the cores count as free; a neighbour counts once most readings see it
    return float(statistics.median_low(v for when, v in readings if now - when <= READINGS_WINDOW))


RECHECK = 0.001  # seconds between the two counts of one reading


def _running_elsewhere() -> int | None:
    """Threads of other programs running or runnable now (Linux), None where /proc cannot say. A count
    above zero is taken again a millisecond later and the smaller one kept: a program that keeps a
    core busy runs at both, one caught finishing a system call does not (the benchmark's coordinator,
    just after it handed over a block of calls, was read as a neighbour at a third of the readings)."""
    first = _instant_elsewhere()
    if not first:
        return first
    time.sleep(RECHECK)
    second = _instant_elsewhere()
    return first if second is None else min(first, second)


def _instant_elsewhere() -> int | None:
    """One count of _running_elsewhere(). This process's own running threads are counted just before
    and just after the system-wide count, and each counts as its own if it ran at either moment: one
    that went to sleep in between (a helper finishing its part, a BLAS worker) would otherwise count
    as another program's."""
    try:
        before = _own_running()
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])  # "0.52 0.58 0.59 3/412 12345"
        own = len(before | _own_running())
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def _own_running() -> set:
    """The ids of this process's threads running or runnable now (Linux's /proc)."""
    running = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        if stat[stat.rindex(b")") + 2:][:1] == b"R":  # the state follows the name in parentheses
            running.add(task)
    return running


def own_cores() -> float:
    """The cores this process kept busy, averaged as the kernel averages the load (an exponential mean
    over a minute), so that its own threads do not count as other programs' load: counted as one
    thread, an idle 2-core machine read as busy after a minute of rnnlab on two threads (load 1.5),
    and the policy halved its own threads. One thread is assumed until there is a history."""
    state = policy()
    wall, cpu = time.monotonic(), time.process_time()
    if state.own is None:
        state.own = (wall, cpu, 1.0)
    else:
        elapsed = wall - state.own[0]
        if elapsed > 0:
            weight = math.exp(-elapsed / LOAD_WINDOW)
            state.own = (wall, cpu, weight * state.own[2] + (1 - weight) * (cpu - state.own[1]) / elapsed)
    return state.own[2]


def for_gemm(m: int, k: int, n: int) -> int:
    """Threads for one (m, k) x (k, n) GEMM: one per THREAD_FLOPS of work, no more than the cores
    other programs leave free, within allowed()."""
    return max(1, min(allowed(), (2 * m * k * n) // THREAD_FLOPS, free_cores()))


def gemm(m: int, k: int, n: int):
    """The limit for one GEMM outside a time loop (the all-steps GEMMs, the output layer's)."""
    return limit(for_gemm(m, k, n))


@functools.cache
def blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's among them) when first asked
    (a cache of what the process loaded, which does not change what a call computes)."""
    from threadpoolctl import ThreadpoolController

    return tuple(lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas")


def _set(n: int) -> None:
    for lib in blas_libraries():
        lib.set_num_threads(n)  # one ctypes call, far cheaper than threadpoolctl's limit()


class limit:
    """with limit(n): BLAS runs on at most n threads inside the block; the setting in force before comes
    back after (read from the library each time: someone else, e.g. threadpoolctl in the caller, may
    have set it). A class, not a generator: every GEMM enters one, and a generator costs more."""

    __slots__ = ("n", "saved")

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.saved = min((lib.get_num_threads() for lib in blas_libraries()), default=self.n)
        if self.saved != self.n:
            _set(self.n)
        return self

    def __exit__(self, *exc) -> None:
        if self.saved != self.n:
            _set(self.saved)


# --- one thread pool at a time --------------------------------------------------------------------
# Two pools can serve a GEMM or a time loop on several cores: BLAS's own workers, and rnnlab's helper
# threads (run_parts: the time loop's hidden units shared among threads, a GEMM's rows). OpenBLAS's
# workers spin for a while after each call before they sleep, and rnnlab's threads started meanwhile
# find a core taken. So the two never take turns call by call: under no_grad() (inference,
# generation, evaluation) rnnlab's helpers do the work and BLAS runs on one thread; with gradients
# BLAS's threads do, for the backward's per-step GEMMs run there.
def helpers_for(n: int) -> int:
    """n threads of rnnlab's own under no_grad(), else 1 (BLAS's threads do the work). POSIX only: a
    part waiting for a partner that lost its core gives its own away (sched_yield, fused.meet)."""
    return n if n > 1 and os.name == "posix" and not is_grad_enabled() else 1


MIN_PART_UNITS = 16  # hidden units per thread at least: two AVX2 vectors of float32


def step_parts(B: int, H: int, G: int) -> int:
    """How many threads share a time loop's hidden units, each running the whole loop for its own units
    with a one-thread GEMM (loop.py): as many as the per-step GEMM (B, H) x (H, G*H) would get, where
    rnnlab's helpers may run (helpers_for). A per-step GEMM of few rows gains little from a second BLAS
    thread, while the gate arithmetic runs on one; shared by units, both are halved."""
    return helpers_for(max(1, min(for_gemm(B, H, G * H), H // MIN_PART_UNITS)))


class time_loop(limit):
    """with time_loop(B, H, G, shared) as parts: around a time loop whose step GEMM is h (B, H) x W_hh^T
    (H, G*H): `parts`, how many threads share its units (step_parts, with `shared`: the loop can run in
    parts), BLAS on one thread each; else 1, BLAS on the threads the GEMM gets."""

    __slots__ = ("parts",)

    def __init__(self, B: int, H: int, G: int, shared: bool = False):
        self.parts = step_parts(B, H, G) if shared else 1
        super().__init__(1 if self.parts > 1 else for_gemm(B, H, G * H))

    def __enter__(self) -> int:
        super().__enter__()
        return self.parts


# OpenBLAS runs a GEMM of fewer than 65536 * 4 multiply-adds on one thread whatever its setting
# (interface/gemm.c: SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD): setting its threads around one
# (two calls into the library) costs more than a batch-1 output layer's GEMM itself.
OPENBLAS_ALONE = 65536 * 4


@functools.cache
def openblas_only() -> bool:
    """Whether every BLAS library loaded is OpenBLAS (NumPy's wheels): OPENBLAS_ALONE holds for it."""
    return all(lib.internal_api == "openblas" for lib in blas_libraries())


HELPER_FLOPS = 1 << 25  # ~34 MFLOP: a smaller GEMM split among helpers loses to one thread (a round trip)


def matmul(a, b, out=None):
    """out = a @ b for 2-D a (M, K), b (K, N) on for_gemm's threads: with gradients BLAS's; under
    no_grad() rnnlab's helpers, each a block of rows on one BLAS thread, from HELPER_FLOPS of work on
    (below it, one BLAS thread)."""
    (M, K), N = a.shape, b.shape[1]
    if out is None:
        out = np.empty((M, N), np.result_type(a, b))
    if M * K * N < OPENBLAS_ALONE and openblas_only():  # one thread whatever the setting: nothing to set
        return np.matmul(a, b, out=out)
    n = for_gemm(M, K, N)
    parts = helpers_for(n)
    if parts == 1:
        with limit(n):
            np.matmul(a, b, out=out)
    elif 2 * M * K * N < HELPER_FLOPS:
        with limit(1):  # BLAS's pool stays asleep beside rnnlab's helpers
            np.matmul(a, b, out=out)
    else:
        ends = [p * M // parts for p in range(parts + 1)]
        run_parts(lambda p: np.matmul(a[ends[p]:ends[p + 1]], b, out=out[ends[p]:ends[p + 1]]), parts)
    return out


class _Helper:
    """One of rnnlab's helper threads: it runs one part at a time, handed over by releasing a lock and
    handed back by another, and sleeps in between, so that it never spins beside BLAS's pool (a lock
    wakes a thread sooner than a ThreadPoolExecutor's future makes a round trip)."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._work, self._error = None, None
        threading.Thread(target=self._serve, name="rnnlab-part", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._work()
            except BaseException as error:  # noqa: BLE001 - handed to the caller by wait()
                self._error = error
            self._done.release()

    def start(self, work) -> None:
        self._work, self._error = work, None
        self._go.release()

    def wait(self) -> None:
        """Until the part handed over has finished; its error, if it failed, raised here."""
        self._done.acquire()
        error, self._error = self._error, None
        if error is not None:
            raise error


def _forget_helpers() -> None:
    """In a forked child the helper threads are gone: a part handed to them would never run."""
    if settings.fast is not None:
        settings.fast.policy.helpers, settings.fast.policy.running = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


def run_parts(part, parts: int, flags=None) -> None:
    """part(p) for each p in 0..parts-1 at once, p = 0 in the calling thread, BLAS on one thread each.
    Calls run one at a time (two callers' parts would otherwise wait for helpers the other holds).
    Should a part fail before it finishes, parts that wait for each other (fused.meet, with their
    `flags`) are let through every wait (flags at their maximum), so that none waits for it forever;
    the first error is raised once every part has returned."""
    def guarded(p: int) -> None:
        try:
            part(p)
        except BaseException:
            if flags is not None:
                flags[:] = np.iinfo(flags.dtype).max
            raise

    state = policy()
    with state.running, limit(1):
        while len(state.helpers) < parts - 1:
            state.helpers.append(_Helper())
        helpers = state.helpers[:parts - 1]
        for p, helper in enumerate(helpers, start=1):
            helper.start(functools.partial(guarded, p))
        errors = []
        try:
            guarded(0)
        except BaseException as error:  # noqa: BLE001 - raised below, after every part has returned
            errors.append(error)
        for helper in helpers:
            try:
                helper.wait()
            except BaseException as error:  # noqa: BLE001 - as above
                errors.append(error)
        if errors:
            raise errors[0]


def describe() -> str:
    """One line for logs: the ceiling and where it comes from."""
    if settings.threads is not None:
        source = "--threads"
    else:
        source = next((var for var in ENV_VARS if os.environ.get(var, "").strip().isdigit()), "cores available")
    kernels = ", ".join(f"{info['internal_api']} {info['version']} {info['architecture']} kernels"
                        for info in (lib.info() for lib in blas_libraries()) if info.get("architecture"))
    return (f"BLAS threads <= {allowed()} ({source}), one per MFLOP of a GEMM, {free_cores()} core(s) free of "
            f"other programs" + (f"; {kernels}" if kernels else ""))
