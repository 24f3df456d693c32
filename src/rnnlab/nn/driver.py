"""The time-loop driver: forward and backward through time for any cell definition (cells/).

    forward(cell, params, x, state, mask, backend)          -> y, final state, cache
    backward(cell, params, cache, dy, dstate, flow, backend) -> dx, dstate0, grads

The input projection of all T steps is one GEMM; the time loop does only the recurrence per step
(h_{t-1} W_hh^T, one GEMM; or u * h inside the step for a diagonal recurrence) and the cell's
pointwise step; after the backward sweep dW_ih, dW_hh and dx are one GEMM each over all steps.
The time loop runs in NumPy (below, the cell's step on (B, H) arrays) or in Numba (fused.py, the
same step compiled on scalars, the whole loop one call with each step's GEMM by NumPy's own BLAS;
under no_grad() the hidden units shared among threads, each running the whole loop for its own,
threads.step_parts, its GEMM on W_hh^T packed once (packed.py), x_t W_ih^T in that same GEMM where
the cell needs only a_x + a_h); `backend` picks (backend.py). The reference path, one whole cell
step at a time with its own GEMMs (the test oracle, kernel="reference"), is at the end.

Shapes: T = time, B = batch, D = input features, H = hidden units, G = gates, S = state variables,
K = saved activations. x (T, B, D), or a Lookup of an embedding's rows (lookup.py), whose backward
returns the gradient of its table (V, D) for dx; a state is a tuple of S arrays (B, H); mask (T, B, 1) or None:
1 inside a sequence, 0 past its end, where the state is held and the output is zero.
params = (weight_ih (G*H, D), weight_hh (G*H, H) or (G*H,), bias_ih (G*H,) | None, bias_hh | None).

A forward or backward given a `Workspace` takes its large buffers from it instead of allocating
them. Freshly allocated, buffers of this size are pages the OS hands out zeroed on first touch, and
freed, glibc gives them back: an LSTM forward at B, T, H = 32, 64, 128 took 26.0 ms that way and
15.9 ms with the heap kept (BENCHMARKS.md). The layers (stack.py) pass one workspace per layer, direction,
thread and grad mode. What a forward returns and caches then lives in the workspace until its next
call: the layer's cache is replaced by that call anyway, and the layer copies what it returns.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import blas, threads
from .backend import live_mask, outputs, state_or_zeros, sweeps_for, whole_loop
from .functional import add_grads
from .lookup import Lookup
from .module import is_grad_enabled


def _gates(a: np.ndarray, G: int) -> tuple:
    """(B, G*H) -> G views (B, H), one per gate."""
    H = a.shape[-1] // G
    return tuple(a[..., g * H:(g + 1) * H] for g in range(G))


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


def _fill_gates(out: np.ndarray, parts: tuple) -> None:
    """Write G per-gate gradients (arrays (B, H) or scalars) into out (B, G*H)."""
    for view, part in zip(_gates(out, len(parts)), parts):
        view[...] = part


class Workspace:
    """Buffers reused from one call to the next, by name (see the module docstring)."""

    def __init__(self):
        self._arrays: dict = {}

    def empty(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised array, the one of the last call where its shape and dtype are the same."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = aligned_empty(shape, dtype)
        return array


def _buffers(workspace: Workspace | None, dtype):
    """empty(name, shape): the workspace's buffer, or a new array where there is no workspace."""
    if workspace is None:
        return lambda name, shape: aligned_empty(shape, dtype)
    return lambda name, shape: workspace.empty(name, shape, dtype)


CACHE_LINE = 64  # bytes


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-ordered array that starts on a cache line. Threads running the time loop in
    parts write neighbouring units of each row; NumPy's arrays start 16 bytes past a line, so that a
    line would hold both parts' units and move between their cores at every write (false sharing)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + size].view(dtype).reshape(shape)


