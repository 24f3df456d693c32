"""The time-loop driver: forward and backward through time for any cell definition (cells/).

    forward(cell, params, x, state, mask, kernel)          -> y, final state, cache
    backward(cell, params, cache, dy, dstate, flow, kernel) -> dx, dstate0, grads

Forward is three steps: the input projection of all T steps as one GEMM (xw = x W_ih^T + b_ih), the
time loop (per step only the recurrence h_{t-1} W_hh^T, or u * h for a diagonal one, and the cell's
pointwise step), and the outputs (h_1 .. h_T, zero past each sequence's end). Backward is two: the
sweep from the last step back to the first (the cell's backward step, and the gradient through the
recurrence), then dW_ih, dW_hh and dx as one GEMM each over all steps.

That is this file, in NumPy. Where the fast path is loaded (rnnlab.fast), `settings.loop_for` gives
its compiled loop instead (the same cell functions, compiled on scalars): the same inputs, cache and
results, held to this file's loop in tests. At the end: one whole cell step at a time with its own
GEMMs, the reference (kernel="reference", the test oracle) and the single-step cells (cell.py).

Shapes: T = time, B = batch, D = input features, H = hidden units, G = gates, S = state variables.
x (T, B, D), or a Lookup of an embedding's rows (lookup.py), whose backward returns the gradient of
its table (V, D) for dx; a state is a tuple of S arrays (B, H); mask (T, B, 1) or None: 1 inside a
sequence, 0 past its end, where the state is held and the output is zero.
params = (weight_ih (G*H, D), weight_hh (G*H, H) or (G*H,), bias_ih (G*H,) | None, bias_hh | None);
extras = the cell's own parameters (definition.py), each (H,), in the order of cell.extra_parameters.

A forward or backward given a `Workspace` takes its large buffers from it instead of allocating
them: freshly allocated buffers of this size are pages the OS hands out zeroed on first touch. The
layers (stack.py) pass one workspace per layer, direction, thread and grad mode. What a forward
returns and caches then lives in the workspace until its next call: the layer's cache is replaced
by that call anyway, and the layer copies what it returns.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..settings import settings
from .functional import add_grads
from .lookup import Lookup, scatter_rows


def gates_of(a: np.ndarray, G: int) -> tuple:
    """(B, G*H) -> G views (B, H), one per gate."""
    H = a.shape[-1] // G
    return tuple(a[..., g * H:(g + 1) * H] for g in range(G))


def _fill_gates(out: np.ndarray, parts: tuple) -> None:
    """Write G per-gate gradients (arrays (B, H) or scalars) into out (B, G*H)."""
    for view, part in zip(gates_of(out, len(parts)), parts):
        view[...] = part


class Workspace:
    """Buffers reused from one call to the next, by name (see the module docstring)."""

    def __init__(self):
        self._arrays: dict = {}

    def empty(self, name: str, shape: tuple, dtype, allocate=np.empty) -> np.ndarray:
        """An uninitialised array, the one of the last call where its shape and dtype are the same."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = allocate(shape, dtype)
        return array


def _buffers(workspace: Workspace | None, dtype):
    """empty(name, shape): the workspace's buffer, or a new array where there is no workspace."""
    if workspace is None:
        return lambda name, shape: np.empty(shape, dtype)
    return lambda name, shape: workspace.empty(name, shape, dtype)


def state_or_zeros(d, shape, dtype) -> np.ndarray:
    """A fresh, writable (B, H) copy of a state gradient, or zeros where none came."""
    return np.zeros(shape, dtype) if d is None else np.array(d, dtype=dtype)


def outputs(hs: np.ndarray, mask) -> np.ndarray:
    """y (T, B, H) from hs (T+1, B, H): h_1 .. h_T, zero past each sequence's end. Without a mask, a
    read-only view rather than a copy: the cache keeps hs for backward, so nobody may write to it."""
    if mask is not None:
        return hs[1:] * mask
    y = hs[1:]
    y.flags.writeable = False
    return y


def cell_forward(cell, a_x, a_h, state, extras):
    """The cell's forward, handed its own parameters where it has some (definition.py)."""
    return cell.forward(a_x, a_h, state, extras) if cell.extra_parameters else cell.forward(a_x, a_h, state)


