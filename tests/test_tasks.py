"""Task generators: shapes, dtypes, seeding, structure, and the baselines they document."""
import math

import numpy as np
import pytest

from rnnlab.data import tasks


def rng(seed=0):
    return np.random.default_rng(seed)


# -- seeding and argument checks ---------------------------------------------------------------
GENERATORS = {
    "adding": lambda r: tasks.adding(8, 20, r),
    "copy_memory": lambda r: tasks.copy_memory(8, 20, r),
    "temporal_order": lambda r: tasks.temporal_order(8, 50, r),
    "sine": lambda r: tasks.sine(8, 30, r, horizon=2),
    "reverse": lambda r: tasks.reverse_strings(8, r),
    "addition": lambda r: tasks.addition(8, r),
}


def _arrays(out):
    if isinstance(out, tasks.Seq2SeqData):
        return [out.src, out.src_lengths, out.tgt_in, out.tgt_out, out.tgt_mask]
    return list(out)


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_data_other_seed_other_data(name):
    make = GENERATORS[name]
    a, b, c = _arrays(make(rng(1))), _arrays(make(rng(1))), _arrays(make(rng(2)))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, w) for u, w in zip(a, c))


def test_global_numpy_seed_is_not_touched():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    for make in GENERATORS.values():
        make(rng(0))
    assert np.random.random() == expected


