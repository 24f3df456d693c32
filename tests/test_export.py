"""Exported models, checked by running them: ONNX graphs in onnxruntime, weight files in torch.nn,
and torch.nn weights back in rnnlab (outputs, final states, gradients, generated text)."""
import ast
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_close
from rnnlab.data.text import Vocab
from rnnlab.export import ExportError, from_torch, onnx_model, to_onnx, to_torch
from rnnlab.io import CheckpointError, save_checkpoint
from rnnlab.models import CharRNN, CharRNNConfig, make_recurrent
from rnnlab.nn.cells import CellDefinition, Param, cell_names, get_cell, standard_parameters
from rnnlab.nn.functional import relu, sigmoid, tanh
from rnnlab.nn.stack import Recurrent
from rnnlab.sample import generate

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["lstm", "gru", "rnn", "rnn_relu"]  # rnn: tanh
VOCAB = Vocab.from_text("\nabcdefgh ,.")  # V = 12


def randomize(model, rng, scale=0.5):
    """Every parameter random (biases too), so no term of the graph can hide behind a zero."""
    for p in model.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.data.shape)
    return model


def char_model(cell, layers, dtype="float32", seed=0):
    config = CharRNNConfig(vocab_size=len(VOCAB), cell=cell, hidden_size=6,
                           num_layers=layers, embedding_dim=4, dtype=dtype)
    return randomize(CharRNN(config, rng=seed), np.random.default_rng(seed)).eval()


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def forward_with_state(model, x, state):
    """(output, final state) from a bare layer or a CharRNN (which keeps its state in final_state)."""
    if isinstance(model, CharRNN):
        return model(x, state), model.final_state
    return model(x, state)


def stream_both(model, sess, chunks, state0, first_input):
    """Feed the chunks one after another to rnnlab and to onnxruntime, each carrying its own state;
    assert the outputs and final states agree after every chunk."""
    ours = state0 if len(state0) == 2 else state0[0]
    theirs = dict(zip(("h0", "c0"), state0))
    for i, chunk in enumerate(chunks):
        y, ours = forward_with_state(model, chunk, ours)
        y_ort, *finals = sess.run(None, {first_input: chunk, **theirs})
        assert_close(f"chunk {i} output", y_ort, y, 1e-5)
        for name, a, b in zip("hc", finals, as_tuple(ours)):
            assert_close(f"chunk {i} final {name}", a, b, 1e-5)
        theirs = dict(zip(("h0", "c0"), finals))


# -- ONNX --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_char_model_streams_like_rnnlab(cell, layers):
    seed = zlib.crc32(f"char-{cell}-{layers}".encode())
    rng = np.random.default_rng(seed)
    model = char_model(cell, layers, seed=seed)
    proto = onnx_model(model, vocab=VOCAB)
    assert {n.op_type for n in proto.graph.node} >= {"Gather", {"lstm": "LSTM", "gru": "GRU"}.get(cell, "RNN")}
    B, n_states = 3, 2 if cell == "lstm" else 1
    state0 = tuple(rng.standard_normal((layers, B, 6)).astype(np.float32) for _ in range(n_states))
    chunks = [rng.integers(0, len(VOCAB), (B, T)) for T in (5, 1, 7)]
    stream_both(model, session(proto), chunks, state0, "ids")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_layer_streams_like_rnnlab(cell, layers, bidirectional):
    """The char model is unidirectional; a bidirectional stack is exported as the layer alone."""
    seed = zlib.crc32(f"layer-{cell}-{layers}-{bidirectional}".encode())
    rng = np.random.default_rng(seed)
    layer = randomize(make_recurrent(cell, 3, 5, num_layers=layers, bidirectional=bidirectional, rng=seed), rng)
    B, K, n_states = 2, 2 if bidirectional else 1, 2 if cell == "lstm" else 1
    state0 = tuple(rng.standard_normal((layers * K, B, 5)).astype(np.float32) for _ in range(n_states))
    chunks = [rng.standard_normal((B, T, 3)).astype(np.float32) for T in (4, 1, 6)]
    stream_both(layer, session(onnx_model(layer)), chunks, state0, "x")