# --- the sequence: forward ------------------------------------------------------------------------
def forward(cell, params, x, state, mask=None, backend=None, workspace=None):
    """x (T, B, D), state (S arrays (B, H)), mask (T, B, 1) or None -> y (T, B, H), final state, cache."""
    B, H, G = x.shape[1], state[0].shape[1], cell.G
    compiled = sweeps_for(backend, x, *params)
    stepwise = compiled is not None and cell.recurrence == "dense" and not whole_loop(B, G, H)  # a GEMM per step
    # the loop can run in parts: a lean forward (under no_grad()) with a GEMM per step
    with threads.time_loop(B, H, G, stepwise and not is_grad_enabled()) as parts:  # per-step GEMMs (threads.py)
        return _forward(cell, params, x, state, mask, compiled, stepwise, parts, workspace)


class _Loop(NamedTuple):
    """One layer's time loop made ready (_prepare): the compiled step's arguments and what else it reads."""

    args: tuple  # the compiled steps' arguments (fused.py's fwd_args)
    states: list  # each state variable s_0 .. s_T (T+1, B, H)
    saved: list  # the saved activations (T, B, H), or empty under no_grad()
    W_ih: np.ndarray  # the weights, as given (a lean loop's parts read their own rows)
    W_hh: np.ndarray
    x_in_step: bool  # x_t W_ih^T in each step's GEMM (xw then a row of zeros)
    inputs: np.ndarray | None  # lean: what the parts multiply by W_ih^T (x, or an embedding's table)


def _prepare(cell, params, x, state, mask, compiled, lean: bool, ends: list, empty, x_in_step: bool,
             save: bool = True) -> _Loop:
    """Everything a time loop reads and writes besides its per-step GEMM's operands: the input side
    (xw, rows: each step's x_t W_ih^T, or nothing with x_in_step), the biases, the states' buffers,
    and, with `save`, those of the saved activations. A lean loop's parts fill their own columns of xw and
    pack their own weights (_part_operands)."""
    T, B = x.shape[:2]
    H, G = state[0].shape[1], cell.G
    W_ih, W_hh, b_ih, b_hh = params
    if len(ends) > 2:  # a lean loop in parts: each part's gate columns together (its weight rows: _part_operands)
        order = _part_order(G, tuple(ends))
        b_ih, b_hh = (None if b is None else b[order] for b in (b_ih, b_hh))
    inputs = None
    if x_in_step:  # xw is a row of zeros, which every step reads
        xw, rows, inputs = np.zeros((1, G * H), x.dtype), np.zeros((T, B), np.intp), _rows(x)
    elif lean and isinstance(x, Lookup) and x.folded:  # the projected table (V, G*H), by id
        xw, rows, inputs = empty("xw", (len(x.table), G * H)), x.ids, x.table
    elif lean:  # (T*B, G*H), each step its own row
        xw, rows = empty("xw", (T * B, G * H)), np.arange(T * B, dtype=np.intp).reshape(T, B)
        inputs = _rows(x).reshape(T * B, -1)
    else:
        xw, rows = _input_side(x, W_ih, compiled is not None, empty)
    has_bias = b_ih is not None
    # where only a_x + a_h matters, both biases go to the x side: one add less per gate and step
    bias_x = np.zeros(G * H, x.dtype) if not has_bias else (b_ih if cell.h_side_apart else b_ih + b_hh)
    bias_h = b_hh if has_bias and cell.h_side_apart else None
    states = [empty(f"state{k}", (T + 1, B, H)) for k in range(len(cell.state_names))]  # each s_0 .. s_T
    for s, s0 in zip(states, state):
        s[0] = s0
    saved = [empty(f"saved{k}", (T, B, H) if save else (0, 0, 0)) for k in range(len(cell.saved))]  # for backward
    if compiled is None:  # NumPy's sweep: the biases added to xw here
        if has_bias:
            xw += bias_x
        return _Loop((xw, bias_h), states, saved, W_ih, W_hh, x_in_step, inputs)
    hw = empty("hw", (B, G * H))  # h_{t-1} W_hh^T, reused every step
    u = np.ascontiguousarray(W_hh) if cell.recurrence != "dense" else np.empty(0, x.dtype)
    if bias_h is None:  # the compiled step reads it wherever the h side has its own bias
        bias_h = np.zeros(G * H if cell.h_side_apart else 0, x.dtype)
    args = (xw.reshape(-1, G * H), rows, hw, bias_x, bias_h, u, live_mask(mask, T, B, x.dtype), *states, *saved)
    return _Loop(args, states, saved, W_ih, W_hh, x_in_step, inputs)


