"""model.fit / predict / evaluate on the four kinds (rnnlab.fitting), and the metrics they report."""
import numpy as np
import pytest

import rnnlab
from rnnlab import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from rnnlab.data.tables import DataError
from rnnlab.metrics import classification_metrics, confusion_matrix, regression_metrics

from conftest import assert_close


def _series(n=80, T=8, D=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, D)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1, keepdims=True)  # y (n, 1): the sum of the first feature


def _ragged(n=40, D=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(t, D)).astype(np.float32) for t in rng.integers(2, 10, n)]


# -- every kind, every X form, both tasks -------------------------------------------------------------
def test_many_to_one_regression_learns():
    X, y = _series()
    model = ManyToOne("lstm", 2, 16, 1, rng=0)
    before = model.evaluate(X, y)["mse"]
    history = model.fit(X, y, epochs=15, lr=1e-2, validation_split=0.25, progress=False)
    assert history["epoch"] == list(range(1, 16))
    assert {"loss", "mse", "mae", "rmse", "val_loss", "val_mse", "val_mae", "val_rmse", "lr"} <= set(history.rows[0])
    assert history["val_mse"][-1] < 0.5 * before
    assert model.predict(X).shape == (80, 1)
    assert model.predict(X[:, :, :]).dtype == np.float32


def test_regression_with_1d_y_predicts_1d():
    X, y = _series()
    model = ManyToOne("gru", 2, 8, 1, rng=0)
    model.fit(X, y[:, 0], epochs=1, progress=False)
    assert model.predict(X).shape == (80,)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_many_to_one_classification_on_ragged_lists(cell):
    seqs = _ragged(60)
    y = np.array([int(s[:, 0].sum() > 0) for s in seqs])
    model = ManyToOne(cell, 2, 16, 2, rng=0)
    history = model.fit(seqs, y, epochs=20, lr=2e-2, batch_size=16, validation_split=0.25, progress=False)
    assert {"accuracy", "macro_f1", "val_accuracy", "val_macro_f1"} <= set(history.rows[-1])
    assert history["accuracy"][-1] > 0.8
    assert np.array(history.confusion).sum() == 15  # the 15 validation samples
    predicted = model.predict(seqs)
    assert predicted.dtype == np.int64 and predicted.shape == (60,)
    probabilities = model.predict_proba(seqs)
    assert_close("rows sum to 1", probabilities.sum(axis=1), np.ones(60), 1e-5)


def test_many_to_one_reads_ids():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 6, t) for t in rng.integers(2, 9, 40)]
    y = np.array([int((s == 3).any()) for s in seqs])
    model = ManyToOne("lstm", 4, 8, 2, input_vocab=6, rng=0)
    model.fit(seqs, y, epochs=2, progress=False)
    padded, lengths = rnnlab.data.tables.pad_sequences(seqs)
    model.fit(padded, y, epochs=1, progress=False)  # (N, T) ids as one array too
    assert model.predict(seqs).shape == (40,)


def test_many_to_many_per_step_ragged_and_array():
    seqs = _ragged(40)
    targets = [np.cumsum(s[:, 0]) for s in seqs]
    model = ManyToMany("gru", 2, 16, 1, rng=0)
    history = model.fit(seqs, targets, epochs=10, lr=1e-2, validation_split=0.2, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    predicted = model.predict(seqs)
    assert [p.shape for p in predicted] == [(len(s),) for s in seqs]
    X, _ = _series(20)
    labels = (X[:, :, 0] > 0).astype(np.int64)  # (N, T) a class per step
    classifier = ManyToMany("rnn", 2, 8, 2, rng=0)
    classifier.fit(X, labels, epochs=2, progress=False)
    assert classifier.predict(X).shape == (20, 8)


def test_one_to_one_vectors_and_ids():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    model = OneToOne(3, 8, 3, rng=0)
    model.fit(X, rng.integers(0, 3, 50), epochs=2, progress=False)
    assert model.predict(X).shape == (50,)
    by_id = OneToOne(4, 8, 1, input_vocab=5, rng=0)
    by_id.fit(rng.integers(0, 5, 50), rng.normal(size=50), epochs=2, progress=False)
    assert by_id.predict(np.arange(5)).shape == (5,)


def test_seq2seq_learns_to_copy():
    rng = np.random.default_rng(0)
    src = [rng.integers(3, 8, t) for t in rng.integers(1, 4, 200)]
    model = Seq2Seq("gru", 8, 8, 32, embedding_dim=16, rng=0)
    history = model.fit(src, src, epochs=40, lr=1e-2, batch_size=32, validation_split=0.1, progress=False)
    assert history["val_accuracy"][-1] > 0.9
    out = model.predict(src[:20])
    assert out.shape == (20, 4)  # the longest target (3) + EOS
    exact = sum(list(o[:len(s)]) == list(s) and o[len(s)] == 2 for o, s in zip(out, src[:20]))
    assert exact >= 15


def test_one_to_many_generates():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 60)
    targets = [np.full(c + 1, 3 + c) for c in classes]  # class c -> c + 1 copies of token 3 + c
    model = OneToMany("lstm", 4, 16, 6, input_vocab=3, rng=0)
    model.fit(classes, targets, epochs=60, lr=2e-2, progress=False)
    out = model.predict(np.arange(3))
    assert out.shape == (3, 4)
    assert [list(o) for o in out] == [[3, 2, 2, 2], [4, 4, 2, 2], [5, 5, 5, 2]]