def test_onnx_layer_without_biases():
    rng = np.random.default_rng(3)
    layer = randomize(make_recurrent("gru", 3, 4, bias=False, rng=0, kernel="reference"), rng)  # the plain oracle
    proto = onnx_model(layer)
    assert not any(t.name.startswith("B_") for t in proto.graph.initializer)
    stream_both(layer, session(proto), [rng.standard_normal((2, 5, 3)).astype(np.float32)],
                (np.zeros((1, 2, 4), np.float32),), "x")


def test_onnx_float64_model():
    """A float64 model exports as float32 by default (what onnxruntime runs) and matches to 1e-5;
    as float64 it is valid ONNX (checked), though onnxruntime's CPU kernels run float only."""
    model = char_model("lstm", 2, dtype="float64", seed=5)
    rng = np.random.default_rng(5)
    state0 = tuple(rng.standard_normal((2, 2, 6)) for _ in range(2))
    chunks = [rng.integers(0, len(VOCAB), (2, T)) for T in (3, 4, 2)]
    proto = onnx_model(model)
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in proto.graph.initializer if t.name != "split_per_layer"
               and not t.name.startswith("shape_"))
    stream_both(model, session(proto), chunks, tuple(s.astype(np.float32) for s in state0), "ids")
    double = onnx_model(model, dtype="float64")  # passed onnx.checker inside
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in double.graph.initializer}
    assert weights["W_l0"].dtype == np.float64
    np.testing.assert_array_equal(weights["embedding.weight"], model.embedding.weight.data)


def test_onnx_graph_checks_and_metadata(tmp_path):
    model = char_model("gru", 2)
    path = to_onnx(model, tmp_path / "m.onnx", vocab=VOCAB)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import] == [17]
    assert [i.name for i in proto.graph.input] == ["ids", "h0"] and [o.name for o in proto.graph.output] == ["logits", "hn"]
    doc = json.loads({p.key: p.value for p in proto.metadata_props}["rnnlab"])
    assert doc["vocab"] == VOCAB.chars and doc["model_config"]["num_layers"] == 2
    gru = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert len(gru) == 2 and all(onnx.helper.get_attribute_value(a) == 1 for n in gru for a in n.attribute
                                 if a.name == "linear_before_reset")


@pytest.mark.parametrize("opset", [13, 21])
def test_other_opsets_run_too(opset):
    layer = randomize(make_recurrent("lstm", 3, 4, num_layers=2, bidirectional=True, rng=0), np.random.default_rng(1))
    proto = onnx_model(layer, opset=opset)
    assert proto.opset_import[0].version == opset
    x, zeros = np.ones((2, 3, 3), np.float32), np.zeros((4, 2, 4), np.float32)
    stream_both(layer, session(proto), [x], (zeros, zeros), "x")
    with pytest.raises(ValueError, match="opset must be an integer in 13.."):
        onnx_model(layer, opset=12)


# -- cells with no ONNX operator: a Scan over the traced step ---------------------------------------
def _forward_noforget(a_x, a_h, state):  # an LSTM without forget gate: c' = c + i * g
    (x_i, x_g, x_o), (h_i, h_g, h_o), (_, c) = a_x, a_h, state
    i, g, o = sigmoid(x_i + h_i), tanh(x_g + h_g), sigmoid(x_o + h_o)
    c_new = c + i * g
    return (o * tanh(c_new), c_new), ()


def _forward_ind(a_x, a_h, state):  # IndRNN: h' = relu(W x + b + u * h), u a vector
    return (relu(a_x[0] + a_h[0]),), ()


def _forward_sin(a_x, a_h, state):
    return (np.sin(a_x[0] + a_h[0]),), ()


def _forward_only(*args):
    raise NotImplementedError("these test cells are only run forward")


