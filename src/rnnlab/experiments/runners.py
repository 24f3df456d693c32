"""One run of an experiment: build the model, train it through `rnnlab.train.optimize`, measure.

Each runner takes a RunSpec and returns a row: the held-out metric next to the task's trivial
baseline, the loss per step and extras. Models come from `rnnlab.models`, data from the seeded
generators and the task registry of `rnnlab.data.tasks`.

Shapes: B = batch, T = time steps, S/U = source/target length, V = vocabulary, H = hidden units.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..data import tasks
from ..data.tasks import PROBLEMS
from ..models import ManyToMany, ManyToOne, OneToOne, Seq2Seq, task_model
from ..nn.losses import cross_entropy, log_softmax, mse
from ..nn.module import no_grad
from ..optim import Adam
from ..train import optimize

if TYPE_CHECKING:
    from .registry import RunSpec

FF = "ff"  # the feed-forward baseline, a "cell" only the neurone experiment knows

# success thresholds on the held-out metric (the tables count the runs that pass them)
ADDING_SOLVED = 0.01          # test MSE below this: the sum is known (predicting 1 scores 0.167)
TEMPORAL_ORDER_SOLVED = 0.95  # test accuracy above this (guessing scores 0.25)
SOLVED_CHECK_EVERY = 100      # steps between validation checks of a run that stops once solved
N_VALIDATION = 500            # sequences in that validation set, drawn apart from training and test data
# A run stops once validation clears the threshold with room to spare: halfway from it to perfect
# (MSE < 0.005, accuracy > 0.975). Stopping the moment validation crosses it left the test metric a
# coin toss at the threshold (test MSE 0.0101 and 0.0105 after validation < 0.01).
ADDING_STOP = ADDING_SOLVED / 2
TEMPORAL_ORDER_STOP = (1 + TEMPORAL_ORDER_SOLVED) / 2


def _fit(model, spec: RunSpec, step_loss: Callable[[int], float], progress: bool,
         solved: Callable[[], bool] | None = None) -> list[float]:
    """Train with Adam + global-norm clipping via the shared loop; return the loss per step.

    solved() (from _stop_when_solved, None for a run that trains its whole budget) is asked every
    SOLVED_CHECK_EVERY steps and training ends at the first yes: the memory horizon asks whether a
    cell learns the task within the budget, and a solved run need not spend the rest of it."""
    params = model.parameters()
    bar = None
    if progress:
        from ..display import progress_bar

        T = "" if spec.T is None else f" T={spec.T}"
        bar = progress_bar(total=spec.steps, desc=f"{spec.experiment} {spec.cell}{T}", unit="step", leave=False,
                           dynamic_ncols=True, mininterval=0.5)

    def callback(row):
        if bar is not None:
            bar.update(1)
            if row["step"] % 25 == 0:
                bar.set_postfix_str(f"loss {row['loss']:.4f}")
        return solved is not None and row["step"] % SOLVED_CHECK_EVERY == 0 and solved()

    try:
        history = optimize(params, step_loss, Adam(params, lr=spec.lr), spec.steps, clip=spec.clip,
                           callback=callback)
    finally:
        if bar is not None:
            bar.close()
    return [row["loss"] for row in history]


def _in_chunks(fn, n: int, size: int = 200) -> np.ndarray:
    """fn(slice) over [0, n) in chunks, concatenated, under no_grad (forwards only, nothing kept)."""
    with no_grad():
        return np.concatenate([fn(slice(i, min(i + size, n))) for i in range(0, n, size)])


def _stop_when_solved(spec: RunSpec, make_data, metric, passes) -> Callable[[], bool] | None:
    """For a run with spec.stop_when_solved: solved() = passes(metric on N_VALIDATION fresh sequences
    of its own generator). None for every other run, which then draws no validation set at all."""
    if not spec.stop_when_solved:
        return None
    x_val, y_val = make_data(N_VALIDATION, spec.T, spec.validation_rng())
    return lambda: passes(metric(x_val, y_val))


def _row(spec: RunSpec, model, value: float, baseline: float, baseline_name: str, losses: list[float],
         loss_baseline: float | None, **extra) -> dict:
    return {"task": spec.experiment, "model": spec.cell, "hidden": spec.hidden, "T": spec.T,
            "steps": spec.steps, "batch": spec.batch, "lr": spec.lr, "seed": spec.seed,
            "value": float(value), "baseline": float(baseline),
            "baseline_name": baseline_name, "parameters": model.num_parameters(), "losses": losses,
            "trained_steps": len(losses),
            "loss_baseline": loss_baseline, **extra}


def _mse_step(model, x, y) -> float:
    loss, d = mse(model(x), y)
    model.backward(d)
    return loss


def _ce_step(model, x, y) -> float:
    loss, d = cross_entropy(model(x), y)
    model.backward(d)
    return loss


# -- the runs ---------------------------------------------------------------------------------------
N_TEST = 1000


def run_adding(spec: RunSpec, progress: bool) -> dict:
    """Many-to-one regression: the sum of the two marked numbers (test MSE vs predicting 1)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = task_model(PROBLEMS["adding"], spec.cell, spec.hidden, rng=model_rng)
    mse_on = lambda x, y: np.mean((_in_chunks(lambda s: model(x[s]), len(x)) - y) ** 2)
    solved = _stop_when_solved(spec, tasks.adding, mse_on, lambda mse: mse < ADDING_STOP)
    losses = _fit(model, spec, lambda step: _mse_step(model, *tasks.adding(spec.batch, spec.T, data_rng)), progress,
                  solved)
    x, y = tasks.adding(N_TEST, spec.T, test_rng)
    return _row(spec, model, mse_on(x, y), tasks.ADDING_BASELINE_MSE, "predict 1",
                losses, tasks.ADDING_BASELINE_MSE)


