"""Seeded toy tasks for the lecture's claims, each with its source and its trivial baseline.

Shapes (batch first):  n = examples, T = time steps, D = features per step,
                       S = source length, U = target length (seq2seq), V = vocabulary size.

Every generator takes a `numpy.random.Generator` and draws only from it (never global seeding),
so the same seed gives the same data. Bad arguments raise ValueError naming the argument.

    rng = np.random.default_rng(0)
    x, y = adding(256, 100, rng)                   # many-to-one, regression, baseline MSE 1/6
    x, y = copy_memory(256, 100, rng)              # many-to-many, memory over T steps
    x, y = temporal_order(256, 100, rng)           # many-to-one, 4 classes, baseline acc 0.25
    data = neurone_data()                          # the lecture's "neurone" next-char example
    xtr, ytr, xte, yte = digits(rng, mode="row")   # many-to-one classification of 8x8 images
    x, y = sine(256, 50, rng)                      # many-to-many aligned forecasting
    s2s = reverse_strings(256, rng)                # many-to-many encoder-decoder
    s2s = addition(256, rng)                       # "123+45" -> "168"
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "ADDING_BASELINE_MSE", "COPY_VOCAB", "NEURONE_WORDS", "TEMPORAL_ORDER_BASELINE_ACC",
    "BayesAccuracy", "BestProbability", "NextCharData", "Seq2SeqData",
    "adding", "copy_memory", "copy_baseline", "temporal_order", "neurone_data", "digits",
    "sine", "sine_persistence_mse", "reverse_strings", "addition", "Problem", "PROBLEMS",
]


# -- argument checks ---------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


# -- adding problem ----------------------------------------------------------------------------
# Predicting the mean E[U1 + U2] = 1 always gives MSE = Var(U1 + U2) = Var(U1) + Var(U2)
# (independent) = 1/12 + 1/12 = 1/6 ~= 0.1667, since Var(U[0,1]) = 1/12. Le et al. (2015) and
# Arjovsky et al. (2016) print 0.1767: a slipped digit, not a different task.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding(n: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Adding problem (Hochreiter & Schmidhuber 1997; form of Le et al. 2015, Arjovsky et al. 2016).

    x[:, :, 0] ~ U[0, 1]; x[:, :, 1] is 0 except one 1 in the first half [0, T//2) and one in
    the second half [T//2, T). y = sum of the two marked values. Baseline: predict 1, MSE = 1/6.
    Returns x float32 (n, T, 2), y float32 (n, 1).
    """
    n, T, rng = _check_int("n", n, 1), _check_int("T", T, 2), _check_rng(rng)
    half = T // 2
    values = rng.random((n, T))                                 # (n, T)
    first = rng.integers(0, half, size=n)                       # (n,)
    second = rng.integers(half, T, size=n)                      # (n,)
    rows = np.arange(n)
    marker = np.zeros((n, T))                                   # (n, T)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = np.stack([values, marker], axis=-1).astype(np.float32)  # (n, T, 2)
    # sum the float32 values actually stored in x, so y is exactly what x shows
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]       # (n, 1)
    return x, y.astype(np.float32)


# -- copy memory -------------------------------------------------------------------------------
COPY_VOCAB = 10  # 0 blank, 1..8 symbols, 9 delimiter (for the default n_symbols=8)


