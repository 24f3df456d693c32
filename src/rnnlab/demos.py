"""The lecture's stories about recurrent networks, run end to end.

    rnnlab demo exploding     # tanh RNN, W_hh = 2 x orthogonal: nan without clipping, trains with it
    rnnlab demo vanishing     # RNN vs GRU vs LSTM reading text: how far back the gradient reaches
    rnnlab demo one-to-many   # one input, a sequence out: a word written from its first letter
    rnnlab demo bptt-cost     # time and memory of full BPTT against T; truncated BPTT's flat cost

    from rnnlab.demos import run_exploding, run_vanishing, one_to_many, bptt_cost
    result = run_exploding(out="demos")             # numbers in result, plots written, story printed
    result = bptt_cost(out=None, log=None)          # in a notebook: result.summary, result.figure

Each demo prints what it shows in plain words with the numbers (log=None: silent), keeps it in
result.summary, and returns its figures, which draw themselves inline in Jupyter; with `out` it
also writes them (PNG and SVG). The training ones go through `rnnlab.train.optimize`, the one
training loop, with a progress bar in a notebook.

Shapes: B = batch, T = time, D = input features, H = hidden units, O = outputs, V = vocabulary.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import diagnostics as dg
from . import plots
from .data.tasks import PROBLEMS, sine_persistence_mse
from .data.text import text_batch
from .diagnostics import last_step_flow, loss_for, stack_input
from .models import CELLS, CharRNN, CharRNNConfig, task_model
from .nn.module import no_grad
from .nn.stack import orthogonal
from .optim import SGD
from .train import optimize

FORMATS = ("png", "svg")
TASKS = tuple(PROBLEMS) + ("text",)  # what a demo or `rnnlab diagnose` can read
NOFORGET, NOFORGET_NAME = "lstm_noforget", "LSTM, no forget gate"  # in the vanishing demo once registered


def check_positive(**values):
    """Each value a positive integer, else one ValueError naming it as its command-line option."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be a positive integer; got {value!r}")


def check_positive_float(**values):
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}")


def _write(fig, out, name, formats) -> list[Path]:
    """The figure's files under `out` (none when out is None: a notebook shows result.figures)."""
    return [] if out is None else plots.save_figure(fig, Path(out) / name, formats)


def _fmt(value: float) -> str:
    return f"{value:.2g}" if value != 0 else "0"


def _progress(progress: bool | None, total: int, desc: str):
    """A bar (rnnlab.display) when asked, or by default inside a notebook, where a silent cell looks frozen."""
    from .display import in_notebook, progress_bar

    if progress is None:
        progress = in_notebook()
    return progress_bar(total=total, desc=desc, leave=False) if progress else None


def _say(log, lines: list[str]) -> None:
    if log is not None:
        for line in lines:
            log(line)


# -- demo: exploding gradients ----------------------------------------------------------------------
@dataclass
class ExplodingResult:
    unclipped: list[dict]                   # history rows of the run without clipping (ends at the blow-up)
    clipped: list[dict]                     # history rows of the run with clipping
    verdict_at_start: dg.Verdict            # the gradient profile of the first batch
    verdict_unclipped: dg.Verdict           # the same classifier on the unclipped run's total norms
    test_loss: float                        # clipped model on held-out data
    baseline: float                         # persistence forecast on the same data
    paths: list[Path] = field(default_factory=list)
    summary: str = ""                       # what it printed
    figures: dict = field(default_factory=dict)  # name -> rnnlab.display.Figure (inline in a notebook)

    @property
    def blowup_step(self) -> int | None:
        """The step whose loss or gradient norm is no longer finite (None: no blow-up)."""
        last = self.unclipped[-1]
        return None if math.isfinite(last["loss"]) and math.isfinite(last["grad_norm"]) else last["step"]

    def first_step_above(self, norm: float) -> int | None:
        """The first step of the unclipped run whose gradient norm exceeds `norm`."""
        return next((r["step"] for r in self.unclipped if r["grad_norm"] > norm), None)


