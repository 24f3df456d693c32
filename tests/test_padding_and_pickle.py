"""Edge cases of the numerics and of the layer objects: padding that cannot poison gradients,
arguments as strict as torch's, the dtype policy, and layers and models that pickle and copy."""
import copy
import pickle

import numpy as np
import pytest

import rnnlab
from rnnlab.models import CharRNN, CharRNNConfig, ManyToMany, ManyToOne
from rnnlab.nn import Embedding, Lookup
from rnnlab.nn.cells import cell_names

BUILT_IN = ("lstm", "gru", "rnn", "rnn_relu", "lstm_noforget", "indrnn")
KERNELS = ("reference", "numpy", "fast")
B, T, D, H = 3, 6, 4, 5
LENGTHS = np.array([6, 2, 4])


def _grads(cell, kernel, pad_x, pad_dy, lookup=False):
    """Every gradient (parameters, dx, dh0) of a 2-layer bidirectional layer on a padded batch whose
    padding holds pad_x in x (or -7 in the ids) and pad_dy in dy."""
    rng = np.random.default_rng(0)
    layer = rnnlab.Recurrent(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=1,
                             kernel=kernel)
    inside = (np.arange(T)[None, :] < LENGTHS[:, None])[..., None]  # (B, T, 1)
    table = rng.standard_normal((7, D))
    ids = rng.integers(0, 7, (B, T))
    x = Lookup(np.where(inside[..., 0], ids, -7), table) if lookup else \
        np.where(inside, rng.standard_normal((B, T, D)), pad_x)
    dy = np.where(inside, rng.standard_normal((B, T, 2 * H)), pad_dy)
    y, _ = layer(x, None, LENGTHS)
    dx, dstate = layer.backward(dy, None)
    out = {name: p.grad.copy() for name, p in layer.named_parameters()}
    out["dx"], out["y"] = dx, y
    out["dh0"] = dstate[0] if isinstance(dstate, tuple) else dstate
    return out


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cell", BUILT_IN)
def test_nan_and_inf_padding_give_the_gradients_of_zero_padding(cell, kernel):
    clean = _grads(cell, kernel, 0.0, 0.0)
    assert all(np.isfinite(v).all() for v in clean.values())
    for pad_x, pad_dy in ((np.nan, np.nan), (np.inf, -np.inf), (1e30, np.nan)):
        poisoned = _grads(cell, kernel, pad_x, pad_dy)
        for name, value in clean.items():
            assert np.isfinite(poisoned[name]).all(), (cell, kernel, pad_x, name)
            np.testing.assert_array_equal(poisoned[name], value, err_msg=f"{cell} {kernel} {pad_x} {name}")


@pytest.mark.parametrize("kernel", KERNELS)
def test_padding_ids_of_an_embedding_are_never_read(kernel):
    got = _grads("lstm", kernel, 0.0, np.nan, lookup=True)  # padding ids -7: out of range, and ignored
    assert all(np.isfinite(v).all() for v in got.values())


def test_the_kernels_agree_on_poisoned_padding():
    ref = _grads("gru", "reference", np.nan, np.nan)
    for kernel in ("numpy", "fast"):
        other = _grads("gru", kernel, np.nan, np.nan)
        for name in ref:
            np.testing.assert_allclose(other[name], ref[name], atol=1e-10, err_msg=f"{kernel} {name}")


def test_masked_losses_ignore_nan_logits_targets_and_pad_ids():
    rng = np.random.default_rng(0)
    mask = np.arange(T)[None, :] < LENGTHS[:, None]  # (B, T)
    logits = rng.standard_normal((B, T, 7))
    targets = rng.integers(0, 7, (B, T))
    clean_loss, clean_grad = rnnlab.cross_entropy(logits, targets, mask)
    loss, grad = rnnlab.cross_entropy(np.where(mask[..., None], logits, np.nan), np.where(mask, targets, -1), mask)
    assert loss == clean_loss and np.isfinite(grad).all()
    np.testing.assert_array_equal(grad, clean_grad)
    pred, target = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 2))
    clean_loss, clean_grad = rnnlab.mse(pred, target, mask)
    loss, grad = rnnlab.mse(np.where(mask[..., None], pred, np.inf), np.where(mask[..., None], target, np.nan), mask)
    assert loss == clean_loss
    np.testing.assert_array_equal(grad, clean_grad)


def test_a_model_trains_on_nan_padded_series():
    model = ManyToMany("lstm", D, H, 1, dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
    x = np.where(mask[..., None], rng.standard_normal((B, T, D)), np.nan)
    target = np.where(mask[..., None], rng.standard_normal((B, T, 1)), np.nan)
    _, dy = rnnlab.mse(model(x, LENGTHS), target, mask)
    model.backward(dy)
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


# -- arguments as strict as torch's ----------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda **k: rnnlab.LSTM(3, 5, **k), lambda **k: rnnlab.GRUCell(3, 5, **k),
                                  lambda **k: rnnlab.Linear(3, 5, **k)])