TEST_CELLS = {  # names of our own, so they never collide with cells the library registers
    "test_noforget": CellDefinition("test_noforget", gates=("i", "g", "o"), state_names=("h", "c"), saved=(),
                                    forward=_forward_noforget, backward=_forward_only),
    "test_ind": CellDefinition("test_ind", gates=("a",), state_names=("h",), saved=(), forward=_forward_ind,
                               backward=_forward_only, recurrence="diagonal"),
}
LIBRARY_CELLS = [name for name in ("lstm_noforget", "indrnn") if name in cell_names()]


def custom_layer(cell, layers, bidirectional, seed):
    definition = TEST_CELLS.get(cell) or get_cell(cell)
    layer = Recurrent(definition, 3, 5, num_layers=layers, bidirectional=bidirectional, rng=seed, kernel="numpy")
    return randomize(layer, np.random.default_rng(seed))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", list(TEST_CELLS) + LIBRARY_CELLS)
def test_cell_without_onnx_operator_exports_as_scan(cell, layers, bidirectional):
    seed = zlib.crc32(f"scan-{cell}-{layers}-{bidirectional}".encode())
    rng = np.random.default_rng(seed)
    layer = custom_layer(cell, layers, bidirectional, seed)
    proto = onnx_model(layer)
    assert "Scan" in {n.op_type for n in proto.graph.node}
    B, K = 2, 2 if bidirectional else 1
    state0 = tuple(rng.standard_normal((layers * K, B, 5)).astype(np.float32) for _ in layer.kind.state_names)
    chunks = [rng.standard_normal((B, T, 3)).astype(np.float32) for T in (4, 1, 6)]
    stream_both(layer, session(proto), chunks, state0, "x")


def test_char_model_of_a_custom_cell_exports_and_samples(tmp_path):
    """A char model whose recurrence is a cell of our own, through onnx_generate: the same text."""
    from rnnlab.onnx_generate import generate as onnx_generate

    model = char_model("lstm", 2, seed=8)  # embedding_dim 4, hidden 6
    model.rnn = randomize(Recurrent(TEST_CELLS["test_noforget"], 4, 6, num_layers=2, rng=0, kernel="numpy"),
                          np.random.default_rng(8))
    model.eval()
    path = to_onnx(model, tmp_path / "m.onnx", vocab=VOCAB)
    rng = np.random.default_rng(8)
    state0 = tuple(rng.standard_normal((2, 3, 6)).astype(np.float32) for _ in range(2))
    stream_both(model, session(onnx.load(str(path))), [rng.integers(0, len(VOCAB), (3, T)) for T in (2, 1, 5)],
                state0, "ids")
    assert onnx_generate(path, "ab", 60, 1.0, None, 5) == generate(model, VOCAB, "ab", 60, 1.0, rng=5)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_scan_path_equals_the_onnx_operators(cell, layers):
    """The built-in cells traced into a Scan give what ONNX's own LSTM/GRU/RNN give (and rnnlab)."""
    seed = zlib.crc32(f"scan-builtin-{cell}-{layers}".encode())
    rng = np.random.default_rng(seed)
    model = char_model(cell, layers, seed=seed)
    scan, native = session(onnx_model(model, use_scan=True)), session(onnx_model(model))
    ids = rng.integers(0, len(VOCAB), (2, 6))
    feeds = {"ids": ids, **{f"{s}0": rng.standard_normal((layers, 2, 6)).astype(np.float32)
                            for s in model.rnn.kind.state_names}}
    for name, a, b in zip(["logits", "hn", "cn"], scan.run(None, feeds), native.run(None, feeds)):
        assert_close(name, a, b, 1e-5)
    stream_both(model, scan, [ids], tuple(feeds[f"{s}0"] for s in model.rnn.kind.state_names), "ids")


