"""Seeing BPTT: how much gradient reaches each time step, what the recurrence does to it, a verdict.

    import numpy as np
    from rnnlab import LSTM, diagnostics as dg
    layer = LSTM(8, 32, init="orthogonal", rng=0)
    x = np.random.default_rng(0).standard_normal((16, 50, 8)).astype(np.float32)
    y, _ = layer(x)
    dy = np.zeros_like(y); dy[:, -1] = 1.0          # a loss read at the last step only
    layer.backward(dy, record_flow=True)
    flow = dg.gradient_flow(layer)                  # flow.h[s, t] = ||dL/dh_t||, flow.c (LSTM)
    print(dg.classify(flow.h[0]))                   # healthy: x0.93 per step going back; ...
    jac = dg.jacobian_norms(layer, x)               # jac.h[s, t] = ||dh_T/dh_t||_2
    for w in dg.weight_spectra(layer): print(w)     # spectral radius, sigma_max per gate block

Shapes: B = batch, T = time, D = input features, H = hidden units, S = L*K recurrences (layers x
directions, in PyTorch's order l0, l0_reverse, l1, ...). A profile is one recurrence's norms over
the T steps, (T,), in the sequence's own time order: index T-1 is the last step.

||dL/dh_t|| is the norm over the whole batch and all units, i.e. of dL/dh_t as a (B, H) array:
what `h_t.retain_grad(); loss.backward(); h_t.grad.norm()` gives in PyTorch. It is read from the
BPTT sweep itself (`backward(..., record_flow=True)`), not re-derived.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .nn.driver import step_forward
from .nn.module import Layer
from .nn.stack import Recurrent, check_array

__all__ = ["StepNorms", "Verdict", "WeightSpectrum", "FlowRecorder", "find_recurrent", "gradient_flow",
           "jacobian_norms", "weight_spectra", "classify", "fit_rate", "worst", "gate_trace", "preserved_grads",
           "eval_mode", "stack_input", "loss_for", "last_step_flow", "full_loss_flow"]

VERDICTS = ("exploding", "vanishing", "healthy")


# -- per-step norms ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepNorms:
    """Norms per recurrence and time step: h (S, T), c (S, T) for the LSTM (else None)."""

    h: np.ndarray               # (S, T) float64
    c: np.ndarray | None        # (S, T) float64, LSTM only
    names: tuple[str, ...]      # (S,) "l0", "l0_reverse", "l1", ...
    what: str                   # what was measured, e.g. "||dL/dh_t||"

    def profile(self, index: int = 0, state: str = "h") -> np.ndarray:
        """One recurrence's norms over time, (T,)."""
        values = self.h if state == "h" else self.c
        if values is None:
            raise ValueError(f"no {state!r} norms here: only the LSTM has a cell state c")
        return values[index]


def recurrence_names(layer: Recurrent) -> tuple[str, ...]:
    """Suffixes of the S recurrences in PyTorch's order: l0, l0_reverse, l1, ..."""
    return tuple(f"l{layer_index}" + ("_reverse" if direction else "")
                 for layer_index in range(layer.num_layers) for direction in range(layer.num_directions))


def find_recurrent(model) -> Recurrent:
    """The recurrent stack of a model (the model itself, `model.rnn`, or its only Recurrent child)."""
    if isinstance(model, Recurrent):
        return model
    if isinstance(getattr(model, "rnn", None), Recurrent):
        return model.rnn
    if isinstance(model, Layer):
        found = [child for _, child in model.children() if isinstance(child, Recurrent)]
        if len(found) == 1:
            return found[0]
    raise TypeError(f"expected an RNN/LSTM/GRU layer or a model holding exactly one; got {type(model).__name__}")


def _norms(flow: np.ndarray) -> np.ndarray:
    """(S, T, B, H) -> (S, T): the norm over batch and units, computed in float64 (no underflow)."""
    f = np.asarray(flow, dtype=np.float64)
    return np.sqrt(np.einsum("stbh,stbh->st", f, f))


def gradient_flow(model) -> StepNorms:
    """||dL/dh_t|| (and ||dL/dc_t||) per recurrence and step, from the last `backward(record_flow=True)`."""
    layer = find_recurrent(model)
    flow = getattr(layer, "grad_flow", None)
    if not flow:
        raise RuntimeError("no gradient flow was recorded: call backward(..., record_flow=True) first")
    return StepNorms(_norms(flow["h"]), _norms(flow["c"]) if "c" in flow else None, recurrence_names(layer),
                     "||dL/dh_t||")


