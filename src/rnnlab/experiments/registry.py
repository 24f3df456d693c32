"""The experiments, their defaults and validation: which runs `rnnlab experiment NAME` makes.

`plan(...)` turns the user's choices into RunSpecs, checked, with one clear error for bad input.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from ..models import CELLS
from . import runners


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
    tasks: tuple[str, ...] = ()     # an umbrella (seq2seq, horizon) runs these experiments instead
    success: tuple[str, str, float] | None = None  # (row key, "<" or ">", threshold): a run succeeded
    stop_when_solved: bool = False  # an umbrella's runs stop once solved (the horizon asks "solved?", not "how well?")

    def succeeded(self, row: dict) -> bool | None:
        """Whether a run's row passes the success threshold (None: the task has none)."""
        if self.success is None:
            return None
        key, op, threshold = self.success
        return bool(row[key] < threshold) if op == "<" else bool(row[key] > threshold)


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
    stop_when_solved: bool = False  # end training once a validation set passes the success threshold

    def key(self) -> str:
        """A short hash of the whole configuration and seed: the run's name in the store."""
        config = asdict(self)
        if not self.stop_when_solved:  # absent, not False: runs stored before the field existed keep their keys
            del config["stop_when_solved"]
        text = json.dumps(config, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def rngs(self) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """Independent generators for the model's weights, the training batches and the test set.
        The same seed gives every cell the same data, so cells compare on equal terms."""
        T = 0 if self.T is None else self.T
        return tuple(np.random.default_rng([self.seed, T, i]) for i in range(3))

    def validation_rng(self) -> np.random.Generator:
        """A fourth generator, for the validation set that decides when a run has solved its task."""
        return np.random.default_rng([self.seed, 0 if self.T is None else self.T, 3])


# the memory-horizon sweep's cells: the tanh RNN, the gated cells, and the LSTM without forget gate
HORIZON_CELLS = tuple(c for c in ("rnn", "gru", "lstm", "lstm_noforget") if c in CELLS)

# the continual stream's cells: the LSTM with its forget gate, and without it
STREAM_CELLS = tuple(c for c in ("lstm", "lstm_noforget") if c in CELLS)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("neurone", "one-to-one vs many-to-many", "next character over words sharing letters: the "
               "feed-forward net sees the current character, the RNN the whole prefix",
               "the lecture's 'neurone' example", "accuracy (all positions)", True,
               (runners.FF, "rnn"), None, 400, 32, 10, 1e-2, runners.run_neurone),
    Experiment("adding", "many-to-one", "sum of the two marked numbers among T (regression)",
               "Hochreiter & Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016", "test MSE", False,
               ("rnn", "lstm", "gru"), (100,), 2000, 64, 64, 5e-3, runners.run_adding,
               success=("value", "<", runners.ADDING_SOLVED)),
    Experiment("copy", "many-to-many (aligned)", "recall 10 symbols after T blanks",
               "Arjovsky, Shah & Bengio 2016", "test CE/step", False,
               ("lstm",), (100,), 2000, 128, 64, 2e-3, runners.run_copy,
               success=("symbol_accuracy", ">", 0.99)),
    Experiment("temporal-order", "many-to-one", "class = order of X/Y placed among T distractors",
               "Hochreiter & Schmidhuber 1997 (6a); Pascanu et al. 2013", "test accuracy", True,
               ("rnn", "lstm"), (50,), 1500, 64, 32, 5e-3, runners.run_temporal_order,
               success=("value", ">", runners.TEMPORAL_ORDER_SOLVED)),
    Experiment("digits", "many-to-one", "8x8 digits read row by row (T=8) or pixel by pixel (T=64)",
               "scikit-learn digits; Le et al. 2015 (sequential MNIST)", "test accuracy", True,
               ("rnn", "lstm"), (8, 64), 1500, 64, 64, 2e-3, runners.run_digits),
    Experiment("sine", "many-to-many (aligned)", "forecast a sum of sines 5 steps ahead at every step",
               "the classic forecasting toy", "test MSE", False,
               ("rnn", "lstm"), (50,), 800, 32, 32, 3e-3, runners.run_sine),
    Experiment("reverse", "seq2seq", "reverse a string of 3..T letters",
               "Sutskever, Vinyals & Le 2014", "exact match", True,
               ("lstm",), (8,), 2000, 128, 64, 2e-3, runners.run_seq2seq),
    Experiment("addition", "seq2seq", "'123+45' -> '168'; T = 2*digits + 1 source characters",
               "Keras addition_rnn; Zaremba & Sutskever 2014", "exact match", True,
               ("lstm",), (7,), 3000, 128, 128, 2e-3, runners.run_seq2seq),
    Experiment("seq2seq", "seq2seq", "runs 'reverse' and 'addition' at their defaults",
               "Sutskever et al. 2014; Keras addition_rnn", "exact match", True,
               ("lstm",), None, 0, 0, 0, 0.0, None, tasks=("reverse", "addition")),
    Experiment("stream", "many-to-many (aligned), never reset", "a character model reads one stream in chunks "
               "of T with its state carried, never reset: ||c_t|| with and without the forget gate",
               "Gers, Schmidhuber & Cummins 2000", "mean ‖c_t‖ at the stream's end", False, STREAM_CELLS, (50,),
               400, 64, 16, 3e-3, runners.run_stream),
    Experiment("horizon", "many-to-one", "where each cell stops remembering: adding and temporal order over "
               "growing T, success rate per cell", "Hochreiter & Schmidhuber 1997; Gers et al. 2000",
               "success rate", True, HORIZON_CELLS, (10, 20, 50, 100, 200, 500, 1000), 0, 0, 0, 0.0, None,
               tasks=("adding", "temporal-order"), stop_when_solved=True),
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
        "digits": (T in runners.DIGITS_MODES, "T must be 8 (row by row) or 64 (pixel by pixel)"),
        "sine": (T >= 1, "T must be >= 1"),
        "stream": (T >= 1, "T (the chunk length) must be >= 1"),
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


MAX_SEEDS = 1000  # a sweep of more seeds is a typo (0-1000000000), not a plan: refused before any list is built


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,3,7' -> [0, 3, 7]; ranges and lists mix ('0-2,9'); at most MAX_SEEDS."""
    ranges = []
    for part in (p.strip() for p in str(text).split(",")):
        first, dash, last = part.partition("-")
        try:
            lo, hi = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"seeds: expected e.g. 0-4 or 0,3,7; got {text!r}") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"seeds: a range runs from a non-negative seed up, e.g. 0-4; got {part!r}")
        ranges.append(range(lo, hi + 1))
    count = sum(len(r) for r in ranges)  # counted before any list is built
    if count > MAX_SEEDS:
        raise ValueError(f"seeds: at most {MAX_SEEDS} seeds per sweep; {text!r} lists {count:,}")
    return [seed for r in ranges for seed in r]


