"""Gradient-flow diagnostics: per-step norms and Jacobians equal PyTorch's autograd, the classifier
gets the known cases right, recording does not change training, and every plot is a real image."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from rnnlab import GRU, LSTM, RNN, Linear, diagnostics as dg, plots
from rnnlab.nn.losses import mse
from rnnlab.nn.stack import orthogonal
from rnnlab.optim import SGD
from rnnlab.train import optimize

KINDS = {"rnn": (RNN, torch.nn.RNNCell), "gru": (GRU, torch.nn.GRUCell), "lstm": (LSTM, torch.nn.LSTMCell)}


def torch_cells(layer, torch_cell):
    """One torch cell per layer of an rnnlab stack, with the same weights."""
    cells = []
    for l in range(layer.num_layers):
        D = layer.input_size if l == 0 else layer.hidden_size
        cell = torch_cell(D, layer.hidden_size, dtype=torch.float64)
        cell.load_state_dict({name: torch.from_numpy(getattr(layer, f"{name}_l{l}").data.copy())
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        cells.append(cell)
    return cells


def torch_unrolled(layer, torch_cell, x, h0, c0=None):
    """The stack unrolled step by step in torch; returns outputs (B, T, H) and every state tensor."""
    cells = torch_cells(layer, torch_cell)
    inputs = [torch.from_numpy(x[:, t]) for t in range(x.shape[1])]
    hs, cs = [], []
    for l, cell in enumerate(cells):
        h = torch.from_numpy(h0[l].copy())
        c = None if c0 is None else torch.from_numpy(c0[l].copy())
        layer_h, layer_c = [], []
        for x_t in inputs:
            if c is None:
                h = cell(x_t, h)
            else:
                h, c = cell(x_t, (h, c))
                c.retain_grad()
                layer_c.append(c)
            h.retain_grad()
            layer_h.append(h)
        hs.append(layer_h)
        cs.append(layer_c)
        inputs = layer_h
    return torch.stack(inputs, dim=1), hs, cs


@pytest.mark.parametrize("kind", list(KINDS))
def test_per_step_gradient_norms_equal_torch_autograd(kind):
    """||dL/dh_t|| (and ||dL/dc_t||) from the BPTT sweep = h_t.grad.norm() in PyTorch, every layer and step."""
    make, torch_cell = KINDS[kind]
    rng = np.random.default_rng(7)
    B, T, D, H, L = 3, 7, 4, 5, 2
    layer = make(D, H, num_layers=L, dtype=np.float64, rng=3)
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((L, B, H))
    c0 = rng.standard_normal((L, B, H)) if kind == "lstm" else None
    dy = rng.standard_normal((B, T, H))
    dh_n = rng.standard_normal((L, B, H))
    layer(x, (h0, c0) if kind == "lstm" else h0)
    layer.backward(dy, (dh_n, None) if kind == "lstm" else dh_n, record_flow=True)
    flow = dg.gradient_flow(layer)

    out, hs, cs = torch_unrolled(layer, torch_cell, x, h0, c0)
    loss = (out * torch.from_numpy(dy)).sum() + sum((hs[l][-1] * torch.from_numpy(dh_n[l])).sum() for l in range(L))
    loss.backward()
    theirs_h = np.array([[hs[l][t].grad.norm().item() for t in range(T)] for l in range(L)])
    np.testing.assert_allclose(flow.h, theirs_h, rtol=1e-10, err_msg=f"ours\n{flow.h}\ntheirs\n{theirs_h}")
    if kind == "lstm":
        theirs_c = np.array([[cs[l][t].grad.norm().item() for t in range(T)] for l in range(L)])
        np.testing.assert_allclose(flow.c, theirs_c, rtol=1e-10)
    else:
        assert flow.c is None
    assert flow.names == ("l0", "l1") and flow.h.shape == (L, T)


def test_bidirectional_flow_names_and_shape():
    layer = GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    y, _ = layer(np.random.default_rng(0).standard_normal((2, 5, 3)))
    layer.backward(np.ones_like(y), record_flow=True)
    flow = dg.gradient_flow(layer)
    assert flow.names == ("l0", "l0_reverse", "l1", "l1_reverse") and flow.h.shape == (4, 5)


def test_gradient_flow_needs_a_recorded_backward():
    layer = RNN(2, 3, rng=0)
    y, _ = layer(np.ones((1, 4, 2)))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="record_flow=True"):
        dg.gradient_flow(layer)
    with pytest.raises(TypeError, match="RNN/LSTM/GRU"):
        dg.gradient_flow(Linear(2, 3))


@pytest.mark.parametrize("kind", list(KINDS))
def test_jacobian_norms_equal_torch_autograd(kind):
    """||dh_T/dh_t||_2 (and the cell path ||dh_T/dc_t||_2) = the largest singular value of torch's Jacobian."""
    make, torch_cell = KINDS[kind]
    rng = np.random.default_rng(11)
    B, T, D, H, L = 2, 6, 3, 4, 2
    layer = make(D, H, num_layers=L, dtype=np.float64, rng=5)
    x = rng.standard_normal((B, T, D))
    grads_before = {n: p.grad.copy() for n, p in layer.named_parameters()}
    ours = dg.jacobian_norms(layer, x, max_examples=B, budget=200)  # a tiny budget: probes in groups
    assert all(np.array_equal(p.grad, grads_before[n]) for n, p in layer.named_parameters())
    assert layer.training

    cells = torch_cells(layer, torch_cell)
    inputs = [torch.from_numpy(x[:, t]) for t in range(T)]
    for l, cell in enumerate(cells):
        h, c = torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
        hs, cs = [], []
        for x_t in inputs:  # layer l alone: its input is a fixed tensor, so only its own recurrence counts
            if kind == "lstm":
                h, c = cell(x_t, (h, c))
                c.retain_grad()
                cs.append(c)
            else:
                h = cell(x_t, h)
            h.retain_grad()
            hs.append(h)
        rows_h, rows_c = np.zeros((T, B, H, H)), np.zeros((T, B, H, H))  # [t, b, j] = row j of dh_T/d._t
        for j in range(H):
            for s in hs + cs:
                s.grad = None
            hs[-1][:, j].sum().backward(retain_graph=True)  # sequences are independent: one row for all b
            for t in range(T):
                rows_h[t, :, j] = hs[t].grad.numpy()
                if kind == "lstm":
                    rows_c[t, :, j] = cs[t].grad.numpy()
        np.testing.assert_allclose(ours.h[l], np.linalg.norm(rows_h, ord=2, axis=(-2, -1)).mean(axis=1),
                                   rtol=1e-10, err_msg=f"layer {l}")
        if kind == "lstm":
            np.testing.assert_allclose(ours.c[l], np.linalg.norm(rows_c, ord=2, axis=(-2, -1)).mean(axis=1),
                                       rtol=1e-10, err_msg=f"layer {l}, cell path")
        inputs = [h_t.detach() for h_t in hs]
    assert ours.h[0, -1] == pytest.approx(1.0)  # dh_T/dh_T = I


