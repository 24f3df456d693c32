"""rnnlab explore: the page's numbers against rnnlab's own forward and backward passes."""
import numpy as np
import pytest

from conftest import assert_rel
from explore_helpers import CODE, tiny_checkpoint
from rnnlab.cli import main
from rnnlab.explore import codec, connectivity_rows, explore_page, page_data, read_data
from rnnlab.explore.server import App, LiveModel
from rnnlab.explore.trace import Trace, connectivity, default_positions, read
from rnnlab.explore.units import code_features, correlations, find_units, prose_features, text_features
from rnnlab.nn import driver
from rnnlab.nn.losses import log_softmax

REL = 5e-4  # 4 significant digits: |stored - x| <= half a unit in the 4th digit <= 5e-4 |x|


def four_digits(name, stored, exact):
    stored, exact = np.asarray(stored, np.float64), np.asarray(exact, np.float64)
    assert stored.shape == exact.shape, f"{name}: shape {stored.shape} != {exact.shape}"
    err = np.abs(stored - exact) / np.maximum(np.abs(exact), 1e-300)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() <= REL, f"{name}: relative error {err.max():.2e} at {worst}: stored {stored[worst]!r}, exact {exact[worst]!r}"


# -- the packed arrays ------------------------------------------------------------------------------
def test_codec_keeps_four_significant_digits(rng):
    x = rng.standard_normal((37, 11)) * 10.0 ** rng.integers(-30, 30, (37, 11))
    x[0, :3] = [0.0, 9.99951, -0.000999996]  # zero, and values that round up to the next power of ten
    packed = codec.pack(x)
    assert packed["shape"] == [37, 11] and set(packed["data"]).isdisjoint('"\\<>&')
    back = codec.unpack(packed)
    nonzero = x != 0
    four_digits("unpack(pack(x))", back[nonzero], x[nonzero])
    assert back[0, 0] == 0 and back[0, 1] == 10.0 and back[0, 2] == -0.001
    np.testing.assert_array_equal(back, codec.round_sig(x))
    np.testing.assert_array_equal(codec.unpack(codec.pack(np.zeros(0))), np.zeros(0))
    for n in range(10):
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert codec.b85decode(codec.b85encode(data)) == data
    with pytest.raises(ValueError, match="non-finite"):
        codec.pack([1.0, np.nan])


# -- states, gates and predictions ------------------------------------------------------------------
@pytest.fixture(params=["lstm", "gru"])
def page(request, tmp_path):
    path = tmp_path / f"{request.param}.safetensors"
    model, vocab = tiny_checkpoint(path, request.param)
    text_file = tmp_path / "text.py"
    text_file.write_text(CODE)
    html, data, _ = explore_page(path, text_file=str(text_file), window=15, max_positions=30, out=None, log=None)
    return model, vocab, read_data(html), request.param