def _rows(x) -> np.ndarray:
    """x (T, B, D) as an array: an embedding's rows gathered."""
    return x.rows() if isinstance(x, Lookup) else x


def _x_in_step(cell, x, compiled) -> bool:
    """Whether a lean loop takes x_t W_ih^T into each step's GEMM: where the cell needs only a_x + a_h
    and x is not an embedding folded into a table (lookup.py), whose rows the step reads instead."""
    return compiled.loops_for(cell).forward_part_lean_x is not None and not (isinstance(x, Lookup) and x.folded)


def _part_operands(compiled, loop: _Loop, ends: list, p: int, empty) -> tuple[tuple, tuple]:
    """Part p's buffers, in two tuples: the arguments of compiled.pack_part, which fills them in p's own
    thread as its loop starts (the parts at once): its gate rows of W_hh and W_ih packed where they lie
    (packed.py) and, unless x_t W_ih^T is in its GEMM, its columns of xw; and the loop's operands among
    them: (packed W_ih^T, with x_in_step), packed W_hh^T, the scratch of its last block."""
    G, dtype = len(loop.W_hh) // ends[-1], loop.W_hh.dtype
    lo, hi = G * ends[p], G * ends[p + 1]
    packed_h = empty(f"packed{p}", compiled.packed_shape(hi - lo, loop.W_hh.shape[1], dtype))
    packed_x = empty(f"packed_x{p}", compiled.packed_shape(hi - lo, loop.W_ih.shape[1], dtype))
    NR = packed_h.shape[2]
    scratch = empty(f"scratch{p}", (loop.states[0].shape[1], NR))
    if loop.x_in_step:  # no columns of xw to make
        inputs, xw_part, scratch_x = np.empty((0, loop.W_ih.shape[1]), dtype), np.empty((0, hi - lo), dtype), scratch
        operands = (packed_x, packed_h, scratch)
    else:
        inputs, xw_part, operands = loop.inputs, loop.args[0][:, lo:hi], (packed_h, scratch)
        scratch_x = empty(f"scratch_x{p}", (len(inputs) if (hi - lo) % NR else 0, NR))  # a partial last block
    rows = _part_order(G, tuple(ends))[lo:hi]
    return (loop.W_hh, loop.W_ih, rows, packed_h, packed_x, inputs, xw_part, scratch_x), operands


def _forward(cell, params, x, state, mask, compiled, stepwise, parts, workspace):
    T, B = x.shape[:2]
    H, G = state[0].shape[1], cell.G
    empty = _buffers(workspace, x.dtype)
    dense = cell.recurrence == "dense"
    ends = _part_ends(H, parts, x.dtype.itemsize)
    # under no_grad() the compiled steps write no saved activations; lean: the loop in parts
    save = compiled is None or is_grad_enabled()
    lean = stepwise and not save
    loop = _prepare(cell, params, x, state, mask, compiled, lean, ends, empty, lean and _x_in_step(cell, x, compiled),
                    save)
    states, W_hh = loop.states, loop.W_hh
    loops = compiled.loops_for(cell) if compiled is not None else None
    if compiled is None:
        _forward_sweep(cell, loop.args[0], _transposed(W_hh, empty) if dense else W_hh, loop.args[1], states,
                       loop.saved, mask)
    elif not stepwise:  # no GEMM per step, or a small one: the loop in one call
        sweep = loops.forward_sweep if save else loops.forward_sweep_lean
        sweep(_transposed(W_hh, empty) if dense else np.empty((0, 0), x.dtype), *loop.args)
    elif lean:  # the units shared among threads (or one), each running the whole loop for its own
        part, flags = loops.forward_part_lean_x if loop.x_in_step else loops.forward_part_lean, compiled.meet_flags(parts)
        inputs = (loop.inputs,) if loop.x_in_step else ()
        made, operands = zip(*(_part_operands(compiled, loop, ends, p, empty) for p in range(parts)))

        def run(p: int) -> None:
            compiled.pack_part(*made[p])
            part(p, flags, ends[p], ends[p + 1], *inputs, *operands[p], *loop.args)
        threads.run_parts(run, parts, flags)
    elif loops.forward_blas is not None:  # the loop in one call, its GEMMs NumPy's BLAS's
        loops.forward_blas(_transposed(W_hh, empty), *loop.args)
    else:  # BLAS cannot be called from the loop: one thread on W_hh^T packed once
        packed = _packed(compiled, W_hh, None, "packed", empty)
        loops.forward_packed(packed, empty("scratch", (B, packed.shape[2])), *loop.args)
    y = outputs(states[0], mask)
    return y, tuple(s[T].copy() for s in states), (x, states, loop.saved, mask)