def test_bias_must_be_a_bool(make):
    with pytest.raises(TypeError, match="bias must be a bool .*got 'False' \\(str\\)"):
        make(bias="False")
    with pytest.raises(TypeError, match="bias must be a bool"):
        make(bias=0)
    assert make(bias=np.bool_(False)).bias in (False, None)


def test_dropout_is_checked_when_set():
    lstm = rnnlab.LSTM(3, 5, num_layers=2, dropout=0.5)
    for bad, error in ((1, ValueError), (-0.1, ValueError), (float("nan"), ValueError), ("0.5", TypeError),
                       (True, TypeError)):
        with pytest.raises(error, match="dropout"):
            lstm.dropout = bad
        with pytest.raises(error, match="dropout"):
            rnnlab.LSTM(3, 5, num_layers=2, dropout=bad)
    assert lstm.dropout == 0.5
    lstm.dropout = 0.25
    assert lstm.dropout == 0.25
    drop = rnnlab.Dropout(0.1)
    with pytest.raises(ValueError, match="p must be in"):
        drop.p = 1.0
    assert drop.p == 0.1


def test_dtype_policy_real_inputs_are_cast_others_refused():
    lstm = rnnlab.LSTM(3, 5, dtype=np.float32, rng=0)
    x64 = np.random.default_rng(0).standard_normal((2, 4, 3))
    y64, _ = lstm(x64)
    y32, _ = lstm(x64.astype(np.float32))
    assert y64.dtype == np.float32
    np.testing.assert_array_equal(y64, y32)  # cast once, exactly as the user's own astype
    assert lstm(np.ones((2, 4, 3), np.int64))[0].dtype == np.float32
    for bad in (x64 + 1j, x64 > 0, x64.astype(object), np.full((2, 4, 3), "1")):
        with pytest.raises(TypeError, match="x must be a numeric array of real numbers"):
            lstm(bad)


# -- pickle and copy -------------------------------------------------------------------------------
def _models():
    """One of every layer and model, each with a forward input and a function giving its output."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    ids = rng.integers(0, 11, (2, 5))
    layers = [(rnnlab.Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, rng=0), x) for cell in BUILT_IN]
    layers += [(rnnlab.LSTMCell(3, 4, rng=0), x[:, 0]), (rnnlab.Linear(3, 4, rng=0), x),
               (Embedding(11, 4, rng=0), ids), (rnnlab.Dropout(0.3, rng=0), x),
               (ManyToOne("gru", 3, 4, 2, rng=0), x), (ManyToMany("lstm", 3, 4, 2, rng=0), x),
               (CharRNN(CharRNNConfig(vocab_size=11, hidden_size=8, embedding_dim=4, dropout=0.2), rng=0), ids)]
    return layers


def _output(model, x):
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def test_every_layer_and_model_pickles_and_deep_copies_with_identical_outputs():
    assert set(BUILT_IN) <= set(cell_names())
    for model, x in _models():
        _output(model, x)  # a forward first: its cache must not stop the pickle
        for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            _same_random_stream(twin, model)
            for a, b in zip(model.parameters(), twin.parameters()):
                assert a.data is not b.data
            np.testing.assert_array_equal(_output(twin, x), _output(model, x), err_msg=repr(model))
    lstm = rnnlab.LSTM(3, 4)
    assert pickle.loads(pickle.dumps(lstm)).kind is lstm.kind  # the registered cell, by name


def _same_random_stream(twin, model):
    """Every generator of `twin` set to the state of `model`'s (dropout draws the same masks)."""
    for name, value in vars(model).items():
        if isinstance(value, np.random.Generator):
            getattr(twin, name).bit_generator.state = value.bit_generator.state
    for (_, child), (_, twin_child) in zip(model.children(), twin.children()):
        _same_random_stream(twin_child, child)


def _worker_jobs():
    """A recurrent layer, a sequence model and a CharRNN (every other one pickles the same way), in eval
    mode: no dropout draws, so every call gives the same output."""
    picked = [(m, x) for m, x in _models() if type(m) in (ManyToOne, CharRNN)]
    return [(m.eval(), x) for m, x in [_models()[0]] + picked]


def _round_trip(model, x):
    """In a worker process: the model arrives pickled, runs, and comes back with its output."""
    return model, _output(model, x)


def test_models_survive_a_joblib_worker():
    joblib = pytest.importorskip("joblib")
    jobs = _worker_jobs()
    results = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(_round_trip)(m, x) for m, x in jobs)
    for (model, x), (back, y) in zip(jobs, results):
        np.testing.assert_array_equal(y, _output(model, x), err_msg=repr(model))
        np.testing.assert_array_equal(_output(back, x), y, err_msg=repr(model))


def test_models_survive_a_dask_worker():
    distributed = pytest.importorskip("distributed")
    jobs = _worker_jobs()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        results = client.gather([client.submit(_round_trip, m, x, pure=False) for m, x in jobs])
    for (model, x), (back, y) in zip(jobs, results):
        np.testing.assert_array_equal(y, _output(model, x), err_msg=repr(model))
        np.testing.assert_array_equal(_output(back, x), y, err_msg=repr(model))
