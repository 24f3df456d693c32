"""rnnlab.save / rnnlab.load: every kind round-trips bit for bit, with fit_info and preprocessing;
damaged or forged files are refused with one line naming the file."""
import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import rnnlab
from rnnlab import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from rnnlab.io import CheckpointError
from rnnlab.models import CharRNN, CharRNNConfig

MODELS = {
    "OneToOne": lambda: OneToOne(3, 5, 2, input_vocab=7, dtype=np.float64, rng=1),
    "ManyToOne": lambda: ManyToOne("lstm", 3, 5, 2, num_layers=2, bidirectional=True, rng=1),
    "ManyToMany": lambda: ManyToMany("gru", 3, 5, 1, input_vocab=9, rng=1),
    "ManyToMany-indrnn": lambda: ManyToMany("indrnn", 3, 5, 1, rng=1),
    "OneToMany": lambda: OneToMany("rnn", 3, 5, 8, num_layers=2, rng=1),
    "Seq2Seq": lambda: Seq2Seq("lstm", 6, 7, 5, embedding_dim=4, rng=1),
    "CharRNN": lambda: CharRNN(CharRNNConfig(vocab_size=11, hidden_size=6, num_layers=1, embedding_dim=4), rng=1),
}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_bit_for_bit(tmp_path, name):
    model = MODELS[name]()
    model.fit_info = {"task": "classification", "squeeze": False}
    model.preprocessing = {"scaler_x": {"mean": np.array([1.5, np.pi], np.float32), "scale": np.array([2.0, 1e-30])},
                           "feature_names": ["a", "b"], "labels": ["no", "yes"], "window": 3}
    path = rnnlab.save(model, tmp_path / "m.safetensors")
    loaded = rnnlab.load(path)
    assert type(loaded) is type(model)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and ours[key].tobytes() == theirs[key].tobytes(), key
    assert loaded.fit_info == model.fit_info
    prep = loaded.preprocessing
    assert prep["scaler_x"]["mean"].dtype == np.float32
    assert prep["scaler_x"]["mean"].tobytes() == model.preprocessing["scaler_x"]["mean"].tobytes()
    assert prep["scaler_x"]["scale"].tobytes() == model.preprocessing["scaler_x"]["scale"].tobytes()
    assert prep["feature_names"] == ["a", "b"] and prep["labels"] == ["no", "yes"] and prep["window"] == 3


def test_a_fitted_model_predicts_the_same_after_load(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6, 2)).astype(np.float32)
    model = ManyToOne("gru", 2, 8, 3, rng=0)
    model.fit(X, rng.integers(0, 3, 30), epochs=2, progress=False)
    rnnlab.save(model, tmp_path / "model.safetensors")
    loaded = rnnlab.load(tmp_path)  # a run directory holding model.safetensors
    assert np.array_equal(model.predict_proba(X), loaded.predict_proba(X))
    assert np.array_equal(model.predict(X), loaded.predict(X))


def _rewrite(path, doc_change=None, tensors_change=None):
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    doc = json.loads(meta["rnnlab"])
    if doc_change:
        doc_change(doc)
    if tensors_change:
        tensors_change(tensors)
    save_file(tensors, path, metadata={"rnnlab": json.dumps(doc)})


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "not a valid safetensors file"),
    (lambda p: _rewrite(p, lambda d: d["model_config"]["args"].update(hidden_size=10**6)), "does not match"),
    (lambda p: _rewrite(p, lambda d: d["model_config"]["args"].update(num_layers=10**9)), "num_layers"),
    (lambda p: _rewrite(p, lambda d: d["model_config"].update(kind="Evil")), "not a model saved by rnnlab.save"),
    (lambda p: _rewrite(p, lambda d: d["model_config"]["args"].pop("cell")), "damaged"),
    (lambda p: _rewrite(p, tensors_change=lambda t: t.update({"model.head.bias": np.zeros(9, np.float32)})),
     "does not match"),
])
def test_damaged_files_are_refused_in_one_line(tmp_path, damage, words):
    path = rnnlab.save(ManyToOne("lstm", 2, 4, 3, rng=0), tmp_path / "m.safetensors")
    damage(path)
    with pytest.raises(CheckpointError) as error:
        rnnlab.load(path)
    assert words in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_save_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="rnnlab.save takes"):
        rnnlab.save(rnnlab.LSTM(2, 3), tmp_path / "x.safetensors")
    model = ManyToOne("lstm", 2, 4, 3, rng=0)
    model.preprocessing = {"a.b": 1}
    with pytest.raises(TypeError, match="without '.'"):
        rnnlab.save(model, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_training_checkpoint_is_pointed_elsewhere(tmp_path):
    from rnnlab.io import save_checkpoint

    path = save_checkpoint(tmp_path / "c.safetensors", model_config={"vocab_size": 3}, model_state={},
                           optimizer_state=None, step=0, vocab=None, rng_state=None, train_config=None)
    with pytest.raises(CheckpointError, match="load_char_model"):
        rnnlab.load(path)