@pytest.mark.parametrize("call, arg", [
    (lambda: tasks.adding(0, 10, rng()), "n"),
    (lambda: tasks.adding(4, 1, rng()), "T"),
    (lambda: tasks.adding(4.0, 10, rng()), "n"),
    (lambda: tasks.copy_memory(4, 0, rng()), "T"),
    (lambda: tasks.copy_memory(4, 10, rng(), length=0), "length"),
    (lambda: tasks.copy_memory(4, 10, rng(), n_symbols=0), "n_symbols"),
    (lambda: tasks.copy_baseline(0), "T"),
    (lambda: tasks.temporal_order(4, 9, rng()), "T"),
    (lambda: tasks.sine(4, 10, rng(), horizon=0), "horizon"),
    (lambda: tasks.reverse_strings(4, rng(), min_len=5, max_len=4), "max_len"),
    (lambda: tasks.reverse_strings(4, rng(), alphabet="aa"), "alphabet"),
    (lambda: tasks.addition(4, rng(), digits=0), "digits"),
    (lambda: tasks.neurone_data(["Neurone"]), "words"),
    (lambda: tasks.neurone_data([]), "words"),
    (lambda: tasks.digits(rng(), mode="column"), "mode"),
    (lambda: tasks.digits(rng(), test_fraction=1.0), "test_fraction"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=rf"^{arg}: expected .*got"):
        call()


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="rng"):
        tasks.adding(4, 10, 0)


# -- adding ------------------------------------------------------------------------------------
def test_adding_shapes_markers_and_target():
    n, T = 500, 31
    x, y = tasks.adding(n, T, rng())
    assert x.shape == (n, T, 2) and x.dtype == np.float32
    assert y.shape == (n, 1) and y.dtype == np.float32
    values, marker = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() <= 1
    assert set(np.unique(marker)) == {0.0, 1.0}
    np.testing.assert_array_equal(marker[:, : T // 2].sum(1), 1)   # one in the first half
    np.testing.assert_array_equal(marker[:, T // 2:].sum(1), 1)    # one in the second half
    np.testing.assert_allclose(y[:, 0], (values * marker).sum(1), rtol=0, atol=1e-6)


def test_adding_baseline_mse_is_one_sixth():
    _, y = tasks.adding(20_000, 10, rng(3))
    mse = float(np.mean((y - 1.0) ** 2))
    # std of the estimate ~ sqrt(Var((S-1)^2)/20000) ~ 0.0013; 0.1767 (the papers) is far off
    assert mse == pytest.approx(tasks.ADDING_BASELINE_MSE, abs=0.006)
    assert abs(mse - 0.1767) > 0.006


# -- copy memory -------------------------------------------------------------------------------
def test_copy_memory_structure():
    n, T, L, K = 64, 25, 10, 8
    x, y = tasks.copy_memory(n, T, rng(), n_symbols=K, length=L)
    assert x.shape == y.shape == (n, T + 2 * L) and x.dtype == y.dtype == np.int64
    assert tasks.COPY_VOCAB == K + 2 and x.max() < tasks.COPY_VOCAB
    symbols = x[:, :L]
    assert symbols.min() >= 1 and symbols.max() <= K
    assert (x[:, L: L + T - 1] == 0).all()           # T-1 blanks
    assert (x[:, L + T - 1] == K + 1).all()          # the delimiter
    assert (x[:, L + T:] == 0).all()                 # L blanks while the answer is read out
    assert (y[:, : T + L] == 0).all()
    np.testing.assert_array_equal(y[:, T + L:], symbols)


def test_copy_baseline_formula():
    assert round(tasks.copy_baseline(100), 3) == 0.173
    assert tasks.copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    assert tasks.copy_baseline(50, length=5, n_symbols=4) == pytest.approx(5 * math.log(4) / 60)


# -- temporal order ----------------------------------------------------------------------------
def test_temporal_order_shapes_positions_and_balance():
    n, T = 4000, 100
    x, y = tasks.temporal_order(n, T, rng())
    assert x.shape == (n, T, 6) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    np.testing.assert_array_equal(x.sum(-1), 1)      # one-hot
    ids = x.argmax(-1)
    informative = ids >= 4                           # X or Y
    assert (informative.sum(1) == 2).all()
    pos = np.sort(np.nonzero(informative)[1].reshape(n, 2), axis=1)
    assert pos[:, 0].min() >= 10 and pos[:, 0].max() <= 20
    assert pos[:, 1].min() >= 50 and pos[:, 1].max() <= 60
    rows = np.arange(n)
    first, second = ids[rows, pos[:, 0]] - 4, ids[rows, pos[:, 1]] - 4
    np.testing.assert_array_equal(y, 2 * first + second)   # XX=0, XY=1, YX=2, YY=3
    freq = np.bincount(y, minlength=4) / n
    np.testing.assert_allclose(freq, tasks.TEMPORAL_ORDER_BASELINE_ACC, atol=0.03)


# -- neurone -----------------------------------------------------------------------------------
def test_neurone_data_encoding():
    d = tasks.neurone_data()
    n, T_max = len(tasks.NEURONE_WORDS), max(map(len, tasks.NEURONE_WORDS)) + 1
    assert d.x.shape == d.y.shape == (n, T_max) and d.x.dtype == d.y.dtype == np.int64
    assert "^" in d.vocab and "$" in d.vocab and len(set(d.vocab)) == len(d.vocab)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in tasks.NEURONE_WORDS)
    for i, w in enumerate(tasks.NEURONE_WORDS):
        L = d.lengths[i]
        assert L == len(w) + 1
        assert d.decode(d.x[i, :L]) == "^" + w
        assert d.decode(d.y[i, :L]) == w + "$"
        np.testing.assert_array_equal(d.x[i, 1:L], d.y[i, : L - 1])   # y is x shifted by one
    assert d.mask.sum() == d.lengths.sum()


def test_neurone_needs_memory():
    acc = tasks.neurone_data().bayes_accuracy_per_position("neurone")
    assert acc.inputs == "^neurone" and acc.targets == "neurone$"
    needs_memory = (acc.current_char < 1.0) & acc.prefix_determined
    assert needs_memory.sum() >= 4                   # several positions
    assert needs_memory[acc.inputs.index("u")]       # the lecture's point: at "u"
    assert 0 < acc.prefix_determined_fraction < 1


def test_more_context_never_hurts_on_average():
    # Per position the prefix can score lower ("^ne" -> 1/4 vs "e" -> 4/11), but summed over
    # every position of every word, each sum is the Bayes accuracy times the step count, and
    # refining the context (char -> prefix) can only raise it.
    d = tasks.neurone_data()
    accs = [d.bayes_accuracy_per_position(w) for w in d.words]
    char_only = sum(a.current_char.sum() for a in accs) / d.lengths.sum()
    prefix = sum(a.prefix.sum() for a in accs) / d.lengths.sum()
    assert prefix > char_only + 0.2


def test_bayes_accuracy_on_a_tiny_word_set():
    # "ab", "ac": after "^a" the prefix does not decide b vs c; "a" alone neither.
    d = tasks.neurone_data(["ab", "ac", "ba"])
    acc = d.bayes_accuracy_per_position("ab")
    # current char: ^ -> a,a,b (2/3); a -> b,c,$ (1/3); b -> $,a (1/2)
    np.testing.assert_allclose(acc.current_char, [2 / 3, 1 / 3, 1 / 2])
    # prefix: ^ -> 2/3; ^a -> b,c (1/2); ^ab -> $ (1)
    np.testing.assert_allclose(acc.prefix, [2 / 3, 1 / 2, 1.0])
    assert acc.prefix_determined_fraction == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="word"):
        d.bayes_accuracy_per_position("zz")


# -- digits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, T, D", [("row", 8, 8), ("pixel", 64, 1)])
def test_digits_shapes_and_split(mode, T, D):
    pytest.importorskip("sklearn")
    xtr, ytr, xte, yte = tasks.digits(rng(), mode=mode, test_fraction=0.25)
    assert xtr.shape[1:] == xte.shape[1:] == (T, D) and xtr.dtype == np.float32
    assert ytr.dtype == yte.dtype == np.int64
    assert len(xtr) + len(xte) == 1797 and len(xte) == pytest.approx(0.25 * 1797, abs=10)
    assert xtr.min() >= 0 and xtr.max() <= 1 and xtr.max() == 1
    # stratified: every class in the test set in about the overall proportion
    np.testing.assert_allclose(np.bincount(yte, minlength=10) / len(yte),
                               np.bincount(ytr, minlength=10) / len(ytr), atol=0.01)
    # shuffled: labels are not sorted
    assert (np.diff(ytr) != 0).mean() > 0.5
    xtr2, *_ = tasks.digits(rng(), mode=mode)
    np.testing.assert_array_equal(xtr, xtr2)


# -- sine --------------------------------------------------------------------------------------
@pytest.mark.parametrize("horizon", [1, 3])
def test_sine_shift_and_persistence_baseline(horizon):
    n, T = 32, 40
    x, y = tasks.sine(n, T, rng(), horizon=horizon)
    assert x.shape == y.shape == (n, T, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(y[:, : T - horizon], x[:, horizon:])   # y[t] = x[t + horizon]
    assert np.abs(x).max() < 1.5
    assert tasks.sine_persistence_mse(x, y) > 0
    assert tasks.sine_persistence_mse(x, x) == 0


# -- seq2seq -----------------------------------------------------------------------------------
def _check_seq2seq_layout(d):
    n, U = d.tgt_out.shape
    assert d.src.dtype == d.tgt_in.dtype == d.tgt_out.dtype == np.int64
    assert d.tgt_mask.dtype == bool and d.tgt_in.shape == d.tgt_mask.shape == (n, U)
    assert d.vocab[:3] == ["<pad>", "<go>", "<eos>"]
    assert (d.tgt_in[:, 0] == tasks.GO).all()
    # teacher forcing: the decoder input is the target shifted right by one
    np.testing.assert_array_equal(d.tgt_in[:, 1:][d.tgt_mask[:, 1:]],
                                  d.tgt_out[:, :-1][d.tgt_mask[:, 1:]])
    t_len = d.tgt_mask.sum(1)
    assert (d.tgt_out[np.arange(n), t_len - 1] == tasks.EOS).all()
    assert (d.tgt_out[~d.tgt_mask] == tasks.PAD).all()
    src_pad = np.arange(d.src.shape[1])[None] >= d.src_lengths[:, None]
    assert (d.src[src_pad] == tasks.PAD).all() and (d.src[~src_pad] > tasks.EOS).all()


def test_reverse_strings():
    d = tasks.reverse_strings(200, rng(), min_len=3, max_len=8, alphabet="abcdefgh")
    _check_seq2seq_layout(d)
    assert d.src.shape == (200, 8) and d.tgt_out.shape == (200, 9)
    assert d.src_lengths.min() == 3 and d.src_lengths.max() == 8
    srcs, outs, ins = d.decode(d.src), d.decode(d.tgt_out), d.decode(d.tgt_in)
    assert outs == [s[::-1] for s in srcs] and ins == outs
    # round trip: encode the decoded strings again and get the same ids
    index = {c: i for i, c in enumerate(d.vocab)}
    for row, s in zip(d.src, srcs):
        np.testing.assert_array_equal(row[: len(s)], [index[c] for c in s])


def test_addition():
    d = tasks.addition(300, rng(), digits=3)
    _check_seq2seq_layout(d)
    assert d.src.shape == (300, 7) and d.tgt_out.shape == (300, 5)
    for q, a in zip(d.decode(d.src), d.decode(d.tgt_out)):
        left, right = q.split("+")
        assert 1 <= len(left) <= 3 and 1 <= len(right) <= 3
        assert int(a) == int(left) + int(right) and a == str(int(a))
