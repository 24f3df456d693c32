"""The thread policy (fast/threads.py): which GEMM gets how many BLAS threads, the user's ceiling,
the limit in force inside a time loop, the CLI's --threads and the run's log line."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from rnnlab.cli import build_parser
import rnnlab
from rnnlab.fast import threads


@pytest.fixture(autouse=True)
def no_user_setting(monkeypatch):
    for var in threads.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(rnnlab.settings.fast, "policy", threads.Policy())  # forget the last readings
    yield
    rnnlab.settings.threads = None


def blas_threads() -> set:
    """NumPy's BLAS (the one rnnlab calls): other libraries loaded later, e.g. scipy's, are not ours."""
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]}


def test_gemms_get_threads_by_their_size(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    monkeypatch.setattr(threads, "free_cores", lambda: 16)  # an idle machine
    assert threads.allowed() == 4
    for B, H, G in [(1, 100, 4), (1, 256, 4), (32, 128, 1)]:  # min-char-rnn's step, an RNN's small step
        assert threads.for_gemm(B, H, G * H) == 1, (B, H, G)  # too small to pay for a second thread
    assert threads.for_gemm(32, 128, 512) == 4  # the LSTM's step at (32, 128): 4 MFLOP
    assert threads.for_gemm(16, 128, 512) == 2
    assert threads.for_gemm(64 * 100, 256, 1024) == 4  # the input projection over all steps


def test_the_users_number_is_a_ceiling(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(threads, "free_cores", lambda: 16)
    assert threads.allowed() == 3 and threads.for_gemm(10_000, 1024, 4096) == 3
    rnnlab.settings.threads = 1
    assert threads.allowed() == 1 and threads.for_gemm(10_000, 1024, 4096) == 1
    assert "--threads" in threads.describe()
    with pytest.raises(ValueError, match="positive integer"):
        rnnlab.settings.threads = 0


def test_busy_machine_gets_fewer_threads(monkeypatch):
    """Other programs' load leaves fewer cores: never more threads than free cores (at least one).
    Without /proc: the 1-minute load average less this process's own use."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(threads, "_running_elsewhere", lambda: None)
    for load, own, free in [(7.6, 7.5, 8), (7.6, 4.0, 4),  # this process's own threads are not others' load
                            (0.3, 1.0, 8), (1.0, 1.0, 8), (4.0, 1.0, 5), (7.6, 1.0, 1), (30.0, 1.0, 1)]:
        monkeypatch.setattr(threads.os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setattr(threads, "own_cores", lambda own=own: own)
        threads.policy().free = (-1e9, 1)  # forget the last reading
        assert threads.free_cores() == free, (load, own)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "8")
    assert threads.for_gemm(64 * 100, 512, 2048) == 1  # big, but the machine is busy


def test_busy_elsewhere_is_the_median_of_recent_instant_readings(monkeypatch):
    """With /proc: other programs' running threads, the median of the readings of the last five
    seconds: a neighbour that starts is seen within seconds, a moment's spike is not, and readings
    from before a pause are forgotten."""
    clock = {"now": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["now"])
    threads.policy().free = (-1e9, 1)  # forget the last real reading (its time is not the fake clock's)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    readings = iter([0, 0, 2, 0, 0, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 2, 2, 2, 0])
    monkeypatch.setattr(threads, "_running_elsewhere", lambda: next(readings))
    free = []
    for _ in range(20):
        clock["now"] += 1.5  # four readings in any five seconds
        free.append(threads.free_cores())
    assert free == [2] * 8 + [1] * 5 + [2] * 6 + [1], free  # the spike at 3 ignored, the neighbour seen
    clock["now"] += 60  # a pause: what was busy then no longer counts
    assert threads.free_cores() == 2


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux /proc only")
def test_running_elsewhere_sees_a_spinning_neighbour():
    """The instant reading counts another process spinning on a core."""
    neighbour = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.5)
        seen = []
        for _ in range(20):
            seen.append(threads._running_elsewhere())
            time.sleep(0.02)
        assert max(seen) >= 1, seen
    finally:
        neighbour.kill()
        neighbour.wait()