def test_scan_path_in_float64():
    layer = custom_layer("test_noforget", 2, True, 4)
    proto = onnx_model(layer, dtype="float64")
    try:
        sess = session(proto)
    except Exception as error:  # an onnxruntime build without double kernels for some op
        pytest.skip(f"onnxruntime cannot run this float64 graph: {error}")
    layer64 = Recurrent(TEST_CELLS["test_noforget"], 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                        kernel="numpy")
    layer64.load_state_dict(layer.state_dict())
    rng = np.random.default_rng(4)
    x, state0 = rng.standard_normal((2, 5, 3)), tuple(rng.standard_normal((4, 2, 5)) for _ in range(2))
    y, state = layer64(x, state0)
    y_ort, *finals = sess.run(None, {"x": x, "h0": state0[0], "c0": state0[1]})
    assert y_ort.dtype == np.float64
    assert_close("y", y_ort, y, 1e-12)
    for name, a, b in zip("hc", finals, state):
        assert_close(f"final {name}", a, b, 1e-12)


@pytest.mark.parametrize("definition, words", [
    (CellDefinition("test_sin", gates=("a",), state_names=("h",), saved=(), forward=_forward_sin,
                    backward=_forward_only), "numpy.sin has no translation to ONNX"),
    (CellDefinition("test_peephole", gates=("a",), state_names=("h",), saved=(), forward=_forward_ind,
                    backward=_forward_only, parameters=standard_parameters() + (
                        Param("peephole", lambda D, H, G: (H,), "zeros"),)), "is not one the ONNX export can trace"),
])
def test_cell_the_export_cannot_trace_fails_clearly_and_writes_nothing(tmp_path, capsys, definition, words):
    model = char_model("lstm", 1)
    model.rnn = Recurrent(definition, 4, 6, rng=0, kernel="numpy")
    with pytest.raises(ExportError) as info:
        to_onnx(model, tmp_path / "m.onnx", vocab=VOCAB)
    message = str(info.value)
    assert f"the {definition.name!r} cell has no ONNX operator" in message and words in message, message
    with pytest.raises(ExportError, match=f"the '{definition.name}' cell has no torch.nn module"):
        to_torch(model, tmp_path / "m.safetensors", vocab=VOCAB)
    assert list(tmp_path.iterdir()) == []


# -- PyTorch files ------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")


def docs_snippet() -> str:
    """The Python block of docs/interop.md that rebuilds the model in PyTorch."""
    text = (ROOT / "docs" / "interop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return next(b for b in blocks if "load_state_dict" in b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_torch_file_rebuilds_in_torch_with_the_docs_lines(tmp_path, cell, layers, dtype):
    seed = zlib.crc32(f"torch-{cell}-{layers}-{dtype}".encode())
    model = char_model(cell, layers, dtype=dtype, seed=seed)
    path = to_torch(model, tmp_path / "model.safetensors", vocab=VOCAB)
    scope = {}
    code = docs_snippet().replace('"model.safetensors"', repr(str(path)))
    exec(compile(code, "docs/interop.md", "exec"), scope)  # noqa: S102 - our own documentation
    torch_model = scope["model"]
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(VOCAB), (3, 8))
    state0 = tuple(rng.standard_normal((layers, 3, 6)).astype(dtype) for _ in range(2 if cell == "lstm" else 1))
    logits, state = forward_with_state(model, ids, state0 if len(state0) == 2 else state0[0])
    with torch.no_grad():
        t_state = tuple(torch.from_numpy(s) for s in state0)
        h, t_final = torch_model.rnn(torch_model.embedding(torch.from_numpy(ids)), t_state if len(t_state) == 2
                                     else t_state[0])
        t_logits = torch_model.head(h)
    assert t_logits.dtype == getattr(torch, dtype)
    assert_close("logits", t_logits.numpy(), logits, 1e-6)
    for name, a, b in zip("hc", as_tuple(t_final), as_tuple(state)):
        assert_close(f"final {name}", a.numpy(), b, 1e-6)
    assert scope["vocab"] == VOCAB.chars


