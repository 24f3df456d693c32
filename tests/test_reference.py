"""The fast sequence kernels against the plain per-step reference (the unrolled network, literally),
and the sequence layers against a hand-written loop over their single-step cells."""
from functools import partial

import numpy as np
import pytest

import rnnlab
from rnnlab.nn import driver
from conftest import assert_close

MAKERS = {
    "rnn_tanh": (lambda **kw: rnnlab.RNN(5, 6, nonlinearity="tanh", **kw), "RNNCell", {"nonlinearity": "tanh"}),
    "rnn_relu": (lambda **kw: rnnlab.RNN(5, 6, nonlinearity="relu", **kw), "RNNCell", {"nonlinearity": "relu"}),
    "lstm": (lambda **kw: rnnlab.LSTM(5, 6, **kw), "LSTMCell", {}),
    "gru": (lambda **kw: rnnlab.GRU(5, 6, **kw), "GRUCell", {}),
}


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", list(MAKERS))
def test_fast_kernel_equals_reference(mode, use_lengths, dtype, tol):
    make = MAKERS[mode][0]
    fast = make(num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel="fast")
    ref = make(num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel="reference")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 9, 5)).astype(dtype)
    lengths = np.array([9, 3, 7, 1]) if use_lengths else None
    n = len(fast.kind.state_names)
    state = tuple(rng.standard_normal((4, 4, 6)).astype(dtype) for _ in range(n))
    dstate = tuple(rng.standard_normal((4, 4, 6)).astype(dtype) for _ in range(n))
    dy = rng.standard_normal((4, 9, 12)).astype(dtype)
    pack = (lambda s: s) if n == 2 else (lambda s: s[0])
    results = []
    for layer in (fast, ref):
        y, final = layer(x, pack(state), lengths=lengths)
        dx, d0 = layer.backward(dy, pack(dstate))
        results.append((y, final, dx, d0, {k: p.grad.copy() for k, p in layer.named_parameters()}))
    (y1, f1, dx1, d01, g1), (y2, f2, dx2, d02, g2) = results
    assert_close("y", y1, y2, tol)
    assert_close("final", np.stack(f1 if n == 2 else [f1]), np.stack(f2 if n == 2 else [f2]), tol)
    assert_close("dx", dx1, dx2, tol)
    assert_close("dstate0", np.stack(d01 if n == 2 else [d01]), np.stack(d02 if n == 2 else [d02]), tol)
    for k in g1:
        assert_close(k, g1[k], g2[k], tol)


@pytest.mark.parametrize("mode", list(MAKERS))
def test_sequence_layer_equals_loop_over_its_cell(mode):
    make, cell_name, cell_kwargs = MAKERS[mode]
    layer = make(dtype=np.float64, rng=2)
    cell = getattr(rnnlab, cell_name)(5, 6, dtype=np.float64, **cell_kwargs)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 7, 5))
    dy = rng.standard_normal((3, 7, 6))
    y, final = layer(x)
    dx, _ = layer.backward(dy)

    is_lstm = mode == "lstm"
    state, hs = None, []
    for t in range(7):
        state = cell(x[:, t], state)
        hs.append(state[0] if is_lstm else state)
    assert_close("y", y, np.stack(hs, axis=1), 1e-12)
    assert_close("h_n", final[0][0] if is_lstm else final[0], hs[-1], 1e-12)
    dstate, dxs = None, []
    for t in reversed(range(7)):
        if is_lstm:
            dstate = (dy[:, t] + (0 if dstate is None else dstate[0]), None if dstate is None else dstate[1])
        else:
            dstate = dy[:, t] + (0 if dstate is None else dstate)
        dx_t, dstate = cell.backward(dstate)
        dxs.append(dx_t)
    assert_close("dx", dx, np.stack(dxs[::-1], axis=1), 1e-12)
    for name, p in cell.named_parameters():
        assert_close(name, p.grad, getattr(layer, f"{name}_l0").grad, 1e-12)


