"""The lecture's claims as experiments anyone can rerun: `rnnlab experiment NAME`.

    rnnlab experiment neurone                       # feed-forward vs RNN, next char per position
    rnnlab experiment adding --T 100,200 --jobs 2   # tanh RNN vs LSTM vs GRU across long gaps
    rnnlab experiment copy --cells lstm --T 100
    rnnlab experiment digits                        # 8x8 digits row by row (T=8), pixel by pixel (T=64)
    rnnlab experiment seq2seq                       # reverse strings, add numbers written as text

    from rnnlab.experiments import run_experiment
    result = run_experiment("adding", cells=["lstm"], Ts=[50], steps=300, out="runs/adding")
    print(result.table)                             # also in result.run_dir: results.json, table.md, adding.png

Each run of a sweep (one cell, one T) trains one model with Adam and gradient clipping through
`rnnlab.train.optimize`, on fresh batches from the seeded task generators in
`rnnlab.data.tasks` (digits: a fixed train/test split), then measures a metric on a held-out test
set next to the task's trivial baseline. Runs are independent, so `jobs > 1` spreads them over
processes; the numbers do not depend on `jobs` (each run seeds its own generators from `seed`).
Workers are spawned (fresh interpreters with one BLAS thread each), so a script that calls
`run_experiment(..., jobs=2)` needs the usual `if __name__ == "__main__":` guard.

Shapes: B = batch, T = time steps, S/U = source/target length, V = vocabulary, H = hidden units.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .data import tasks
from .models import CELLS, ManyToMany, ManyToOne, OneToOne, Seq2Seq
from .nn.losses import cross_entropy, log_softmax, mse
from .nn.module import no_grad
from .optim import Adam
from .train import optimize

FF = "ff"  # the feed-forward baseline, a "cell" only the neurone experiment knows


@dataclass(frozen=True)
class Experiment:
    """One of the lecture's experiments: what it trains, its defaults, and how a run goes."""

    name: str
    kind: str                       # which of the four kinds of RNN it uses
    summary: str
    source: str                     # where the task and its published figures come from
    metric: str                     # what the table reports, measured on held-out data
    higher_is_better: bool
    cells: tuple[str, ...]          # default --cells
    Ts: tuple[int, ...] | None      # default --T (None: the task has no length to choose)
    steps: int                      # default --steps
    hidden: int                     # default --hidden
    batch: int
    lr: float
    runner: Callable = field(repr=False, compare=False, default=None)
    tasks: tuple[str, ...] = ()     # an umbrella (seq2seq) runs these experiments instead


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything it needs, picklable for a worker process."""

    experiment: str
    cell: str
    T: int | None
    hidden: int
    steps: int
    batch: int
    lr: float
    seed: int
    clip: float = 1.0

    def rngs(self) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """Independent generators for the model's weights, the training batches and the test set.
        The same seed gives every cell the same data, so cells compare on equal terms."""
        T = 0 if self.T is None else self.T
        return tuple(np.random.default_rng([self.seed, T, i]) for i in range(3))


@dataclass
class ExperimentResult:
    name: str
    rows: list[dict]                # one per run: the table's columns plus losses and extras
    table: str                      # the printed table (and any per-experiment detail)
    run_dir: Path | None
    files: list[Path]
    seconds: float


# -- shared pieces ---------------------------------------------------------------------------------
def _fit(model, spec: RunSpec, step_loss: Callable[[int], float], progress: bool) -> list[float]:
    """Train with Adam + global-norm clipping via the shared loop; return the loss per step."""
    params = model.parameters()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        T = "" if spec.T is None else f" T={spec.T}"
        bar = tqdm(total=spec.steps, desc=f"{spec.experiment} {spec.cell}{T}", unit="step", leave=False,
                   dynamic_ncols=True, mininterval=0.5)

    def callback(row):
        if bar is not None:
            bar.update(1)
            if row["step"] % 25 == 0:
                bar.set_postfix_str(f"loss {row['loss']:.4f}")

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


def _row(spec: RunSpec, model, value: float, baseline: float, baseline_name: str, losses: list[float],
         loss_baseline: float | None, **extra) -> dict:
    return {"task": spec.experiment, "model": spec.cell, "hidden": spec.hidden, "T": spec.T,
            "steps": spec.steps, "batch": spec.batch, "lr": spec.lr, "seed": spec.seed,
            "metric": EXPERIMENTS[spec.experiment].metric, "value": float(value), "baseline": float(baseline),
            "baseline_name": baseline_name, "parameters": model.num_parameters(), "losses": losses,
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


def _run_adding(spec: RunSpec, progress: bool) -> dict:
    """Many-to-one regression: the sum of the two marked numbers (test MSE vs predicting 1)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = ManyToOne(spec.cell, 2, spec.hidden, 1, rng=model_rng)
    losses = _fit(model, spec, lambda step: _mse_step(model, *tasks.adding(spec.batch, spec.T, data_rng)), progress)
    x, y = tasks.adding(N_TEST, spec.T, test_rng)
    pred = _in_chunks(lambda s: model(x[s]), N_TEST)
    return _row(spec, model, np.mean((pred - y) ** 2), tasks.ADDING_BASELINE_MSE, "predict 1",
                losses, tasks.ADDING_BASELINE_MSE)