def linear_rnn(scale, T=30, H=4, seed=0):
    """A relu RNN kept in its linear regime (positive weights, inputs and biases): h_t = W_ih x + b + W_hh h."""
    rng = np.random.default_rng(seed)
    layer = RNN(2, H, nonlinearity="relu", dtype=np.float64, rng=seed)
    layer.weight_ih_l0.data[...] = rng.uniform(0.1, 1, (H, 2))
    layer.bias_ih_l0.data[...] = 0.1
    layer.bias_hh_l0.data[...] = 0.0
    layer.weight_hh_l0.data[...] = scale * np.eye(H)
    x = rng.uniform(0, 1, (5, T, 2))
    return layer, x


def last_step_profile(layer, x):
    y, _ = layer(x)
    dy = np.zeros_like(y)
    dy[:, -1] = np.random.default_rng(1).standard_normal(dy[:, -1].shape)  # a loss read at the last step
    layer.backward(dy, record_flow=True)
    return dg.gradient_flow(layer).h[0]


def test_classifier_says_exploding_for_w_hh_1_5_identity():
    layer, x = linear_rnn(1.5)
    profile = last_step_profile(layer, x)
    np.testing.assert_allclose(profile[:-1] / profile[1:], 1.5, rtol=1e-12)  # exactly W_hh^T per step
    verdict = dg.classify(profile)
    assert verdict.kind == "exploding", verdict
    assert verdict.rate == pytest.approx(1.5, rel=1e-9)
    assert verdict.start_ratio == pytest.approx(1.5 ** 29, rel=1e-9)
    assert "1.5" in str(verdict)
    jac = dg.jacobian_norms(layer, x)
    np.testing.assert_allclose(jac.h[0], 1.5 ** np.arange(29, -1, -1), rtol=1e-12)


def test_classifier_says_vanishing_for_w_hh_0_5_identity():
    layer, x = linear_rnn(0.5)
    verdict = dg.classify(last_step_profile(layer, x))
    assert verdict.kind == "vanishing", verdict
    assert verdict.rate == pytest.approx(0.5, rel=1e-9)
    assert verdict.steps_to_fraction == 10  # 0.5**9 = 2.0e-3 > 1e-3 > 0.5**10 = 9.8e-4
    assert dg.classify(last_step_profile(layer, x), fraction=1e-4, within=9).kind == "healthy"


