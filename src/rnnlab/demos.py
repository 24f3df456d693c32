"""The lecture's two stories about BPTT, run end to end, and `rnnlab diagnose`.

    rnnlab demo exploding     # tanh RNN, W_hh = 2 x orthogonal: nan without clipping, trains with it
    rnnlab demo vanishing     # RNN vs GRU vs LSTM reading text: how far back the gradient reaches
    rnnlab diagnose runs/char                       # a checkpoint from `rnnlab train`
    rnnlab diagnose --model rnn --task adding --steps 300    # a fresh model on a task, trained a bit

    from rnnlab.demos import run_exploding, run_vanishing
    result = run_exploding(out="demos")             # numbers in result, plots written, story printed

Each demo prints what it shows in plain words with the numbers, and writes its plots (PNG and SVG).

Shapes: B = batch, T = time, D = input features, H = hidden units, O = outputs, V = vocabulary.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import diagnostics as dg
from . import plots
from .data.tasks import ADDING_BASELINE_MSE, adding, copy_baseline, copy_memory, sine, sine_persistence_mse, \
    temporal_order
from .models import CELLS, CharRNN, CharRNNConfig, ManyToMany, ManyToOne
from .nn.cells import get_cell
from .nn.losses import cross_entropy, mse
from .nn.module import no_grad
from .nn.stack import orthogonal
from .optim import SGD, Adam
from .train import optimize

FORMATS = ("png", "svg")


# -- the synthetic tasks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A synthetic task from rnnlab.data.tasks, ready for `task_model`: data, loss, trivial baseline."""

    name: str
    input_size: int
    output_size: int
    every_step: bool                         # many-to-many (True) or many-to-one (False)
    make: Callable                           # (n, T, rng) -> x float (n, T, D), y
    loss: Callable                           # (out, y) -> loss, dout
    baseline: Callable                       # T -> loss of the answer that ignores the past
    about: str


def _copy_onehot(n, T, rng):
    if T <= 20:
        raise ValueError(f"copy_memory needs --seq-len > 20 (10 symbols, a delay, 10 to recall); got {T}")
    ids, y = copy_memory(n, T - 20, rng)  # total length (T - 20) + 2 * 10 = T
    return np.eye(10, dtype=np.float32)[ids], y


def _sine_baseline(T: int) -> float:
    return sine_persistence_mse(*sine(2000, T, np.random.default_rng(12345)))


PROBLEMS = {
    "adding": Problem("adding", 2, 1, False, adding, mse, lambda T: ADDING_BASELINE_MSE,
                      "sum the two marked numbers of T (MSE; always answering 1 gives 1/6)"),
    "temporal_order": Problem("temporal_order", 6, 4, False, temporal_order, cross_entropy, lambda T: math.log(4),
                              "say in which order X and Y came among T distractors (guessing: ln 4)"),
    "copy_memory": Problem("copy_memory", 10, 10, True, _copy_onehot, cross_entropy,
                           lambda T: copy_baseline(T - 20),
                           "repeat 10 symbols after a long delay (memoryless: blanks, then a guess)"),
    "sine": Problem("sine", 1, 1, True, sine, mse, _sine_baseline,
                    "forecast sums of sines one step ahead (MSE; 'next = this one' is the baseline)"),
}
TASKS = tuple(PROBLEMS) + ("text",)


def task_model(problem: Problem, cell: str, hidden: int, num_layers: int = 1, init: str = "orthogonal",
               rng=None) -> ManyToOne | ManyToMany:
    """The model for a task: ManyToMany if it is read at every step, else ManyToOne (its last state)."""
    kind = ManyToMany if problem.every_step else ManyToOne
    return kind(cell, problem.input_size, hidden, problem.output_size, num_layers=num_layers, init=init, rng=rng)


# -- measuring a model on one batch -----------------------------------------------------------------
def stack_input(model, x) -> np.ndarray:
    """What the recurrent stack reads for the model input x: embedded ids for a CharRNN, else x."""
    return model.embedding(x) if isinstance(model, CharRNN) else x