def cell_backward(cell, saved, state, new, d_new, extras):
    """The cell's backward -> d_ax, d_ah, d_state, d_new_all, d_p (d_p empty for a cell of four parameters)."""
    if cell.extra_parameters:
        return cell.backward(saved, state, new, d_new, extras)
    return (*cell.backward(saved, state, new, d_new), ())


def _add_extra_grads(sums: list, d_p, shape) -> None:
    """Add one step's d_p (per parameter (B, H) or a scalar) into sums (per parameter (H,)), summed over B."""
    for total, d in zip(sums, d_p):
        total += np.broadcast_to(d, shape).sum(axis=0)


def _rows(x) -> np.ndarray:
    """x (T, B, D) as an array: an embedding's rows gathered."""
    return x.rows() if isinstance(x, Lookup) else x


# --- the sequence: forward ------------------------------------------------------------------------
def forward(cell, params, x, state, mask=None, kernel="fast", workspace=None, extras=()):
    """x (T, B, D), state (S arrays (B, H)), mask (T, B, 1) or None -> y (T, B, H), final state, cache."""
    compiled = settings.loop_for(cell, kernel, x, *params, *extras)
    if compiled is not None:
        return compiled.forward(params, x, state, mask, workspace, extras)
    W_ih, W_hh, b_ih, b_hh = params
    T, B = x.shape[:2]
    H, G = state[0].shape[1], cell.G
    empty = _buffers(workspace, x.dtype)
    # 1. the input projection of every step at once
    xw = input_projection(x, W_ih, empty("xw", (T, B, G * H)))  # (T, B, G*H)
    bias_h = None
    if b_ih is not None:  # where only a_x + a_h matters, both biases go to the x side
        xw += b_ih if cell.h_side_apart else b_ih + b_hh
        bias_h = b_hh if cell.h_side_apart else None
    # 2. the time loop
    states = [empty(f"state{k}", (T + 1, B, H)) for k in range(len(cell.state_names))]  # each s_0 .. s_T
    for s, s0 in zip(states, state):
        s[0] = s0
    saved = [empty(f"saved{k}", (T, B, H)) for k in range(len(cell.saved))]  # what backward reads
    W_rec = np.ascontiguousarray(W_hh.T) if cell.recurrence == "dense" else W_hh  # W_hh^T (H, G*H), or u
    _forward_sweep(cell, xw, W_rec, bias_h, states, saved, mask, extras)
    # 3. the outputs
    return outputs(states[0], mask), tuple(s[T].copy() for s in states), (x, states, saved, mask)


def input_projection(x, W_ih, out) -> np.ndarray:
    """x_t W_ih^T for every step, out (T, B, G*H): one GEMM over all T*B rows; for an embedding's
    folded rows, the projected table (V, G*H) gathered by id (lookup.py)."""
    T, B, D = x.shape
    if isinstance(x, Lookup) and x.folded:
        np.take(x.projected(W_ih), x.ids, axis=0, out=out, mode="clip")  # ids are checked where the Lookup is made
    else:
        np.matmul(_rows(x).reshape(T * B, D), W_ih.T, out=out.reshape(T * B, -1))
    return out


def _forward_sweep(cell, xw, W_hh, bias_h, states, saved, mask, extras=()):
    """The time loop in NumPy: xw (T, B, G*H) holds x_t W_ih^T + b on entry; fills states[k][1:] and
    saved[k] (T, B, H). W_hh is W_hh^T (H, G*H) for a dense recurrence, u (G*H,) for a diagonal one."""
    G = cell.G
    for t in range(xw.shape[0]):
        h = states[0][t]
        a_h = h @ W_hh if cell.recurrence == "dense" else W_hh * np.tile(h, G)
        if bias_h is not None:
            a_h += bias_h
        new, keep = cell_forward(cell, gates_of(xw[t], G), gates_of(a_h, G), tuple(s[t] for s in states), extras)
        for s, value in zip(states, new):
            s[t + 1] = value
        for v, value in zip(saved, keep):
            v[t] = value
        if mask is not None:  # past the end: hold the state
            held = ~(mask[t] > 0)
            for s in states:
                np.copyto(s[t + 1], s[t], where=held)


