"""rnnlab.no_grad(): forwards keep no cache, give torch's outputs through every time-loop path, and a
backward after one raises one clear error."""
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab
from conftest import assert_close
from rnnlab.nn.module import NO_CACHE, is_grad_enabled
from test_torch_equivalence import make_pair

KERNELS = ["numpy", "reference"] + (["fast", "numba"] if rnnlab.settings.numba_available() else [])


@pytest.mark.parametrize("kernel", KERNELS + (["numba-parts"] if rnnlab.settings.numba_available() else []))
@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidirectional, use_lengths, B", [(1, False, False, 3), (2, True, True, 3),
                                                                  (3, False, True, 3), (2, False, False, 1)],
                         ids=["uni", "bi-lengths", "uni3-lengths", "uni2-batch1"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["f64", "f32"])
def test_no_grad_forward_matches_torch(kernel, mode, layers, bidirectional, use_lengths, B, dtype, tol, monkeypatch):
    """numba-parts: the hidden units shared among three threads (1, 2 and 2 units), as the thread
    policy does under no_grad() where cores are free. uni3: one direction, 3 layers.
    batch1: one sequence, each layer's whole loop in one compiled call (fused.forward_sweep_lean)."""
    if kernel == "numba-parts":
        from rnnlab.fast import threads

        monkeypatch.setattr(threads, "step_parts", lambda B, H, G: 3)
        kernel = "numba"
    seed = zlib.crc32(f"nograd-{mode}-{layers}-{kernel}".encode())
    rng = np.random.default_rng(seed)
    T, D, H = 6, 4, 5
    ours, theirs = make_pair(mode, D, H, layers, bidirectional, dtype, seed)
    ours.kernel = kernel
    K, n_states = (2 if bidirectional else 1), (2 if mode == "lstm" else 1)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    state = [rng.standard_normal((layers * K, B, H)).astype(dtype) for _ in range(n_states)]
    lengths = np.array([T, 2, 4]) if use_lengths else None
    with rnnlab.no_grad():
        y, final = ours(x, tuple(state) if n_states == 2 else state[0], lengths=lengths)
    assert ours._cache is NO_CACHE
    with torch.no_grad():
        inp = torch.tensor(x) if lengths is None else pack_padded_sequence(
            torch.tensor(x), torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        y_t, final_t = theirs(inp, tuple(torch.tensor(s) for s in state) if n_states == 2 else torch.tensor(state[0]))
        if lengths is not None:
            y_t, _ = pad_packed_sequence(y_t, batch_first=True, total_length=T)
    assert_close("y", y, y_t.numpy(), tol)
    for name, a, b in zip("hc", final if n_states == 2 else (final,), final_t if n_states == 2 else (final_t,)):
        assert_close(f"{name}_n", a, b.numpy(), tol)


def test_backward_after_a_no_grad_forward_raises_clearly():
    rng = np.random.default_rng(0)
    emb, lstm, head = rnnlab.Embedding(7, 3, rng=rng), rnnlab.LSTM(3, 4, rng=rng), rnnlab.Linear(4, 7, rng=rng)
    cell = rnnlab.GRUCell(3, 4, rng=rng)
    ids = rng.integers(0, 7, (2, 5))
    with rnnlab.no_grad():
        x = emb(ids)
        y, _ = lstm(x)
        logits = head(y)
        cell(x[:, 0])
    for layer, grad in ((head, logits), (lstm, y), (emb, x)):
        with pytest.raises(RuntimeError, match=r"after a forward under rnnlab.no_grad\(\)"):
            layer.backward(np.ones_like(grad))
    with pytest.raises(RuntimeError, match=r"no_grad\(\) keep nothing"):
        cell.backward(np.ones((2, 4)))
    y2, _ = lstm(emb(ids))  # outside the block the layers keep their caches again
    dx, _ = lstm.backward(np.ones_like(y2))
    assert dx.shape == x.shape and np.abs(lstm.weight_hh_l0.grad).sum() > 0


def test_no_grad_restores_on_error_and_nests():
    with pytest.raises(ValueError):
        with rnnlab.no_grad():
            with rnnlab.no_grad():
                assert not is_grad_enabled()
            assert not is_grad_enabled()
            raise ValueError("inside")
    assert is_grad_enabled()


def test_no_grad_holds_in_its_own_thread_only():
    """A worker thread evaluating under no_grad() must not strip another thread's caches (Dask and
    joblib run tasks as threads of one process)."""
    import threading

    inside, release = threading.Event(), threading.Event()

    def evaluate():
        with rnnlab.no_grad():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=evaluate)
    worker.start()
    try:
        assert inside.wait(10)
        layer = rnnlab.nn.Linear(3, 2, dtype=np.float64)
        layer(np.ones((4, 3)))
        assert rnnlab.nn.is_grad_enabled()
        assert layer.backward(np.ones((4, 2))).shape == (4, 3)  # the cache was kept
    finally:
        release.set()
        worker.join()


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "reference"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)], ids=["uni", "bi"])
def test_no_grad_forwards_reuse_buffers_without_sharing_results(kernel, layers, bidirectional):
    """Under no_grad() the driver reuses one workspace per layer and direction from call to call: each
    call still gives what a forward with gradients gives, and what it returned is not overwritten by
    the next call (same shapes: the buffers are reused; new shapes: they are replaced)."""
    from rnnlab.nn.stack import workspace

    rng = np.random.default_rng(7)
    lstm = rnnlab.LSTM(4, 5, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, rng=rng, kernel=kernel)
    inputs = [(rng.standard_normal((3, 6, 4)), None), (rng.standard_normal((3, 6, 4)), np.array([6, 2, 4])),
              (rng.standard_normal((3, 6, 4)), None), (rng.standard_normal((2, 9, 4)), None)]
    expected = [lstm(x, lengths=lengths) for x, lengths in inputs]
    with rnnlab.no_grad():
        got = [lstm(x, lengths=lengths) for x, lengths in inputs]
        buffer = workspace(lstm, 0, False).empty("xw", (6, 3, 20), np.float64)
        lstm(*inputs[2])
        assert workspace(lstm, 0, False).empty("xw", (6, 3, 20), np.float64) is buffer  # reused
    # also the first, after three more calls; to rounding: the lean loop adds x_t W_ih^T inside each
    # step's GEMM (fast/loop.py), the loop with gradients before it
    for (y, (h, c)), (y_ref, (h_ref, c_ref)) in zip(got, expected):
        for ours, ref in ((y, y_ref), (h, h_ref), (c, c_ref)):
            np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-15)