def run_copy(spec: RunSpec, progress: bool) -> dict:
    """Many-to-many over symbols: recall 10 symbols after T blanks (test CE/step vs memoryless)."""
    model_rng, data_rng, test_rng = spec.rngs()
    V = tasks.COPY_VOCAB
    model = ManyToMany(spec.cell, 16, spec.hidden, V, input_vocab=V, rng=model_rng)
    losses = _fit(model, spec, lambda step: _ce_step(model, *tasks.copy_memory(spec.batch, spec.T, data_rng)),
                  progress)
    x, y = tasks.copy_memory(N_TEST, spec.T, test_rng)
    logits = _in_chunks(lambda s: model(x[s]), N_TEST)  # (n, T+20, V)
    loss, _ = cross_entropy(logits, y)
    recalled = (logits[:, -10:].argmax(-1) == y[:, -10:]).mean()
    baseline = tasks.copy_baseline(spec.T)
    return _row(spec, model, loss, baseline, "memoryless: 10 ln 8/(T+20)", losses, baseline,
                symbol_accuracy=float(recalled))


def run_temporal_order(spec: RunSpec, progress: bool) -> dict:
    """Many-to-one classification: the order of X/Y among distractors (test accuracy vs 1/4)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = task_model(PROBLEMS["temporal_order"], spec.cell, spec.hidden, rng=model_rng)
    accuracy_on = lambda x, y: np.mean(_in_chunks(lambda s: model(x[s]).argmax(-1), len(x)) == y)
    solved = _stop_when_solved(spec, tasks.temporal_order, accuracy_on, lambda acc: acc > TEMPORAL_ORDER_STOP)
    losses = _fit(model, spec, lambda step: _ce_step(model, *tasks.temporal_order(spec.batch, spec.T, data_rng)),
                  progress, solved)
    x, y = tasks.temporal_order(N_TEST, spec.T, test_rng)
    return _row(spec, model, accuracy_on(x, y), tasks.TEMPORAL_ORDER_BASELINE_ACC, "guess one class",
                losses, math.log(4))


DIGITS_MODES = {8: "row", 64: "pixel"}


def run_digits(spec: RunSpec, progress: bool) -> dict:
    """Many-to-one classification of 8x8 digits read row by row (T=8) or pixel by pixel (T=64)."""
    model_rng, data_rng, _ = spec.rngs()
    x_train, y_train, x_test, y_test = tasks.digits(np.random.default_rng(spec.seed), mode=DIGITS_MODES[spec.T])
    model = ManyToOne(spec.cell, x_train.shape[2], spec.hidden, 10, rng=model_rng)

    def step_loss(step):
        index = data_rng.integers(0, len(x_train), size=spec.batch)
        return _ce_step(model, x_train[index], y_train[index])

    losses = _fit(model, spec, step_loss, progress)
    pred = _in_chunks(lambda s: model(x_test[s]).argmax(-1), len(x_test))
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    return _row(spec, model, np.mean(pred == y_test), np.mean(y_test == majority), "majority class",
                losses, math.log(10), test_examples=len(x_test))


SINE_HORIZON = 5  # forecast 5 steps ahead: one step is too easy to beat "tomorrow like today" by much


def run_sine(spec: RunSpec, progress: bool) -> dict:
    """Many-to-many regression: at every step forecast the series 5 steps ahead (vs persistence)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = task_model(PROBLEMS["sine"], spec.cell, spec.hidden, rng=model_rng)
    losses = _fit(model, spec, lambda step: _mse_step(
        model, *tasks.sine(spec.batch, spec.T, data_rng, horizon=SINE_HORIZON)), progress)
    x, y = tasks.sine(N_TEST, spec.T, test_rng, horizon=SINE_HORIZON)
    pred = _in_chunks(lambda s: model(x[s]), N_TEST)
    persistence = tasks.sine_persistence_mse(x, y)
    return _row(spec, model, np.mean((pred - y) ** 2), persistence, "persistence y(t+5) = y(t)", losses,
                persistence)


