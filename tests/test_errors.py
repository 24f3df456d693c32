"""Bad input gets a clear ValueError or TypeError naming the argument, never an error from deep
inside NumPy."""
import numpy as np
import pytest

import rnnlab


@pytest.fixture
def lstm():
    return rnnlab.LSTM(3, 4, num_layers=2, dtype=np.float64, rng=0)


def test_wrong_rank(lstm):
    with pytest.raises(ValueError, match=r"x must be a 3-D array; got shape \(5, 3\)"):
        lstm(np.zeros((5, 3)))


def test_wrong_feature_size(lstm):
    with pytest.raises(ValueError, match=r"input_size=3.*got \(2, 5, 7\)"):
        lstm(np.zeros((2, 5, 7)))


def test_not_numeric(lstm):
    with pytest.raises(TypeError, match="x must be a numeric array"):
        lstm([["a", "b", "c"]])


def test_state_of_wrong_shape(lstm):
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(2, 2, 4\); got \(1, 2, 4\)"):
        lstm(np.zeros((2, 5, 3)), (np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match=r"c0 must have shape"):
        lstm(np.zeros((2, 5, 3)), (np.zeros((2, 2, 4)), np.zeros((2, 3, 4))))


def test_lstm_state_must_be_a_pair(lstm):
    with pytest.raises(TypeError, match=r"\(h0, c0\)"):
        lstm(np.zeros((2, 5, 3)), np.zeros((2, 2, 4)))


def test_gru_state_must_be_one_array():
    with pytest.raises(TypeError, match="one array h0"):
        rnnlab.GRU(3, 4)(np.zeros((2, 5, 3)), (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))


@pytest.mark.parametrize("lengths,message", [
    ([5, 6], r"lengths must lie in 1..T = 1..5; got min 5, max 6"),
    ([0, 3], r"lengths must lie in 1..T"),
    ([3], r"lengths must have shape \(batch,\) = \(2,\); got shape \(1,\)"),
    ([[3, 3]], r"lengths must have shape"),
])
def test_bad_lengths(lstm, lengths, message):
    with pytest.raises(ValueError, match=message):
        lstm(np.zeros((2, 5, 3)), lengths=lengths)


def test_fractional_lengths(lstm):
    with pytest.raises(TypeError, match="lengths must be integers"):
        lstm(np.zeros((2, 5, 3)), lengths=[2.5, 3])


def test_bad_upstream_gradient(lstm):
    lstm(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 5, 4\)"):
        lstm.backward(np.zeros((2, 5, 8)))
    with pytest.raises(ValueError, match=r"dh_n must have shape"):
        lstm.backward(None, (np.zeros((1, 2, 4)), None))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        rnnlab.RNN(2, 3).backward(np.zeros((1, 1, 3)))


def test_state_dict_problems_are_all_named(lstm):
    state = lstm.state_dict()
    state.pop("bias_hh_l1")
    state["weight_ih_l0"] = np.zeros((16, 5))
    state["weight_ih_l9"] = np.zeros(1)
    with pytest.raises(ValueError) as info:
        lstm.load_state_dict(state)
    message = str(info.value)
    assert "missing key 'bias_hh_l1'" in message
    assert "unexpected key 'weight_ih_l9'" in message
    assert "'weight_ih_l0' has shape (16, 5), expected (16, 3)" in message


def test_failed_load_changes_nothing(lstm):
    before = lstm.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["weight_hh_l0"] = np.zeros((1, 1))
    with pytest.raises(ValueError):
        lstm.load_state_dict(bad)
    assert all(np.array_equal(v, lstm.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("kwargs,message", [
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(num_layers=1.5), "num_layers must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(init="xavier"), "init must be one of"),
])
def test_bad_constructor_arguments(kwargs, message):
    args = dict(input_size=3, hidden_size=4) | kwargs
    with pytest.raises(ValueError, match=message):
        rnnlab.LSTM(**args)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        rnnlab.RNN(3, 4, nonlinearity="sigmoid")


def test_bad_rng():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        rnnlab.GRU(3, 4, rng="seed")


def test_linear_and_embedding_and_losses():
    with pytest.raises(ValueError, match=r"in_features=4"):
        rnnlab.Linear(4, 2)(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"ids must lie in 0..4"):
        rnnlab.Embedding(5, 2)(np.array([1, 5]))
    with pytest.raises(TypeError, match="ids must be integers"):
        rnnlab.Embedding(5, 2)(np.array([1.0]))
    with pytest.raises(ValueError, match=r"targets must lie in 0..2"):
        rnnlab.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"logits must have shape"):
        rnnlab.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="same shape"):
        rnnlab.mse(np.zeros((2, 3)), np.zeros((3, 2)))


def test_cell_errors():
    cell = rnnlab.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"h must have shape \(batch, hidden_size\) = \(2, 4\)"):
        cell(np.zeros((2, 3)), (np.zeros((2, 5)), np.zeros((2, 4))))
    with pytest.raises(RuntimeError, match="more times than forward"):
        cell.backward((np.zeros((2, 4)), None))
