"""The four kinds of RNN: exact gradients, training on tiny tasks, generation, and clear errors.

Gradient checks run in float64 on random weights (biases and embeddings included) against central
differences of L = sum(y * R) with a random R, so no gradient sits at zero.
"""
import numpy as np
import pytest

from conftest import assert_close, assert_rel, numerical_grad
from rnnlab.data import tasks
from rnnlab.models import Decoder, ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from rnnlab.nn import Recurrent, cross_entropy, mse
from rnnlab.optim import Adam
from rnnlab.train import optimize

F64 = np.float64


# -- finite differences ------------------------------------------------------------------------------
def check_gradients(model, forward, x=None, seed=0):
    """Every parameter's gradient (and dx for float inputs x) against finite differences."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.6, 0.6, p.data.shape)
    R = rng.standard_normal(forward().shape)  # (output shape)
    model.zero_grad()
    forward()
    dx = model.backward(R)
    loss = lambda: float(np.sum(forward() * R))
    for name, p in model.named_parameters():
        assert np.abs(p.grad).max() > 0, f"{name} got no gradient"
        assert_rel(name, p.grad, numerical_grad(loss, p.data))
    if x is None:
        assert dx is None
    else:
        assert_rel("dx", dx, numerical_grad(loss, x))


B, T, D, H, V = 3, 4, 2, 3, 5
LENGTHS = np.array([4, 2, 3])


@pytest.fixture
def x():
    return np.random.default_rng(1).standard_normal((B, T, D))


@pytest.fixture
def ids():
    return np.random.default_rng(2).integers(0, V, size=(B, T))


def test_one_to_one_gradients():
    x = np.random.default_rng(3).standard_normal((B, T, D))  # any leading shape: one answer per step
    model = OneToOne(D, H, V, dtype=F64, rng=0)
    check_gradients(model, lambda: model(x), x)
    model = OneToOne(D, H, V, input_vocab=V, dtype=F64, rng=0)
    ids = np.array([0, 4, 2, 4])
    check_gradients(model, lambda: model(ids))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_noforget", "indrnn"])  # two states and a diagonal recurrence too
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_many_to_one_gradients(cell, bidirectional, x):
    model = ManyToOne(cell, D, H, 2, bidirectional=bidirectional, dtype=F64, rng=0)
    check_gradients(model, lambda: model(x, LENGTHS), x)


def test_many_to_one_gradients_ids_two_layers(ids):
    model = ManyToOne("lstm", D, H, 2, input_vocab=V, num_layers=2, bidirectional=True, dtype=F64, rng=0)
    check_gradients(model, lambda: model(ids, LENGTHS))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_many_to_many_gradients(cell, bidirectional, x):
    model = ManyToMany(cell, D, H, 2, bidirectional=bidirectional, dtype=F64, rng=0)
    check_gradients(model, lambda: model(x, LENGTHS), x)


def test_many_to_many_gradients_ids(ids):
    model = ManyToMany("gru", D, H, V, input_vocab=V, num_layers=2, dtype=F64, rng=0)
    check_gradients(model, lambda: model(ids))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_noforget", "indrnn"])  # two states and a diagonal recurrence too
def test_one_to_many_gradients(cell, ids):
    c = np.random.default_rng(4).standard_normal((B, D))
    model = OneToMany(cell, D, H, V, embedding_dim=2, num_layers=2, dtype=F64, rng=0)
    check_gradients(model, lambda: model(c, ids), c)
    model = OneToMany(cell, D, H, V, input_vocab=7, embedding_dim=2, dtype=F64, rng=0)
    check_gradients(model, lambda: model(np.array([6, 0, 3]), ids))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_noforget", "indrnn"])  # two states and a diagonal recurrence too
def test_seq2seq_gradients(cell, ids):
    tgt = np.random.default_rng(5).integers(0, 6, size=(B, 3))
    model = Seq2Seq(cell, V, 6, H, embedding_dim=2, dtype=F64, rng=0)
    check_gradients(model, lambda: model(ids, tgt, LENGTHS))


def test_models_share_the_engine():
    models = [ManyToOne("lstm", D, H, 1), ManyToMany("gru", D, H, 1), OneToMany("rnn", D, H, V),
              Seq2Seq("lstm", V, V, H)]
    recurrent = [m.rnn for m in models[:2]] + [models[2].decoder.rnn, models[3].encoder, models[3].decoder.rnn]
    assert all(isinstance(r, Recurrent) for r in recurrent)


# -- semantics ---------------------------------------------------------------------------------------
def test_many_to_one_reads_each_sequences_own_last_step(x):
    """With lengths, a padded batch gives what each sequence alone gives."""
    model = ManyToOne("lstm", D, H, 2, bidirectional=True, dtype=F64, rng=0)
    y = model(x, LENGTHS)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(y[b], model(x[b:b + 1, :n])[0], atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_noforget", "indrnn"])  # two states and a diagonal recurrence too
def test_many_to_one_records_the_flow_of_reading_the_last_output(cell, x):
    """Without lengths h_n is y[:, -1]: backward(record_flow=True) gives what reading y[:, -1] gives."""
    model = ManyToOne(cell, D, H, 1, num_layers=2, dtype=F64, rng=0)
    dy = np.random.default_rng(3).standard_normal((B, 1))
    model.zero_grad()
    model(x)
    model.backward(dy, record_flow=True)
    flow, grads = dict(model.rnn.grad_flow), {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    y, _ = model.rnn(x)  # (B, T, H)
    model.head(y[:, -1])
    dh = np.zeros_like(y)
    dh[:, -1] = model.head.backward(dy)
    model.rnn.backward(dh, record_flow=True)
    assert flow["h"].shape == (2, T, B, H)
    for name, values in flow.items():
        assert_close(f"flow {name}", values, model.rnn.grad_flow[name], 1e-12)
    for name, p in model.named_parameters():
        assert_close(name, grads[name], p.grad, 1e-12)


def test_many_to_many_records_the_flow(x):
    model = ManyToMany("gru", D, H, 2, dtype=F64, rng=0)
    dy = np.random.default_rng(3).standard_normal((B, T, 2))
    model(x)
    model.backward(dy, record_flow=True)
    assert model.rnn.grad_flow["h"].shape == (1, T, B, H)
    assert_close("dL/dh_T", model.rnn.grad_flow["h"][0, -1], dy[:, -1] @ model.head.weight.data, 1e-12)


def test_one_to_one_sees_only_the_current_step(x):
    model = OneToOne(D, H, 2, dtype=F64, rng=0)
    y = model(x)
    assert y.shape == (B, T, 2)
    np.testing.assert_allclose(y[:, 2], model(x[:, 2]), atol=1e-12)


# -- each kind trains on a tiny task, below its baseline ---------------------------------------------
def train(model, step_loss, steps, lr=1e-2):
    history = optimize(model.parameters(), step_loss, Adam(model.parameters(), lr=lr), steps, clip=1.0)
    return float(np.mean([row["loss"] for row in history[-20:]]))


def test_one_to_one_reaches_the_current_char_bayes_limit():
    """The feed-forward net on "neurone" learns all one character can tell, and no more."""
    data = tasks.neurone_data()
    Vn = len(data.vocab)
    model = OneToOne(8, 32, Vn, input_vocab=Vn, rng=0)

    def step_loss(step):
        loss, d = cross_entropy(model(data.x), data.y, data.mask)
        model.backward(d)
        return loss

    loss = train(model, step_loss, 300)
    assert loss < 0.6 * np.log(Vn)  # well below guessing uniformly
    accuracy = (model(data.x).argmax(-1) == data.y)[data.mask].mean()
    assert accuracy == pytest.approx(0.5)  # the current-char Bayes limit on these words


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_many_to_one_learns_adding(cell):
    rng = np.random.default_rng(0)
    model = ManyToOne(cell, 2, 16, 1, rng=0)
    loss = train(model, lambda step: _mse(model, *tasks.adding(32, 10, rng)), 300)
    assert loss < 0.2 * tasks.ADDING_BASELINE_MSE
    x, y = tasks.adding(500, 10, np.random.default_rng(1))
    assert np.mean((model(x) - y) ** 2) < 0.2 * tasks.ADDING_BASELINE_MSE


def _mse(model, x, y, *args):
    loss, d = mse(model(x, *args), y)
    model.backward(d)
    return loss


def test_many_to_one_learns_with_variable_lengths():
    """Target: the value at each sequence's own last step, in a padded batch."""
    rng = np.random.default_rng(0)
    model = ManyToOne("gru", 1, 16, 1, rng=0)

    def batch():
        x = rng.uniform(-1, 1, size=(32, 8, 1)).astype(np.float32)
        lengths = rng.integers(1, 9, size=32)
        x[np.arange(8)[None, :] >= lengths[:, None]] = 0  # padding
        return x, x[np.arange(32), lengths - 1], lengths

    loss = train(model, lambda step: _mse(model, *batch()), 300)
    assert loss < 0.1 * (1 / 3)  # Var(U[-1, 1]) = 1/3: predicting 0