def _run_copy(spec: RunSpec, progress: bool) -> dict:
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


def _run_temporal_order(spec: RunSpec, progress: bool) -> dict:
    """Many-to-one classification: the order of X/Y among distractors (test accuracy vs 1/4)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = ManyToOne(spec.cell, 6, spec.hidden, 4, rng=model_rng)
    losses = _fit(model, spec, lambda step: _ce_step(model, *tasks.temporal_order(spec.batch, spec.T, data_rng)),
                  progress)
    x, y = tasks.temporal_order(N_TEST, spec.T, test_rng)
    pred = _in_chunks(lambda s: model(x[s]).argmax(-1), N_TEST)
    return _row(spec, model, np.mean(pred == y), tasks.TEMPORAL_ORDER_BASELINE_ACC, "guess one class",
                losses, math.log(4))


DIGITS_MODES = {8: "row", 64: "pixel"}


def _run_digits(spec: RunSpec, progress: bool) -> dict:
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


def _run_sine(spec: RunSpec, progress: bool) -> dict:
    """Many-to-many regression: at every step forecast the series 5 steps ahead (vs persistence)."""
    model_rng, data_rng, test_rng = spec.rngs()
    model = ManyToMany(spec.cell, 1, spec.hidden, 1, rng=model_rng)
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


def _run_seq2seq(spec: RunSpec, progress: bool) -> dict:
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


def _run_neurone(spec: RunSpec, progress: bool) -> dict:
    """Next character over NEURONE_WORDS: the feed-forward net sees one character, the RNN all of them."""
    model_rng, _, _ = spec.rngs()
    data = tasks.neurone_data()
    V, mask = len(data.vocab), data.mask
    if spec.cell == FF:  # applied at every step, it answers from that step's character alone
        model = OneToOne(8, spec.hidden, V, input_vocab=V, rng=model_rng)
        predict = lambda: model(data.x)
    else:
        model = ManyToMany(spec.cell, 8, spec.hidden, V, input_vocab=V, rng=model_rng)
        predict = lambda: model(data.x, data.lengths)

    def step_loss(step):
        loss, dlogits = cross_entropy(predict(), data.y, mask)
        model.backward(dlogits)
        return loss

    losses = _fit(model, spec, step_loss, progress)
    with no_grad():
        logits = predict()  # (n_words, T, V)
    accuracy = float((logits.argmax(-1) == data.y)[mask].mean())
    stats = _neurone_stats(data)
    limit = "current_char" if spec.cell == FF else "prefix"
    row = data.words.index("neurone")
    length = int(data.lengths[row])
    p = np.exp(log_softmax(logits[row, :length].astype(np.float64)))  # (8, V)
    bayes = data.bayes_accuracy_per_position("neurone")
    positions = [{"reads": bayes.inputs[t], "next": bayes.targets[t], "guess": data.vocab[int(p[t].argmax())],
                  "p_next": float(p[t, data.y[row, t]]), "bayes_current_char": float(bayes.current_char[t]),
                  "bayes_prefix": float(bayes.prefix[t])} for t in range(length)]
    name = "Bayes limit, current char only" if spec.cell == FF else "Bayes limit, whole prefix"
    return _row(spec, model, accuracy, stats[limit][0], name, losses, stats[limit][1], positions=positions,
                bayes=stats)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("neurone", "one-to-one vs many-to-many", "next character over words sharing letters: the "
               "feed-forward net sees the current character, the RNN the whole prefix",
               "the lecture's 'neurone' example", "accuracy (all positions)", True,
               (FF, "rnn"), None, 400, 32, 10, 1e-2, _run_neurone),
    Experiment("adding", "many-to-one", "sum of the two marked numbers among T (regression)",
               "Hochreiter & Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016", "test MSE", False,
               ("rnn", "lstm", "gru"), (100,), 2000, 64, 64, 5e-3, _run_adding),
    Experiment("copy", "many-to-many (aligned)", "recall 10 symbols after T blanks",
               "Arjovsky, Shah & Bengio 2016", "test CE/step", False,
               ("lstm",), (100,), 2000, 128, 64, 2e-3, _run_copy),
    Experiment("temporal-order", "many-to-one", "class = order of X/Y placed among T distractors",
               "Hochreiter & Schmidhuber 1997 (6a); Pascanu et al. 2013", "test accuracy", True,
               ("rnn", "lstm"), (50,), 1500, 64, 32, 5e-3, _run_temporal_order),
    Experiment("digits", "many-to-one", "8x8 digits read row by row (T=8) or pixel by pixel (T=64)",
               "scikit-learn digits; Le et al. 2015 (sequential MNIST)", "test accuracy", True,
               ("rnn", "lstm"), (8, 64), 1500, 64, 64, 2e-3, _run_digits),
    Experiment("sine", "many-to-many (aligned)", "forecast a sum of sines 5 steps ahead at every step",
               "the classic forecasting toy", "test MSE", False,
               ("rnn", "lstm"), (50,), 800, 32, 32, 3e-3, _run_sine),
    Experiment("reverse", "seq2seq", "reverse a string of 3..T letters",
               "Sutskever, Vinyals & Le 2014", "exact match", True,
               ("lstm",), (8,), 2000, 128, 64, 2e-3, _run_seq2seq),
    Experiment("addition", "seq2seq", "'123+45' -> '168'; T = 2*digits + 1 source characters",
               "Keras addition_rnn; Zaremba & Sutskever 2014", "exact match", True,
               ("lstm",), (7,), 3000, 128, 128, 2e-3, _run_seq2seq),
    Experiment("seq2seq", "seq2seq", "runs 'reverse' and 'addition' at their defaults",
               "Sutskever et al. 2014; Keras addition_rnn", "exact match", True,
               ("lstm",), None, 0, 0, 0, 0.0, None, tasks=("reverse", "addition")),
]}


# -- validation -------------------------------------------------------------------------------------
def _check_T(name: str, T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)):
        raise TypeError(f"{name}: T must be an integer; got {T!r}")
    T = int(T)
    rules = {
        "adding": (T >= 2, "T must be >= 2 (one marker in each half)"),
        "copy": (T >= 1, "T must be >= 1"),
        "temporal-order": (T >= 10, "T must be >= 10 (the two symbols sit at T/10..2T/10 and 5T/10..6T/10)"),
        "digits": (T in DIGITS_MODES, "T must be 8 (row by row) or 64 (pixel by pixel)"),
        "sine": (T >= 1, "T must be >= 1"),
        "reverse": (T >= 1, "T (the longest string) must be >= 1"),
        "addition": (T >= 3 and T % 2 == 1, "T is the source length 2*digits + 1: odd and >= 3"),
    }
    ok, message = rules[name]
    if not ok:
        raise ValueError(f"{name}: {message}; got T={T}")
    return T


def _positive(name: str, value, kind=int):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0 \
            or (kind is int and int(value) != value):
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}; got {value!r}")
    return kind(value)


def plan(name: str, cells=None, Ts=None, steps=None, hidden=None, seed: int = 0, batch=None,
         lr=None) -> list[RunSpec]:
    """The runs `run_experiment` would make, validated; ValueError/TypeError name what is wrong."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    if exp.tasks:
        if Ts:
            raise ValueError(f"{name} runs {' and '.join(exp.tasks)} at their own lengths; --T does not apply "
                             f"(run one of them, e.g. `rnnlab experiment {exp.tasks[0]} --T 10`)")
        return [spec for task in exp.tasks for spec in plan(task, cells, None, steps, hidden, seed, batch, lr)]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    cells = list(exp.cells if not cells else cells)
    allowed = (FF,) + CELLS if name == "neurone" else CELLS
    for cell in cells:
        if cell not in allowed:
            raise ValueError(f"{name}: unknown cell {cell!r}; choose from {', '.join(allowed)}")
    if len(set(cells)) != len(cells):
        raise ValueError(f"{name}: a cell is listed twice in {cells}")
    if exp.Ts is None:
        if Ts:
            raise ValueError(f"{name} reads whole words; --T does not apply")
        Ts = [None]
    else:
        Ts = [_check_T(name, T) for T in (Ts or exp.Ts)]
        if len(set(Ts)) != len(Ts):
            raise ValueError(f"{name}: a T is listed twice in {Ts}")
    steps = _positive("steps", steps) or exp.steps
    hidden = _positive("hidden", hidden) or exp.hidden
    batch = _positive("batch", batch) or exp.batch
    lr = _positive("lr", lr, float) or exp.lr
    return [RunSpec(name, cell, T, hidden, steps, batch, lr, int(seed)) for T in Ts for cell in cells]