# -- the training options ------------------------------------------------------------------------------
def test_early_stopping_restores_the_best_epoch():
    X, y = _series(60)
    Xv, yv = _series(20, seed=1)
    snapshots = []
    model = ManyToOne("lstm", 2, 8, 1, rng=0)

    def keep(row):
        snapshots.append(model.state_dict())

    history = model.fit(X, y, validation_data=(Xv, yv), epochs=40, lr=0.2, early_stopping=3,
                        callbacks=[keep], progress=False)  # lr 0.2: val loss rises after a few epochs
    best = int(np.argmin(history["val_loss"]))
    assert history.stopped_epoch == len(history.rows) < 40
    assert history.best_epoch == best + 1 != len(history.rows)
    for name, value in model.state_dict().items():
        assert np.array_equal(value, snapshots[best][name]), name
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(history["val_loss"][best], rel=1e-5)


def test_reduce_on_plateau_lowers_the_rate():
    X, y = _series(40)
    model = ManyToOne("rnn", 2, 4, 1, rng=0)
    history = model.fit(X, y, epochs=12, lr=0.5, reduce_on_plateau=1, lr_factor=0.5, progress=False)
    assert min(history["lr"]) < 0.5


def test_same_seed_same_history_and_no_shuffle():
    X, y = _series(40)
    runs = [ManyToOne("gru", 2, 4, 1, rng=0).fit(X, y, epochs=3, seed=5, progress=False)["loss"] for _ in range(2)]
    assert runs[0] == runs[1]
    other = ManyToOne("gru", 2, 4, 1, rng=0).fit(X, y, epochs=3, seed=6, progress=False)["loss"]
    assert other != runs[0]


def test_a_continued_history_trains_as_one_fit():
    from rnnlab.optim import Adam

    X, y = _series(40)
    Xv, yv = _series(12, seed=1)
    whole = ManyToOne("lstm", 2, 4, 1, rng=0)
    straight = whole.fit(X, y, validation_data=(Xv, yv), epochs=4, early_stopping=3, progress=False,
                         optimizer=Adam(whole.parameters(), lr=1e-2))
    parts = ManyToOne("lstm", 2, 4, 1, rng=0)
    opt = Adam(parts.parameters(), lr=1e-2)
    history = parts.fit(X, y, validation_data=(Xv, yv), epochs=2, early_stopping=3, progress=False, optimizer=opt)
    history = parts.fit(X, y, validation_data=(Xv, yv), epochs=4, early_stopping=3, progress=False, optimizer=opt,
                        history=history)
    assert history.rows == straight.rows and history.best_epoch == straight.best_epoch
    for name, value in whole.state_dict().items():
        assert np.array_equal(value, parts.state_dict()[name]), name