class TorchCharModel(torch.nn.Module):
    """A char model as a PyTorch user writes it, with the names of PyTorch's word_language_model."""

    def __init__(self, rnn_class, V, E, H, L, **kwargs):
        super().__init__()
        self.encoder = torch.nn.Embedding(V, E)
        self.rnn = getattr(torch.nn, rnn_class)(E, H, L, batch_first=True, **kwargs)
        self.decoder = torch.nn.Linear(H, V)

    def forward(self, ids, state=None):
        h, state = self.rnn(self.encoder(ids), state)
        return self.decoder(h), state


def torch_generate(model, vocab, prime, length, temperature, seed):
    """rnnlab.sample.generate's procedure, with torch computing the logits."""
    from rnnlab.sample import next_char_distribution

    rng = np.random.default_rng(seed)
    out = []
    with torch.no_grad():
        logits, state = model(torch.from_numpy(vocab.encode(prime).astype(np.int64))[None])
        for _ in range(length):
            p = next_char_distribution(logits[0, -1].numpy(), temperature)
            next_id = int(rng.choice(len(p), p=p))
            out.append(vocab.chars[next_id])
            logits, state = model(torch.tensor([[next_id]]), state)
    return prime + "".join(out)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("cell", CELLS)
def test_torch_char_model_loads_into_rnnlab(tmp_path, cell, dtype, tol):
    """torch.nn -> safetensors.torch.save_file -> rnnlab: same logits, states, every gradient, same text."""
    from safetensors.torch import save_file

    torch.manual_seed(zlib.crc32(cell.encode()))
    kwargs = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    theirs = TorchCharModel("RNN" if cell.startswith("rnn") else cell.upper(), len(VOCAB), 4, 5, 2, **kwargs)
    theirs = theirs.to(getattr(torch, dtype))
    path = tmp_path / "theirs.safetensors"
    meta = {"rnnlab": json.dumps({"vocab": "".join(VOCAB.chars), **({"cell": cell} if cell == "rnn_relu" else {})})}
    save_file(theirs.state_dict(), path, metadata=meta)

    ours, vocab = from_torch(path)
    assert isinstance(ours, CharRNN) and vocab == VOCAB and ours.config.dtype == dtype
    assert ours.config.cell == cell
    rng = np.random.default_rng(1)
    ids = rng.integers(0, len(VOCAB), (3, 7))
    dlogits = rng.standard_normal((3, 7, len(VOCAB))).astype(dtype)
    ours.train()
    logits, state = forward_with_state(ours, ids, None)
    ours.zero_grad()
    ours.backward(dlogits)
    t_logits, t_state = theirs(torch.from_numpy(ids))
    (t_logits * torch.from_numpy(dlogits)).sum().backward()
    assert_close("logits", logits, t_logits.detach().numpy(), tol)
    for name, a, b in zip("hc", as_tuple(state), as_tuple(t_state)):
        assert_close(f"final {name}", a, b.detach().numpy(), tol)
    names = {"embedding.weight": "encoder.weight", "head.weight": "decoder.weight", "head.bias": "decoder.bias"}
    t_grads = {n: p.grad.numpy() for n, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        assert_close(f"grad {name}", p.grad, t_grads[names.get(name, name)], tol)
    text = generate(ours, vocab, "abc", 60, 0.9, rng=7)
    assert text == torch_generate(theirs, VOCAB, "abc", 60, 0.9, seed=7)
    assert len(set(text[3:])) > 3  # a real sample, not one character repeated


@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("gru", True), ("rnn_relu", False)])
def test_torch_layer_loads_into_rnnlab(tmp_path, cell, bidirectional):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    kwargs = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    theirs = getattr(torch.nn, {"lstm": "LSTM", "gru": "GRU"}.get(cell, "RNN"))(
        3, 4, 2, batch_first=True, bidirectional=bidirectional, **kwargs)
    path = tmp_path / "layer.safetensors"
    save_file(theirs.state_dict(), path)  # no metadata at all
    ours, vocab = from_torch(path, cell=cell)
    assert vocab is None and ours.bidirectional == bidirectional and ours.num_layers == 2
    x = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)
    y, state = ours(x)
    t_y, t_state = theirs(torch.from_numpy(x))
    assert_close("y", y, t_y.detach().numpy(), 1e-5)
    for name, a, b in zip("hc", as_tuple(state), as_tuple(t_state)):
        assert_close(f"final {name}", a, b.detach().numpy(), 1e-5)
    if cell == "rnn_relu":  # the state_dict cannot say relu; read as torch's default tanh it differs
        tanh, _ = from_torch(path)
        assert np.abs(tanh(x)[0] - y).max() > 1e-3