def model_output(model, x) -> np.ndarray:
    """The model's output for x: a CharRNN's logits (its final state dropped), or a task model's y."""
    out = model(x)
    return out[0] if isinstance(model, CharRNN) else out


def loss_for(problem: Problem | None) -> Callable:
    """The loss of a task, or cross-entropy over next characters for text."""
    return cross_entropy if problem is None else problem.loss


def last_step_flow(model, x, y, loss_fn) -> dg.StepNorms:
    """||dL_T/dh_t||: the gradient that the loss of the last step alone sends back to every step.

    One forward and one backward with record_flow, in eval mode; parameter gradients are kept.
    """
    with dg.preserved_grads(model.parameters()), dg.eval_mode(model):
        out = model_output(model, x)
        _, dout = loss_fn(out, y)
        if dout.ndim == 3:  # read at every step: keep the last step's share only
            last = np.zeros_like(dout)
            last[:, -1] = dout[:, -1]
            dout = last
        model.backward(dout, record_flow=True)
    return dg.gradient_flow(model)


def full_loss_flow(model, x, y, loss_fn) -> tuple[dg.StepNorms, float, float]:
    """||dL/dh_t|| of the whole loss, with the loss and the total gradient norm (eval mode, grads kept)."""
    with dg.preserved_grads(model.parameters()), dg.eval_mode(model):
        model.zero_grad()
        out = model_output(model, x)
        loss, dout = loss_fn(out, y)
        model.backward(dout, record_flow=True)
        total = math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in model.parameters()))
    return dg.gradient_flow(model), loss, total


def _text_batch(source, vocab=None, batch: int = 32, seq_len: int = 100, split: str = "val"):
    """(x, y) ids (B, T) from a text, the vocabulary and a description; validation split by default."""
    from .data.text import DataError, TBPTTBatches, Vocab, load_text, split_text

    text, description = load_text(source)
    vocab = vocab or Vocab.from_text(text)
    ids = vocab.encode(text, source=description)
    part = split_text(ids, 0.1)[1] if split == "val" else ids
    if len(part) < batch * seq_len + 1:
        part, split = ids, "all"
    try:
        x, y = TBPTTBatches(part, batch, seq_len, source=description).batch_at(0)
    except DataError as error:
        raise ValueError(str(error)) from None
    where = "validation split (last 10%) of " if split == "val" else ""
    return x, y, vocab, f"{where}{description}", text


def _write(fig, out, name, formats) -> list[Path]:
    return plots.save_figure(fig, Path(out) / name, formats)


def _fmt(value: float) -> str:
    return f"{value:.2g}" if value != 0 else "0"


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