def plan(name: str, cells=None, Ts=None, steps=None, hidden=None, seed: int = 0, batch=None,
         lr=None, seeds=None) -> list[RunSpec]:
    """The runs `run_experiment` would make, validated; ValueError/TypeError name what is wrong.

    Every (T, cell) runs once per seed: `seeds` (a list) if given, else the one `seed`.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    seeds = [seed] if seeds is None else list(seeds)
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds: at most {MAX_SEEDS} seeds per sweep; got {len(seeds):,}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seed must be a non-negative integer; got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed is listed twice in {seeds}")
    if exp.tasks:
        if Ts and exp.Ts is None:
            raise ValueError(f"{name} runs {' and '.join(exp.tasks)} at their own lengths; --T does not apply "
                             f"(run one of them, e.g. `rnnlab experiment {exp.tasks[0]} --T 10`)")
        Ts = (Ts or exp.Ts) if exp.Ts is not None else None
        return [replace(spec, stop_when_solved=exp.stop_when_solved) for task in exp.tasks
                for spec in plan(task, cells or exp.cells, Ts, steps, hidden, seed, batch, lr, seeds)]
    cells = list(exp.cells if not cells else cells)
    allowed = (runners.FF,) + CELLS if name == "neurone" else CELLS
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
    return [RunSpec(name, cell, T, hidden, steps, batch, lr, int(s)) for T in Ts for cell in cells for s in seeds]