def run_exploding(steps: int = 2000, seq_len: int = 50, hidden: int = 32, gain: float = 2.0, lr: float = 0.2,
                  clip: float = 1.0, seed: int = 0, out="demos", formats=FORMATS, record_every: int = 50,
                  progress: bool | None = None, log=print) -> ExplodingResult:
    """A tanh RNN with W_hh = gain x orthogonal learns sine forecasting by plain SGD, twice:
    without clipping (the loss blows up to inf/nan) and with clipping by norm (it trains)."""
    check_positive(steps=steps, seq_len=seq_len, hidden=hidden, record_every=record_every)
    check_positive_float(gain=gain, lr=lr, clip=clip)
    problem = PROBLEMS["sine"]
    started = time.perf_counter()

    def build():
        rng = np.random.default_rng(seed)
        model = task_model(problem, "rnn", hidden, init="orthogonal", rng=rng)
        model.rnn.weight_hh_l0.data[...] = gain * orthogonal(rng, hidden, np.float32)  # spectral radius = gain
        return model

    def train(model, clip_value, callback=None):
        params = model.parameters()
        data = np.random.default_rng([seed, 1])  # both runs see the same batches
        bar = _progress(progress, steps, "with clipping" if clip_value else "without clipping")

        def loss_and_backward(step):
            x, y = problem.make(32, seq_len, data)
            out = model(x)
            loss, dout = problem.loss(out, y)
            model.backward(dout)
            if bar is not None:
                bar.update(1)
            return loss

        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return optimize(params, loss_and_backward, SGD(params, lr=lr), steps, clip=clip_value,
                                on_nonfinite="stop", callback=callback)
        finally:
            if bar is not None:
                bar.close()

    probe_x, probe_y = problem.make(64, seq_len, np.random.default_rng([seed, 2]))
    model = build()
    profile = last_step_flow(model, probe_x, probe_y, problem.loss).h[0]
    at_start = dg.classify(profile)
    unclipped = train(model, None)
    verdict_unclipped = dg.classify(profile, grad_norms=[r["grad_norm"] for r in unclipped])

    model = build()
    recorder = dg.FlowRecorder(lambda: last_step_flow(model, probe_x, probe_y, problem.loss), every=record_every)
    recorder.record(0)
    clipped = train(model, clip, callback=recorder)
    test_x, test_y = problem.make(500, seq_len, np.random.default_rng([seed, 3]))
    with no_grad():
        test_loss = problem.loss(model(test_x), test_y)[0]
    baseline = sine_persistence_mse(test_x, test_y)

    blew = unclipped[-1]
    norms = np.array([r["grad_norm"] for r in unclipped])
    finite = norms[np.isfinite(norms)]
    rescaled = np.mean([r["grad_norm"] > clip for r in clipped])
    first = np.mean([r["loss"] for r in clipped[:min(50, len(clipped))]])
    last = np.mean([r["loss"] for r in clipped[-min(100, len(clipped)):]])
    lines = [
        f"rnnlab demo exploding: a tanh RNN with {hidden} units whose recurrent matrix W_hh is {gain:g} x an "
        f"orthogonal matrix (spectral radius {gain:g}) learns to forecast sine waves one step ahead over "
        f"T = {seq_len} steps, by plain gradient descent (SGD, lr {lr:g}).",
        f"- At the start, {at_start.reason}.",
    ]
    million = next((r for r in unclipped if r["grad_norm"] > 1e6), None)
    if not (math.isfinite(blew["loss"]) and math.isfinite(blew["grad_norm"])):
        past = f" past 1e6 at step {million['step']} ({million['grad_norm']:.3g})" if million else ""
        lines.append(f"- Without clipping: the total gradient norm goes from {norms[0]:.3g} at step 1{past} up to "
                     f"{finite.max():.3g}, and at step {blew['step']} the loss is {_fmt(blew['loss'])} and the "
                     f"gradient norm {_fmt(blew['grad_norm'])}: training blew up ({verdict_unclipped.kind}: "
                     f"{verdict_unclipped.reason.split(': ', 1)[1]}).")
    else:
        lines.append(f"- Without clipping: no blow-up in {len(unclipped)} steps this time (largest gradient norm "
                     f"{finite.max():.3g}); try a larger --lr or --gain.")
    lines.append(f"- With clipping (global norm <= {clip:g}, rescaled on {rescaled:.0%} of the steps): "
                 f"{len(clipped)} steps without a blow-up; the training loss goes from {first:.3g} (first 50 "
                 f"steps) to {last:.3g} (last 100), and on held-out series the MSE is {test_loss:.3g}, against "
                 f"{baseline:.3g} for 'the next value equals this one'.")
    end_rate = dg.classify(recorder.records[-1].h[0]).rate
    lines.append(f"- Meanwhile the recurrence was tamed: the gradient changes x{at_start.rate:.3g} per step "
                 f"going back at the start, x{end_rate:.3g} after training.")
    title = f"tanh RNN, W_hh = {gain:g} x orthogonal, SGD lr {lr:g}"
    figures = {
        "exploding_clipping": plots.plot_clipping(
            {"without clipping": unclipped, f"with clipping (norm {clip:g})": clipped}, clip, title=title,
            baseline=baseline, xlog=True, loss_cap=1e3, baseline_label="'next = this one'"),
        "exploding_flow_heatmap": plots.plot_flow_heatmap(
            recorder.steps, recorder.matrix(), label="||dL_T/dh_t||",
            title="with clipping: gradient from the last step's loss, over training")}
    paths = [path for name, fig in figures.items() for path in _write(fig, out, name, formats)]
    if paths:
        lines.append(f"plots: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.0f} s)")
    _say(log, lines)
    return ExplodingResult(unclipped, clipped, at_start, verdict_unclipped, float(test_loss), float(baseline), paths,
                           "\n".join(lines), figures)