def run_exploding(steps: int = 2000, seq_len: int = 50, hidden: int = 32, gain: float = 2.0, lr: float = 0.2,
                  clip: float = 1.0, seed: int = 0, out="demos", formats=FORMATS, record_every: int = 50,
                  log=print) -> ExplodingResult:
    """A tanh RNN with W_hh = gain x orthogonal learns sine forecasting by plain SGD, twice:
    without clipping (the loss blows up to inf/nan) and with clipping by norm (it trains)."""
    _check_positive(steps=steps, seq_len=seq_len, hidden=hidden, record_every=record_every)
    _check_positive_float(gain=gain, lr=lr, clip=clip)
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

        def loss_and_backward(step):
            x, y = problem.make(32, seq_len, data)
            out = model(x)
            loss, dout = problem.loss(out, y)
            model.backward(dout)
            return loss

        with np.errstate(over="ignore", invalid="ignore"):
            return optimize(params, loss_and_backward, SGD(params, lr=lr), steps, clip=clip_value,
                            on_nonfinite="stop", callback=callback)

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
    if not (math.isfinite(blew["loss"]) and math.isfinite(blew["grad_norm"])):
        lines.append(f"- Without clipping: the total gradient norm goes from {norms[0]:.3g} at step 1 to "
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
    paths = _write(plots.plot_clipping({"without clipping": unclipped, f"with clipping (norm {clip:g})": clipped},
                                       clip, title=title, baseline=baseline, xlog=True, loss_cap=1e3,
                                       baseline_label="'next = this one'"), out,
                    "exploding_clipping", formats)
    paths += _write(plots.plot_flow_heatmap(recorder.steps, recorder.matrix(), label="||dL_T/dh_t||",
                                            title="with clipping: gradient from the last step's loss, over "
                                                  "training"), out, "exploding_flow_heatmap", formats)
    lines.append(f"plots: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.0f} s)")
    for line in lines:
        log(line)
    return ExplodingResult(unclipped, clipped, at_start, verdict_unclipped, float(test_loss), float(baseline), paths)


# -- demo: vanishing gradients ----------------------------------------------------------------------
@dataclass
class VanishingResult:
    verdicts: dict[str, dg.Verdict]         # "RNN", "GRU", "LSTM", "LSTM, PyTorch init"
    flows: dict[str, dg.StepNorms]          # the gradient of the last step's loss, per model
    paths: list[Path] = field(default_factory=list)


def run_vanishing(task: str = "text", seq_len: int = 100, hidden: int = 64, batch: int = 32, init: str = "orthogonal",
                  seed: int = 0, data=None, out="demos", formats=FORMATS, fraction: float = 1e-3, within: int = 20,
                  log=print) -> VanishingResult:
    """Fresh RNN, GRU and LSTM, same init recipe, reading the same batch: how much of the last step's
    loss gradient reaches each earlier step. Plus the LSTM with PyTorch's init as a control."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    _check_positive(seq_len=seq_len, hidden=hidden, batch=batch, within=within)
    started = time.perf_counter()
    problem = None if task == "text" else PROBLEMS[task]
    if problem is None:
        x, y, vocab, description, _ = _text_batch(data, batch=batch, seq_len=seq_len, split="all")
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
    lines = [f"rnnlab demo vanishing: fresh RNN (tanh), GRU and LSTM with {hidden} units, {recipe}, read {what}. "
             f"How much of the gradient of the last step's loss reaches each earlier step?"]
    for name, verdict in verdicts.items():
        if name == "LSTM, PyTorch init":
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
    panels = {"RNN": {"h (tanh RNN)": flows["RNN"].h[0]}, "GRU": {"h": flows["GRU"].h[0]},
              "LSTM": {"h": flows["LSTM"].h[0], "c": flows["LSTM"].c[0]}}
    if "LSTM, PyTorch init" in flows:
        panels["LSTM"]["h, PyTorch init (forget bias ~0)"] = flows["LSTM, PyTorch init"].h[0]
    source = "text" if problem is None else task
    fig = plots.plot_gradient_flow(panels, title=f"gradient of the last step's loss reaching each step "
                                                 f"({source}, T = {seq_len}, at initialization)",
                                   ylabel="||dL_T/dh_t||", floor=fraction)
    paths = _write(fig, out, "vanishing_rnn_gru_lstm", formats)
    lines.append(f"plots: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.0f} s)")
    for line in lines:
        log(line)
    return VanishingResult(verdicts, flows, paths)


# -- diagnose ---------------------------------------------------------------------------------------
@dataclass
class DiagnoseResult:
    last_step: dg.StepNorms                 # ||dL_T/dh_t||: the last step's loss, per layer
    full: dg.StepNorms                      # ||dL/dh_t||: the whole loss
    jacobian: dg.StepNorms                  # ||dh_T/dh_t||_2
    verdicts: dict[str, dg.Verdict]         # per recurrence, on the last step's loss
    jacobian_verdicts: dict[str, dg.Verdict]
    spectra: list[dg.WeightSpectrum]
    loss: float
    grad_norm: float
    history: list[dict] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def diagnose(model, x, y, problem: Problem | None = None, title: str = "model", about: str = "", history=None,
             recorder=None,
             gate_text: str | None = None, vocab=None, out="diagnose", formats=FORMATS, max_examples: int = 4,
             log=print) -> DiagnoseResult:
    """Measure a model on one batch (x, y), print the report and write the plots.

    title names the model (it heads the plots), about the data (the report's first line adds it).
    """
    gate_ids = None
    if gate_text and vocab is not None:  # checked before any work, so a bad --text writes no plot
        gate_ids = vocab.encode(gate_text, source="--text")[None, :]  # (1, T)
    loss_fn = loss_for(problem)
    last = last_step_flow(model, x, y, loss_fn)
    full, loss, grad_norm = full_loss_flow(model, x, y, loss_fn)
    with no_grad():
        inputs = stack_input(model, x)  # (B, T, D): what the stack reads
    jac = dg.jacobian_norms(model, inputs, max_examples=max_examples)
    spectra = dg.weight_spectra(model)
    layer = dg.find_recurrent(model)
    grad_norms = [r["grad_norm"] for r in history] if history else None
    verdicts = {name: dg.classify(last.h[s], grad_norms=grad_norms) for s, name in enumerate(last.names)}
    jac_verdicts = {name: dg.classify(jac.h[s], what="the Jacobian's norm") for s, name in enumerate(jac.names)}
    B, T = x.shape[:2]
    lines = [f"rnnlab diagnose: {title}" + (f", on {about}" if about else ""),
             f"batch: {B} sequences x {T} steps; loss {loss:.4g}, total gradient norm {grad_norm:.3g}",
             "recurrent weights W_hh (spectral radius: largest |eigenvalue|; sigma_max: largest singular value):"]
    lines += [f"  {w}" for w in spectra]
    lines.append("gradient of the last step's loss going back in time, ||dL_T/dh_t||:")
    lines += [f"  {name}: {v.reason}" for name, v in verdicts.items()]
    lines.append(f"how much the last state depends on earlier ones, ||dh_T/dh_t||_2 (exact Jacobian, "
                 f"{min(max_examples, B)} sequences):")
    lines += [f"  {name}: {v.reason}" for name, v in jac_verdicts.items()]
    paths = []
    panels = {"loss at the last step": {}, "loss at every step": {}, "Jacobian dh_T/dh_t": {}}
    for s, name in enumerate(last.names):
        panels["loss at the last step"][f"h {name}"] = last.h[s]
        panels["loss at every step"][f"h {name}"] = full.h[s]
        panels["Jacobian dh_T/dh_t"][f"h {name}"] = jac.h[s]
        if last.c is not None:
            panels["loss at the last step"][f"c {name}"] = last.c[s]
            panels["loss at every step"][f"c {name}"] = full.c[s]
            panels["Jacobian dh_T/dh_t"][f"c {name}"] = jac.c[s]
    if problem is not None and not problem.every_step:
        del panels["loss at every step"]  # the same as the last step's
    fig = plots.plot_gradient_flow(panels, title=title, ylabel="norm")
    paths += _write(fig, out, "gradient_flow", formats)
    if history:
        baseline = None if problem is None else problem.baseline(T)
        paths += _write(plots.plot_clipping({"training": history}, None, title=f"training: {title}",
                                            baseline=baseline, baseline_label="no memory"), out, "training", formats)
    if recorder is not None and len(recorder.steps) > 1:
        fig = plots.plot_flow_heatmap(recorder.steps, recorder.matrix(), label="||dL_T/dh_t||",
                                      title=f"gradient of the last step's loss over training ({last.names[0]})")
        paths += _write(fig, out, "gradient_flow_heatmap", formats)
    if gate_ids is not None:
        trace = dg.gate_trace(model, stack_input(model, gate_ids), layer_index=layer.num_layers - 1)
        cell = layer.kind
        rows = [g for g in cell.gates if g in trace] + [s for s in cell.state_names[1:]]
        if rows:
            fig = plots.plot_gates(gate_text, {k: v[:, 0] for k, v in trace.items()}, rows,
                                   title=f"{cell.label} layer {layer.num_layers - 1} reading a text")
            paths += _write(fig, out, f"{cell.name}_gates", formats)
            means = ", ".join(f"{g} {trace[g].mean():.2f}" for g in cell.gates if g in trace)
            lines.append(f"{cell.label} layer {layer.num_layers - 1} reading {len(gate_text)} characters: "
                         f"mean gates {means}")
    kind = dg.worst(verdicts.values())
    where = [name for name, v in verdicts.items() if v.kind == kind]
    low, high = (f(v.start_ratio for v in verdicts.values()) for f in (min, max))
    reach = _fmt(low) if low == high else f"{_fmt(low)} to {_fmt(high)}"
    lines.append(f"verdict: {kind}" + (f" (in {', '.join(where)})" if kind != "healthy" else "")
                 + f"; the last step's loss reaches {reach} of itself at the first step, {T - 1} steps back")
    lines.append(f"plots: {', '.join(str(p) for p in paths)}")
    for line in lines:
        log(line)
    return DiagnoseResult(last, full, jac, verdicts, jac_verdicts, spectra, loss, grad_norm, list(history or []),
                          paths)


def diagnose_checkpoint(path, data=None, batch: int = 16, seq_len: int | None = None, text: str | None = None,
                        out="diagnose", formats=FORMATS, log=print) -> DiagnoseResult:
    """`rnnlab diagnose RUN_DIR`: a CharRNN from `rnnlab train`, on its validation text."""
    from .models import load_char_model

    _check_positive(batch=batch, **({} if seq_len is None else {"seq_len": seq_len}))
    model, vocab, ckpt = load_char_model(path)
    train_config = ckpt.train_config or {}
    source = data if data is not None else train_config.get("data")
    seq_len = seq_len or int(train_config.get("seq_len", 100))
    x, y, _, description, full_text = _text_batch(source, vocab, batch=batch, seq_len=seq_len)
    cfg = model.config
    title = f"{cfg.num_layers}-layer {cfg.cell.upper()}, {cfg.hidden_size} units, step {ckpt.step}"
    if text is None:
        text = _readable_snippet(full_text)
    return diagnose(model, x, y, None, title, f"{description} (checkpoint {path})", gate_text=text, vocab=vocab,
                    out=out, formats=formats, log=log)


def _readable_snippet(text: str, length: int = 64) -> str:
    """A line-ish piece of the validation text to read the gates on."""
    start = int(len(text) * 0.9)
    newline = text.find("\n", start)
    start = newline + 1 if 0 <= newline < len(text) - length else start
    return text[start:start + length]


def diagnose_fresh(model_name: str = "lstm", task: str = "adding", seq_len: int = 100, hidden: int = 64,
                   layers: int = 1, batch: int = 32, init: str = "orthogonal", steps: int = 0, record_every: int = 10,
                   lr: float = 3e-3, clip: float | None = 1.0, seed: int = 0, data=None, text: str | None = None,
                   out="diagnose", formats=FORMATS, log=print) -> DiagnoseResult:
    """`rnnlab diagnose --model M --task TASK [--steps N]`: a fresh model, optionally trained (Adam) while
    recording the gradient flow every `record_every` steps."""
    if model_name not in CELLS:
        raise ValueError(f"model must be one of {', '.join(CELLS)}; got {model_name!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    _check_positive(seq_len=seq_len, hidden=hidden, layers=layers, batch=batch, record_every=record_every)
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    rng = np.random.default_rng(seed)
    data_rng = np.random.default_rng([seed, 1])
    vocab = None
    if task == "text":
        from .data.text import TBPTTBatches, Vocab, load_text

        corpus, description = load_text(data)
        vocab = Vocab.from_text(corpus)
        ids = vocab.encode(corpus, source=description)
        stream = TBPTTBatches(ids, batch, seq_len, source=description)
        x, y = stream.batch_at(stream.num_batches() - 1)  # the probe: the last chunk, not trained on
        model = CharRNN(CharRNNConfig(len(vocab), model_name, hidden, layers, 64, init=init), rng=rng)
        problem, about = None, description

        def next_batch(step):
            return stream.batch_at((step - 1) % max(1, stream.num_batches() - 1))
        text = text if text is not None else corpus[:64]
    else:
        problem = PROBLEMS[task]
        x, y = problem.make(batch, seq_len, np.random.default_rng([seed, 2]))
        model = task_model(problem, model_name, hidden, num_layers=layers, init=init, rng=rng)
        about = f"the {task} task: {problem.about}"

        def next_batch(step):
            return problem.make(batch, seq_len, data_rng)
    loss_fn = loss_for(problem)
    history, recorder = [], None
    if steps:
        params = model.parameters()
        recorder = dg.FlowRecorder(lambda: last_step_flow(model, x, y, loss_fn), every=record_every)
        recorder.record(0)

        def loss_and_backward(step):
            bx, by = next_batch(step)
            out_ = model_output(model, bx)
            loss, dout = loss_fn(out_, by)
            model.backward(dout)
            return loss

        with np.errstate(over="ignore", invalid="ignore"):
            history = optimize(params, loss_and_backward, Adam(params, lr=lr), steps, clip=clip,
                               on_nonfinite="stop", callback=recorder)
    name = get_cell(model_name).label
    title = (f"{layers}-layer {name}, {hidden} units, init {init}, "
             + (f"after {len(history)} training steps" if steps else "at initialization"))
    return diagnose(model, x, y, problem, title, about, history=history, recorder=recorder, gate_text=text, vocab=vocab,
                    out=out, formats=formats, log=log)


# -- the command line -------------------------------------------------------------------------------
def _check_positive(**values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be a positive integer; got {value!r}")


def _check_positive_float(**values):
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}")


def _add_output_options(p, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help=f"folder for the plots (default: {default_out})")
    p.add_argument("--format", dest="formats", action="append", choices=("png", "svg", "pdf"),
                   help="plot file format; repeat for several (default: png and svg)")


def add_demo_command(subparsers) -> None:
    """`rnnlab demo exploding|vanishing`: the lecture's two stories about BPTT, with numbers and plots."""
    p = subparsers.add_parser("demo", help="run the lecture's stories: exploding and vanishing gradients",
                              description="Run one of the lecture's stories end to end (well under a minute): "
                                          "it prints what it shows, with the numbers, and writes its plots.")
    demos = p.add_subparsers(dest="demo", required=True, metavar="DEMO")
    e = demos.add_parser("exploding", help="a tanh RNN with large W_hh: nan without clipping, trains with it",
                         description="A tanh RNN whose recurrent matrix is GAIN x an orthogonal matrix learns to "
                                     "forecast sine waves by SGD, once without and once with gradient clipping.")
    e.add_argument("--steps", type=int, default=2000, help="SGD steps per run (default: 2000)")
    e.add_argument("--seq-len", type=int, default=50, help="time steps T per sequence (default: 50)")
    e.add_argument("--hidden", type=int, default=32, help="hidden units (default: 32)")
    e.add_argument("--gain", type=float, default=2.0, help="W_hh = GAIN x orthogonal, its spectral radius (default: 2)")
    e.add_argument("--lr", type=float, default=0.2, help="SGD learning rate (default: 0.2)")
    e.add_argument("--clip", type=float, default=1.0, help="max global gradient norm of the clipped run (default: 1)")
    e.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    _add_output_options(e, "demos")
    e.set_defaults(run=_run_exploding)
    v = demos.add_parser("vanishing", help="RNN vs GRU vs LSTM: how far back the gradient reaches",
                         description="Fresh RNN, GRU and LSTM read the same batch; the gradient of the last "
                                     "step's loss is measured at every earlier step, from the BPTT sweep.")
    v.add_argument("--task", choices=TASKS, default="text",
                   help="what they read: text (default; the built-in corpus or --data) or a synthetic task")
    v.add_argument("--data", default=None, help="text to read with --task text (default: the built-in corpus)")
    v.add_argument("--seq-len", type=int, default=100, help="time steps T (default: 100)")
    v.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    v.add_argument("--batch", type=int, default=32, help="sequences in the batch (default: 32)")
    v.add_argument("--init", choices=("orthogonal", "uniform"), default="orthogonal",
                   help="orthogonal (W_hh orthogonal, LSTM forget bias 1; default) or uniform (PyTorch's)")
    v.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    _add_output_options(v, "demos")
    v.set_defaults(run=_run_vanishing)


def _formats(args) -> tuple[str, ...]:
    return tuple(dict.fromkeys(args.formats or FORMATS))


def _run_exploding(args) -> int:
    run_exploding(steps=args.steps, seq_len=args.seq_len, hidden=args.hidden, gain=args.gain, lr=args.lr,
                  clip=args.clip, seed=args.seed, out=args.out, formats=_formats(args))
    return 0


def _run_vanishing(args) -> int:
    run_vanishing(task=args.task, seq_len=args.seq_len, hidden=args.hidden, batch=args.batch, init=args.init,
                  seed=args.seed, data=args.data, out=args.out, formats=_formats(args))
    return 0


def add_diagnose_command(subparsers) -> None:
    """`rnnlab diagnose [CHECKPOINT]`: gradient flow, Jacobians, weight spectra and a verdict, with plots."""
    p = subparsers.add_parser("diagnose", help="measure gradient flow through time: exploding, vanishing or healthy",
                              description="Measure how much gradient reaches every time step, the Jacobians "
                                          "dh_T/dh_t and the spectra of the recurrent weights, and say whether "
                                          "the gradients explode, vanish or are healthy. On a checkpoint from "
                                          "`rnnlab train`, or on a fresh model and task (optionally trained "
                                          "for --steps while recording).")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a run directory or checkpoint file (omit it to build a fresh model with --model/--task)")
    p.add_argument("--data", default=None, help="text to measure on (default: the checkpoint's training text; "
                                                "with --task text, the built-in corpus)")
    p.add_argument("--text", default=None,
                   help="text the cell reads for the gate plot (default: a line of the data)")
    p.add_argument("--model", choices=CELLS, default=None,
                   help=f"fresh model: {', '.join(CELLS)} (default: lstm)")
    p.add_argument("--task", choices=TASKS, default=None, help="fresh model's task (default: adding)")
    p.add_argument("--seq-len", type=int, default=None, help="time steps T (default: the checkpoint's, or 100)")
    p.add_argument("--hidden", type=int, default=64, help="fresh model: hidden units (default: 64)")
    p.add_argument("--layers", type=int, default=1, help="fresh model: layers (default: 1)")
    p.add_argument("--batch", type=int, default=None,
                   help="sequences measured (default: 16 for a checkpoint, 32 for a fresh model)")
    p.add_argument("--init", choices=("orthogonal", "uniform"), default="orthogonal", help="fresh model's init")
    p.add_argument("--steps", type=int, default=0, help="fresh model: train this many Adam steps first (default: 0)")
    p.add_argument("--record-every", type=int, default=10, help="record the gradient flow every N steps (default: 10)")
    p.add_argument("--lr", type=float, default=3e-3, help="fresh model: Adam learning rate (default: 0.003)")
    p.add_argument("--clip", type=float, default=1.0, help="fresh model: max gradient norm, 0 for none (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="fresh model: seed (default: 0)")
    _add_output_options(p, "diagnose")
    p.set_defaults(run=_run_diagnose)


def _default(value, default):
    return default if value is None else value


def _run_diagnose(args) -> int:
    if args.checkpoint is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("model", "task") if getattr(args, n) is not None]
        if given or args.steps:
            raise ValueError(f"{', '.join(given + (['--steps'] if args.steps else []))} build a fresh model; "
                             "leave out the checkpoint, or these options")
        diagnose_checkpoint(args.checkpoint, data=args.data, batch=_default(args.batch, 16), seq_len=args.seq_len,
                            text=args.text, out=args.out, formats=_formats(args))
        return 0
    diagnose_fresh(args.model or "lstm", args.task or "adding", seq_len=_default(args.seq_len, 100),
                   hidden=args.hidden, layers=args.layers, batch=_default(args.batch, 32), init=args.init,
                   steps=args.steps, record_every=args.record_every, lr=args.lr, clip=args.clip or None, seed=args.seed,
                   data=args.data, text=args.text, out=args.out, formats=_formats(args))
    return 0
