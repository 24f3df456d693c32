"""Finite-difference gradient checks in float64 for every layer, cell and loss.

Random shapes, weights, biases, initial states and upstream gradients on both the outputs and the
final states: the scalar checked is L = sum(y * dy) + sum(state_T * dstate), so nothing sits at zero.
"""
import numpy as np
import pytest

import rnnlab
from conftest import assert_rel, numerical_grad
from rnnlab.nn import cross_entropy, lookup, mse


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("layer_kwargs", [dict(num_layers=1), dict(num_layers=2, bidirectional=True)],
                         ids=["1layer", "2layer-bi"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", [
    lambda **kw: rnnlab.RNN(3, 4, nonlinearity="tanh", **kw),
    lambda **kw: rnnlab.RNN(3, 4, nonlinearity="relu", **kw),
    lambda **kw: rnnlab.LSTM(3, 4, **kw),
    lambda **kw: rnnlab.GRU(3, 4, **kw),
], ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("kernel", ["fast", "numpy", "reference"])  # fast: Numba where installed
def test_recurrent_layers(kernel, make, layer_kwargs, use_lengths):
    rng = np.random.default_rng(7)
    layer = make(dtype=np.float64, rng=rng, kernel=kernel, **layer_kwargs)
    for p in layer.parameters():  # biases too: nothing at zero
        p.data[...] = rng.uniform(-0.8, 0.8, p.data.shape)
    B, T = 3, 4
    K = layer.num_directions
    x = rng.standard_normal((B, T, 3))
    n_states = len(layer.kind.state_names)
    state = tuple(rng.standard_normal((layer.num_layers * K, B, 4)) for _ in range(n_states))
    lengths = np.array([T, 2, 3]) if use_lengths else None
    dy = rng.standard_normal((B, T, K * 4))
    dstate = tuple(rng.standard_normal(s.shape) for s in state)
    pack = (lambda s: s) if n_states == 2 else (lambda s: s[0])

    def loss():
        y, final = layer(x, pack(state), lengths=lengths)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(as_tuple(final), dstate)))

    loss()
    layer.zero_grad()
    dx, dstate0 = layer.backward(dy, pack(dstate))
    assert_rel("dx", dx, numerical_grad(loss, x))
    for i, (s, ds) in enumerate(zip(state, as_tuple(dstate0))):
        assert_rel(f"dstate0[{i}]", ds, numerical_grad(loss, s))
    for name, p in layer.named_parameters():
        assert_rel(name, p.grad, numerical_grad(loss, p.data))


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_over_three_steps(cell):
    rng = np.random.default_rng(3)
    layer = getattr(rnnlab, cell)(3, 4, dtype=np.float64, rng=rng)
    is_lstm = cell == "LSTMCell"
    xs = rng.standard_normal((3, 2, 3))
    state0 = tuple(rng.standard_normal((2, 4)) for _ in range(2 if is_lstm else 1))
    dfinal = tuple(rng.standard_normal((2, 4)) for _ in state0)
    pack = (lambda s: s) if is_lstm else (lambda s: s[0])

    def loss():
        state = pack(state0)
        for x in xs:
            state = layer(x, state)
        layer._caches.clear()
        return float(sum((s * d).sum() for s, d in zip(as_tuple(state), dfinal)))

    state = pack(state0)
    for x in xs:
        state = layer(x, state)
    layer.zero_grad()
    dstate, dxs = pack(dfinal), []
    for _ in xs:
        dx, dstate = layer.backward(dstate)
        dxs.append(dx)
    assert_rel("dx", np.stack(dxs[::-1]), numerical_grad(loss, xs))
    for s, d in zip(state0, as_tuple(dstate)):
        assert_rel("dstate0", d, numerical_grad(loss, s))
    for name, p in layer.named_parameters():
        assert_rel(name, p.grad, numerical_grad(loss, p.data))


def test_linear_any_leading_shape():
    rng = np.random.default_rng(0)
    layer = rnnlab.Linear(4, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 3, 4))
    dy = rng.standard_normal((2, 3, 3))
    loss = lambda: float((layer(x) * dy).sum())
    loss()
    dx = layer.backward(dy)
    assert_rel("dx", dx, numerical_grad(loss, x))
    for name, p in layer.named_parameters():
        assert_rel(name, p.grad, numerical_grad(loss, p.data))


@pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba is not installed")
def test_compiled_scatter_of_rows_equals_numpys():
    """The compiled loop's sum of rows by id (an embedding's table gradient) equals np.add.at's."""
    from rnnlab.fast.loop import CompiledLoop

    rng = np.random.default_rng(0)
    values, ids = rng.standard_normal((50, 3)), rng.integers(0, 7, 50)
    expected = np.zeros((7, 3))
    np.add.at(expected, ids, values)
    np.testing.assert_allclose(CompiledLoop(rnnlab.nn.get_cell("lstm")).scatter_rows(values, ids, 7), expected,
                               rtol=1e-13)
    np.testing.assert_allclose(lookup.scatter_rows(values, ids, 7), expected, rtol=1e-13)


@pytest.mark.parametrize("path", ["one-hot-gemm", "sorted-sum"])
def test_embedding_with_repeated_ids(path, monkeypatch):
    """Each of lookup.scatter_rows's two ways of adding a row's gradient once per use."""
    if path == "sorted-sum":
        monkeypatch.setattr(lookup, "ONEHOT_MAX", 0)
    rng = np.random.default_rng(0)
    layer = rnnlab.Embedding(5, 3, dtype=np.float64, rng=rng)
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    dy = rng.standard_normal((2, 3, 3))
    loss = lambda: float((layer(ids) * dy).sum())
    loss()
    layer.backward(dy)
    assert_rel("weight", layer.weight.grad, numerical_grad(loss, layer.weight.data))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("vocab", [4, 40], ids=["folded", "gathered"])
def test_recurrent_layer_reading_a_lookup(cell, vocab):
    """An embedding's rows folded into the first layer's input projection (V <= T*B) or gathered:
    the gradient of the table, and of every weight, by finite differences."""
    rng = np.random.default_rng(1)
    layer = rnnlab.Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    table = rng.standard_normal((vocab, 3))
    ids = rng.integers(0, vocab, (2, 5))
    lengths = np.array([5, 3])
    x = rnnlab.nn.Lookup(ids, table)
    assert x.folded == (vocab <= ids.size)
    y, _ = layer(x, None, lengths)
    dy = rng.standard_normal(y.shape)
    loss = lambda: float((layer(x, None, lengths)[0] * dy).sum())
    dtable, _ = layer.backward(dy)
    assert dtable.shape == table.shape
    assert_rel("table", dtable, numerical_grad(loss, table))
    for name, p in layer.named_parameters():
        assert_rel(name, p.grad, numerical_grad(loss, p.data))


def test_dropout_backward_uses_the_forward_mask():
    rng = np.random.default_rng(0)
    layer = rnnlab.Dropout(0.4, rng=rng)
    x = rng.standard_normal((50, 40))
    y = layer(x)
    keep = layer._keep
    assert set(np.unique(keep)) == {0.0, 1 / 0.6}
    assert 0.3 < (keep == 0).mean() < 0.5
    dy = rng.standard_normal(x.shape)
    # y is linear in x for a fixed mask: its gradient is the mask itself
    np.testing.assert_array_equal(layer.backward(dy), dy * keep)
    np.testing.assert_array_equal(y, x * keep)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(dy), dy)


@pytest.mark.parametrize("use_mask", [False, True])
def test_cross_entropy(use_mask):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 4, 5)) * 3
    targets = rng.integers(0, 5, (3, 4))
    mask = rng.random((3, 4)) < 0.7 if use_mask else None
    if mask is not None:
        mask[0, 0] = True
    loss, dlogits = cross_entropy(logits, targets, mask)
    assert_rel("dlogits", dlogits, numerical_grad(lambda: cross_entropy(logits, targets, mask)[0], logits))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    picked = -np.log(np.take_along_axis(p, targets[..., None], -1)[..., 0])
    expected = picked.mean() if mask is None else picked[mask].mean()
    assert abs(loss - expected) < 1e-12


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0]])
    loss, grad = cross_entropy(logits, np.array([1]))
    assert np.isfinite(loss) and abs(loss - 2000.0) < 1e-9
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("use_mask", [False, True])
def test_mse(use_mask):
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    mask = (rng.random((3, 4)) < 0.6) if use_mask else None
    if mask is not None:
        mask[0, 0] = True
    loss, grad = mse(pred, target, mask)
    assert_rel("dpred", grad, numerical_grad(lambda: mse(pred, target, mask)[0], pred))
    sq = (pred - target) ** 2
    expected = sq.mean() if mask is None else sq[mask].mean()
    assert abs(loss - expected) < 1e-12