def _seq2seq_data(name: str, n: int, T: int, rng) -> tasks.Seq2SeqData:
    if name == "reverse":
        return tasks.reverse_strings(n, rng, min_len=min(3, T), max_len=T)
    return tasks.addition(n, rng, digits=(T - 1) // 2)


def run_seq2seq(spec: RunSpec, progress: bool) -> dict:
    """Encoder-decoder with teacher forcing; greedy decoding on the test set (exact match)."""
    model_rng, data_rng, test_rng = spec.rngs()
    test = _seq2seq_data(spec.experiment, N_TEST, spec.T, test_rng)
    V, U = len(test.vocab), test.tgt_out.shape[1]
    model = Seq2Seq(spec.cell, V, V, spec.hidden, embedding_dim=32, rng=model_rng)

    def step_loss(step):
        d = _seq2seq_data(spec.experiment, spec.batch, spec.T, data_rng)
        loss, dlogits = cross_entropy(model(d.src, d.tgt_in, d.src_lengths), d.tgt_out, d.tgt_mask)
        model.backward(dlogits)
        return loss

    losses = _fit(model, spec, step_loss, progress)
    ids = _in_chunks(lambda s: model.greedy_decode(test.src[s], U, test.src_lengths[s]), N_TEST)
    predicted, truth = test.decode(ids), test.decode(test.tgt_out)
    exact = np.mean([p == t for p, t in zip(predicted, truth)])
    common = Counter(truth).most_common(1)[0][1] / len(truth)
    sources = [test.decode(row) for row in test.src[:5]]
    return _row(spec, model, exact, common, "always the most common answer", losses, None,
                examples=[{"source": s, "target": t, "predicted": p}
                          for s, t, p in zip(sources, truth[:5], predicted[:5])])


def _neurone_stats(data: tasks.NextCharData) -> dict:
    """Bayes limits over all positions of all words: accuracy and cross-entropy (nats) given the
    current character only, and given the whole prefix."""
    by_char, by_prefix = defaultdict(Counter), defaultdict(Counter)
    for w in data.words:
        src, tgt = tasks.START + w, w + tasks.END
        for t in range(len(src)):
            by_char[src[t]][tgt[t]] += 1
            by_prefix[src[: t + 1]][tgt[t]] += 1
    n = sum(len(w) + 1 for w in data.words)

    def limits(table):
        accuracy = sum(max(c.values()) for c in table.values()) / n
        entropy = -sum(k * math.log(k / sum(c.values())) for c in table.values() for k in c.values()) / n
        return accuracy, entropy

    return {"current_char": limits(by_char), "prefix": limits(by_prefix)}


def neurone_model(spec: RunSpec, data: tasks.NextCharData):
    """(model, predict) for spec.cell: predict() gives logits (n_words, T, V) for every word. Applied at
    every step, the feed-forward net answers from that step's character alone; the RNN reads the prefix."""
    model_rng, _, _ = spec.rngs()
    V = len(data.vocab)
    if spec.cell == FF:
        model = OneToOne(8, spec.hidden, V, input_vocab=V, rng=model_rng)
        return model, lambda: model(data.x)
    model = ManyToMany(spec.cell, 8, spec.hidden, V, input_vocab=V, rng=model_rng)
    return model, lambda: model(data.x, data.lengths)


def fit_neurone(spec: RunSpec, data: tasks.NextCharData, progress: bool = False):
    """The neurone experiment's training (full batch, every word): (model, predict, losses)."""
    model, predict = neurone_model(spec, data)

    def step_loss(step):
        loss, dlogits = cross_entropy(predict(), data.y, data.mask)
        model.backward(dlogits)
        return loss

    return model, predict, _fit(model, spec, step_loss, progress)


def run_neurone(spec: RunSpec, progress: bool) -> dict:
    """Next character over NEURONE_WORDS: the feed-forward net sees one character, the RNN all of them."""
    data = tasks.neurone_data()
    mask = data.mask
    model, predict, losses = fit_neurone(spec, data, progress)
    with no_grad():
        logits = predict()  # (n_words, T, V)
    accuracy = float((logits.argmax(-1) == data.y)[mask].mean())
    stats = _neurone_stats(data)
    limit = "current_char" if spec.cell == FF else "prefix"
    row = data.words.index("neurone")
    length = int(data.lengths[row])
    p = np.exp(log_softmax(logits[row, :length].astype(np.float64)))  # (8, V)
    best = data.best_probability_per_position("neurone")  # the same measure as p_next, at its best
    positions = [{"reads": best.inputs[t], "next": best.targets[t], "guess": data.vocab[int(p[t].argmax())],
                  "p_next": float(p[t, data.y[row, t]]), "best_current_char": float(best.current_char[t]),
                  "best_prefix": float(best.prefix[t])} for t in range(length)]
    name = "Bayes limit, current char only" if spec.cell == FF else "Bayes limit, whole prefix"
    return _row(spec, model, accuracy, stats[limit][0], name, losses, stats[limit][1], positions=positions,
                bayes=stats)




def _state_norm(state) -> float:
    """Mean over the batch of ||c_t|| of the top layer (||h_t|| for a cell without a cell state)."""
    top = state[1][-1] if isinstance(state, tuple) else state[-1]  # (B, H)
    return float(np.linalg.norm(top.astype(np.float64), axis=1).mean())


def run_stream(spec: RunSpec, progress: bool) -> dict:
    """A continual stream (Gers, Schmidhuber & Cummins 2000): a character model reads the built-in
    text in chunks of T steps with its state carried and never reset, while training (truncated
    BPTT) and then for as many chunks again without training; ||c_t|| at each chunk's end."""
    from ..data.text import TBPTTBatches, Vocab, builtin_corpus
    from ..models import CharRNN, CharRNNConfig

    model_rng, _, _ = spec.rngs()
    text, description = builtin_corpus()
    vocab = Vocab.from_text(text)
    batches = TBPTTBatches(vocab.encode(text), spec.batch, spec.T, source=description)
    n = batches.num_batches()
    model = CharRNN(CharRNNConfig(len(vocab), spec.cell, spec.hidden, 1, 32), rng=model_rng)
    state, norms = None, []

    def step_loss(step):
        nonlocal state
        x, y = batches.batch_at((step - 1) % n)  # (B, T) ids; wraps to the text's start, the state goes on
        loss, dlogits = cross_entropy(model(x, state), y)
        model.backward(dlogits)
        state = model.final_state  # carried, never reset
        norms.append(_state_norm(state))
        return loss

    losses = _fit(model, spec, step_loss, progress)
    model.eval()
    stream, test_losses = [], []
    for k in range(spec.steps, 2 * spec.steps):  # the stream goes on, no more training
        x, y = batches.batch_at(k % n)
        loss, _ = cross_entropy(model(x, state), y)
        state = model.final_state
        stream.append(_state_norm(state))
        test_losses.append(loss)
    tail = max(1, len(stream) // 10)
    return _row(spec, model, np.mean(stream[-tail:]), np.mean(norms[:10]), "‖c‖ over the first 10 chunks",
                losses, None, state_norms_training=norms, state_norms_stream=stream,
                stream_loss=float(np.mean(test_losses[-tail:])))