def copy_memory(n: int, T: int, rng: np.random.Generator, n_symbols: int = 8,
                length: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Copy memory task (Arjovsky, Shah & Bengio 2016, "Unitary Evolution RNNs", sec. 4.1).

    Alphabet: 0 blank, 1..n_symbols symbols, n_symbols+1 delimiter (V = n_symbols + 2).
    Input:  `length` random symbols, T-1 blanks, the delimiter, `length` blanks.
    Target: blanks for T+length steps, then the `length` symbols.
    Baseline: `copy_baseline(T, length, n_symbols)`.
    Returns x, y int64 (n, T + 2*length).
    """
    n, T, rng = _check_int("n", n, 1), _check_int("T", T, 1), _check_rng(rng)
    n_symbols, length = _check_int("n_symbols", n_symbols, 1), _check_int("length", length, 1)
    total = T + 2 * length
    symbols = rng.integers(1, n_symbols + 1, size=(n, length))  # (n, length)
    x = np.zeros((n, total), dtype=np.int64)                    # (n, T + 2*length)
    y = np.zeros((n, total), dtype=np.int64)                    # (n, T + 2*length)
    x[:, :length] = symbols
    x[:, length + T - 1] = n_symbols + 1                        # delimiter: "start copying"
    y[:, T + length:] = symbols
    return x, y


def copy_baseline(T: int, length: int = 10, n_symbols: int = 8) -> float:
    """Cross-entropy per step of the memoryless strategy: length*ln(n_symbols) / (T + 2*length).

    Without memory the best one can do is output blanks (certain, cost 0) for the first
    T + length steps and a uniform guess over the symbols (cost ln n_symbols) for the last
    `length`; averaged over all T + 2*length steps. T=100 gives 10*ln 8/120 ~= 0.173.
    """
    T = _check_int("T", T, 1)
    length, n_symbols = _check_int("length", length, 1), _check_int("n_symbols", n_symbols, 1)
    return length * math.log(n_symbols) / (T + 2 * length)


# -- temporal order ----------------------------------------------------------------------------
TEMPORAL_ORDER_SYMBOLS = "abcdXY"   # one-hot channel order; a-d distractors, X/Y informative
TEMPORAL_ORDER_CLASSES = ("XX", "XY", "YX", "YY")
TEMPORAL_ORDER_BASELINE_ACC = 0.25  # 4 balanced classes: guessing any one class


def temporal_order(n: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Temporal order (Hochreiter & Schmidhuber 1997, task 6a; Pascanu, Mikolov & Bengio 2013).

    Each step is one of a, b, c, d (distractors) except two steps holding X or Y: the first at a
    uniform position in [T/10, 2T/10], the second in [5T/10, 6T/10] (bounds floored, inclusive).
    Class = order of the two: 0 XX, 1 XY, 2 YX, 3 YY, drawn uniformly (baseline accuracy 0.25).
    Returns x float32 one-hot (n, T, 6) over "abcdXY", y int64 (n,).
    """
    n, T, rng = _check_int("n", n, 1), _check_int("T", T, 10), _check_rng(rng)
    ids = rng.integers(0, 4, size=(n, T))                           # (n, T) distractors a..d
    t1 = rng.integers(T // 10, 2 * T // 10 + 1, size=n)             # (n,)
    t2 = rng.integers(5 * T // 10, 6 * T // 10 + 1, size=n)         # (n,)
    y = rng.integers(0, 4, size=n).astype(np.int64)                 # (n,)
    rows = np.arange(n)
    ids[rows, t1] = 4 + y // 2                                      # first symbol: X=4, Y=5
    ids[rows, t2] = 4 + y % 2                                       # second symbol
    x = np.eye(6, dtype=np.float32)[ids]                            # (n, T, 6)
    return x, y


# -- the lecture's "neurone" example -----------------------------------------------------------
# Italian words sharing letters, so that in "neurone" the current character alone does not say
# what comes next (after "u": r in neurone, o in nuora/ruota, n in uno, e in tenue) while the
# prefix does from "^neu" on (no other word starts with "neu").
NEURONE_WORDS = ("neurone", "nebbia", "neve", "nero", "nuora", "uno", "treno", "tenue",
                 "rete", "ruota")
START, END = "^", "$"


@dataclass(frozen=True)
class BayesAccuracy:
    """Best reachable next-char accuracy at each position of one word, on a given word set.

    `inputs[t]` is read, `targets[t]` must be predicted (inputs "^word", targets "word$").
    `current_char[t]`: max over k of P(next = k | current char), the frequencies counted over
    every position of every word in the set: what any model seeing only the current character
    (a feed-forward net) reaches on average where that character occurs.
    `prefix[t]`: the same given the whole prefix "^" + word[:t]; 1.0 where the prefix
    determines the next character (what a model with memory, an RNN, can reach).
    """

    word: str
    inputs: str
    targets: str
    current_char: np.ndarray  # (len(word)+1,) float64
    prefix: np.ndarray        # (len(word)+1,) float64

    @property
    def prefix_determined(self) -> np.ndarray:
        return self.prefix == 1.0

    @property
    def prefix_determined_fraction(self) -> float:
        return float(self.prefix_determined.mean())


@dataclass(frozen=True)
class BestProbability:
    """The most probability any model can give the right next character at each position of one
    word: `current_char[t]` = P(targets[t] | inputs[t]) (a model that sees only the current
    character, a feed-forward net), `prefix[t]` = P(targets[t] | "^" + word[:t]) (a model with
    memory, an RNN), both counted over every position of every word in the set."""

    word: str
    inputs: str
    targets: str
    current_char: np.ndarray  # (len(word)+1,) float64
    prefix: np.ndarray        # (len(word)+1,) float64


@dataclass(frozen=True)
class NextCharData:
    """Next-character prediction on a word list. vocab[0] is "$", also used as padding.

    x int64 (n_words, T_max): "^word" padded; y int64 (n_words, T_max): "word$" padded;
    lengths int64 (n_words,) = len(word) + 1 real steps per row; T_max = longest word + 1.
    """

    words: tuple[str, ...]
    vocab: list[str]
    x: np.ndarray        # (n_words, T_max) int64
    y: np.ndarray        # (n_words, T_max) int64
    lengths: np.ndarray  # (n_words,) int64

    @property
    def mask(self) -> np.ndarray:
        """bool (n_words, T_max): True on real steps, False on padding."""
        return np.arange(self.x.shape[1])[None, :] < self.lengths[:, None]

    def encode(self, s: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        return np.array([index[c] for c in s], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def _next_char_counts(self, word: str) -> tuple[dict[str, Counter], dict[str, Counter]]:
        """What follows each character and each prefix, counted over every position of every word."""
        if word not in self.words:
            raise ValueError(f"word: expected one of {self.words}, got {word!r}")
        by_char: dict[str, Counter] = defaultdict(Counter)
        by_prefix: dict[str, Counter] = defaultdict(Counter)
        for w in self.words:
            src, tgt = START + w, w + END
            for t in range(len(src)):
                by_char[src[t]][tgt[t]] += 1
                by_prefix[src[: t + 1]][tgt[t]] += 1
        return by_char, by_prefix

    def bayes_accuracy_per_position(self, word: str) -> BayesAccuracy:
        """Current-char-only vs whole-prefix Bayes accuracy at each position of `word`."""
        by_char, by_prefix = self._next_char_counts(word)

        def best(counts: Counter) -> float:  # accuracy of always guessing the most frequent
            return max(counts.values()) / sum(counts.values())

        src, tgt = START + word, word + END
        return BayesAccuracy(
            word=word, inputs=src, targets=tgt,
            current_char=np.array([best(by_char[src[t]]) for t in range(len(src))]),
            prefix=np.array([best(by_prefix[src[: t + 1]]) for t in range(len(src))]),
        )

    def best_probability_per_position(self, word: str) -> BestProbability:
        """The Bayes-optimal probability of the right next character of `word` at each position (what
        cross-entropy training converges to): the same measure as a model's P(next), for one axis."""
        by_char, by_prefix = self._next_char_counts(word)
        src, tgt = START + word, word + END
        return BestProbability(
            word=word, inputs=src, targets=tgt,
            current_char=np.array([by_char[src[t]][tgt[t]] / sum(by_char[src[t]].values()) for t in range(len(src))]),
            prefix=np.array([by_prefix[src[: t + 1]][tgt[t]] / sum(by_prefix[src[: t + 1]].values())
                             for t in range(len(src))]),
        )


def neurone_data(words=NEURONE_WORDS) -> NextCharData:
    """The lecture's example (seed lecture, "neurone"): read a word one char at a time, predict
    the next. A feed-forward net that reaches "u" has forgotten "n" and "e"; an RNN has not.

    Deterministic (no rng): one row per word. See `NextCharData.bayes_accuracy_per_position`
    for the two baselines (current char only vs whole prefix).
    """
    words = tuple(words)
    if not words:
        raise ValueError("words: expected at least one word, got an empty sequence")
    for w in words:
        if not isinstance(w, str) or not w or not all("a" <= c <= "z" for c in w):
            raise ValueError(f"words: expected non-empty lowercase a-z strings, got {w!r}")
    if len(set(words)) != len(words):
        raise ValueError(f"words: expected no duplicates, got {words}")
    vocab = [END, START] + sorted(set("".join(words)))  # END first: index 0 doubles as padding
    index = {c: i for i, c in enumerate(vocab)}
    T_max = max(len(w) for w in words) + 1
    x = np.zeros((len(words), T_max), dtype=np.int64)   # (n_words, T_max)
    y = np.zeros((len(words), T_max), dtype=np.int64)   # (n_words, T_max)
    for i, w in enumerate(words):
        x[i, : len(w) + 1] = [index[c] for c in START + w]
        y[i, : len(w) + 1] = [index[c] for c in w + END]
    lengths = np.array([len(w) + 1 for w in words], dtype=np.int64)
    return NextCharData(words=words, vocab=vocab, x=x, y=y, lengths=lengths)


# -- 8x8 digits --------------------------------------------------------------------------------
def digits(rng: np.random.Generator, mode: str = "row", test_fraction: float = 0.25):
    """scikit-learn's 8x8 digits (UCI optdigits test set, Alpaydin & Kaynak 1998), read as a
    sequence: mode "row" gives T=8 steps of D=8 pixels, "pixel" T=64 steps of D=1 (the
    "sequential MNIST" setting of Le et al. 2015, on a small scale). Pixels scaled to [0, 1].

    Shuffled with rng and split stratified by class. Baseline: majority class, ~0.10 accuracy.
    Returns x_train float32 (n_train, T, D), y_train int64 (n_train,), x_test, y_test.
    """
    rng = _check_rng(rng)
    if mode not in ("row", "pixel"):
        raise ValueError(f"mode: expected 'row' or 'pixel', got {mode!r}")
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits  # optional: only this task needs it
    except ImportError as e:
        raise ImportError("digits() needs scikit-learn: pip install rnnlab[tasks]") from e
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)          # (N, 8, 8), values 0..16 -> [0, 1]
    labels = bunch.target.astype(np.int64)                     # (N,)
    x = images if mode == "row" else images.reshape(len(images), 64, 1)
    test_idx, train_idx = [], []
    for c in np.unique(labels):                                # same class mix in both splits
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    train_idx = rng.permutation(np.concatenate(train_idx))     # mix the classes again
    test_idx = rng.permutation(np.concatenate(test_idx))
    return x[train_idx], labels[train_idx], x[test_idx], labels[test_idx]


# -- sine forecasting --------------------------------------------------------------------------
def sine(n: int, T: int, rng: np.random.Generator, horizon: int = 1,
         noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Many-to-many aligned forecasting: at every step predict the value `horizon` steps ahead.

    Each series is a sum of 1-3 sines, amplitude U[0.2, 1] (then divided by the count so the
    sum stays within ~[-1, 1]), frequency U[0.01, 0.1] cycles/step (periods of 10-100 steps),
    phase U[0, 2pi], plus Gaussian noise of std `noise`. y[:, t] = x[:, t + horizon].
    The classic toy of sequence forecasting (e.g. the LSTM time-series tutorials); baseline:
    persistence, `sine_persistence_mse(x, y)`.
    Returns x, y float32 (n, T, 1).
    """
    n, T, rng = _check_int("n", n, 1), _check_int("T", T, 1), _check_rng(rng)
    horizon = _check_int("horizon", horizon, 1)
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    K = 3
    k = rng.integers(1, K + 1, size=(n, 1))                            # (n, 1) sines per series
    active = np.arange(K)[None, :] < k                                 # (n, K)
    amp = rng.uniform(0.2, 1.0, size=(n, K)) * active / k              # (n, K)
    freq = rng.uniform(0.01, 0.1, size=(n, K))                         # (n, K)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, K))                   # (n, K)
    t = np.arange(T + horizon)                                         # (T + horizon,)
    waves = amp[:, :, None] * np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None])
    series = waves.sum(axis=1) + noise * rng.standard_normal((n, T + horizon))  # (n, T+horizon)
    series = series.astype(np.float32)[:, :, None]                     # (n, T + horizon, 1)
    return series[:, :T], series[:, horizon:]


def sine_persistence_mse(x: np.ndarray, y: np.ndarray) -> float:
    """MSE of the persistence forecast y_hat[t] = x[t] ("tomorrow like today") on given data."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"y: expected shape {x.shape} (same as x), got {y.shape}")
    return float(np.mean((y - x) ** 2))


# -- seq2seq (encoder-decoder) -----------------------------------------------------------------
PAD, GO, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<go>", "<eos>"]


@dataclass(frozen=True)
class Seq2SeqData:
    """Encoder-decoder data (Sutskever, Vinyals & Le 2014), padded with PAD = 0.

    src int64 (n, S), src_lengths int64 (n,); tgt_in int64 (n, U) = <go> + target (the decoder's
    teacher-forcing input); tgt_out int64 (n, U) = target + <eos>; tgt_mask bool (n, U) True on
    real target steps (the <eos> included). vocab[0..2] = <pad>, <go>, <eos>, then the chars.
    """

    src: np.ndarray
    src_lengths: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    tgt_mask: np.ndarray
    vocab: list[str]

    def decode(self, ids):
        """ids (L,) -> str, or (n, L) -> list[str]; stops at <eos>, skips <pad> and <go>."""
        ids = np.asarray(ids)
        if ids.ndim == 2:
            return [self.decode(row) for row in ids]
        out = []
        for i in ids.tolist():
            if i == EOS:
                break
            if i not in (PAD, GO):
                out.append(self.vocab[i])
        return "".join(out)


def _seq2seq(sources: list[str], targets: list[str], chars: str, S: int, U: int) -> Seq2SeqData:
    """Pack string pairs; S, U fixed by the task's arguments so every call gives the same shapes."""
    vocab = SPECIALS + list(chars)
    index = {c: i for i, c in enumerate(vocab)}
    n = len(sources)
    src = np.full((n, S), PAD, dtype=np.int64)         # (n, S)
    tgt_in = np.full((n, U), PAD, dtype=np.int64)      # (n, U)
    tgt_out = np.full((n, U), PAD, dtype=np.int64)     # (n, U)
    for i, (s, t) in enumerate(zip(sources, targets)):
        ids = [index[c] for c in t]
        src[i, : len(s)] = [index[c] for c in s]
        tgt_in[i, : len(t) + 1] = [GO] + ids
        tgt_out[i, : len(t) + 1] = ids + [EOS]
    src_lengths = np.array([len(s) for s in sources], dtype=np.int64)
    tgt_lengths = np.array([len(t) + 1 for t in targets], dtype=np.int64)
    tgt_mask = np.arange(U)[None, :] < tgt_lengths[:, None]  # (n, U)
    return Seq2SeqData(src, src_lengths, tgt_in, tgt_out, tgt_mask, vocab)


def reverse_strings(n: int, rng: np.random.Generator, min_len: int = 3, max_len: int = 8,
                    alphabet: str = "abcdefgh") -> Seq2SeqData:
    """Reverse a random string ("abc" -> "cba"), the toy of Sutskever et al. 2014, whose
    reversed source order made the first target step depend on the last source step.

    Lengths uniform in [min_len, max_len]; S = max_len, U = max_len + 1.
    Baseline: a decoder ignoring the source guesses each char with accuracy 1/len(alphabet).
    """
    n, rng = _check_int("n", n, 1), _check_rng(rng)
    min_len = _check_int("min_len", min_len, 1)
    max_len = _check_int("max_len", max_len, min_len)
    if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet: expected a non-empty string of distinct chars, got {alphabet!r}")
    lengths = rng.integers(min_len, max_len + 1, size=n)
    letters = np.array(list(alphabet))
    sources = ["".join(letters[rng.integers(0, len(alphabet), size=L)]) for L in lengths]
    return _seq2seq(sources, [s[::-1] for s in sources], alphabet, S=max_len, U=max_len + 1)


def addition(n: int, rng: np.random.Generator, digits: int = 3) -> Seq2SeqData:
    """Add two integers given as text ("123+45" -> "168"), Keras' addition_rnn example
    (after Zaremba & Sutskever 2014, "Learning to Execute").

    As in Keras, each operand has a uniform number of digits in [1, digits], each digit uniform
    (leading zeros collapse, so "007" is 7). S = 2*digits + 1, U = digits + 2 (sum plus <eos>).
    Baseline: a decoder ignoring the source guesses each digit with accuracy ~1/10.
    """
    n, rng = _check_int("n", n, 1), _check_rng(rng)
    digits = _check_int("digits", digits, 1)

    def operand() -> int:
        k = int(rng.integers(1, digits + 1))
        return int("".join(str(d) for d in rng.integers(0, 10, size=k)))

    pairs = [(operand(), operand()) for _ in range(n)]
    sources = [f"{a}+{b}" for a, b in pairs]
    targets = [str(a + b) for a, b in pairs]
    return _seq2seq(sources, targets, "0123456789+", S=2 * digits + 1, U=digits + 2)


# -- the registry: each sequence task once, with its shapes, loss and trivial baseline ----------
@dataclass(frozen=True)
class Problem:
    """A synthetic task ready for `rnnlab.models.task_model`: data, loss, trivial baseline.

    The demos and `rnnlab diagnose` read these; the experiments take the shapes and generators
    from here and add their own held-out metric."""

    name: str
    input_size: int                          # D
    output_size: int                         # O
    every_step: bool                         # many-to-many (True) or many-to-one (False)
    make: Callable                           # (n, T, rng) -> x float (n, T, D), y
    loss: Callable                           # (out, y) -> loss, dout
    baseline: Callable                       # T -> loss of the answer that ignores the past
    about: str


def _copy_onehot(n, T, rng):
    """copy_memory with T the total length, one-hot inputs (n, T, 10)."""
    if T <= 20:
        raise ValueError(f"copy_memory needs --seq-len > 20 (10 symbols, a delay, 10 to recall); got {T}")
    ids, y = copy_memory(n, T - 20, rng)  # total length (T - 20) + 2 * 10 = T
    return np.eye(10, dtype=np.float32)[ids], y


def _sine_baseline(T: int) -> float:
    return sine_persistence_mse(*sine(2000, T, np.random.default_rng(12345)))


def _losses():
    from ..nn.losses import cross_entropy, mse  # the losses live with the layers

    return cross_entropy, mse


_ce, _mse = _losses()
PROBLEMS: dict[str, Problem] = {
    "adding": Problem("adding", 2, 1, False, adding, _mse, lambda T: ADDING_BASELINE_MSE,
                      "sum the two marked numbers of T (MSE; always answering 1 gives 1/6)"),
    "temporal_order": Problem("temporal_order", 6, 4, False, temporal_order, _ce, lambda T: math.log(4),
                              "say in which order X and Y came among T distractors (guessing: ln 4)"),
    "copy_memory": Problem("copy_memory", 10, 10, True, _copy_onehot, _ce, lambda T: copy_baseline(T - 20),
                           "repeat 10 symbols after a long delay (memoryless: blanks, then a guess)"),
    "sine": Problem("sine", 1, 1, True, sine, _mse, _sine_baseline,
                    "forecast sums of sines one step ahead (MSE; 'next = this one' is the baseline)"),
}