def test_rnnlab_layer_round_trips_through_a_torch_file(tmp_path):
    layer = randomize(make_recurrent("lstm", 3, 4, num_layers=2, bidirectional=True, rng=0), np.random.default_rng(0))
    path = to_torch(layer, tmp_path / "l.safetensors")
    again, _ = from_torch(path)
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(again.state_dict()[name], p.data, err_msg=name)
    theirs = torch.nn.LSTM(3, 4, 2, batch_first=True, bidirectional=True)
    from safetensors.torch import load_file
    theirs.load_state_dict(load_file(path))


@pytest.mark.parametrize("state, words", [
    ({"w": np.zeros((2, 2), np.float32)}, "expected one torch.nn LSTM/GRU/RNN"),
    ({"weight_ih_l0": np.zeros((10, 3), np.float32), "weight_hh_l0": np.zeros((5, 5), np.float32)},
     "10 rows for hidden size 5"),
    ({"rnn.weight_ih_l0": np.zeros((8, 3), np.float32), "rnn.weight_hh_l0": np.zeros((8, 2), np.float32),
      "emb.weight": np.zeros((9, 3), np.float32), "extra.weight": np.zeros((9, 3), np.float32)},
     "expected an Embedding"),
])
def test_unreadable_torch_files_say_why(tmp_path, state, words):
    from safetensors.numpy import save_file

    path = tmp_path / "bad.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError, match=re.escape(words)):
        from_torch(path)