def test_many_to_many_learns_copy():
    rng = np.random.default_rng(0)
    model = ManyToMany("lstm", 8, 32, 6, input_vocab=6, rng=0)

    def step_loss(step):
        x, y = tasks.copy_memory(32, 5, rng, n_symbols=4, length=3)
        loss, d = cross_entropy(model(x), y)
        model.backward(d)
        return loss

    assert train(model, step_loss, 300) < 0.5 * tasks.copy_baseline(5, 3, 4)


def test_only_the_bidirectional_many_to_many_sees_the_future():
    """Output at t = the input at t+1: a forward RNN can only guess; a bidirectional one knows."""
    mask = np.arange(6) < 5  # the last step has no next input to name

    def shifted(x):
        return np.concatenate([x[:, 1:], x[:, :1]], axis=1), np.broadcast_to(mask, x.shape)

    accuracy = {}
    for bidirectional in (False, True):
        rng = np.random.default_rng(0)
        model = ManyToMany("gru", 6, 16, 4, input_vocab=4, bidirectional=bidirectional, rng=0)

        def step_loss(step):
            x = rng.integers(0, 4, size=(32, 6))
            loss, d = cross_entropy(model(x), *shifted(x))
            model.backward(d)
            return loss

        train(model, step_loss, 200)
        x = np.random.default_rng(1).integers(0, 4, size=(500, 6))
        y, m = shifted(x)
        accuracy[bidirectional] = (model(x).argmax(-1) == y)[m].mean()
    assert accuracy[True] > 0.95
    assert accuracy[False] < 0.4  # chance is 0.25


