"""Export of the four kinds: onnxruntime's outputs equal rnnlab's (predict's, for models made by fit),
states stream through the graph; the torch file rebuilds in torch.nn from its metadata."""
import csv
import json

import numpy as np
import pytest

import rnnlab
from rnnlab import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from rnnlab.cli import main
from rnnlab.export import ExportError, onnx_model, to_onnx, to_torch

from conftest import assert_close

ort = pytest.importorskip("onnxruntime")


def _session(model):
    return ort.InferenceSession(onnx_model(model).SerializeToString(), providers=["CPUExecutionProvider"])


def _zeros(model, B):
    rnn = model.rnn
    shape = (rnn.num_layers * rnn.num_directions, B, rnn.hidden_size)
    return {f"{s}0": np.zeros(shape, np.float32) for s in rnn.kind.state_names}


@pytest.mark.parametrize("kind", [ManyToOne, ManyToMany])
@pytest.mark.parametrize("cell, layers, bidirectional", [("lstm", 2, True), ("gru", 1, False), ("rnn", 2, False),
                                                         ("indrnn", 1, True)])
def test_sequence_kinds_equal_rnnlab(kind, cell, layers, bidirectional):
    X = np.random.default_rng(0).normal(size=(4, 7, 3)).astype(np.float32)
    model = kind(cell, 3, 5, 2, num_layers=layers, bidirectional=bidirectional, rng=1)
    y, *states = _session(model).run(None, {"x": X, **_zeros(model, 4)})
    want, final = model(X, return_state=True)
    assert_close(f"{kind.__name__} {cell}", y, want, 1e-5)
    for got, expected in zip(states, final if isinstance(final, tuple) else (final,)):
        assert_close("final state", got, expected, 1e-5)


@pytest.mark.parametrize("kind", [ManyToOne, ManyToMany])
def test_states_stream_through_the_graph(kind):
    """Two halves of a series, the state fed back, equal rnnlab reading it whole."""
    X = np.random.default_rng(1).normal(size=(2, 10, 2)).astype(np.float32)
    model = kind("lstm", 2, 6, 1, num_layers=2, rng=0)
    session = _session(model)
    y1, h, c = session.run(None, {"x": X[:, :6], **_zeros(model, 2)})
    y2, _, _ = session.run(None, {"x": X[:, 6:], "h0": h, "c0": c})
    whole = model(X)
    assert_close("streamed", np.concatenate([y1, y2], axis=1) if kind is ManyToMany else y2, whole, 1e-5)


def test_one_to_one_and_one_to_many_equal_rnnlab():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    model = OneToOne(3, 8, 2, rng=0)
    assert_close("OneToOne", _session(model).run(None, {"x": x})[0], model(x), 1e-5)
    by_id = OneToOne(4, 8, 2, input_vocab=6, rng=0)
    ids = rng.integers(0, 6, 5)
    assert_close("OneToOne ids", _session(by_id).run(None, {"ids": ids})[0], by_id(ids), 1e-5)
    for cell in ("lstm", "gru"):
        gen = OneToMany(cell, 3, 6, 9, num_layers=2, rng=0)
        tokens = rng.integers(0, 9, (5, 4))
        logits = _session(gen).run(None, {"x": x, "tokens_in": tokens})[0]
        assert_close(f"OneToMany {cell}", logits, gen(x, tokens), 1e-5)


def test_seq2seq_is_refused_in_one_line(tmp_path):
    with pytest.raises(ExportError, match="rnnlab.save"):
        to_onnx(Seq2Seq("gru", 5, 5, 4), tmp_path / "s.onnx")
    assert not (tmp_path / "s.onnx").exists()


def test_a_fit_run_exports_and_onnxruntime_equals_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    with open(tmp_path / "d.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):
            writer.writerow(["".join(rng.choice(list("ab" if i % 2 else "cd"), size=5)), i % 2])
    run = tmp_path / "run"
    assert main(["fit", str(tmp_path / "d.csv"), "--task", "classify", "--text-column", "text", "--label-column",
                 "label", "--epochs", "2", "--hidden", "8", "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0
    assert main(["export", str(run), "--format", "torch"]) == 0
    assert (run / "model.onnx").is_file() and (run / "model.torch.safetensors").is_file()
    model = rnnlab.load(run)
    from rnnlab.data.tables import preprocessing_from_state

    X, lengths = preprocessing_from_state(model.preprocessing).encode(str(tmp_path / "d.csv"))
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    ours = model.predict_proba([x[:t] for x, t in zip(X, lengths)])
    for i in range(0, 60, 7):  # one sequence at a time: the graph reads whole sequences
        ids = X[i:i + 1, :lengths[i]]
        logits = session.run(None, {"ids": ids, **_zeros(model, 1)})[0]
        p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert_close(f"row {i}", p[0], ours[i], 1e-5)
    meta = json.loads({p.key: p.value for p in __import__("onnx").load(str(run / "model.onnx")).metadata_props}["rnnlab"])
    assert meta["model"] == "ManyToOne" and meta["preprocessing"]["labels"] == ["0", "1"]


@pytest.mark.parametrize("cell, bidirectional", [("gru", True), ("lstm", False)])
def test_torch_file_rebuilds_in_torch_with_the_docs_lines(tmp_path, cell, bidirectional):
    """docs/interop.md's lines for the four kinds build the modules; ManyToOne and ManyToMany as it says."""
    import re
    from pathlib import Path

    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file

    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if 'spec.pop("class")' in b)
    X = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    for kind in (ManyToOne, ManyToMany):
        model = kind(cell, 3, 5, 2, num_layers=2, bidirectional=bidirectional, rng=0)
        path = to_torch(model, tmp_path / "model.torch.safetensors")
        with safe_open(path, framework="np") as f:
            meta = json.loads(f.metadata()["rnnlab"])
        assert set(meta["torch"]) == {"rnn", "head"} and meta["model"] == kind.__name__
        scope = {"torch": torch, "load_file": load_file, "meta": meta}
        exec(compile(snippet.replace('"model.torch.safetensors"', repr(str(path))), "docs/interop.md", "exec"),
             scope)  # noqa: S102 - our own documentation
        net = scope["net"]
        with torch.no_grad():
            seq, h_n = net["rnn"](torch.from_numpy(X))
            h_n = h_n[0] if cell == "lstm" else h_n
            if kind is ManyToOne:
                y = net["head"](torch.cat([h_n[-2], h_n[-1]], 1) if bidirectional else h_n[-1]).numpy()
            else:
                y = net["head"](seq).numpy()
        assert_close(f"torch {kind.__name__} {cell}", y, model(X), 1e-5)