@contextmanager
def preserved_grads(params):
    """Run a measurement's backward without disturbing training: every .grad is put back afterwards."""
    params = list(params)
    saved = [p.grad.copy() for p in params]
    try:
        yield
    finally:
        for p, grad in zip(params, saved):
            p.grad[...] = grad


@contextmanager
def eval_mode(layer: Layer):
    """Evaluation mode (no dropout) inside the block; the previous mode afterwards."""
    was_training = layer.training
    layer.eval()
    try:
        yield
    finally:
        layer.train(was_training)


def stack_input(model, x) -> np.ndarray:
    """What the recurrent stack reads for the model input x: embedded ids for a CharRNN, else x."""
    from .models import CharRNN

    return model.embedding(x) if isinstance(model, CharRNN) else x


def loss_for(problem) -> Callable:
    """The loss of a task (`rnnlab.data.tasks.PROBLEMS`), or cross-entropy over next characters (None)."""
    from .nn.losses import cross_entropy

    return cross_entropy if problem is None else problem.loss


def last_step_flow(model, x, y, loss_fn) -> StepNorms:
    """||dL_T/dh_t||: the gradient that the loss of the last step alone sends back to every step.

    One forward and one backward with record_flow, in eval mode; parameter gradients are kept.
    """
    with preserved_grads(model.parameters()), eval_mode(model):
        _, dout = loss_fn(model(x), y)
        if dout.ndim == 3:  # read at every step: keep the last step's share only
            last = np.zeros_like(dout)
            last[:, -1] = dout[:, -1]
            dout = last
        model.backward(dout, record_flow=True)
    return gradient_flow(model)


def full_loss_flow(model, x, y, loss_fn) -> tuple[StepNorms, float, float]:
    """||dL/dh_t|| of the whole loss, with the loss and the total gradient norm (eval mode, grads kept)."""
    with preserved_grads(model.parameters()), eval_mode(model):
        model.zero_grad()
        loss, dout = loss_fn(model(x), y)
        model.backward(dout, record_flow=True)
        total = math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in model.parameters()))
    return gradient_flow(model), loss, total