def test_one_to_many_spells_each_word_from_its_index():
    """One input (which word), a sequence out; generation feeds back its own characters."""
    data = tasks.neurone_data()
    Vn = len(data.vocab)
    words = np.arange(len(data.words))
    model = OneToMany("gru", 8, 32, Vn, input_vocab=len(words), rng=0)

    def step_loss(step):  # teacher forcing: read "^word", predict "word$"
        loss, d = cross_entropy(model(words, data.x), data.y, data.mask)
        model.backward(d)
        return loss

    loss = train(model, step_loss, 200)
    assert loss < 0.05
    start, end = data.vocab.index("^"), data.vocab.index("$")
    generated = model.generate(words, steps=10, start=start, eos=end)
    assert generated.shape == (len(words), 10)
    assert [data.decode(row).split("$")[0] for row in generated] == list(data.words)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seq2seq_learns_to_reverse_and_decodes_greedily(cell):
    rng = np.random.default_rng(0)
    model = Seq2Seq(cell, 8, 8, 48, embedding_dim=16, rng=0)

    def step_loss(step):
        d = tasks.reverse_strings(64, rng, min_len=2, max_len=4, alphabet="abcde")
        loss, g = cross_entropy(model(d.src, d.tgt_in, d.src_lengths), d.tgt_out, d.tgt_mask)
        model.backward(g)
        return loss

    loss = train(model, step_loss, 300)
    assert loss < 0.2 * np.log(5)  # guessing among 5 letters
    test = tasks.reverse_strings(200, np.random.default_rng(9), min_len=2, max_len=4, alphabet="abcde")
    out = model.greedy_decode(test.src, 5, test.src_lengths)
    assert out.shape == (200, 5)
    exact = np.mean([p == t for p, t in zip(test.decode(out), test.decode(test.tgt_out))])
    assert exact > 0.9


def test_greedy_stops_early_and_pads_with_eos():
    model = Seq2Seq("gru", V, 4, H, rng=0)
    model.decoder.head.weight.data[...] = 0
    model.decoder.head.bias.data[...] = [0, 0, 1, 0]  # always <eos> = 2
    out = model.greedy_decode(np.zeros((2, 3), dtype=int), steps=6)
    assert out.tolist() == [[2] * 6, [2] * 6]
    out = model.greedy_decode(np.zeros((2, 3), dtype=int), steps=3, eos=None)
    assert out.tolist() == [[2] * 3, [2] * 3]