PAIR_BYTES = 1 << 21  # the three weight matrices a pair's steps read, at most: ~the cores' L2 together


def pairs(cell, x, params_a, params_b, backend=None) -> bool:
    """Whether two stacked layers of this cell run as one lean loop (forward_pair): under no_grad(),
    with the compiled loops and a GEMM per step, where the cell needs only a_x + a_h, and where the
    weights both layers' steps read (W_hh of a, W_ih and W_hh of b) fit in PAIR_BYTES. Measured (LSTM,
    2 layers, the two ways alternating in one process): (32, 64, 128) 5.46 -> 4.81 ms (0.8 MB of
    weights), (64, 100, 256) 32.8 -> 32.4 (3 MB), (64, 100, 512) 121 -> 140 (13 MB: each step streams
    both layers' weights from L3)."""
    if is_grad_enabled() or cell.recurrence != "dense" or 3 * params_a[1].nbytes > PAIR_BYTES:
        return False
    compiled = sweeps_for(backend, x, *params_a, *params_b)
    return (compiled is not None and not whole_loop(x.shape[1], cell.G, params_a[1].shape[1])
            and compiled.loops_for(cell).forward_pair_lean is not None)


def forward_pair(cell, params_a, params_b, x, state_a, state_b, mask=None, backend=None, workspaces=(None, None)):
    """Two stacked layers a, b under no_grad() in one loop (pairs() says where): x (T, B, D) -> y of b
    (T, B, H), final states of a and of b. Between two meetings of the threads, a's step t and b's step
    t-1 (fused.forward_pair_lean): one meeting and one hand-over to the helpers for both layers, and
    b's input projection inside its steps' GEMM."""
    T, B = x.shape[:2]
    H = state_a[0].shape[1]
    compiled = sweeps_for(backend, x, *params_a, *params_b)
    with threads.time_loop(B, H, cell.G, True) as parts:
        ends = _part_ends(H, parts, x.dtype.itemsize)
        empty_a, empty_b = (_buffers(w, x.dtype) for w in workspaces)
        a = _prepare(cell, params_a, x, state_a, mask, compiled, True, ends, empty_a, _x_in_step(cell, x, compiled),
                     False)
        y_a = a.states[0][1:]  # b's input: a's h (past a sequence's end b holds its state, whatever it reads)
        b = _prepare(cell, params_b, y_a, state_b, mask, compiled, True, ends, empty_b, True, False)
        loops = compiled.loops_for(cell)
        pair, flags = loops.forward_pair_lean_x if a.x_in_step else loops.forward_pair_lean, compiled.meet_flags(parts)
        inputs = (a.inputs,) if a.x_in_step else ()  # b's input, a's h, is in a.args
        made_a, operands_a = zip(*(_part_operands(compiled, a, ends, p, empty_a) for p in range(parts)))
        made_b, operands_b = zip(*(_part_operands(compiled, b, ends, p, empty_b) for p in range(parts)))

        def run(p: int) -> None:
            compiled.pack_part(*made_a[p])
            compiled.pack_part(*made_b[p])
            pair(p, flags, ends[p], ends[p + 1], *inputs, *operands_a[p], *operands_b[p], *a.args, *b.args)
        threads.run_parts(run, parts, flags)
    return outputs(b.states[0], mask), tuple(s[T].copy() for s in a.states), tuple(s[T].copy() for s in b.states)