# -- running a sweep --------------------------------------------------------------------------------
def run_spec(spec: RunSpec, progress: bool = False) -> dict:
    """Train and evaluate one run; the row carries its wall time."""
    start = time.perf_counter()
    row = EXPERIMENTS[spec.experiment].runner(spec, progress)
    row["seconds"] = time.perf_counter() - start
    return row


def _single_threaded_blas():
    """Worker processes each get one BLAS thread: a sweep is parallel across runs, and BLAS
    threads fighting over the same cores slow everything down (set before numpy loads)."""
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for key, value in saved.items():
        if value is None:
            os.environ[key] = "1"
    return saved


def _ignore_sigint():
    """Workers leave Ctrl-C to the parent (which terminates them), so none prints a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_all(specs: list[RunSpec], jobs: int, progress: bool) -> list[dict]:
    if jobs == 1 or len(specs) == 1:
        return [run_spec(spec, progress) for spec in specs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(jobs, len(specs))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), desc=f"{specs[0].experiment}: runs on {workers} processes", unit="run",
                   dynamic_ncols=True)
    rows: list[dict | None] = [None] * len(specs)
    saved = _single_threaded_blas()  # kept while workers may start: they read it when they import numpy
    try:  # spawn: fresh interpreters (fork would copy the parent's BLAS threads and locks)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_ignore_sigint) as pool:
            try:
                futures = {pool.submit(run_spec, spec): i for i, spec in enumerate(specs)}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    if bar is not None:
                        bar.update(1)
            except KeyboardInterrupt:  # Ctrl-C reaches the parent alone: it stops the workers, quietly
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
        if bar is not None:
            bar.close()
    return rows


def run_experiment(name: str, cells=None, Ts=None, steps=None, hidden=None, seed: int = 0, batch=None, lr=None,
                   out=None, jobs: int = 1, progress: bool = False, command: str | None = None) -> ExperimentResult:
    """Run every (cell, T) of an experiment, print nothing, and write results.json, table.md and
    NAME.png into `out` (None: write nothing). Arguments left None take the experiment's defaults."""
    specs = plan(name, cells, Ts, steps, hidden, seed, batch, lr)
    jobs = _positive("jobs", jobs)
    start = time.perf_counter()
    rows = _run_all(specs, jobs, progress)
    seconds = time.perf_counter() - start
    table = format_table(rows)
    if name == "neurone":
        table += "\n\n" + format_neurone(rows)
    files: list[Path] = []
    run_dir = None
    if out is not None:
        run_dir = Path(out)
        run_dir.mkdir(parents=True, exist_ok=True)
        summary = {"experiment": name, "command": command, "seconds": seconds, "jobs": jobs,
                   "runs": [asdict(s) for s in specs], "rows": rows}
        files.append(_write(run_dir / "results.json", json.dumps(summary, indent=1)))
        files.append(_write(run_dir / "table.md", (f"`{command}`\n\n" if command else "") + table + "\n"))
        files.append(plot_experiment(name, rows, run_dir / f"{name}.png"))
    return ExperimentResult(name, rows, table, run_dir, files, seconds)