# -- shapes and bad arguments --------------------------------------------------------------------------
def test_output_shapes(x, ids):
    assert ManyToOne("gru", D, H, 2, bidirectional=True)(x).shape == (B, 2)
    assert ManyToMany("lstm", D, H, 2, bidirectional=True)(x, LENGTHS).shape == (B, T, 2)
    assert ManyToMany("rnn", D, H, V, input_vocab=V)(ids).shape == (B, T, V)
    assert OneToMany("lstm", D, H, V)(np.ones((B, D)), ids).shape == (B, T, V)
    assert Seq2Seq("gru", V, 7, H)(ids, ids[:, :2], LENGTHS).shape == (B, 2, 7)
    assert OneToOne(D, H, 3)(np.ones(D)).shape == (3,)


@pytest.mark.parametrize("build, error, match", [
    (lambda: ManyToOne("tanh", D, H, 1), ValueError, "cell must be one of"),
    (lambda: ManyToMany("lstm", 0, H, 1), ValueError, "input_size must be a positive integer"),
    (lambda: ManyToOne("lstm", D, H, 0), ValueError, "output_size must be a positive integer"),
    (lambda: OneToOne(D, H, 2.5), ValueError, "output_size must be a positive integer"),
    (lambda: OneToMany("gru", D, H, V, input_vocab=-1), ValueError, "input_vocab must be a positive integer"),
    (lambda: Seq2Seq("gru", 0, V, H), ValueError, "src_vocab must be a positive integer"),
    (lambda: Seq2Seq("gru", V, V, H, embedding_dim=0), ValueError, "positive integer"),
])
def test_bad_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_inputs(x, ids):
    m21 = ManyToOne("lstm", D, H, 1)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, input_size=2\); got shape \(3, 4\)"):
        m21(x[:, :, 0])
    with pytest.raises(ValueError, match="input_size=2"):
        m21(np.ones((B, T, 3)))
    with pytest.raises(TypeError, match="looks like integer ids"):
        m21(ids)
    with pytest.raises(ValueError, match="lengths must lie in 1..T"):
        m21(x, np.array([5, 1, 1]))
    m2m = ManyToMany("gru", D, H, V, input_vocab=V)
    with pytest.raises(TypeError, match="must be integer ids in 0..4"):
        m2m(x)
    with pytest.raises(ValueError, match=r"ids must lie in 0..4; got min 0, max 5"):
        m2m(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"integer ids of shape \(batch, time\)"):
        m2m(np.array([0, 1]))
    o2m = OneToMany("lstm", D, H, V)
    with pytest.raises(ValueError, match=r"tokens_in must have shape \(batch=3, steps >= 1\)"):
        o2m(np.ones((B, D)), ids[:2])
    with pytest.raises(TypeError, match="tokens_in must be integer token ids"):
        o2m(np.ones((B, D)), x[:, :, 0])
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        o2m.generate(np.ones((B, D)), 0)
    with pytest.raises(ValueError, match="start must be a token id in 0..4"):
        o2m.generate(np.ones((B, D)), 3, start=9)
    s2s = Seq2Seq("gru", V, V, H)
    with pytest.raises(ValueError, match=r"src must be integer ids of shape \(batch, source_time\)"):
        s2s(ids[0], ids)
    with pytest.raises(ValueError, match=r"tgt_in must lie in 0..4"):
        s2s(ids, ids + 1)


@pytest.mark.parametrize("model", [OneToOne(D, H, 1), ManyToOne("gru", D, H, 1), OneToMany("rnn", D, H, V)],
                         ids=["one_to_one", "many_to_one", "one_to_many"])
def test_backward_before_forward(model):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.ones((B, 1)))


def test_decoder_is_reusable():
    dec = Decoder("lstm", V, 4, H, rng=0)
    state = (np.zeros((1, 2, H), np.float32), np.zeros((1, 2, H), np.float32))
    logits, final = dec(np.array([[1, 2, 3], [0, 0, 4]]), state)
    assert logits.shape == (2, 3, V) and final[0].shape == (1, 2, H)