def _transposed(W_hh, empty):
    """W_hh^T (H, G*H) in C order, where BLAS is fastest (copied by BLAS's omatcopy: blas.py)."""
    return blas.transpose(W_hh, empty("W_hh_T", W_hh.shape[::-1]))


def _packed(compiled, W, rows, name: str, empty):
    """W^T packed for the compiled loops' GEMM (packed.py), into the buffer `name`: the rows W[rows]
    where rows are given, else every row of W."""
    N, K = (len(W) if rows is None else len(rows)), W.shape[1]
    return compiled.pack(W, empty(name, compiled.packed_shape(N, K, W.dtype)), rows=rows)


def _part_ends(H: int, parts: int, itemsize: int) -> list[int]:
    """Where each thread's units begin: part p has units ends[p]..ends[p+1]-1, each part's first unit a
    whole number of cache lines into its row where H allows (then, with arrays that start on a line,
    aligned_empty, and rows of whole lines, no line is written by two parts)."""
    step = CACHE_LINE // itemsize if H >= parts * CACHE_LINE // itemsize else 1
    return [0] + [p * H // parts // step * step for p in range(1, parts)] + [H]


@functools.lru_cache(maxsize=64)
def _part_order(G: int, ends: tuple[int, ...]) -> np.ndarray:
    """The G*H gate rows reordered part by part: part p (units ends[p]..ends[p+1]-1) has its G gates'
    rows together, gate by gate (units 0..H-1 in one part: PyTorch's order itself). Only the rows of the
    weights and biases move; h and the other states keep their units in order. (Kept per (G, ends):
    read-only.)"""
    H = ends[-1]
    order = np.concatenate([np.arange(g * H + j0, g * H + j1) for j0, j1 in zip(ends, ends[1:]) for g in range(G)])
    order.flags.writeable = False
    return order


def _input_side(x, W_ih, by_row: bool, empty):
    """x_t W_ih^T for every step: xw (T, B, G*H), one GEMM over all steps, and rows (T, B), where the
    compiled step of sequence b reads row rows[t, b] of xw seen as (rows, G*H). With by_row (the
    compiled loops) an embedding's folded rows give the projected table itself (V, G*H) and their ids:
    nothing gathered (lookup.py)."""
    T, B, D = x.shape
    GH = len(W_ih)
    if isinstance(x, Lookup) and x.folded:
        projected = x.projected(W_ih)  # (V, G*H)
        if by_row:
            return projected, x.ids
        xw = empty("xw", (T, B, GH))
        # NumPy's loop reads xw[t]: gathered (ids are checked where the Lookup is made; mode="raise"
        # would buffer out: 14 ms against 3.7 at (64, 100, 256))
        np.take(projected, x.ids, axis=0, out=xw, mode="clip")
    else:
        xw = empty("xw", (T, B, GH))
        # the all-steps GEMM gets its own threads back
        threads.matmul(_rows(x).reshape(T * B, D), W_ih.T, out=xw.reshape(T * B, GH))
    return xw, np.arange(T * B, dtype=np.intp).reshape(T, B)  # each step its own row


def _forward_sweep(cell, xw, W_hh, bias_h, states, saved, mask):
    """The time loop in NumPy: xw (T, B, G*H) holds x_t W_ih^T + b on entry; fills states[k][1:] and
    saved[k] (T, B, H). W_hh is W_hh^T (H, G*H) for a dense recurrence, u (G*H,) for a diagonal one."""
    G = cell.G
    for t in range(xw.shape[0]):
        h = states[0][t]
        a_h = h @ W_hh if cell.recurrence == "dense" else W_hh * np.tile(h, G)
        if bias_h is not None:
            a_h += bias_h
        new, keep = cell.forward(_gates(xw[t], G), _gates(a_h, G), tuple(s[t] for s in states))
        for s, value in zip(states, new):
            s[t + 1] = value
        for v, value in zip(saved, keep):
            v[t] = value
        if mask is not None:  # past the end: hold the state
            held = ~(mask[t] > 0)
            for s in states:
                np.copyto(s[t + 1], s[t], where=held)


# --- the sequence: backward -----------------------------------------------------------------------
def backward(cell, params, cache, dy, dstate, flow=None, backend=None, workspace=None):
    """dy (T, B, H) or None, dstate (S entries (B, H) or None) -> dx (T, B, D), dstate0, grads.

    With a dict `flow`, also records the gradient reaching each step's state variables, flow["h"] =
    dL/dh_t, flow["c"] = dL/dc_t (each (T, B, H)): the gradient flow through time that diagnostics plot.
    """
    x, states = cache[0], cache[1]
    with threads.time_loop(x.shape[1], states[0].shape[2], cell.G):  # as in forward
        return _backward(cell, params, cache, dy, dstate, flow, backend, workspace)


def _backward(cell, params, cache, dy, dstate, flow, backend, workspace):
    W_ih, W_hh, b_ih, _ = params
    x, states, saved, mask = cache
    T, B, D = x.shape
    H, G = states[0].shape[2], cell.G
    dense = cell.recurrence == "dense"
    d_state = [state_or_zeros(d, (B, H), x.dtype) for d in dstate]  # dL/ds_T, then dL/ds_t going back
    empty = _buffers(workspace, x.dtype)
    dXW = empty("dXW", (T, B, G * H))  # gradient of x_t W_ih^T + b_ih, per step
    dHW = empty("dHW", (T, B, G * H)) if cell.h_side_apart else dXW  # of the recurrence's side
    compiled = sweeps_for(backend, x, *params, dy)
    if compiled is None:
        _backward_sweep(cell, W_hh, states, saved, mask, dy, d_state, dXW, dHW, flow)
    else:
        loops = compiled.loops_for(cell)
        live = live_mask(mask, T, B, x.dtype)
        dy = np.zeros((T, B, H), x.dtype) if dy is None else np.ascontiguousarray(dy)
        flows = [np.empty((T if flow is not None else 1, B, H), x.dtype) for _ in cell.state_names]  # 1 row: scratch
        dh = d_state[0]  # what reaches h_t through the GEMM (all of dL/dh_T at first)
        carry = np.zeros((B, H), x.dtype)  # what reaches h_t around the GEMM
        if not dense:  # no GEMM: everything goes around it, and dh stays zero
            dh, carry = carry, dh
        u = np.ascontiguousarray(W_hh) if not dense else np.empty(0, x.dtype)
        W_hh = np.ascontiguousarray(W_hh) if dense else np.empty((0, 0), x.dtype)
        args = (live, dy, dh, carry, dXW, dHW, u, *flows, *states, *saved, *d_state[1:])
        if not dense or whole_loop(B, G, H):
            loops.backward_sweep(W_hh, *args)
        elif loops.backward_blas is not None:
            loops.backward_blas(W_hh, *args)
        else:  # dh = dA W_hh on W_hh packed once (as forward)
            packed = _packed(compiled, W_hh.T, None, "packed_T", empty)
            loops.backward_packed(packed, empty("scratch", (B, packed.shape[2])), *args)
        dh += carry
        if flow is not None:
            flow.update(zip(cell.state_names, flows))
    dXW2, dHW2 = dXW.reshape(T * B, G * H), dHW.reshape(T * B, G * H)
    # dx = dax W_ih, dW_ih = dax^T x: per step, or per row of an embedding's table (lookup.py)
    dax, x_rows = x.input_side(dXW2) if isinstance(x, Lookup) else (dXW2, x.reshape(T * B, D))
    with threads.gemm(T * B, D, G * H):  # dx, dW_ih and dW_hh: the same work each (D ~ H)
        dx = dax @ W_ih
        grads = weight_grads(cell, dax, dHW2, x_rows, states[0][:T].reshape(T * B, H), b_ih is not None)
    dx = x.table_grad(dx) if isinstance(x, Lookup) else dx.reshape(T, B, D)
    return dx, tuple(d_state), grads


def _backward_sweep(cell, W_hh, states, saved, mask, dy, d_state, dXW, dHW, flow):
    """The time loop of BPTT in NumPy: fills dXW (and dHW) (T, B, G*H) and flow; leaves dL/ds_0 in d_state."""
    T, B, H = saved[0].shape if saved else states[0][1:].shape
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
        dax, dah, dprev, d_all = cell.backward(tuple(v[t] for v in saved), tuple(s[t] for s in states),
                                               tuple(s[t + 1] for s in states), tuple(d_new))
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


# --- one step: the reference and the single-step cell ---------------------------------------------
class StepCache(NamedTuple):
    """What one step keeps for its backward: x (B, D), state and new state (S arrays (B, H)), and the
    cell's saved activations (in the order of cell.saved)."""

    x: np.ndarray
    state: tuple
    new: tuple
    saved: tuple


def step_forward(cell, params, x, state):
    """x (B, D), state (S arrays (B, H)) -> new state, cache: one whole cell step, its own GEMMs."""
    W_ih, W_hh, b_ih, b_hh = params
    a_x, a_h = x @ W_ih.T, _recur(cell, W_hh, state[0])  # (B, G*H) each
    if b_ih is not None:
        a_x, a_h = a_x + b_ih, a_h + b_hh
    new, saved = cell.forward(_gates(a_x, cell.G), _gates(a_h, cell.G), tuple(state))
    new = tuple(np.array(np.broadcast_to(s, state[0].shape)) for s in new)
    return new, StepCache(x, tuple(state), new, tuple(saved))


def step_backward(cell, params, cache, d_new):
    """d_new (S arrays (B, H)) -> dx (B, D), d previous state, grads of this step."""
    W_ih, W_hh, b_ih, _ = params
    x, state = cache.x, cache.state
    B, H = state[0].shape
    dax, dah, dprev, _ = cell.backward(cache.saved, state, cache.new, tuple(d_new))
    dAX = np.empty((B, cell.G * H), x.dtype)
    _fill_gates(dAX, dax)
    dAH = dAX
    if cell.h_side_apart:
        dAH = np.empty_like(dAX)
        _fill_gates(dAH, dah)
    dprev = [np.broadcast_to(d, (B, H)).astype(x.dtype) for d in dprev]
    dprev[0] = dprev[0] + _recur_backward(cell, W_hh, dAH)
    return dAX @ W_ih, tuple(dprev), weight_grads(cell, dAX, dAH, x, state[0], b_ih is not None)


def reference_forward(cell, params, x, state, mask=None):
    """The unrolled network, literally: one cell step per time step (the test oracle)."""
    caches, ys = [], []
    for t in range(x.shape[0]):
        new_state, cache = step_forward(cell, params, x[t], state)
        if mask is not None:  # past a sequence's end its state is held and its output is zero
            new_state = tuple(np.where(mask[t] > 0, new, old) for new, old in zip(new_state, state))
        ys.append(new_state[0] if mask is None else new_state[0] * mask[t])
        caches.append(cache)
        state = new_state
    return np.stack(ys), state, (caches, mask)


def reference_backward(cell, params, cache, dy, dstate):
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
        dxs[t], dprev, step_grads = step_backward(cell, params, caches[t], dnew)
        if mask is not None:  # a held state passes its gradient straight through
            dprev = tuple(dp + (1 - m) * d for dp, d in zip(dprev, (dh,) + tuple(dstate[1:])))
        dstate = dprev
        grads = add_grads(grads, step_grads)
    return np.stack(dxs), dstate, grads