def test_own_running_threads_are_not_counted_as_elsewhere(monkeypatch):
    """A thread of this process that stops running between the own count and the system-wide count
    (a helper finishing its part) still counts as its own: the own threads are those running at
    either of two counts, one before and one after."""
    import io

    counts = iter([{"1", "2"}, {"1"}])  # before the system-wide count: main and a helper; after: main
    monkeypatch.setattr(threads, "_own_running", lambda: next(counts))
    monkeypatch.setattr(threads, "open", lambda path: io.StringIO("0.52 0.58 0.59 3/412 12345"), raising=False)
    assert threads._instant_elsewhere() == 1  # 3 running system-wide, 2 of them this process's


def test_a_reading_of_other_programs_is_taken_twice(monkeypatch):
    """A count above zero is taken again a moment later, the smaller kept: a program caught finishing a
    system call is not a neighbour, one that keeps a core busy is."""
    pauses = []
    monkeypatch.setattr(threads.time, "sleep", pauses.append)
    for counts, reading in [([0], 0), ([1, 0], 0), ([2, 1], 1), ([1, 1], 1), ([None], None), ([1, None], 1)]:
        monkeypatch.setattr(threads, "_instant_elsewhere", lambda counts=iter(counts): next(counts))
        assert threads._running_elsewhere() == reading, counts
    assert pauses == [threads.RECHECK] * 4  # only where the first count saw another program


def test_own_cores_is_a_one_minute_mean_of_this_process_cpu_use(monkeypatch):
    clock = {"wall": 100.0, "cpu": 5.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    threads.policy().own = None
    assert threads.own_cores() == 1.0  # no history: one thread assumed
    for _ in range(600):  # ten minutes on two cores: the mean approaches 2
        clock["wall"] += 1.0
        clock["cpu"] += 2.0
        threads.own_cores()
    assert abs(threads.own_cores() - 2.0) < 1e-3
    clock["wall"] += 60.0  # then a minute idle: down by the factor e, as the load average
    assert abs(threads.own_cores() - 2.0 / np.e) < 1e-3


def test_time_loop_limits_blas_inside_and_restores_after():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = blas_threads()
    with threads.time_loop(32, 128, 1):  # an RNN's step: one thread
        assert blas_threads() == {1}
        with threads.time_loop(32, 128, 1):  # nested: nothing changes
            assert blas_threads() == {1}
    assert blas_threads() == before


def test_cli_threads_option_reaches_every_command():
    parser = build_parser()
    assert parser.parse_args(["evaluate", "run", "--threads", "2"]).threads == 2
    assert parser.parse_args(["generate", "run"]).threads is None


@pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba cannot import")
def test_a_training_runs_log_line_names_the_time_loop(tmp_path):
    from rnnlab.train import Trainer, TrainConfig

    config = TrainConfig(hidden=8, layers=1, embedding=4, seq_len=5, batch=2, steps=1, eval_every=100,
                         sample_every=100, sample_length=5, save_every=1, out=str(tmp_path / "run"))
    lines = []
    Trainer(config, progress=False, log=lines.append, text="abcab" * 40, description="tiny").fit()
    assert "time loop compiled (Numba " in lines[0] and "BLAS threads <= " in lines[0]


def test_a_callers_own_limit_survives():
    """Inside a caller's threadpoolctl limit (explore keeps BLAS on one thread), rnnlab's limits come
    back to the caller's setting, not to the one rnnlab saw first."""
    from threadpoolctl import threadpool_limits

    np.ones((4, 4)) @ np.ones((4, 4))
    with threads.limit(2):  # rnnlab has set and restored once already
        pass
    with threadpool_limits(limits=1, user_api="blas"):
        with threads.limit(2):
            pass
        assert blas_threads() == {1}


def test_a_gemm_openblas_runs_alone_sets_no_threads(monkeypatch):
    """Below OPENBLAS_ALONE multiply-adds OpenBLAS uses one thread whatever its setting: threads.matmul
    leaves the setting alone (two library calls saved on a batch-1 output layer); above, it sets it."""
    from rnnlab.fast import threads

    if not threads.openblas_only():
        pytest.skip("a BLAS other than OpenBLAS is loaded")
    entered = []
    real = threads.limit.__enter__
    monkeypatch.setattr(threads.limit, "__enter__", lambda self: [entered.append(self.n), real(self)][1])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((25, 100)), rng.standard_normal((100, 65))  # 162,500 multiply-adds
    np.testing.assert_array_equal(threads.matmul(a, b), a @ b)
    assert entered == []
    big = rng.standard_normal((400, 100))  # 2.6 million
    np.testing.assert_allclose(threads.matmul(big, b), big @ b, rtol=1e-12)
    assert len(entered) == 1