@pytest.mark.parametrize("data", ["gaussian", "uniform"])
def test_classifier_says_healthy_for_lstm_with_forget_bias_1(data):
    rng = np.random.default_rng(3)
    layer = LSTM(8, 32, init="orthogonal", rng=0)  # orthogonal W_hh, forget-gate bias 1
    H = 32
    assert np.all(layer.bias_ih_l0.data[H:2 * H] == 1.0)
    x = (rng.standard_normal((16, 60, 8)) if data == "gaussian" else rng.uniform(0, 1, (16, 60, 8))).astype(np.float32)
    verdict = dg.classify(last_step_profile(layer, x))
    assert verdict.kind == "healthy", verdict
    assert 0.8 < verdict.rate < 1.0


def test_classifier_reads_jumps_and_non_finite_values():
    calm = np.linspace(1, 2, 30)
    assert dg.classify(calm).kind == "healthy"
    history = [1.0, 1.2, 0.9, 1.1, 300.0]
    verdict = dg.classify(calm, grad_norms=history)
    assert verdict.kind == "exploding" and "step 5" in verdict.reason
    assert dg.classify(calm, grad_norms=[1.0, float("nan")]).kind == "exploding"
    assert dg.classify(np.array([np.inf, 1.0, 1.0])).kind == "exploding"
    assert dg.worst([dg.classify(calm), dg.classify(0.1 ** np.arange(30)[::-1])]) == "vanishing"


@pytest.mark.parametrize("bad", [[1.0], np.ones((2, 3)), [1.0, 0.0]])
def test_classifier_rejects_bad_profiles(bad):
    with pytest.raises(ValueError):
        dg.classify(bad)


def test_fit_rate_skips_underflow():
    profile = 0.5 ** np.arange(40.0)[::-1]
    profile[:5] = 0.0  # float32 underflow
    assert dg.fit_rate(profile) == pytest.approx(0.5)
    assert np.isnan(dg.fit_rate([0.0, 1.0]))


def test_weight_spectra_per_gate_block():
    rng = np.random.default_rng(0)
    rnn = RNN(3, 6, rng=0)
    rnn.weight_hh_l0.data[...] = 2.0 * orthogonal(rng, 6, np.float32)
    (w,) = dg.weight_spectra(rnn)
    assert (w.name, w.block) == ("weight_hh_l0", "all")
    assert w.spectral_radius == pytest.approx(2.0, rel=1e-5) and w.max_singular == pytest.approx(2.0, rel=1e-5)
    spectra = dg.weight_spectra(LSTM(3, 5, num_layers=2, init="orthogonal", rng=0))
    assert [(w.name, w.block) for w in spectra[:5]] == [("weight_hh_l0", b) for b in ("all", "i", "f", "g", "o")]
    assert spectra[0].spectral_radius is None and len(spectra) == 10
    assert all(w.max_singular == pytest.approx(1.0, rel=1e-5) for w in spectra if w.block != "all")
    assert "sigma_max" in str(spectra[1])
    assert [w.block for w in dg.weight_spectra(GRU(3, 4, rng=0))] == ["all", "r", "z", "n"]


def test_gate_trace_matches_the_layer():
    rng = np.random.default_rng(0)
    layer = LSTM(3, 4, num_layers=2, dtype=np.float64, rng=1)
    x = rng.standard_normal((2, 9, 3))
    y, (h_n, c_n) = layer(x)
    trace = dg.gate_trace(layer, x, layer_index=1)
    np.testing.assert_allclose(trace["h"].transpose(1, 0, 2), y, rtol=1e-12)
    np.testing.assert_allclose(trace["c"][-1], c_n[1], rtol=1e-12)
    for gate in "ifo":
        assert trace[gate].shape == (9, 2, 4) and np.all((trace[gate] > 0) & (trace[gate] < 1))
    gru = GRU(3, 4, rng=0, dtype=np.float64)  # any cell: the GRU's gates r, z, n and its h
    y, _ = gru(x)
    trace = dg.gate_trace(gru, x)
    assert set(trace) == {"r", "z", "n", "h_n", "h"}
    np.testing.assert_allclose(trace["h"].transpose(1, 0, 2), y, rtol=1e-12)
    with pytest.raises(ValueError, match="layer_index"):
        dg.gate_trace(layer, x, layer_index=2)