def test_metadata_nested_too_deeply(tmp_path):
    from safetensors.torch import save_file

    save_file(torch.nn.GRU(3, 4).state_dict(), tmp_path / "deep.safetensors",
              metadata={"rnnlab": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        from_torch(tmp_path / "deep.safetensors")


def test_cell_that_does_not_fit_the_weights(tmp_path):
    from safetensors.torch import save_file

    save_file(torch.nn.GRU(3, 4).state_dict(), tmp_path / "gru.safetensors")
    with pytest.raises(CheckpointError, match="the weights are a gru .*cell 'lstm' does not fit"):
        from_torch(tmp_path / "gru.safetensors", cell="lstm")


def test_bfloat16_weights_say_which_tensor(tmp_path):
    from safetensors.torch import save_file

    save_file(torch.nn.GRU(3, 4).bfloat16().state_dict(), tmp_path / "bf.safetensors")
    with pytest.raises(CheckpointError, match="tensor '.*_l0' is BF16"):
        from_torch(tmp_path / "bf.safetensors")


# -- the command ------------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    model = char_model("lstm", 2, seed=11)
    path = tmp_path / "run" / "checkpoint.safetensors"
    path.parent.mkdir()
    save_checkpoint(path, model_config=model.config.to_dict(), model_state=model.state_dict(), optimizer_state=None,
                    step=1, vocab=VOCAB.to_list(), rng_state=None, train_config=None)
    return path


def cli(capsys, *args):
    from rnnlab.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("prime, top_k", [("", None), ("bad, ", 4)])
def test_generate_onnx_prints_what_generate_prints(tmp_path, capsys, checkpoint, prime, top_k):
    code, out, _ = cli(capsys, "export", checkpoint.parent, "--format", "onnx")
    assert code == 0 and "model.onnx" in out
    args = ["--length", 150, "--seed", 3, "--temperature", 1.3, "--prime", prime] + (["--top-k", top_k] if top_k else [])
    code, ours, _ = cli(capsys, "generate", checkpoint.parent, *args)
    assert code == 0
    code, theirs, _ = cli(capsys, "generate", "--onnx", checkpoint.parent / "model.onnx", *args)
    assert code == 0 and theirs == ours and len(ours) == len(prime) + 151


def test_generate_from_an_exported_torch_file(tmp_path, capsys, checkpoint):
    out_path = tmp_path / "m.safetensors"
    assert cli(capsys, "export", checkpoint, "--format", "torch", "--out", out_path)[0] == 0
    args = ["--length", 80, "--seed", 4]
    assert cli(capsys, "generate", out_path, *args)[1] == cli(capsys, "generate", checkpoint, *args)[1]


def test_onnx_sampler_needs_only_numpy_and_onnxruntime(tmp_path, checkpoint):
    """Run onnx_generate.py as a copied script: no rnnlab module may be imported."""
    source = ROOT / "src" / "rnnlab" / "onnx_generate.py"
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(source.read_text()))
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert imported == {"argparse", "json", "sys", "numpy", "onnxruntime"}
    model = char_model("gru", 1, seed=2)
    to_onnx(model, tmp_path / "m.onnx", vocab=VOCAB)
    (tmp_path / "onnx_generate.py").write_text(source.read_text())
    probe = ("import runpy, sys; sys.argv = ['onnx_generate.py', 'm.onnx', '--seed', '9', '--length', '40']; "
             "runpy.run_path('onnx_generate.py', run_name='__main__'); "
             "assert not [m for m in sys.modules if m.startswith('rnnlab')], 'rnnlab was imported'")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == generate(model, VOCAB, "", 40, 0.8, rng=9) + "\n"


def test_onnx_sampler_without_a_newline_in_the_vocabulary(tmp_path):
    """No prime and no newline: both samplers start from the same random character."""
    from rnnlab.onnx_generate import generate as onnx_generate

    vocab = Vocab.from_text("abcdefgh")
    model = randomize(CharRNN(CharRNNConfig(vocab_size=len(vocab), cell="rnn_relu", hidden_size=5, num_layers=2,
                                            embedding_dim=3), rng=0), np.random.default_rng(4)).eval()
    path = to_onnx(model, tmp_path / "m.onnx", vocab=vocab)
    for seed in range(3):
        assert onnx_generate(path, "", 50, 1.0, 3, seed) == generate(model, vocab, "", 50, 1.0, 3, rng=seed)


@pytest.mark.parametrize("args, words", [
    (["generate"], "one of the two"),
    (["generate", "{ckpt}", "--onnx", "{ckpt}"], "one of the two"),
    (["generate", "--onnx", "{tmp}/missing.onnx"], "no such file"),
    (["generate", "--onnx", "{ckpt}"], "onnxruntime cannot run it"),
    (["generate", "--onnx", "{tmp}/layer.onnx"], "not an rnnlab character model with a vocabulary"),
    (["generate", "--onnx", "{tmp}/layer.onnx", "--temperature", "0"], "temperature must be a finite number > 0"),
    (["export", "{ckpt}", "--format", "torch", "--dtype", "float64"], "--dtype applies to --format onnx"),
    (["generate", "{tmp}/novocab.safetensors"], "has no vocabulary"),
    (["export", "{ckpt}", "--format", "torch", "--out", "{ckpt}"], "is the checkpoint being exported"),
])
def test_command_errors_are_one_clear_line(tmp_path, capsys, checkpoint, args, words):
    to_onnx(make_recurrent("gru", 2, 3, rng=0), tmp_path / "layer.onnx")
    from safetensors.torch import save_file

    save_file(TorchCharModel("GRU", 5, 2, 3, 1).state_dict(), tmp_path / "novocab.safetensors")
    code, _, err = cli(capsys, *[a.format(ckpt=checkpoint, tmp=tmp_path) for a in args])
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