def test_no_grad_workspaces_are_per_thread():
    """Two threads evaluating one model at once (the explorer's server, a thread pool) each get their
    own buffers and their own right answers."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(8)
    gru = rnnlab.GRU(3, 16, dtype=np.float64, rng=rng)
    xs = [rng.standard_normal((4, 50, 3)) for _ in range(8)]
    expected = [gru(x)[0] for x in xs]

    def evaluate(x):
        with rnnlab.no_grad():
            return [gru(x)[0] for _ in range(10)]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns inside each other's forwards (a shared buffer shows)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(evaluate, xs))
    finally:
        sys.setswitchinterval(interval)
    for ys, y_ref in zip(results, expected):
        for y in ys:
            np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "reference"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)], ids=["uni", "bi"])
def test_training_steps_reuse_buffers_and_match_fresh_layers(kernel, layers, bidirectional):
    """A forward with gradients writes where the previous forward's cache was (that cache is dead:
    the layer keeps one): step after step, with a no_grad() evaluation between, every output, state
    gradient and parameter gradient equals that of a fresh copy of the layer, and what an earlier
    step returned is left as it was."""
    import copy

    rng = np.random.default_rng(9)
    lstm = rnnlab.LSTM(4, 5, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, rng=rng,
                       kernel=kernel)
    fresh = copy.deepcopy(lstm)
    K = 2 if bidirectional else 1

    def step(layer, x, lengths, dy):
        layer.zero_grad()
        y, (h, c) = layer(x, lengths=lengths)
        dx, (dh0, dc0) = layer.backward(dy, (np.ones_like(h), None))
        return [y, h, c, dx, dh0, dc0] + [p.grad.copy() for p in layer.parameters()]

    returned, expected = [], []
    for T, lengths in [(6, None), (6, np.array([6, 2, 4])), (6, None), (8, None)]:
        x, dy = rng.standard_normal((3, T, 4)), rng.standard_normal((3, T, K * 5))
        returned.append(step(lstm, x, lengths, dy))
        expected.append([a.copy() for a in step(copy.deepcopy(fresh), x, lengths, dy)])
        with rnnlab.no_grad():
            lstm(rng.standard_normal((3, T, 4)))
    for got, want in zip(returned, expected):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
