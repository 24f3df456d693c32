"""`rnnlab diagnose`: gradient flow, Jacobians, weight spectra and a verdict for one model, with plots.

    rnnlab diagnose runs/char                                # a checkpoint from `rnnlab train`
    rnnlab diagnose --model rnn --task adding --steps 300    # a fresh model on a task, trained a bit

    from rnnlab.diagnose import diagnose_fresh
    result = diagnose_fresh("gru", "adding", steps=100)      # verdicts, norms and plot paths

The measurements themselves live in `rnnlab.diagnostics`; this module runs them on a model,
writes the report and the plots.

Shapes: B = batch, T = time, D = input features, H = hidden units, V = vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import diagnostics as dg
from . import plots
from .data.tasks import PROBLEMS, Problem
from .demos import FORMATS, TASKS, _fmt, _write, check_positive
from .data.text import text_batch
from .diagnostics import full_loss_flow, last_step_flow, loss_for, stack_input
from .models import CELLS, CharRNN, CharRNNConfig, task_model
from .nn.cells import get_cell
from .nn.module import no_grad
from .optim import Adam
from .train import optimize

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

    check_positive(batch=batch, **({} if seq_len is None else {"seq_len": seq_len}))
    model, vocab, ckpt = load_char_model(path)
    train_config = ckpt.train_config or {}
    source = data if data is not None else train_config.get("data")
    seq_len = seq_len or int(train_config.get("seq_len", 100))
    x, y, _, description, full_text = text_batch(source, vocab, batch=batch, seq_len=seq_len)
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
    check_positive(seq_len=seq_len, hidden=hidden, layers=layers, batch=batch, record_every=record_every)
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
            out_ = model(bx)
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