# --- the sequence: backward -----------------------------------------------------------------------
def backward(cell, params, cache, dy, dstate, flow=None, kernel="fast", workspace=None, extras=()):
    """dy (T, B, H) or None, dstate (S entries (B, H) or None) -> dx (T, B, D), dstate0, grads.

    With a dict `flow`, also records the gradient reaching each step's state variables, flow["h"] =
    dL/dh_t, flow["c"] = dL/dc_t (each (T, B, H)): the gradient flow through time that diagnostics plot.
    """
    x, states, saved, mask = cache
    compiled = settings.loop_for(cell, kernel, x, *params, *extras, dy)
    if compiled is not None:
        return compiled.backward(params, cache, dy, dstate, flow, workspace, extras)
    W_ih, W_hh, b_ih, _ = params
    T, B = x.shape[:2]
    H, G = states[0].shape[2], cell.G
    empty = _buffers(workspace, x.dtype)
    # 1. the sweep, from the last step back to the first
    d_state = [state_or_zeros(d, (B, H), x.dtype) for d in dstate]  # dL/ds_T, then dL/ds_t going back
    dXW = empty("dXW", (T, B, G * H))  # gradient of x_t W_ih^T + b_ih, per step
    dHW = empty("dHW", (T, B, G * H)) if cell.h_side_apart else dXW  # of the recurrence's side
    d_extras = _backward_sweep(cell, W_hh, states, saved, mask, dy, d_state, dXW, dHW, flow, extras)
    # 2. the gradients of the input and the weights, one GEMM each over all steps
    dx, grads = input_and_weight_grads(cell, W_ih, b_ih is not None, x, states, dXW, dHW)
    grads.update(zip(cell.extra_parameters, d_extras))  # the cell's own parameters, summed in the sweep
    return dx, tuple(d_state), grads


def input_and_weight_grads(cell, W_ih, has_bias: bool, x, states, dXW, dHW, scatter=scatter_rows):
    """dx (T, B, D) and the weights' gradients from the sweep's dXW, dHW (T, B, G*H): one GEMM each. An
    embedding's rows give dx per row of its table instead (V, D), summed by id with `scatter`."""
    T, B, D = x.shape
    H = states[0].shape[2]
    dXW2, dHW2 = dXW.reshape(T * B, -1), dHW.reshape(T * B, -1)
    # dx = dax W_ih, dW_ih = dax^T x: per step, or per row of an embedding's table (lookup.py)
    dax, x_rows = x.input_side(dXW2, scatter) if isinstance(x, Lookup) else (dXW2, x.reshape(T * B, D))
    dx = dax @ W_ih
    grads = weight_grads(cell, dax, dHW2, x_rows, states[0][:T].reshape(T * B, H), has_bias)
    dx = x.table_grad(dx, scatter) if isinstance(x, Lookup) else dx.reshape(T, B, D)
    return dx, grads


def weight_grads(cell, dax, dah, x, h, has_bias: bool) -> dict:
    """All four gradients at once, one GEMM each: dax (N, G*H) is the gradient of x W_ih^T + b_ih over
    N = T*B rows, dah that of the recurrence's side (the same values unless cell.h_side_apart); x (N, D)
    and h (N, H) are each step's input and previous h. An embedding's rows give dax and x per row of
    its table instead (V rows, lookup.py): dax^T x is the same sum, grouped by id."""
    if cell.recurrence == "dense":
        dW_hh = dah.T @ h
    else:
        dW_hh = (dah.reshape(len(dah), cell.G, -1) * h[:, None, :]).sum(axis=0).reshape(-1)
    grads = {"weight_ih": dax.T @ x, "weight_hh": dW_hh}
    if has_bias:
        grads["bias_ih"] = dax.sum(axis=0)
        grads["bias_hh"] = dah.sum(axis=0) if cell.h_side_apart else grads["bias_ih"].copy()
    return grads


def _recur(cell, W_hh, h: np.ndarray) -> np.ndarray:
    """The recurrence's pre-activations (B, G*H) without bias: h W_hh^T, or u * h per gate."""
    if cell.recurrence == "dense":
        return h @ W_hh.T
    return W_hh * np.tile(h, cell.G)


def _recur_backward(cell, W_hh, dah: np.ndarray) -> np.ndarray:
    """dL/dh (N, H) through the recurrence from its pre-activations' gradient dah (N, G*H)."""
    if cell.recurrence == "dense":
        return dah @ W_hh
    return (dah * W_hh).reshape(len(dah), cell.G, -1).sum(axis=1)