def _write(path: Path, text: str) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# -- reporting ----------------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def format_table(rows: list[dict]) -> str:
    """A Markdown table: task, model, hidden, T, steps, metric, value, baseline, wall time."""
    header = ["task", "model", "hidden", "T", "steps", "metric", "value", "baseline", "time"]
    lines = [[r["task"], r["model"], str(r["hidden"]), "-" if r["T"] is None else str(r["T"]), str(r["steps"]),
              r["metric"], _fmt(r["value"]), f"{_fmt(r['baseline'])} ({r['baseline_name']})",
              f"{r['seconds']:.0f} s"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    numeric = {2, 3, 4, 6, 8}

    def render(cells):
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    extra = []
    for r in rows:
        if "symbol_accuracy" in r:
            extra.append(f"{r['task']} {r['model']} T={r['T']}: {r['symbol_accuracy']:.1%} of the recalled "
                         "symbols right")
        for e in r.get("examples", [])[:3]:
            extra.append(f"{r['task']} {r['model']}: {e['source']!r} -> {e['predicted']!r} (target {e['target']!r})")
    return "\n".join([render(header), rule] + [render(line) for line in lines] + ([""] + extra if extra else []))


def format_neurone(rows: list[dict]) -> str:
    """Per position of "neurone": each model's guess and P(next), beside the two Bayes limits."""
    positions = [r["positions"] for r in rows]
    head = ["t", "reads", "next"] + [f"{r['model']}: guess, P(next)" for r in rows] + \
           ["Bayes: current char", "Bayes: prefix"]
    lines = []
    for t, base in enumerate(positions[0]):
        lines.append([str(t), repr(base["reads"]), repr(base["next"])] +
                     [f"{p[t]['guess']!r} {'ok' if p[t]['guess'] == base['next'] else '--'} {p[t]['p_next']:.2f}"
                      for p in positions] + [f"{base['bayes_current_char']:.2f}", f"{base['bayes_prefix']:.2f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    render = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join(["Reading \"neurone\" one character at a time:", "", render(head), rule] +
                     [render(line) for line in lines])


def plot_experiment(name: str, rows: list[dict], path) -> Path:
    """Training loss of every run (smoothed) with its baseline; neurone adds P(next) per position."""
    from .plots import new_figure, smooth

    path = Path(path)
    neurone = name == "neurone"
    fig = new_figure(12 if neurone else 8, 4.5)
    axes = fig.subplots(1, 2) if neurone else [fig.add_subplot()]
    ax = axes[0]
    several_tasks = len({r["task"] for r in rows}) > 1
    key = (lambda r: (r["task"], r["model"])) if several_tasks else (lambda r: r["model"])
    colors = {}
    for r in rows:
        color = colors.setdefault(key(r), f"C{len(colors)}")
        style = ["-", "--", ":", "-."][sorted({x["T"] or 0 for x in rows}).index(r["T"] or 0) % 4]
        label = r["model"] if r["T"] is None else f"{r['model']} T={r['T']}"
        if several_tasks:
            label = f"{r['task']}: {label}"
        losses = np.asarray(r["losses"], dtype=np.float64)
        window = max(1, min(50, len(losses) // 20))
        ax.plot(np.arange(1, len(losses) + 1), smooth(losses, window), color=color, ls=style, lw=1.8,
                label=f"{label} ({r['metric']} {_fmt(r['value'])})")
        if r["loss_baseline"] is not None:
            ax.axhline(r["loss_baseline"], color=color, ls=style, lw=0.8, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed); thin lines: baselines")
    kind = EXPERIMENTS[name].kind
    ax.set_title(name if kind == name else f"{name} ({kind})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if neurone:
        ax = axes[1]
        base = rows[0]["positions"]
        t = np.arange(len(base))
        width = 0.8 / len(rows)
        for i, r in enumerate(rows):
            ax.bar(t - 0.4 + width * (i + 0.5), [p["p_next"] for p in r["positions"]], width,
                   color=colors[key(r)], label=f"{r['model']}: P(next)")
        ax.step(t, [p["bayes_current_char"] for p in base], where="mid", color="k", ls="--",
                label="Bayes: current char only")
        ax.step(t, [p["bayes_prefix"] for p in base], where="mid", color="k", ls=":", label="Bayes: whole prefix")
        ax.set_xticks(t, [f"{p['reads']}->{p['next']}" for p in base])
        ax.set_ylim(0, 1.05)
        ax.set_title('reading "neurone": probability of the right next character', fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# -- the command --------------------------------------------------------------------------------------
def _csv(kind):
    def parse(text: str):
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}; got {text!r}")
    return parse


def _describe() -> str:
    lines = []
    for e in EXPERIMENTS.values():
        T = "" if e.Ts is None else f", T={','.join(map(str, e.Ts))}"
        cells = ",".join(e.cells)
        defaults = f" [{cells}{T}, {e.steps} steps, hidden {e.hidden}]" if not e.tasks else ""
        lines.append(f"  {e.name:15s}{e.kind}: {e.summary}{defaults}")
    return "experiments:\n" + "\n".join(lines) + "\n"


def add_experiment_command(subparsers) -> argparse.ArgumentParser:
    """Add `experiment NAME [options]` to an argparse subparsers object; its run(args) returns 0."""
    p = subparsers.add_parser(
        "experiment", help="run one of the lecture's experiments and print its table",
        description="Train the models of one experiment (a sweep over --cells and --T), print a table of the "
                    "held-out metric beside the task's trivial baseline, and write results.json, table.md and a "
                    "plot to --out.",
        epilog=_describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help="one of: " + ", ".join(EXPERIMENTS))
    p.add_argument("--cells", type=_csv(str), default=None,
                   help=f"comma-separated cells: {', '.join(CELLS)} (neurone also: ff) (default: the experiment's)")
    p.add_argument("--T", dest="Ts", type=_csv(int), default=None, metavar="T",
                   help="comma-separated sequence lengths, e.g. 50,100,200 (digits: 8 = rows, 64 = pixels)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    p.add_argument("--hidden", type=int, default=None, help="hidden units")
    p.add_argument("--batch", type=int, default=None, help="examples per step")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    p.add_argument("--out", default=None, help="run directory (default: runs/NAME)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained in parallel processes (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_command)
    return p


def command_line(args) -> str:
    """The `rnnlab experiment ...` line that reproduces these arguments (for the records)."""
    parts = ["rnnlab experiment", args.name]
    for flag, value in (("--cells", args.cells), ("--T", args.Ts)):
        if value:
            parts.append(f"{flag} {','.join(map(str, value))}")
    for flag in ("steps", "hidden", "batch", "lr"):
        if getattr(args, flag) is not None:
            parts.append(f"--{flag} {getattr(args, flag)}")
    parts.append(f"--seed {args.seed}")
    if args.jobs != 1:
        parts.append(f"--jobs {args.jobs}")
    if args.out is not None:
        parts.append(f"--out {args.out}")
    return " ".join(parts)


def run_command(args) -> int:
    command = command_line(args)
    out = args.out if args.out is not None else str(Path("runs") / args.name)
    result = run_experiment(args.name, cells=args.cells, Ts=args.Ts, steps=args.steps, hidden=args.hidden,
                            seed=args.seed, batch=args.batch, lr=args.lr, out=out, jobs=args.jobs,
                            progress=not args.no_progress, command=command)
    print(result.table)
    print(f"\n{len(result.rows)} run(s) in {result.seconds:.0f} s; results, table and plot in {result.run_dir}/")
    return 0


__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "RunSpec", "add_experiment_command", "format_table",
           "plan", "plot_experiment", "run_experiment", "run_spec"]