def test_padded_batch_predicts_as_one_at_a_time():
    seqs = _ragged(12)
    model = ManyToOne("lstm", 2, 8, 3, rng=0)
    model.fit(seqs, np.arange(12) % 3, epochs=1, progress=False)
    together = model.predict_proba(seqs)
    alone = np.concatenate([model.predict_proba([s]) for s in seqs])
    assert_close("padded vs one at a time", together, alone, 1e-6)
    m2m = ManyToMany("gru", 2, 8, 1, rng=0)
    together = m2m.predict(seqs)
    for s, t in zip(seqs, together):
        assert_close("per step", t, m2m.predict([s])[0], 1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_state_equals_the_whole_window(cell):
    X, _ = _series(5, T=12)
    for kind in (ManyToMany, ManyToOne):
        model = kind(cell, 2, 8, 1, num_layers=2, rng=0)
        whole, whole_state = model(X, return_state=True)
        state, steps = None, []
        for t in range(12):  # one step at a time, the state carried
            y, state = model(X[:, t:t + 1], state=state, return_state=True)
            steps.append(y)
        streamed = np.concatenate(steps, axis=1) if kind is ManyToMany else steps[-1]
        assert_close(f"{kind.__name__} streamed", streamed, whole, 1e-5)
        as_tuple = (lambda s: s if isinstance(s, tuple) else (s,))
        assert len(as_tuple(state)) == (2 if cell == "lstm" else 1)
        for a, b in zip(as_tuple(state), as_tuple(whole_state)):
            assert_close("final state", a, b, 1e-5)


# -- bad input: one clear line, nothing changed ---------------------------------------------------------
@pytest.mark.parametrize("X, y, words", [
    (np.full((4, 3, 2), np.nan), np.zeros((4, 1)), "NaN"),
    (np.zeros((4, 3, 2)), np.zeros((5, 1)), "samples"),
    (np.zeros((4, 3)), np.zeros((4, 1)), "(N, T, D)"),
    (np.zeros((4, 3, 2)), np.array([0, 1, 2, 3]), "class ids must lie in 0..1"),
    (np.zeros((0, 3, 2)), np.zeros((0, 1)), "no samples"),
    ([], np.zeros(0), "no samples"),
    (np.zeros((4, 3, 2)), np.array(["a", "b", "c", "d"]), "numbers"),
])
def test_bad_input_is_one_line_and_changes_nothing(X, y, words):
    model = ManyToOne("lstm", 2, 4, 2, rng=0)
    before = model.state_dict()
    with pytest.raises(DataError) as error:
        model.fit(X, y, epochs=1, progress=False)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_options_are_refused():
    X, y = _series(10)
    model = ManyToOne("lstm", 2, 4, 1, rng=0)
    for options, words in [({"epochs": 0}, "epochs"), ({"validation_split": 1.5}, "validation_split"),
                           ({"validation_split": 0.01}, "validation_split"), ({"optimizer": "nadam"}, "optimizer"),
                           ({"monitor": "val_loss"}, "validation data")]:
        with pytest.raises(ValueError, match=words):
            model.fit(X, y, progress=False, **options)


def test_seq2seq_targets_must_avoid_reserved_ids():
    model = Seq2Seq("gru", 8, 8, 4, rng=0)
    with pytest.raises(DataError, match="PAD, GO, EOS"):
        model.fit([np.array([3, 4])], [np.array([1, 4])], epochs=1, progress=False)


# -- metrics, held to scikit-learn ----------------------------------------------------------------------
def test_metrics_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[pred == 3] = 2  # class 3 never predicted
    ours = classification_metrics(pred, true, 5)
    assert ours["accuracy"] == pytest.approx(sklearn.accuracy_score(true, pred))
    assert ours["macro_f1"] == pytest.approx(sklearn.f1_score(true, pred, average="macro"))
    assert np.array_equal(confusion_matrix(true, pred, 4), sklearn.confusion_matrix(true, pred, labels=range(4)))
    a, b = rng.normal(size=50), rng.normal(size=50)
    reg = regression_metrics(a, b)
    assert reg["mse"] == pytest.approx(sklearn.mean_squared_error(b, a))
    assert reg["mae"] == pytest.approx(sklearn.mean_absolute_error(b, a))
    assert reg["rmse"] == pytest.approx(np.sqrt(sklearn.mean_squared_error(b, a)))


def test_fit_runs_through_the_one_loop(monkeypatch):
    import rnnlab.train

    calls = []
    real = rnnlab.train.optimize
    monkeypatch.setattr(rnnlab.train, "optimize", lambda *a, **k: calls.append(1) or real(*a, **k))
    X, y = _series(10)
    ManyToOne("rnn", 2, 4, 1, rng=0).fit(X, y, epochs=1, progress=False)
    assert calls == [1]