def jacobian_norms(model, x, state=None, max_examples: int = 4, budget: int = 30_000_000) -> StepNorms:
    """||dh_T/dh_t||_2 per recurrence and step (and ||dh_T/dc_t||_2 for the LSTM), mean over examples.

    x (B, T, D) is the stack's input (for a CharRNN: its embedded ids); state its initial state.
    For each of the first `max_examples` sequences, the Jacobian of the last state h_T with
    respect to the state at step t is computed exactly from the BPTT sweep: a backward pass that
    starts from h_T = e_j with no loss anywhere else records row j of every dh_T/dh_t (and
    dh_T/dc_t, the cell path, with h_t following c_t). All H probes run at once as H copies of the
    batch (in groups, to keep about `budget` floats in memory); the value is the largest singular
    value. Each recurrence is taken alone with its input held fixed, and the final step gives
    dh_T/dh_T = I, norm 1. Runs its own forward in eval mode (no dropout) and leaves the
    parameter gradients as they were; call it between training steps, not between a forward
    and its backward.
    """
    layer = find_recurrent(model)
    x = check_array("x", x, 3, layer.dtype)
    if x.shape[2] != layer.input_size:
        raise ValueError(f"x must have shape (batch, time, input_size={layer.input_size}); got {x.shape}")
    if not isinstance(max_examples, (int, np.integer)) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer; got {max_examples!r}")
    nb = min(int(max_examples), x.shape[0])
    T, H, S = x.shape[1], layer.hidden_size, layer.num_layers * layer.num_directions
    has_c = "c" in layer.kind.state_names  # a cell state c whose flow is measured too
    many = len(layer.kind.state_names) > 1  # the state is a tuple (h, c, ...)
    x = x[:nb]
    parts = None
    if state is not None:  # keep the first nb sequences of each state array
        parts = tuple(None if s is None else np.asarray(s)[:, :nb] for s in (state if many else (state,)))
    per_probe = nb * T * H * (4 + 2 * len(layer.kind.saved) + 2 * len(layer.kind.state_names))  # floats held per probe, roughly
    group = max(1, min(H, budget // max(per_probe, 1)))
    rows_h = np.empty((S, T, nb, H, H))  # [s, t, b, j] = row j of dh_T/dh_t
    rows_c = np.empty((S, T, nb, H, H)) if has_c else None
    with preserved_grads(layer.parameters()), eval_mode(layer):
        for j0 in range(0, H, group):
            nj = min(group, H - j0)
            x_rep = np.tile(x, (nj, 1, 1))  # (nj*nb, T, D): copy j of the batch probes unit j0 + j
            s_rep = None
            if parts is not None:
                s_rep = tuple(None if s is None else np.tile(s, (1, nj, 1)) for s in parts)
                s_rep = s_rep if many else s_rep[0]
            layer.forward(x_rep, s_rep)
            probe = np.zeros((nj, nb, H), layer.dtype)
            probe[np.arange(nj), :, j0 + np.arange(nj)] = 1.0  # e_{j0+j} in every copy j
            for s in range(S):
                dh_n = np.zeros((S, nj * nb, H), layer.dtype)
                dh_n[s] = probe.reshape(nj * nb, H)
                rest = (None,) * (len(layer.kind.state_names) - 1)
                layer.backward(None, (dh_n, *rest) if many else dh_n, record_flow=True)
                flow = layer.grad_flow
                rows_h[s, :, :, j0:j0 + nj] = flow["h"][s].reshape(T, nj, nb, H).transpose(0, 2, 1, 3)
                if has_c:
                    rows_c[s, :, :, j0:j0 + nj] = flow["c"][s].reshape(T, nj, nb, H).transpose(0, 2, 1, 3)
    spectral = lambda rows: np.linalg.norm(rows, ord=2, axis=(-2, -1)).mean(axis=-1)  # (S, T)
    return StepNorms(spectral(rows_h), spectral(rows_c) if has_c else None, recurrence_names(layer),
                     "||dh_T/dh_t||")


# -- the recurrent weights -----------------------------------------------------------------------
@dataclass(frozen=True)
class WeightSpectrum:
    """Spectral radius (largest |eigenvalue|, square blocks only) and largest singular value."""

    name: str                       # e.g. "weight_hh_l0"
    block: str                      # "all" or a gate's name (the cell definition's gates)
    spectral_radius: float | None   # None for the stacked (G*H, H) matrix of a gated cell
    max_singular: float

    def __str__(self) -> str:
        radius = "      -" if self.spectral_radius is None else f"{self.spectral_radius:7.3f}"
        return f"{self.name:<22} {self.block:<4} spectral radius {radius}   sigma_max {self.max_singular:7.3f}"


def weight_spectra(model) -> list[WeightSpectrum]:
    """For every weight_hh: the whole matrix, then each gate's (H, H) block.

    For the tanh RNN, h_t = tanh(W_hh h_{t-1} + ...) gives dh_t/dh_{t-1} = diag(tanh') W_hh, so
    sigma_max(W_hh) < 1 guarantees vanishing gradients, and a spectral radius > 1 is needed for
    them to explode (Pascanu, Mikolov & Bengio 2013).
    """
    layer = find_recurrent(model)
    H = layer.hidden_size
    gates = layer.kind.gates if layer.kind.G > 1 else ()
    result = []
    for suffix in recurrence_names(layer):
        name = f"weight_hh_{suffix}"
        W = np.asarray(getattr(layer, name).data, dtype=np.float64)  # (G*H, H), or (G*H,) diagonal
        blocks = [("all", W)] + [(gate, W[k * H:(k + 1) * H]) for k, gate in enumerate(gates)]
        for block, M in blocks:
            if M.ndim == 1:  # a diagonal recurrence u * h: the matrix diag(u)
                result.append(WeightSpectrum(name, block, float(np.abs(M).max()) if len(M) == H else None,
                                             float(np.abs(M).max())))
                continue
            square = M.shape[0] == M.shape[1]
            radius = float(np.abs(np.linalg.eigvals(M)).max()) if square else None
            result.append(WeightSpectrum(name, block, radius, float(np.linalg.norm(M, ord=2))))
    return result


# -- the verdict ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What a gradient profile shows, with the numbers that say so."""

    kind: str                        # "exploding" | "vanishing" | "healthy"
    rate: float                      # fitted factor per step back in time: < 1 shrinks, > 1 grows
    steps_to_fraction: int | None    # steps back until the norm first drops below fraction x final
    start_ratio: float               # norm at the first step / norm at the last step
    reason: str                      # one sentence, with the numbers

    def __str__(self) -> str:
        return self.reason


def fit_rate(profile) -> float:
    """exp(slope) of a least-squares line through log ||g_t|| against steps back from the end.

    The factor by which the norm changes per step going back in time (zeros and non-finite values,
    e.g. float32 underflow, are left out of the fit). nan with fewer than two usable points.
    """
    n = np.asarray(profile, dtype=np.float64)[::-1]  # (T,) from the last step back
    back = np.arange(len(n))
    usable = np.isfinite(n) & (n > 0)
    if usable.sum() < 2:
        return float("nan")
    slope = np.polyfit(back[usable], np.log(n[usable]), 1)[0]
    return float(np.exp(slope))


def classify(profile, fraction: float = 1e-3, within: int = 20, explode_ratio: float = 1e3,
             grad_norms=None, jump: float = 1e2, what: str = "the gradient") -> Verdict:
    """Say whether a gradient profile (T,) explodes, vanishes or is healthy.

    profile[t] is a norm at step t that starts at the end, e.g. ||dL/dh_t|| for a loss read at the
    last step, or ||dh_T/dh_t||. Going back from the last step:
    - "exploding": it grows to >= explode_ratio x its final value, or is not finite; or (when the
      total gradient norms of training, `grad_norms`, are given) one of them is not finite or
      jumps to >= `jump` x the median of the 10 before it;
    - "vanishing": it falls below `fraction` x its final value within `within` steps (the defaults,
      1e-3 within 20 steps, mean a rate below about x0.71 per step);
    - "healthy" otherwise. Every verdict carries the fitted rate per step (`fit_rate`).
    `what` names the quantity in the verdict's sentence.
    """
    n = np.asarray(profile, dtype=np.float64)
    if n.ndim != 1 or len(n) < 2:
        raise ValueError(f"profile must be a 1-D array of at least 2 norms; got shape {n.shape}")
    if not (0 < fraction < 1 and explode_ratio > 1 and jump > 1):
        raise ValueError(f"need 0 < fraction < 1, explode_ratio > 1 and jump > 1; got {fraction}, "
                         f"{explode_ratio}, {jump}")
    if not isinstance(within, (int, np.integer)) or within < 1:
        raise ValueError(f"within must be a positive integer; got {within!r}")
    T = len(n)
    final = n[-1]
    if math.isfinite(final) and final <= 0:
        raise ValueError("the profile's last step has no gradient (norm 0): it must end where the loss is read")
    rate = fit_rate(n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rel = n[::-1] / final  # (T,) relative to the final value, from the last step back
    start = float(rel[-1])
    below = np.flatnonzero(rel < fraction)
    steps = int(below[0]) if below.size else None

    def verdict(kind, reason):
        return Verdict(kind, rate, steps, start, f"{kind}: {reason}")

    if not np.isfinite(n).all():
        bad = int(np.flatnonzero(~np.isfinite(n))[-1])
        return verdict("exploding", f"{what} is {n[bad]} at step {bad} (of {T})")
    jumped = _jump(grad_norms, jump) if grad_norms is not None else None
    if jumped is not None:
        return verdict("exploding", jumped)
    peak = int(np.argmax(rel))
    if rel[peak] >= explode_ratio:
        return verdict("exploding", f"going back in time {what} grows x{rate:.3g} per step, to "
                                    f"{rel[peak]:.2g} x its final value {peak} steps back")
    if steps is not None and steps <= within:
        return verdict("vanishing", f"going back in time {what} shrinks x{rate:.3g} per step and falls "
                                    f"below {fraction:g} of its final value after {steps} steps; at the "
                                    f"first step ({T - 1} back) it is {start:.2g} of it")
    look = min(within, T - 1)
    return verdict("healthy", f"x{rate:.3g} per step going back; {look} steps back {what} is still "
                              f"{rel[look]:.2g} of its final value, at the first step ({T - 1} back) {start:.2g}")


def worst(verdicts) -> str:
    """The most alarming kind among verdicts: exploding, then vanishing, then healthy."""
    kinds = {v.kind for v in verdicts}
    return next((kind for kind in VERDICTS if kind in kinds), "healthy")


def _jump(grad_norms, jump: float, window: int = 10) -> str | None:
    """A sentence about the first non-finite or >= jump x jump in a series of total gradient norms."""
    g = np.asarray(grad_norms, dtype=np.float64)
    for i, value in enumerate(g):
        if not math.isfinite(value):
            return f"the total gradient norm is {value} at training step {i + 1}"
        if i > 0:
            before = float(np.median(g[max(0, i - window):i]))
            if before > 0 and value >= jump * before:
                return (f"the total gradient norm jumps to {value:.3g} at training step {i + 1}, "
                        f"{value / before:.3g} x the {min(i, window)} steps before it")
    return None


# -- what a cell does while it reads ---------------------------------------------------------------
def gate_trace(model, x, layer_index: int = 0, state=None) -> dict[str, np.ndarray]:
    """What one layer's cell computes reading x (B, T, D): each of its saved activations (for the
    LSTM the gates i, f, g, o and tanh_c) and state variables (h, c), each (T, B, H).

    Computed step by step with the single-step reference (forward direction only; for a layer
    above the first, the layers below run forward too). x is the stack's input; for a CharRNN pass
    `model.embedding(ids)`. state: the stack's initial state or None.
    """
    layer = find_recurrent(model)
    cell, names = layer.kind, layer.kind.state_names
    if not 0 <= layer_index < layer.num_layers:
        raise ValueError(f"layer_index must be in 0..{layer.num_layers - 1}; got {layer_index}")
    if layer.bidirectional and layer_index > 0:
        raise ValueError("gate traces above the first layer need a unidirectional layer")
    x = check_array("x", x, 3, layer.dtype)
    if x.shape[2] != layer.input_size:
        raise ValueError(f"x must have shape (batch, time, input_size={layer.input_size}); got {x.shape}")
    B, T, _ = x.shape
    H, K = layer.hidden_size, layer.num_directions
    state0 = (None,) * len(names) if state is None else (tuple(state) if len(names) > 1 else (state,))
    inputs = x.transpose(1, 0, 2)  # (T, B, D)
    for l in range(layer_index + 1):
        params = tuple(None if getattr(layer, f"{n}_l{l}", None) is None else getattr(layer, f"{n}_l{l}").data
                       for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        current = tuple(np.zeros((B, H), layer.dtype) if s is None else np.asarray(s, layer.dtype)[l * K]
                        for s in state0)
        trace = {name: np.empty((T, B, H), layer.dtype) for name in cell.saved + names}
        for t in range(T):
            current, cache = step_forward(cell, params, inputs[t], current)
            for name, value in zip(cell.saved + names, tuple(cache.saved) + current):
                trace[name][t] = value
        inputs = trace["h"]
    return trace


# -- recording while training --------------------------------------------------------------------
class FlowRecorder:
    """Snapshots of the gradient flow every `every` training steps, for a heatmap over training.

    measure() -> StepNorms runs one extra forward and backward (record_flow=True) on a fixed probe
    batch and must leave the parameter gradients as it found them (see `preserved_grads`). It runs
    only on recording steps, so training in between runs at full speed, exactly as without it.
    Use it as the callback of the training loop, `optimize(..., callback=recorder)` or
    `Trainer.fit(callback=recorder)`: called with the step's row. `then(row)` is called after
    it, and its return value (True: stop) is passed on.

        recorder = FlowRecorder(measure, every=10)
        recorder.record(0)                                   # before the first update
        optimize(params, loss_and_backward, opt, 300, callback=recorder)
        steps, norms = recorder.steps, recorder.matrix()     # (N,), (N, T)
    """

    def __init__(self, measure, every: int = 10, then=None):
        if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        self.measure, self.every, self.then = measure, int(every), then
        self.steps: list[int] = []
        self.records: list[StepNorms] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def record(self, step: int) -> StepNorms:
        norms = self.measure()
        self.steps.append(int(step))
        self.records.append(norms)
        return norms

    def __call__(self, row: dict):
        if self.due(row["step"]):
            self.record(row["step"])
        return self.then(row) if self.then is not None else None

    def matrix(self, index: int = 0, state: str = "h") -> np.ndarray:
        """(N, T): recurrence `index`'s profile at each of the N recorded steps."""
        if not self.records:
            raise ValueError("nothing recorded yet")
        return np.stack([r.profile(index, state) for r in self.records])