def _regression_setup(record):
    """A tiny tanh RNN regression trained by SGD, optionally with a FlowRecorder as the callback."""
    rng = np.random.default_rng(0)
    rnn, head = RNN(2, 8, rng=rng), Linear(8, 1, rng=rng)
    params = rnn.parameters() + head.parameters()
    data = np.random.default_rng(1)
    probe = data.standard_normal((4, 12, 2)).astype(np.float32)

    def loss_and_backward(step):
        x = data.standard_normal((4, 12, 2)).astype(np.float32)
        h, _ = rnn(x)
        loss, d = mse(head(h[:, -1]), x[:, :3, 0].sum(1, keepdims=True))
        dh = np.zeros_like(h)
        dh[:, -1] = head.backward(d)
        rnn.backward(dh)
        return loss

    def measure():
        with dg.preserved_grads(params):
            y, _ = rnn(probe)
            dy = np.zeros_like(y)
            dy[:, -1] = 1.0
            rnn.backward(dy, record_flow=True)
        return dg.gradient_flow(rnn)

    recorder = dg.FlowRecorder(measure, every=5) if record else None
    history = optimize(params, loss_and_backward, SGD(params, lr=0.05), 20, clip=1.0, callback=recorder)
    return history, recorder, params


def test_recording_during_training_leaves_training_unchanged():
    plain, _, params_plain = _regression_setup(record=False)
    recorded, recorder, params_recorded = _regression_setup(record=True)
    assert plain == recorded
    assert all(np.array_equal(a.data, b.data) for a, b in zip(params_plain, params_recorded))
    assert recorder.steps == [5, 10, 15, 20]
    assert recorder.matrix().shape == (4, 12)
    assert recorder({"step": 21}) is None and recorder.steps[-1] == 20  # not a recording step
    with pytest.raises(ValueError):
        dg.FlowRecorder(lambda: None, every=0)


def test_preserved_grads_puts_gradients_back():
    layer = RNN(2, 3, rng=0)
    for p in layer.parameters():
        p.grad[...] = 7.0
    with dg.preserved_grads(layer.parameters()):
        layer.zero_grad()
    assert all(np.all(p.grad == 7.0) for p in layer.parameters())


# -- plots ---------------------------------------------------------------------------------------
def assert_image(paths):
    for path in paths:
        assert path.stat().st_size > 5_000, path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            pixels = imread(path)
            assert pixels.ndim == 3 and pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max() > 0.01
        else:
            assert ET.parse(path).getroot().tag.endswith("svg")


def test_every_plot_is_a_real_image(tmp_path):
    rng = np.random.default_rng(0)
    decay = 0.7 ** np.arange(50.0)[::-1]
    panels = {"RNN": {"h": decay}, "GRU": {"h": decay ** 0.5}, "LSTM": {"h": decay ** 0.2, "c": decay ** 0.1}}
    decay32 = decay.astype(np.float32)
    decay32[:3] = 0.0  # underflow must not break the log axis
    panels["RNN"]["h"] = decay32
    rows = [{"step": s, "loss": 1 / s, "grad_norm": 10.0 / s} for s in range(1, 60)]
    blown = [{"step": s, "loss": 10.0 ** s, "grad_norm": 10.0 ** s} for s in range(1, 9)]
    blown.append({"step": 9, "loss": float("inf"), "grad_norm": float("nan")})
    trace = {k: rng.uniform(0, 1, (12, 8)) for k in "ifo"}
    trace["c"] = rng.standard_normal((12, 8))
    figures = {
        "flow": plots.plot_gradient_flow(panels, title="flow", floor=1e-3),
        "heatmap": plots.plot_flow_heatmap([0, 10, 20], np.stack([decay, decay ** 0.5, decay ** 0.2])),
        "norms": plots.plot_grad_norms({"clipped": rows, "not": blown}, clip=1.0),
        "loss": plots.plot_loss_curves({"clipped": rows, "not": blown}, baseline=0.1, cap=1e3),
        "clipping": plots.plot_clipping({"with": rows, "without": blown}, 1.0, title="t", xlog=True, loss_cap=1e2),
        "gates": plots.plot_gates("hello world\n", trace, "ifoc"),
    }
    formats = {"flow": ("png", "svg"), "norms": ("svg",), "gates": ("svg",)}  # PNG and SVG, not all twice
    for name, fig in figures.items():
        assert_image(plots.save_figure(fig, tmp_path / "sub" / name, formats.get(name, ("png",))))
    assert sorted(p.name for p in (tmp_path / "sub").iterdir())[:3] == ["clipping.png", "flow.png", "flow.svg"]


def test_plot_arguments_are_checked():
    with pytest.raises(ValueError):
        plots.plot_gradient_flow({})
    with pytest.raises(ValueError):
        plots.plot_flow_heatmap([0, 1], np.ones((3, 5)))
    with pytest.raises(ValueError, match="len\\(text\\)"):
        plots.plot_gates("abc", {k: np.ones((4, 2)) for k in "ifoc"})