def _backward_sweep(cell, W_hh, states, saved, mask, dy, d_state, dXW, dHW, flow, extras=()):
    """The time loop of BPTT in NumPy: fills dXW (and dHW) (T, B, G*H) and flow; leaves dL/ds_0 in d_state;
    returns the gradients of the cell's own parameters, each (H,)."""
    T, B, H = saved[0].shape if saved else states[0][1:].shape
    d_extras = [np.zeros(H, dXW.dtype) for _ in extras]
    if flow is not None:
        flow.update({name: np.empty((T, B, H), dXW.dtype) for name in cell.state_names})
    if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
        dy = dy * mask
    d_next = list(d_state)
    for t in reversed(range(T)):
        d_new = list(d_next)
        if dy is not None:
            d_new[0] = d_new[0] + dy[t]
        if mask is not None:  # a held step passes its gradient through; only live steps reach the cell
            m = mask[t]
            skip = [d * (1 - m) for d in d_new]
            d_new = [d * m for d in d_new]
        dax, dah, dprev, d_all, d_p = cell_backward(cell, tuple(v[t] for v in saved), tuple(s[t] for s in states),
                                                    tuple(s[t + 1] for s in states), tuple(d_new), extras)
        _add_extra_grads(d_extras, d_p, (B, H))
        _fill_gates(dXW[t], dax)
        if cell.h_side_apart:
            _fill_gates(dHW[t], dah)
        d_next = [np.broadcast_to(d, (B, H)) for d in dprev]
        d_next[0] = d_next[0] + _recur_backward(cell, W_hh, dHW[t])
        if mask is not None:
            d_next = [d + s for d, s in zip(d_next, skip)]
        if flow is not None:
            for name, d in zip(cell.state_names, d_all):
                flow[name][t] = d
    for target, d in zip(d_state, d_next):
        target[...] = d
    return d_extras


# --- one step: the reference and the single-step cell ---------------------------------------------
class StepCache(NamedTuple):
    """What one step keeps for its backward: x (B, D), state and new state (S arrays (B, H)), and the
    cell's saved activations (in the order of cell.saved)."""

    x: np.ndarray
    state: tuple
    new: tuple
    saved: tuple


def step_forward(cell, params, x, state, extras=()):
    """x (B, D), state (S arrays (B, H)) -> new state, cache: one whole cell step, its own GEMMs."""
    W_ih, W_hh, b_ih, b_hh = params
    a_x, a_h = x @ W_ih.T, _recur(cell, W_hh, state[0])  # (B, G*H) each
    if b_ih is not None:
        a_x, a_h = a_x + b_ih, a_h + b_hh
    new, saved = cell_forward(cell, gates_of(a_x, cell.G), gates_of(a_h, cell.G), tuple(state), extras)
    new = tuple(np.array(np.broadcast_to(s, state[0].shape)) for s in new)
    return new, StepCache(x, tuple(state), new, tuple(saved))


def step_backward(cell, params, cache, d_new, extras=()):
    """d_new (S arrays (B, H)) -> dx (B, D), d previous state, grads of this step."""
    W_ih, W_hh, b_ih, _ = params
    x, state = cache.x, cache.state
    B, H = state[0].shape
    dax, dah, dprev, _, d_p = cell_backward(cell, cache.saved, state, cache.new, tuple(d_new), extras)
    dAX = np.empty((B, cell.G * H), x.dtype)
    _fill_gates(dAX, dax)
    dAH = dAX
    if cell.h_side_apart:
        dAH = np.empty_like(dAX)
        _fill_gates(dAH, dah)
    dprev = [np.broadcast_to(d, (B, H)).astype(x.dtype) for d in dprev]
    dprev[0] = dprev[0] + _recur_backward(cell, W_hh, dAH)
    grads = weight_grads(cell, dAX, dAH, x, state[0], b_ih is not None)
    sums = [np.zeros(H, x.dtype) for _ in extras]
    _add_extra_grads(sums, d_p, (B, H))
    grads.update(zip(cell.extra_parameters, sums))
    return dAX @ W_ih, tuple(dprev), grads


def reference_forward(cell, params, x, state, mask=None, extras=()):
    """The unrolled network, literally: one cell step per time step (the test oracle)."""
    caches, ys = [], []
    for t in range(x.shape[0]):
        new_state, cache = step_forward(cell, params, x[t], state, extras)
        if mask is not None:  # past a sequence's end its state is held and its output is zero
            new_state = tuple(np.where(mask[t] > 0, new, old) for new, old in zip(new_state, state))
        ys.append(new_state[0] if mask is None else new_state[0] * mask[t])
        caches.append(cache)
        state = new_state
    return np.stack(ys), state, (caches, mask)