def test_embedded_states_and_topk_equal_the_forward_pass(page):
    model, vocab, data, cell = page
    text = data["text"]
    assert text == CODE and data["model"]["cell"] == cell and data["model"]["step"] == 7
    ids = vocab.encode(text)
    emb = model.embedding(ids[None])
    y, _ = model.rnn(emb)
    top = codec.unpack(data["layers"][-1]["h"])  # (T, H)
    four_digits("top layer h", top, y[0])
    for t in (0, 9, len(text) // 2, len(text) - 1):  # every layer's state after text[t]: the final state of a prefix
        _, state = model.rnn(emb[:, :t + 1])
        h_n, c_n = state if cell == "lstm" else (state, None)
        for layer in range(2):
            four_digits(f"h[{layer}][{t}]", codec.unpack(data["layers"][layer]["h"])[t], h_n[layer, 0])
            if cell == "lstm":
                four_digits(f"c[{layer}][{t}]", codec.unpack(data["layers"][layer]["c"])[t], c_n[layer, 0])
    assert ("c" in data["layers"][0]) == (cell == "lstm")
    logits = model(ids[None])
    p = np.exp(log_softmax(logits[0]))  # (T, V)
    for t, row in enumerate(data["topk"]):
        best = np.argsort(-p[t], kind="stable")[:5]
        assert [c for c, _ in row] == [vocab.chars[j] for j in best]
        four_digits(f"topk[{t}]", [q for _, q in row], p[t, best])


def test_embedded_gates_equal_the_reference_step(page):
    model, vocab, data, cell = page
    emb = model.embedding(vocab.encode(data["text"])[None])  # (1, T, E)
    definition = model.rnn.kind
    assert data["model"]["gates"] == (["i", "f", "g", "o"] if cell == "lstm" else ["r", "z", "n"])
    inputs = emb.transpose(1, 0, 2)  # (T, 1, E)
    for layer in range(2):
        params = tuple(getattr(model.rnn, f"{n}_l{layer}").data for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        state = tuple(np.zeros((1, model.rnn.hidden_size)) for _ in definition.state_names)
        ys, (caches, _) = driver.reference_forward(definition, params, inputs, state)[::2]  # one cell step at a time
        saved = {name: np.array([cache[3][definition.saved.index(name)][0] for cache in caches])  # (T, H)
                 for name in data["model"]["gates"]}
        gates = data["layers"][layer]["gates"]
        assert gates["units"], "the listed units' gates are embedded"
        for g, values in saved.items():
            four_digits(f"gate {g} layer {layer}", codec.unpack(gates[g]), values[:, gates["units"]])
        inputs = ys


# -- connectivity -----------------------------------------------------------------------------------
def log_p_next(model, emb, ids, t):
    """log p(text[t+1]) after reading the embedded text[:t+1] from zeros (the quantity connectivity differentiates)."""
    y, _ = model.rnn(emb[None, :t + 1])
    return log_softmax(model.head(y[0, -1]))[ids[t + 1]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_connectivity_equals_finite_differences(tmp_path, cell):
    model, vocab = tiny_checkpoint(tmp_path / "m.safetensors", cell)
    trace = read(model, vocab, CODE)
    ids = trace.ids
    positions, window = [4, 37, len(CODE) - 2], 15  # 4: the window starts at 0; the others at a stored state
    rows = connectivity(model, trace, positions, window)
    emb = model.embedding.weight.data[ids].copy()  # (T, E) float64
    eps = 1e-6
    for t, row in zip(positions, rows):
        assert len(row) == min(window, t + 1)
        for back in sorted({0, 1, 5, len(row) - 1} & set(range(len(row)))):
            tp = t - back
            grad = np.empty(emb.shape[1])
            for e in range(emb.shape[1]):
                old = emb[tp, e]
                emb[tp, e] = old + eps
                plus = log_p_next(model, emb, ids, t)
                emb[tp, e] = old - eps
                minus = log_p_next(model, emb, ids, t)
                emb[tp, e] = old
                grad[e] = (plus - minus) / (2 * eps)
            assert_rel(f"{cell} ||d log p(x[{t + 1}]) / d e[{tp}]||", np.array([row[len(row) - 1 - back]]),
                       np.array([np.linalg.norm(grad)]), tol=1e-6)


def test_embedded_connectivity_is_the_computed_one(page):
    model, vocab, data, _ = page
    conn = data["connectivity"]
    assert conn["positions"] == default_positions(len(data["text"]), 30) and conn["window"] == 15
    exact = connectivity(model, read(model, vocab, data["text"]), conn["positions"], 15)
    for t, stored, row in zip(conn["positions"], connectivity_rows(conn), exact):
        four_digits(f"connectivity at {t}", stored, row)


def test_default_positions():
    assert default_positions(1) == [] and default_positions(2) == [0]
    assert default_positions(11, 100) == list(range(10))
    p = default_positions(2000, 250)
    assert len(p) <= 251 and p[-1] == 1998 and p[:2] == [7, 15] and p == sorted(set(p))


# -- features and the unit search -----------------------------------------------------------------
def test_code_features():
    text = 'def f(a, "x("):\n    return [1, \'b\\\'c\', """doc\n  ("""]  # (\n'
    f = code_features(text)
    digits = lambda name: "".join(str(int(v))[-1] for v in f[name])
    assert digits("inside string literal") == "00000000011110000000000000000001111110011111111111110000000"
    assert digits("bracket depth") == "00000111111110000000000000011111111111111111111111110000000"
    assert digits("indentation") == "00000000000000001234444444444444444444444444401222222222220"
    assert digits("position in line")[:16] == "1234567890123450"


def test_prose_features_and_detection():
    text = 'He said "it\'s fine".\nNo.'
    f = prose_features(text)
    #                                                      He said "it's fine".\nNo.
    assert "".join(str(int(v)) for v in f["inside quotes"]) == "000000001111111111100000"
    assert "".join(str(int(v)) for v in f["inside word"]) == "110111100111101111000110"
    assert f["position in line"].tolist()[-4:] == [0, 1, 2, 3]
    assert list(text_features(CODE)) == ["inside string literal", "bracket depth", "indentation", "position in line"]
    assert list(text_features("It was a dark and stormy night; the rain fell.\n" * 3)) == [
        "inside quotes", "position in line", "inside word"]
    with pytest.raises(ValueError, match="features must be one of"):
        text_features(CODE, "poetry")


def test_unit_search_finds_a_planted_unit(rng):
    h = rng.standard_normal((2, 50, 6))
    feature = (np.arange(50) % 7).astype(float)
    h[1, :, 4] = 0.5 * feature - 1  # layer 1 unit 4 follows the feature exactly
    h[0, :, 2] = -feature + 0.01 * rng.standard_normal(50)  # layer 0 unit 2 against it
    trace = Trace("x" * 50, np.zeros(50, int), {"h": h}, {}, np.zeros((50, 3)))
    found = find_units(trace, {"planted": feature}, per_feature=3)
    assert [(u["layer"], u["unit"], u["state"]) for u in found[:2]] == [(1, 4, "h"), (0, 2, "h")]
    assert found[0]["correlation"] == pytest.approx(1.0) and found[1]["correlation"] < -0.99
    np.testing.assert_allclose(correlations(h[1], feature), [np.corrcoef(h[1, :, u], feature)[0, 1] for u in range(6)])
    assert correlations(np.ones((5, 2)), np.arange(5.0)).tolist() == [0.0, 0.0]  # constant: no correlation


# -- the command line and the live endpoint ----------------------------------------------------------
def test_cli_writes_the_page(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    tiny_checkpoint(tmp_path / "b.safetensors", "gru", seed=2)
    (tmp_path / "t.py").write_text(CODE)
    out = tmp_path / "page.html"
    code = main(["explore", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--text",
                 str(tmp_path / "t.py"), "--chars", "60", "--window", "10", "--out", str(out)])
    assert code == 0 and "60 characters" in capsys.readouterr().out
    html = out.read_text()
    data = read_data(html)
    assert data["text"] == CODE[:60] and data["live"] is False
    assert [c["model"]["cell"] for c in data["compare"]] == ["gru"]
    assert len(connectivity_rows(data["compare"][0]["connectivity"])) == len(data["connectivity"]["positions"])
    assert "http" not in html.lower().replace("http://127.0.0.1", ""), "the page must not load anything"


@pytest.mark.parametrize("args, message", [
    (["explore", "{tmp}/missing"], "no such file"),
    (["explore"], "give a run directory or checkpoint"),
    (["explore", "{tmp}/a.safetensors", "--neurone"], "--neurone trains its own two models"),
    (["explore", "{tmp}/a.safetensors", "--prime", "\u00e9t\u00e9"], "not in the vocabulary"),
    (["explore", "{tmp}/a.safetensors", "--chars", "1"], "--chars must be an integer >= 2"),
    (["explore", "{tmp}/a.safetensors", "--window", "0"], "--window must be an integer >= 1; got 0"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_live_endpoint_answers_with_the_forward_pass(tmp_path):
    model, vocab = tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    app = App("<html></html>", [LiveModel("a", model, vocab)])
    status, answer = app.live({"text": ["def g"], "layer": ["1"], "state": ["c"], "unit": ["3"]})
    assert status == 200 and answer["text"] == "def g"
    ids = vocab.encode("def g")
    logits = model(ids[None])
    h_n, c_n = model.final_state
    p = np.exp(log_softmax(logits[0, -1]))
    best = np.argsort(-p)[:5]
    last = answer["models"][0]["topk"][-1]
    assert [c for c, _ in last] == [vocab.chars[j] for j in best]
    four_digits("live p", [q for _, q in last], p[best])
    four_digits("live c", answer["models"][0]["values"][-1], c_n[1, 0, 3])
    assert set(answer["models"][0]["gates"]) == {"i", "f", "g", "o"}
    assert app.live({"text": [""]})[0] == 400
    assert app.live({"text": ["x"], "unit": ["two"]})[0] == 400
    assert "not in the vocabulary" in app.live({"text": ["\u00e9"]})[1]["error"]


def test_all_gates_and_refusals(tmp_path):
    model, vocab = tiny_checkpoint(tmp_path / "a.safetensors", "gru")
    data = page_data(model, vocab, CODE[:40], window=5, all_gates=True)
    for layer in data["layers"]:
        assert layer["gates"]["units"] == list(range(model.rnn.hidden_size))
        assert codec.unpack(layer["gates"]["z"]).shape == (40, model.rnn.hidden_size)
    assert set(data["layers"][0]) == {"h", "gates"}  # a GRU has no cell state
    with pytest.raises(ValueError, match="empty"):
        read(model, vocab, "")
    with pytest.raises(ValueError, match="must lie in 0..38"):
        connectivity(model, read(model, vocab, CODE[:40]), [39], 5)  # the last character has no next one
