"""Every recurrent layer against torch.nn with the same weights: outputs, final states, dx, dh0 (dc0)
and every parameter gradient, for 1..3 layers, uni/bidirectional, with and without lengths."""
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab
from conftest import assert_close

CASES = [("rnn_tanh",), ("rnn_relu",), ("lstm",), ("gru",)]


def make_pair(mode, D, H, layers, bidirectional, dtype, seed, kernel="fast"):
    torch.manual_seed(seed)
    common = dict(num_layers=layers, bidirectional=bidirectional)
    if mode.startswith("rnn"):
        nl = mode.split("_")[1]
        theirs = torch.nn.RNN(D, H, nonlinearity=nl, batch_first=True, **common)
        ours = rnnlab.RNN(D, H, nonlinearity=nl, dtype=dtype, kernel=kernel, **common)
    else:
        theirs = getattr(torch.nn, mode.upper())(D, H, batch_first=True, **common)
        ours = getattr(rnnlab, mode.upper())(D, H, dtype=dtype, kernel=kernel, **common)
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def run_torch(theirs, x, state, lengths, dy, dstate):
    x_t = torch.tensor(x, requires_grad=True)
    state_t = tuple(torch.tensor(s, requires_grad=True) for s in state)
    inp = x_t if lengths is None else pack_padded_sequence(x_t, torch.tensor(lengths), batch_first=True,
                                                           enforce_sorted=False)
    y_t, final_t = theirs(inp, state_t if len(state_t) == 2 else state_t[0])
    if lengths is not None:
        y_t, _ = pad_packed_sequence(y_t, batch_first=True, total_length=x.shape[1])
    final_t = final_t if isinstance(final_t, tuple) else (final_t,)
    loss = (y_t * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(final_t, dstate))
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in theirs.named_parameters()}
    return (y_t.detach().numpy(), [f.detach().numpy() for f in final_t], x_t.grad.numpy(),
            [s.grad.numpy() for s in state_t], grads)


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["fast", "numpy", "reference"])  # fast: Numba where installed
def test_matches_torch(kernel, mode, layers, bidirectional, use_lengths, dtype, tol):
    seed = zlib.crc32(f"{mode}-{layers}-{bidirectional}-{use_lengths}".encode())
    rng = np.random.default_rng(seed)
    B, T, D, H = int(rng.integers(2, 5)), int(rng.integers(3, 8)), int(rng.integers(1, 6)), int(rng.integers(2, 7))
    ours, theirs = make_pair(mode, D, H, layers, bidirectional, dtype, seed, kernel)
    K = 2 if bidirectional else 1
    n_states = 2 if mode == "lstm" else 1
    x = rng.standard_normal((B, T, D)).astype(dtype)
    state = [rng.standard_normal((layers * K, B, H)).astype(dtype) for _ in range(n_states)]
    lengths = None
    if use_lengths:  # unsorted, at least one full-length and one short sequence
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0], lengths[-1] = T, max(1, T // 2)
        rng.shuffle(lengths)
    dy = rng.standard_normal((B, T, K * H)).astype(dtype)
    if lengths is not None:
        dy *= (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
    dstate = [rng.standard_normal((layers * K, B, H)).astype(dtype) for _ in range(n_states)]

    y, final = ours(x, tuple(state) if n_states == 2 else state[0], lengths=lengths)
    dx, dstate0 = ours.backward(dy, tuple(dstate) if n_states == 2 else dstate[0])
    final = final if n_states == 2 else (final,)
    dstate0 = dstate0 if n_states == 2 else (dstate0,)

    y_t, final_t, dx_t, dstate0_t, grads_t = run_torch(theirs, x, state, lengths, dy, dstate)
    assert y.dtype == dtype and dx.dtype == dtype
    assert_close("y", y, y_t, tol)
    for name, a, b in zip("hc", final, final_t):
        assert_close(f"{name}_n", a, b, tol)
    assert_close("dx", dx, dx_t, tol)
    for name, a, b in zip("hc", dstate0, dstate0_t):
        assert_close(f"d{name}0", a, b, tol)
    ours_grads = {n: p.grad for n, p in ours.named_parameters()}
    assert ours_grads.keys() == grads_t.keys()
    for name in grads_t:
        assert_close(f"grad {name}", ours_grads[name], grads_t[name], tol)


@pytest.mark.parametrize("vocab", [5, 60], ids=["folded", "gathered"])
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["fast", "numpy", "reference"])
def test_embedding_lookup_matches_torch(kernel, mode, dtype, tol, vocab):
    """torch.nn.Embedding -> layer against Embedding.lookup -> layer (the rows folded into the first
    layer's input projection where V <= T*B): outputs, final states, every gradient and the table's."""
    rng = np.random.default_rng(len(mode) + vocab)
    B, T, D, H = 3, 6, 4, 5
    ours, theirs = make_pair(mode, D, H, 2, True, dtype, vocab, kernel)
    table = rng.standard_normal((vocab, D)).astype(dtype)
    ids = rng.integers(0, vocab, (B, T))
    lengths = np.array([6, 2, 4])
    x = rnnlab.Embedding(vocab, D, dtype=dtype).lookup(ids)._replace(table=table)
    assert x.folded == (vocab <= B * T)
    dy = rng.standard_normal((B, T, 2 * H)).astype(dtype) * (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
    y, final = ours(x, lengths=lengths)
    dtable, _ = ours.backward(dy)

    emb = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=False)
    x_t = pack_padded_sequence(emb(torch.tensor(ids)), torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    y_t, final_t = theirs(x_t)
    y_t, _ = pad_packed_sequence(y_t, batch_first=True, total_length=T)
    (y_t * torch.tensor(dy)).sum().backward()
    assert_close("y", y, y_t.detach().numpy(), tol)
    for name, a, b in zip("hc", final if mode == "lstm" else (final,), final_t if mode == "lstm" else (final_t,)):
        assert_close(f"{name}_n", a, b.detach().numpy(), tol)
    assert_close("the table's gradient", dtable, emb.weight.grad.numpy(), tol)
    for name, p in theirs.named_parameters():
        assert_close(f"grad {name}", getattr(ours, name).grad, p.grad.numpy(), tol)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_backward_accumulates_and_zero_grad_clears(mode, rng):
    ours, _ = make_pair(mode, 3, 4, 2, True, np.float64, 0)
    x = rng.standard_normal((2, 5, 3))
    y, _ = ours(x)
    dy = rng.standard_normal(y.shape)
    ours.backward(dy)
    once = {n: p.grad.copy() for n, p in ours.named_parameters()}
    ours.backward(dy)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-12, atol=1e-14)
    ours.zero_grad()
    assert all(not p.grad.any() for p in ours.parameters())


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(cell, rng):
    torch.manual_seed(0)
    B, D, H = 3, 4, 5
    theirs = getattr(torch.nn, cell)(D, H).double()
    ours = getattr(rnnlab, cell)(D, H, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((B, D))
    is_lstm = cell == "LSTMCell"
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H))) if is_lstm else rng.standard_normal((B, H))
    dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H))) if is_lstm else rng.standard_normal((B, H))
    new = ours(x, state)
    dx, dprev = ours.backward(dstate)

    x_t = torch.tensor(x, requires_grad=True)
    s_t = tuple(torch.tensor(s, requires_grad=True) for s in (state if is_lstm else (state,)))
    new_t = theirs(x_t, s_t if is_lstm else s_t[0])
    new_t = new_t if is_lstm else (new_t,)
    sum((n * torch.tensor(d)).sum() for n, d in zip(new_t, dstate if is_lstm else (dstate,))).backward()
    for a, b in zip(new if is_lstm else (new,), new_t):
        assert_close("new state", a, b.detach().numpy(), 1e-12)
    assert_close("dx", dx, x_t.grad.numpy(), 1e-12)
    for a, b in zip(dprev if is_lstm else (dprev,), s_t):
        assert_close("dstate", a, b.grad.numpy(), 1e-12)
    for n, p in theirs.named_parameters():
        assert_close(n, getattr(ours, n).grad, p.grad.numpy(), 1e-12)


def test_state_dict_round_trip_into_torch(rng):
    ours = rnnlab.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float32, rng=rng)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y, _ = ours(x)
    assert_close("y", y, theirs(torch.from_numpy(x))[0].detach().numpy(), 1e-5)