def reference_backward(cell, params, cache, dy, dstate, extras=()):
    """BPTT over the unrolled network: from the last step back to the first, one cell at a time."""
    caches, mask = cache
    T = len(caches)
    B, H = caches[0].state[0].shape
    dstate = tuple(np.zeros((B, H), caches[0].x.dtype) if d is None else d for d in dstate)
    if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
        dy = dy * mask
    dxs, grads = [None] * T, None
    for t in reversed(range(T)):
        dh = dstate[0] + (dy[t] if dy is not None else 0)
        dnew = (dh,) + tuple(dstate[1:])
        if mask is not None:
            m = mask[t]
            dnew = tuple(m * d for d in dnew)
        dxs[t], dprev, step_grads = step_backward(cell, params, caches[t], dnew, extras)
        if mask is not None:  # a held state passes its gradient straight through
            dprev = tuple(dp + (1 - m) * d for dp, d in zip(dprev, (dh,) + tuple(dstate[1:])))
        dstate = dprev
        grads = add_grads(grads, step_grads)
    return np.stack(dxs), dstate, grads


# --- a new cell's first step, checked before anything compiles it --------------------------------
def check_step(cell) -> None:
    """Run the cell's forward and backward once through the reference step on a tiny input (B = 2,
    D = 3, H = 4, float64), and raise one ValueError naming its file and function where they fail or
    return the wrong number of values or wrong shapes (rather than a traceback from compiled code)."""
    rng = np.random.default_rng(0)
    B, D, H, G, S = 2, 3, 4, cell.G, len(cell.state_names)
    shapes = cell.shapes(D, H)
    params = tuple(rng.uniform(-0.5, 0.5, shapes[n]) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    state = tuple(rng.uniform(-0.5, 0.5, (B, H)) for _ in range(S))
    extras = tuple(rng.uniform(-0.5, 0.5, H) for _ in cell.extra_parameters)
    E = len(extras)

    def where(fn) -> str:
        code = getattr(fn, "__code__", None)
        return f"{code.co_filename}:{code.co_firstlineno}, {fn.__name__}" if code else repr(fn)

    def fail(fn, problem: str):
        return ValueError(f"cell {cell.name!r} ({where(fn)}): {problem}")

    def check_entries(fn, what: str, values, count: int) -> None:
        if not isinstance(values, (tuple, list)) or len(values) != count:
            got = f"{len(values)} values" if isinstance(values, (tuple, list)) else type(values).__name__
            raise fail(fn, f"{what} must be {count} value(s); got {got}")
        for k, v in enumerate(values):
            try:
                if np.broadcast_shapes(np.shape(v), (B, H)) != (B, H):
                    raise ValueError
            except ValueError:
                raise fail(fn, f"{what}[{k}] has shape {np.shape(v)}, not (batch, hidden) = {(B, H)}") from None

    a_x = gates_of(rng.standard_normal((B, G * H)), G)
    a_h = gates_of(rng.standard_normal((B, G * H)), G)
    try:
        out = cell_forward(cell, a_x, a_h, state, extras)
    except Exception as error:
        raise fail(cell.forward, f"failed on a trial step: {type(error).__name__}: {error}") from None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise fail(cell.forward, "forward must return (new_state, saved)")
    check_entries(cell.forward, "new_state", out[0], S)
    check_entries(cell.forward, "saved", out[1], len(cell.saved))
    new = tuple(np.broadcast_to(s, (B, H)) for s in out[0])
    try:
        d_new = tuple(rng.standard_normal((B, H)) for _ in range(S))
        back = cell.backward(tuple(out[1]), state, new, d_new, *((extras,) if E else ()))
    except Exception as error:
        raise fail(cell.backward, f"failed on a trial step: {type(error).__name__}: {error}") from None
    names = ("d_ax", "d_ah", "d_state", "d_new_all", "d_p")[:5 if E else 4]
    if not isinstance(back, (tuple, list)) or len(back) != len(names):
        raise fail(cell.backward, f"backward must return ({', '.join(names)})")
    for what, values, count in zip(names, back, (G, G, S, S, E)):
        check_entries(cell.backward, what, values, count)
    step_forward(cell, params, rng.standard_normal((B, D)), state, extras)  # the whole step, its GEMMs included