def test_lengths_hold_state_and_zero_outputs():
    layer = rnnlab.GRU(2, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 2))
    y, h = layer(x, lengths=[6, 2])
    y_short, h_short = layer(x[1:, :2])
    assert not y[1, 2:].any()
    assert_close("final state of the short sequence", h[0, 1], h_short[0, 0], 1e-14)
    assert_close("its outputs", y[1, :2], y_short[0], 1e-14)


def test_bidirectional_reverse_starts_at_each_sequence_end():
    layer = rnnlab.LSTM(2, 3, bidirectional=True, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 5, 2))
    y, (h, c) = layer(x, lengths=[5, 3])
    y_alone, (h_alone, _) = layer(x[1:, :3])
    assert_close("outputs of the length-3 sequence", y[1, :3], y_alone[0], 1e-14)
    assert_close("its reverse final state", h[1, 1], h_alone[1, 0], 1e-14)


def test_orthogonal_init_and_forget_bias():
    layer = rnnlab.LSTM(4, 8, init="orthogonal", rng=0, dtype=np.float64)
    W = layer.weight_hh_l0.data
    for gate in range(4):
        block = W[gate * 8:(gate + 1) * 8]
        assert_close("W^T W", block.T @ block, np.eye(8), 1e-12)
    b = layer.bias_ih_l0.data + layer.bias_hh_l0.data
    assert np.all(b[8:16] == 1.0) and not b[:8].any() and not b[16:].any()


def test_randomness_comes_only_from_the_generator():
    a = rnnlab.LSTM(3, 4, rng=np.random.default_rng(42)).state_dict()
    np.random.seed(0)
    b = rnnlab.LSTM(3, 4, rng=42).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = rnnlab.LSTM(3, 4, rng=43).state_dict()
    assert not np.array_equal(a["weight_hh_l0"], c["weight_hh_l0"])
    # PyTorch's bound 1/sqrt(H) and gates that do not start identical
    W = a["weight_hh_l0"]
    assert np.abs(W).max() <= 0.5 and not np.allclose(W[:4], W[4:8])


@pytest.mark.parametrize("mode", list(MAKERS))
def test_recorded_gradient_flow_is_dL_dh_t(mode):
    """grad_flow['h'][layer, t] must equal dL/dh_t: check it by perturbing the state handed to step t."""
    make = MAKERS[mode][0]
    layer = make(dtype=np.float64, rng=4, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5))
    dy = rng.standard_normal((2, 6, 12))
    layer(x, lengths=[6, 4])
    layer.backward(dy, record_flow=True)
    flow = layer.grad_flow
    # dL/dh_t of the forward direction at t = 2: restart the sequence from h_2 + eps e_j
    y, final = layer(x, lengths=[6, 4])
    t, b, j, eps = 2, 1, 3, 1e-6
    n = len(layer.kind.state_names)
    fwd = partial(driver.forward, layer.kind)
    params = layer._params("_l0")
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
    mask = (np.arange(6)[:, None] < np.array([6, 4])[None, :]).astype(float)[:, :, None]
    _, state_t, _ = fwd(params, x_tm[:t + 1], tuple(np.zeros((2, 6)) for _ in range(n)), mask[:t + 1])

    def tail_loss(delta):
        s = tuple(v.copy() for v in state_t)
        s[0][b, j] += delta
        y_tail, _, _ = fwd(params, x_tm[t + 1:], s, mask[t + 1:])
        return float((y_tail * dy.transpose(1, 0, 2)[t + 1:, :, :6]).sum())

    numeric = (tail_loss(eps) - tail_loss(-eps)) / (2 * eps) + dy[b, t, j]
    assert abs(flow["h"][0, t, b, j] - numeric) < 1e-7 * max(1, abs(numeric))
    assert flow["h"].shape == (2, 6, 2, 6)
    assert set(flow) == ({"h", "c"} if mode == "lstm" else {"h"})