# -- demo: vanishing gradients ----------------------------------------------------------------------
@dataclass
class VanishingResult:
    verdicts: dict[str, dg.Verdict]         # "RNN", "GRU", "LSTM", "LSTM, PyTorch init" (+ "LSTM, no forget gate")
    flows: dict[str, dg.StepNorms]          # the gradient of the last step's loss, per model
    paths: list[Path] = field(default_factory=list)
    summary: str = ""                       # what it printed
    figure: object = None                   # rnnlab.display.Figure (inline in a notebook)


def run_vanishing(task: str = "text", seq_len: int = 100, hidden: int = 64, batch: int = 32, init: str = "orthogonal",
                  seed: int = 0, data=None, out="demos", formats=FORMATS, fraction: float = 1e-3, within: int = 20,
                  log=print) -> VanishingResult:
    """Fresh RNN, GRU and LSTM, same init recipe, reading the same batch: how much of the last step's
    loss gradient reaches each earlier step. Plus the LSTM with PyTorch's init as a control."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    check_positive(seq_len=seq_len, hidden=hidden, batch=batch, within=within)
    started = time.perf_counter()
    problem = None if task == "text" else PROBLEMS[task]
    if problem is None:
        x, y, vocab, description, _ = text_batch(data, batch=batch, seq_len=seq_len, split="all")
        what = f"{batch} x {seq_len} characters of {description}"
    else:
        x, y = problem.make(batch, seq_len, np.random.default_rng(seed))
        vocab, what = None, f"{batch} sequences of the {task} task ({problem.about}), T = {seq_len}"

    def build(cell, how):
        rng = np.random.default_rng(seed)
        if problem is None:
            return CharRNN(CharRNNConfig(len(vocab), cell, hidden, 1, 64, init=how), rng=rng)
        return task_model(problem, cell, hidden, init=how, rng=rng)

    runs = {"RNN": ("rnn", init), "GRU": ("gru", init), "LSTM": ("lstm", init)}
    if NOFORGET in CELLS:  # the 1997 LSTM: what the forget gate adds
        runs[NOFORGET_NAME] = (NOFORGET, init)
    if init != "uniform":
        runs["LSTM, PyTorch init"] = ("lstm", "uniform")
    flows, verdicts, models = {}, {}, {}
    for name, (cell, how) in runs.items():
        models[name] = build(cell, how)
        flows[name] = last_step_flow(models[name], x, y, loss_for(problem))
        verdicts[name] = dg.classify(flows[name].h[0], fraction=fraction, within=within)

    # what sets the per-step factor: tanh' for the RNN (W_hh orthogonal: singular values all 1), f for the LSTM
    rnn_in = stack_input(models["RNN"], x)
    h, _ = models["RNN"].rnn(rnn_in)
    tanh_slope = float(np.mean(1 - h.astype(np.float64) ** 2))
    sigma = dg.weight_spectra(models["RNN"])[0].max_singular
    forget = float(dg.gate_trace(models["LSTM"], stack_input(models["LSTM"], x))["f"].mean())

    recipe = ("orthogonal W_hh, Glorot W_ih, zero biases and forget-gate bias 1 (rnnlab's default)"
              if init == "orthogonal" else "PyTorch's uniform init")
    cells = "RNN (tanh), GRU, LSTM and the LSTM without forget gate" if NOFORGET_NAME in runs else \
        "RNN (tanh), GRU and LSTM"
    lines = [f"rnnlab demo vanishing: fresh {cells} with {hidden} units, {recipe}, read {what}. "
             f"How much of the gradient of the last step's loss reaches each earlier step?"]
    for name, verdict in verdicts.items():
        if name in ("LSTM, PyTorch init", NOFORGET_NAME):
            continue
        lines.append(f"- {name:<4}: {verdict.reason}.")
    lines.append(f"- Why the RNN's dies: each step back multiplies it by W_hh^T diag(tanh'). sigma_max(W_hh) = "
                 f"{sigma:.2f} here, and tanh' averages {tanh_slope:.2f}, so each step back can only shrink it. "
                 f"The LSTM's cell adds instead of squashing (c_t = f c_(t-1) + i g): the gradient along c is "
                 f"multiplied by the forget gate f, which averages {forget:.2f} at this init and which training "
                 f"can open to 1.")
    gap = verdicts["LSTM"].start_ratio / max(verdicts["RNN"].start_ratio, 1e-300)
    lines.append(f"- At the first step, {seq_len - 1} steps back, the LSTM gets {gap:.1g} times the RNN's share "
                 f"({_fmt(verdicts['LSTM'].start_ratio)} vs {_fmt(verdicts['RNN'].start_ratio)} of the last step's).")
    if "LSTM, PyTorch init" in verdicts:
        control = verdicts["LSTM, PyTorch init"]
        lines.append(f"- Control: the same LSTM with PyTorch's init (forget-gate bias ~0, so f ~ 0.5): "
                     f"{control.kind}, x{control.rate:.3g} per step, {_fmt(control.start_ratio)} at the first "
                     f"step. The open forget gate is what carries the gradient back.")
    if NOFORGET_NAME in verdicts:
        reach = {name: flows[name].c[0][0] / flows[name].c[0][-1] for name in ("LSTM", NOFORGET_NAME)}
        lines.append(f"- Without the forget gate (the LSTM of 1997, c_t = c_(t-1) + i g): "
                     f"{verdicts[NOFORGET_NAME].reason}. Along c the gradient passes each step back whole "
                     f"(dc_t/dc_(t-1) = 1): ||dL/dc|| at the first step is {_fmt(reach[NOFORGET_NAME])} of its value "
                     f"at the last, against {_fmt(reach['LSTM'])} with the forget gate.")
    panels = {"RNN": {"h (tanh RNN)": flows["RNN"].h[0]}, "GRU": {"h": flows["GRU"].h[0]},
              "LSTM": {"h": flows["LSTM"].h[0], "c": flows["LSTM"].c[0]}}
    if NOFORGET_NAME in flows:
        panels[NOFORGET_NAME] = {"h": flows[NOFORGET_NAME].h[0], "c": flows[NOFORGET_NAME].c[0]}
    if "LSTM, PyTorch init" in flows:
        panels["LSTM"]["h, PyTorch init (forget bias ~0)"] = flows["LSTM, PyTorch init"].h[0]
    source = "text" if problem is None else task
    fig = plots.plot_gradient_flow(panels, title=f"gradient of the last step's loss reaching each step "
                                                 f"({source}, T = {seq_len}, at initialization)",
                                   ylabel="||dL_T/dh_t||", floor=fraction)
    paths = _write(fig, out, "vanishing_rnn_gru_lstm", formats)
    if paths:
        lines.append(f"plots: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.0f} s)")
    _say(log, lines)
    return VanishingResult(verdicts, flows, paths, "\n".join(lines), fig)


# -- demo: one-to-many ------------------------------------------------------------------------------
WORDS_BY_LETTER = ("ape", "bosco", "casa", "dado", "erba", "fiore", "gatto", "luna", "mare", "neurone", "onda",
                   "pane", "rete", "sole", "treno", "uva", "vento", "zaino")  # one word per first letter


@dataclass
class OneToManyResult:
    words: tuple[str, ...]                  # what it should write, one word per first letter
    written: dict[str, str]                 # first letter -> what the trained model writes from it
    p_letter: np.ndarray                    # (n_words, U) probability it gives each true letter (teacher forcing)
    losses: list[float]                     # training loss per step
    snapshots: dict[int, dict[str, str]]    # step -> {first letter: what it writes after that many steps}
    summary: str
    figure: object = None                   # rnnlab.display.Figure: shows inline in a notebook
    paths: list[Path] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(self.written[w[0]] == w for w in self.words)


def one_to_many(words=WORDS_BY_LETTER, cell: str = "gru", hidden: int = 48, steps: int = 100, lr: float = 0.02,
                seed: int = 0, out=None, formats=FORMATS, progress: bool | None = None, log=print) -> OneToManyResult:
    """One input, a sequence out: a OneToMany net reads a single letter and writes the whole word that
    starts with it, one letter at a time, feeding back what it wrote (greedy decoding)."""
    from .data.tasks import EOS, GO, PAD
    from .models import OneToMany
    from .nn.losses import cross_entropy, log_softmax
    from .optim import Adam

    words = tuple(words)
    check_positive(hidden=hidden, steps=steps)
    check_positive_float(lr=lr)
    firsts = [w[:1] for w in words]
    if not words or not all(isinstance(w, str) and w.isalpha() and w.islower() for w in words) \
            or len(set(firsts)) != len(words):
        raise ValueError("words must be lowercase words that each start with a different letter")
    started = time.perf_counter()
    letters = sorted(set("".join(words)))
    tokens = ["<pad>", "<go>", "<eos>"] + letters                     # decoder vocabulary: PAD, GO, EOS first
    index = {c: i for i, c in enumerate(tokens)}
    U = max(len(w) for w in words) + 1
    x = np.array([letters.index(w[0]) for w in words])               # (n,) the one input: the first letter
    tgt_in = np.full((len(words), U), PAD, dtype=np.int64)           # (n, U) GO + word: teacher forcing
    tgt_out = np.full((len(words), U), PAD, dtype=np.int64)          # (n, U) word + EOS
    for row, w in enumerate(words):
        ids = [index[c] for c in w]
        tgt_in[row, :len(w) + 1], tgt_out[row, :len(w) + 1] = [GO] + ids, ids + [EOS]
    mask = tgt_out != PAD
    model = OneToMany(cell, 16, hidden, len(tokens), input_vocab=len(letters), embedding_dim=16,
                      rng=np.random.default_rng(seed))
    params = model.parameters()
    bar = _progress(progress, steps, "one-to-many")

    def write() -> dict[str, str]:  # greedy: each letter written is the next step's input
        with no_grad():
            ids = model.generate(x, U + 2, start=GO, eos=EOS)  # (n, U + 2)
        return {w[0]: "".join(tokens[i] for i in row if i > EOS) for w, row in zip(words, ids)}

    def loss_and_backward(step):
        loss, dlogits = cross_entropy(model(x, tgt_in), tgt_out, mask)
        model.backward(dlogits)
        if bar is not None:
            bar.update(1)
        return loss

    snapshots = {}

    def snapshot(row):
        if row["step"] in (5, 10, 20, steps):
            snapshots[row["step"]] = write()

    try:
        history = optimize(params, loss_and_backward, Adam(params, lr=lr), steps, clip=1.0, callback=snapshot)
    finally:
        if bar is not None:
            bar.close()
    with no_grad():
        logp = log_softmax(np.asarray(model(x, tgt_in), np.float64))            # (n, U, V)
        p_letter = np.exp(np.take_along_axis(logp, tgt_out[..., None], -1)[..., 0]) * mask  # (n, U)
    written = snapshots[steps]
    losses = [r["loss"] for r in history]
    result = OneToManyResult(words, written, p_letter, losses, snapshots, "")
    wrong = [f"{w[0]} -> {written[w[0]]!r} (not {w!r})" for w in words if written[w[0]] != w]
    lines = [f"rnnlab demo one-to-many: a {cell.upper()} with {hidden} units gets ONE input, a word's first letter, "
             f"and writes the whole word, one letter per step, each step fed the letter it just wrote. "
             f"Trained on {len(words)} words for {steps} steps (Adam, lr {lr:g}).",
             f"- It writes {result.correct} of {len(words)} words right from their first letter alone: "
             + ", ".join(f"{w[0]} -> {written[w[0]]}" for w in words[:6]) + ", ...",
             f"- Training loss {np.mean(losses[:10]):.3g} (first 10 steps) -> {np.mean(losses[-10:]):.3g} (last 10); "
             f"the right letter gets probability {p_letter[mask].mean():.2f} on average, "
             f"{p_letter[mask].min():.2f} at worst."]
    if wrong:
        lines.append("- Wrong: " + "; ".join(wrong))
    result.figure = plots.plot_one_to_many(words, snapshots, losses)
    if out is not None:
        result.paths = _write(result.figure, out, "one_to_many", formats)
        lines.append(f"plots: {', '.join(str(p) for p in result.paths)} ({time.perf_counter() - started:.1f} s)")
    result.summary = "\n".join(lines)
    _say(log, lines)
    return result


# -- demo: the cost of BPTT -------------------------------------------------------------------------
@dataclass
class BPTTCostResult:
    rows: list[dict]    # per T: T, full_ms, full_mb, truncated_ms (one update), truncated_total_ms, truncated_mb, missed
    window: int         # truncated BPTT's chunk length k
    summary: str
    figure: object = None
    paths: list[Path] = field(default_factory=list)


def _grads(params) -> np.ndarray:
    return np.concatenate([p.grad.astype(np.float64).ravel() for p in params])


def _best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _peak_bytes(fn, before=None) -> int:
    """Peak of the memory allocated while fn runs, after before() (NumPy reports its arrays to tracemalloc)."""
    import tracemalloc

    if before is not None:
        before()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def bptt_cost(lengths=(25, 50, 100, 200, 400), window: int = 25, cell: str = "lstm", hidden: int = 64,
              batch: int = 16, repeats: int = 2, seed: int = 0, data=None, out=None, formats=FORMATS,
              progress: bool | None = None, log=print) -> BPTTCostResult:
    """Full BPTT against truncated BPTT (chunks of `window` steps, the state carried between them) on
    a character model reading text: measured time and peak memory of one weight update against T,
    and the share of the full gradient that truncation no longer sees."""
    from .nn.losses import cross_entropy

    lengths = sorted(set(lengths))
    check_positive(window=window, hidden=hidden, batch=batch, repeats=repeats, **{"lengths": min(lengths, default=0)})
    started = time.perf_counter()
    x_all, y_all, vocab, description, _ = text_batch(data, batch=batch, seq_len=max(lengths), split="all")
    model = CharRNN(CharRNNConfig(len(vocab), cell, hidden, 1, 32), rng=np.random.default_rng(seed))
    params = model.parameters()

    def full(x, y):
        loss, dlogits = cross_entropy(model(x), y)
        model.backward(dlogits)

    def truncated(x, y, chunks=None):
        state, T = None, x.shape[1]
        for start in range(0, T, window)[:chunks]:
            logits = model(x[:, start:start + window], state)
            state = model.final_state  # carried forward; its gradient stops here
            _, dlogits = cross_entropy(logits, y[:, start:start + window])
            model.backward(dlogits * (logits.shape[1] / T))  # chunk means, weighted into the mean over T

    def forget():  # a one-step pass replaces the activations the model holds from the last one
        full(x_all[:, :1], y_all[:, :1])

    rows = []
    bar = _progress(progress, len(lengths), "bptt-cost")
    try:
        for T in lengths:
            x, y = x_all[:, :T], y_all[:, :T]
            model.zero_grad()
            full(x, y)
            g_full = _grads(params)
            model.zero_grad()
            truncated(x, y)
            g_trunc = _grads(params)
            rows.append({
                "T": T,
                "full_ms": 1e3 * _best_time(lambda: full(x, y), repeats),
                "truncated_ms": 1e3 * _best_time(lambda: truncated(x, y, chunks=1), repeats),
                "truncated_total_ms": 1e3 * _best_time(lambda: truncated(x, y), repeats),
                "full_mb": _peak_bytes(lambda: full(x, y), before=forget) / 1e6,
                "truncated_mb": _peak_bytes(lambda: truncated(x, y), before=forget) / 1e6,
                "missed": float(np.linalg.norm(g_full - g_trunc) / np.linalg.norm(g_full))})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    model.zero_grad()
    first, last = rows[0], rows[-1]
    lines = [f"rnnlab demo bptt-cost: one weight update of a 1-layer {cell.upper()} ({hidden} units, batch {batch}) "
             f"reading {description}, by full BPTT over all T steps or by truncated BPTT in chunks of k = {window} "
             f"(the state carried, its gradient cut).",
             f"{'T':>6} | {'full BPTT: ms':>13} {'MB':>6} | {'truncated: ms per update':>24} {'MB':>6} | "
             f"{'all T/k updates: ms':>19} | gradient missed"]
    lines += [f"{r['T']:>6} | {r['full_ms']:13.1f} {r['full_mb']:6.1f} | {r['truncated_ms']:24.1f} {r['truncated_mb']:6.1f}"
              f" | {r['truncated_total_ms']:19.1f} | {r['missed']:.1%}" for r in rows]
    lines += [f"- Full BPTT keeps every step's activations for the backward pass: from T = {first['T']} to "
              f"{last['T']} ({last['T'] / first['T']:.0f}x) its peak memory goes from {first['full_mb']:.1f} to "
              f"{last['full_mb']:.1f} MB ({last['full_mb'] / first['full_mb']:.0f}x) and one update from "
              f"{first['full_ms']:.1f} to {last['full_ms']:.1f} ms ({last['full_ms'] / first['full_ms']:.0f}x).",
              f"- Truncated BPTT stays flat: {last['truncated_mb']:.1f} MB and {last['truncated_ms']:.1f} ms per "
              f"update at T = {last['T']}. Reading the whole sequence still costs about the same time "
              f"({last['truncated_total_ms']:.0f} ms against {last['full_ms']:.0f}), but in {math.ceil(last['T'] / window)} "
              f"updates instead of one.",
              f"- The price: no gradient flows across a chunk boundary, so what step t + {window} owes to step t "
              f"is never learned. At T = {last['T']} the truncated gradient differs from the full one by "
              f"{last['missed']:.1%} of its norm (this fresh model's memory is short; a trained one's is longer)."]
    figure = plots.plot_bptt_cost(rows, window, title=f"{cell.upper()}, {hidden} units, batch {batch}")
    result = BPTTCostResult(rows, window, "", figure)
    if out is not None:
        result.paths = _write(figure, out, "bptt_cost", formats)
        lines.append(f"plots: {', '.join(str(p) for p in result.paths)} ({time.perf_counter() - started:.1f} s)")
    result.summary = "\n".join(lines)
    _say(log, lines)
    return result
