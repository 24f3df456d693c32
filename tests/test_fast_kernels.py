"""The time loop's two implementations (Numba's compiled steps, NumPy's ufuncs) against the plain
per-step reference; the clean fallback to NumPy where numba is missing; the benchmark harness runs.

Numba compiles each step function once per dtype and caches it on disk, so only the first run of
this file pays for compilation."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from conftest import assert_close
from rnnlab.fast import loop, threads
from rnnlab.nn import driver

ROOT = Path(__file__).resolve().parents[1]
MAKERS = {
    "rnn_tanh": lambda **kw: rnnlab.RNN(5, 6, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: rnnlab.RNN(5, 6, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rnnlab.LSTM(5, 6, **kw),
    "gru": lambda **kw: rnnlab.GRU(5, 6, **kw),
}
TOLERANCES = [(np.float64, 1e-10), (np.float32, 1e-5)]
needs_numba = pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba is not installed")


def run(layer, x, state, lengths, dy, dstate, record_flow=False):
    """Forward and backward through `layer`; everything that comes out, gradients included."""
    pack = (lambda s: s) if len(state) == 2 else (lambda s: s[0])
    y, final = layer(x, pack(state), lengths=lengths)
    dx, d0 = layer.backward(dy, pack(dstate), record_flow=record_flow)
    out = {"y": y, "final": np.stack(final if len(state) == 2 else [final]), "dx": dx,
           "dstate0": np.stack(d0 if len(state) == 2 else [d0])}
    out.update({name: p.grad.copy() for name, p in layer.named_parameters()})
    if record_flow:
        out.update({f"flow_{k}": v for k, v in layer.grad_flow.items()})
    return out


def random_problem(mode, dtype, use_lengths, seed=5, B=4):
    """x (B, 9, 5), states (4 = 2 layers x 2 directions, B, 6), dy, state gradients, lengths."""
    rng = np.random.default_rng(seed)
    n = 2 if mode == "lstm" else 1
    x = rng.standard_normal((B, 9, 5)).astype(dtype)
    state = tuple(rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n))
    dstate = tuple(rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n))
    dy = rng.standard_normal((B, 9, 12)).astype(dtype)
    lengths = np.array([9, 3, 7, 1][:B]) if B > 1 else np.array([6])
    return x, state, lengths if use_lengths else None, dy, dstate


# OpenBLAS's float32 vector-matrix kernel can leave the FPU's invalid flag set on finite data (the
# reference's x @ W_ih.T at B = 1), which NumPy reports; the numbers are compared below regardless.
@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul:RuntimeWarning")
@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", list(MAKERS))
@pytest.mark.parametrize("kernel,B,packed", [pytest.param("numba", 4, False, marks=needs_numba),
                                             pytest.param("numba", 4, True, marks=needs_numba),
                                             pytest.param("numba", 1, False, marks=needs_numba), ("numpy", 4, False)],
                         ids=["numba-blas", "numba-packed", "numba-B1", "numpy"])
def test_time_loop_equals_reference(kernel, B, packed, mode, use_lengths, dtype, tol, monkeypatch):
    """Each time loop (Numba's whole loop calling NumPy's BLAS for each step's GEMM, or, where that BLAS
    cannot be called, its own GEMM on the weights packed once; B = 1: the whole-loop sweep with its
    GEMM in Numba), 2 layers, both
    directions, random states and state gradients, against the reference. (The forward in parts,
    under no_grad() only: test_no_grad.py.)"""
    problem = random_problem(mode, dtype, use_lengths, B=B)
    make = MAKERS[mode]
    if packed:  # as where NumPy's BLAS cannot be called from the loops
        loops = rnnlab.settings.fast.fused().loops_for(make().kind, dtype)
        for name in ("forward_blas", "backward_blas"):
            monkeypatch.setattr(loops, name, None)
    ours = run(make(num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel=kernel), *problem)
    ref = run(make(num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel="reference"), *problem)
    assert ours.keys() == ref.keys()
    for name in ref:
        assert_close(f"{kernel} {name}", ours[name], ref[name], tol)


@needs_numba
@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", list(MAKERS))
def test_no_grad_forward_in_parts_equals_reference(mode, use_lengths, dtype, tol, monkeypatch):
    """Under no_grad() the hidden units shared among 3 threads (2 units each), as the thread policy
    shares them where cores are free: outputs and final states equal the reference's, 2 layers, both
    directions, random states."""
    x, state, lengths, _, _ = random_problem(mode, dtype, use_lengths)
    make = MAKERS[mode]
    pack = (lambda s: s) if len(state) == 2 else (lambda s: s[0])
    monkeypatch.setattr(threads, "step_parts", lambda B, H, G: 3)
    results = {}
    for kernel in ("numba", "reference"):
        layer = make(num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel=kernel)
        with rnnlab.no_grad():
            y, final = layer(x, pack(state), lengths=lengths)
        results[kernel] = (y, np.stack(final if len(state) == 2 else [final]))
    for name, ours, ref in zip(("y", "final"), results["numba"], results["reference"]):
        assert_close(f"parts {name}", ours, ref, tol)


@needs_numba
@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", list(MAKERS))
@pytest.mark.parametrize("B", [4, 1])
def test_numba_records_the_same_gradient_flow(B, mode, use_lengths, dtype, tol):
    """dL/dh_t (and dL/dc_t) per step, as diagnostics read it: Numba's record equals NumPy's."""
    problem = random_problem(mode, dtype, use_lengths, seed=7, B=B)
    make = MAKERS[mode]
    fast = run(make(num_layers=2, bidirectional=True, dtype=dtype, rng=3, kernel="numba"), *problem, record_flow=True)
    slow = run(make(num_layers=2, bidirectional=True, dtype=dtype, rng=3, kernel="numpy"), *problem, record_flow=True)
    assert {k for k in fast if k.startswith("flow_")} == ({"flow_h", "flow_c"} if mode == "lstm" else {"flow_h"})
    for name in slow:
        assert_close(name, fast[name], slow[name], tol)


@needs_numba
def test_numba_loops_call_numpys_blas():
    """NumPy's wheels' BLAS is found and called from the compiled loops (else every step would go back
    to Python); what it computes is checked by every test through the numba kernel."""
    fused = rnnlab.settings.fast.fused()
    assert fused.numpy_blas() is not None
    assert fused.loops_for(rnnlab.LSTM(2, 3).kind).forward_blas is not None


@needs_numba
def test_parts_meet_after_each_step():
    """fused.meet: a part that has finished a step waits until every part has finished it."""
    import threading
    import time

    fused = rnnlab.settings.fast.fused()
    flags = fused.meet_flags(2)
    fused.meet(fused.meet_flags(1), 0, 1)  # compiled before the threads run
    waiter = threading.Thread(target=fused.meet, args=(flags, 1, 1))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # part 1 waits for part 0's first step
    fused.meet(flags, 0, 1)
    waiter.join(timeout=30)
    assert not waiter.is_alive()


@needs_numba
@pytest.mark.parametrize("failing", [0, 1], ids=["caller's part", "helper's part"])
def test_parts_that_wait_for_a_failed_partner_are_let_through(failing):
    """run_parts: should a part fail (the caller's, or a helper's while making its operands, as
    loop._part_operands does), a part waiting for it at fused.meet is released, not left spinning
    forever; the error reaches the caller."""
    import threading

    fused = rnnlab.settings.fast.fused()
    flags = fused.meet_flags(2)
    fused.meet(fused.meet_flags(1), 0, 1)  # compiled before a part waits in it

    def part(p):
        if p == failing:
            raise KeyError(f"part {p} failed")
        for step in range(1, 4):
            fused.meet(flags, p, step)  # would wait for the failed part's step forever

    caller = threading.Thread(target=lambda: pytest.raises(KeyError, threads.run_parts, part, 2, flags))
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive()


@needs_numba
@pytest.mark.parametrize("vector_bytes,tile_rows", [(None, None), (32, 4), (16, 6)], ids=["host", "avx2", "sse"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 17, 64), (13, 5, 33), (7, 100, 200), (32, 128, 256), (30, 40, 96)])
def test_packed_gemm_gives_numpys_product(M, K, N, dtype, rtol, vector_bytes, tile_rows):
    """packed.packed_matmul: W^T packed once, tiles of rows and column blocks, with rows and columns
    left over (M not a multiple of the tile's rows, N not of a block's columns); into a block of
    columns of a wider array, as each part's share of hw, without a write outside it. With this
    CPU's vectors (what the loops call), and with the narrower ones other CPUs get."""
    import numba

    from rnnlab.fast import packed

    rng = np.random.default_rng(M * 1000 + N)
    a, W = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
    hw = np.full((M, N + 24), np.nan, dtype)
    if vector_bytes is None:  # the loops' own: packed_matmul inside compiled code
        matmul, vector_bytes = numba.njit(lambda a, p, out, s: packed.packed_matmul(a, p, out, s)), packed.VECTOR_BYTES
    else:
        matmul = lambda a, p, out, s, mm=packed.matmul_for(vector_bytes, tile_rows): mm((a, p), out, s)  # noqa: E731
    scratch = np.empty((M, packed.block_width(dtype, vector_bytes)), dtype)
    matmul(a, packed.pack(W, vector_bytes=vector_bytes), hw[:, 8:8 + N], scratch)
    want = a.astype(np.float64) @ W.T.astype(np.float64)
    np.testing.assert_allclose(hw[:, 8:8 + N], want, rtol=rtol, atol=rtol * np.abs(want).max())
    assert np.isnan(hw[:, :8]).all() and np.isnan(hw[:, 8 + N:]).all()


@needs_numba
@pytest.mark.parametrize("vector_bytes,tile_rows", [(None, None), (32, 4)], ids=["host", "avx2"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("M,D,H,N", [(1, 3, 1, 2), (13, 7, 40, 70), (32, 128, 128, 256)])
def test_packed_gemm_of_two_sources_sums_both_products(M, D, H, N, dtype, rtol, vector_bytes, tile_rows):
    """packed.packed_matmul2: x W_ih^T + h W_hh^T in one pass (x (M, D), h (M, H)), the second sum
    continuing the first's accumulators."""
    import numba

    from rnnlab.fast import packed

    rng = np.random.default_rng(M + D + H)
    x, W_ih = rng.standard_normal((M, D)).astype(dtype), rng.standard_normal((N, D)).astype(dtype)
    h, W_hh = rng.standard_normal((M, H)).astype(dtype), rng.standard_normal((N, H)).astype(dtype)
    if vector_bytes is None:
        matmul = numba.njit(lambda *args: packed.packed_matmul2(*args))
        vector_bytes = packed.VECTOR_BYTES
    else:
        matmul = lambda x, p, h, p2, out, s, mm=packed.matmul_for(vector_bytes, tile_rows, 2): mm((x, p, h, p2), out, s)  # noqa: E731
    out = np.full((M, N), np.nan, dtype)
    scratch = np.empty((M, packed.block_width(dtype, vector_bytes)), dtype)
    matmul(x, packed.pack(W_ih, vector_bytes=vector_bytes), h, packed.pack(W_hh, vector_bytes=vector_bytes), out, scratch)
    want = x.astype(np.float64) @ W_ih.T.astype(np.float64) + h.astype(np.float64) @ W_hh.T.astype(np.float64)
    np.testing.assert_allclose(out, want, rtol=rtol, atol=rtol * np.abs(want).max())


@needs_numba
def test_packed_blocks_hold_the_transposed_weights_zero_padded():
    """packed.pack: block c, row k, column l is W[c*NR + l, k], zero past the last row of W."""
    from rnnlab.fast import packed

    W = np.arange(70 * 3, dtype=np.float32).reshape(70, 3)
    NR = packed.block_width(np.float32)
    p = packed.pack(W)
    assert p.shape == packed.packed_shape(70, 3, np.float32) == (-(-70 // NR), 3, NR)
    unpacked = p.transpose(0, 2, 1).reshape(-1, 3)
    np.testing.assert_array_equal(unpacked[:70], W)
    assert not unpacked[70:].any()
    rows = np.array([5, 69, 0, 33, 34])  # one thread's gate rows, taken where they lie
    p = packed.pack(W, rows=rows)
    assert p.shape == packed.packed_shape(5, 3, np.float32)
    unpacked = p.transpose(0, 2, 1).reshape(-1, 3)
    np.testing.assert_array_equal(unpacked[:5], W[rows])
    assert not unpacked[5:].any()


def test_a_helpers_error_reaches_the_caller_and_the_helpers_serve_on():
    """run_parts: a part that fails in a helper thread raises in the caller once every part has
    returned; the next call runs on the same helper threads."""
    import threading

    seen = []

    def part(p):
        seen.append((p, threading.get_ident()))
        if p == 2:
            raise ValueError("part 2 failed")

    with pytest.raises(ValueError, match="part 2 failed"):
        threads.run_parts(part, 3)
    assert sorted(p for p, _ in seen) == [0, 1, 2]
    helpers = {ident for p, ident in seen if p > 0}
    seen.clear()
    threads.run_parts(part, 2)
    assert sorted(p for p, _ in seen) == [0, 1] and {ident for p, ident in seen if p > 0} <= helpers


def test_rows_shared_among_helpers_give_numpys_product(monkeypatch):
    """threads.matmul under no_grad() splits the rows among rnnlab's helpers: the same product."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((37, 11)), rng.standard_normal((5, 11)).T  # b: a transposed view, as W.T
    monkeypatch.setattr(threads, "for_gemm", lambda m, k, n: 3)
    monkeypatch.setattr(threads, "HELPER_FLOPS", 1)
    monkeypatch.setattr(threads, "OPENBLAS_ALONE", 0)  # a small product, as if large enough for threads
    split = []
    monkeypatch.setattr(threads, "run_parts", lambda part, parts, flags=None: [split.append(parts), *map(part, range(parts))])
    with rnnlab.no_grad():
        assert threads.helpers_for(3) == (3 if threads.os.name == "posix" else 1)
        np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-13)
    assert split == ([3] if threads.os.name == "posix" else [])
    assert threads.helpers_for(3) == 1  # with gradients, BLAS's own threads
    np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-13)
    assert len(split) <= 1


@needs_numba
def test_numba_state_gradients_of_none_and_no_bias():
    """dy=None (only the final state matters), dc_n=None and bias=False: Numba's loop equals NumPy's."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 6, 5))
    dh_n = rng.standard_normal((1, 3, 6))
    for kind in (rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN):
        results = []
        for kernel in ("numba", "numpy"):
            layer = kind(5, 6, bias=False, dtype=np.float64, rng=4, kernel=kernel)
            layer(x)
            dstate = (dh_n, None) if kind is rnnlab.LSTM else dh_n
            dx, _ = layer.backward(None, dstate)
            results.append((dx, layer.weight_hh_l0.grad.copy()))
        assert_close(f"{kind.__name__} dx", results[0][0], results[1][0], 1e-10)
        assert_close(f"{kind.__name__} dW_hh", results[0][1], results[1][1], 1e-10)


@needs_numba
@pytest.mark.parametrize("kernel", [pytest.param("numba", marks=needs_numba), "numpy"])
@pytest.mark.parametrize("mode", list(MAKERS))
def test_kernel_output_is_a_read_only_view_and_the_layer_output_a_copy(mode, kernel):
    """The kernels hand back y as a view of the h they keep for backward (no copy), read-only so
    that writing to it cannot corrupt the gradients; the layer's batch-first y is the user's own,
    writable, also where B = 1 (where the transpose back to batch-first would otherwise be a view)."""
    for B in (1, 3):
        layer = MAKERS[mode](kernel=kernel, rng=np.random.default_rng(0))
        x = np.random.default_rng(1).standard_normal((B, 4, 5))
        y, _ = layer(x)
        y_before = y.copy()
        y += 1.0  # the user's array: writing to it is allowed, and changes nothing inside
        dx, _ = layer.backward(np.ones_like(y))
        layer2 = MAKERS[mode](kernel=kernel, rng=np.random.default_rng(0))
        np.testing.assert_array_equal(layer2(x)[0], y_before)
        np.testing.assert_array_equal(layer2.backward(np.ones_like(y))[0], dx)
    params = [p.data for p in layer.parameters()][:4]
    dtype = params[0].dtype
    state = tuple(np.zeros((4, 6), dtype) for _ in range(2 if mode == "lstm" else 1))
    y_kernel, _, _ = driver.forward(layer.kind, params, np.ones((2, 4, 5), dtype), state, kernel=kernel)
    with pytest.raises(ValueError, match="read-only"):
        y_kernel[0, 0, 0] = 1.0


def test_float32_tanh_is_accurate():
    """The rational tanh the float32 steps use stays within 5e-7 of tanh (float32 rounds at 6e-8)."""
    import numba

    from rnnlab.fast import fused

    @numba.njit
    def apply(a, out):
        for i in range(a.shape[0]):
            out[i] = fused.tanh(a[i])

    a = np.linspace(-20, 20, 200_001).astype(np.float32)
    out = np.empty_like(a)
    apply(a, out)
    assert np.abs(out - np.tanh(a.astype(np.float64))).max() < 5e-7
    apply(np.array([np.nan, np.inf, -np.inf], np.float32), out[:3])
    assert np.isnan(out[0]) and out[1] == 1 and out[2] == -1


def test_fast_falls_back_to_numpy_without_numba(monkeypatch):
    """With numba unavailable, kernel="fast" runs the NumPy loop (same numbers); "numba" says why not."""
    monkeypatch.setattr(rnnlab.settings, "fast", None)
    monkeypatch.setattr(rnnlab.settings, "fast_missing", "numba is not installed (simulated)")
    assert not rnnlab.settings.numba_available()
    problem = random_problem("lstm", np.float64, True)
    fast = run(rnnlab.LSTM(5, 6, num_layers=2, bidirectional=True, dtype=np.float64, rng=1), *problem)
    ref = run(rnnlab.LSTM(5, 6, num_layers=2, bidirectional=True, dtype=np.float64, rng=1, kernel="reference"),
              *problem)
    for name in ref:
        assert_close(name, fast[name], ref[name], 1e-10)
    with pytest.raises(RuntimeError, match="simulated"):
        rnnlab.LSTM(5, 6, kernel="numba")


def test_import_is_numpy_only_and_runs_where_numba_cannot_import():
    """`import rnnlab` loads no numba; with numba unimportable, training still runs on NumPy."""
    code = (
        "import sys\n"
        "import rnnlab\n"
        "assert 'numba' not in sys.modules, 'import rnnlab must not import numba'\n"
        "sys.modules['numba'] = None  # from here on, `import numba` fails as if it were missing\n"
        "import numpy as np\n"
        "from rnnlab import settings\n"
        "layer = rnnlab.GRU(3, 4, rng=0)\n"
        "y, h = layer(np.ones((2, 5, 3), np.float32))\n"
        "layer.backward(np.ones_like(y))\n"
        "assert not settings.numba_available() and 'numba' in settings.fast_missing\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=_env_with_src())
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel must be one of"):
        rnnlab.LSTM(2, 3, kernel="cuda")


def test_benchmark_harness_runs(tmp_path):
    """The benchmark, once, at a tiny size: both worker processes, the loss check, the neighbour
    started and stopped, generation (no timing is checked: CI times nothing)."""
    out_file = tmp_path / "bench.md"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_rnn.py"), "--tiny", "--threads", "1",
                             "--out", str(out_file)], capture_output=True, text=True, cwd=ROOT, env=_env_with_src(),
                            timeout=300)
    assert result.returncode == 0, result.stderr
    text = out_file.read_text()
    assert "| lstm 2, 5, 8, 1 | " in text  # idle: both sides timed after agreeing on the first loss
    assert "| lstm 2, 5, 8, 1 | training step |" in text and "| lstm 2, 5, 8, 1 | inference |" in text  # busy
    assert "### Generation" in text
    import os
    import re

    pid = int(re.search(r"neighbour.py, pid (\d+)", text).group(1))
    with pytest.raises(ProcessLookupError):  # stopped by its PID, and reaped
        os.kill(pid, 0)


def _env_with_src() -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_parts_write_no_cache_line_in_common():
    """The driver's buffers start on a cache line and each part's first unit lies a whole number of
    lines into its row (where H allows), so that two threads never write one line (false sharing)."""
    for shape, dtype in [((65, 32, 128), np.float32), ((3, 5), np.float64), ((7,), np.float32)]:
        a = loop.aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % loop.CACHE_LINE == 0
    assert loop._part_ends(128, 2, 4) == [0, 64, 128]
    assert loop._part_ends(100, 2, 4) == [0, 48, 100]  # 48 floats: three lines
    assert loop._part_ends(256, 3, 8) == [0, 80, 168, 256]  # float64: lines of 8
    assert loop._part_ends(6, 3, 4) == [0, 2, 4, 6]  # too few units to align: an even split
    order = loop._part_order(2, (0, 1, 3))  # G = 2 gates, H = 3 units in parts {0}, {1, 2}
    assert order.tolist() == [0, 3, 1, 2, 4, 5]
