"""The compiled time loop: what the driver (nn/driver.py) runs instead of its NumPy loop where the
fast path is loaded, with the same inputs, cache and results.

    CompiledLoop(cell).forward(params, x, state, mask, workspace)               -> y, final state, cache
    CompiledLoop(cell).backward(params, cache, dy, dstate, flow, workspace)     -> dx, dstate0, grads

The input projection and, after the backward sweep, dx, dW_ih and dW_hh are the driver's own GEMMs
(nn/driver.py) on the thread policy's threads; between them the whole time loop is one compiled call
(fused.py), chosen here and only here:

    with gradients      forward_sweep  one small sequence (whole_loop): the GEMM in Numba
                        forward_blas   each step's GEMM one call of NumPy's BLAS from the loop
                        forward_packed where that BLAS cannot be called: W_hh^T packed once (packed.py)
    under no_grad()     the same loops without the saved activations; where the step has a GEMM,
                        the hidden units shared among threads (threads.step_parts), each running the
                        whole loop for its own units on its rows of W_hh^T packed once, with
                        x_t W_ih^T in that GEMM where the cell needs only a_x + a_h

Shapes as in nn/driver.py: x (T, B, D) or a Lookup, states (T+1, B, H), mask (T, B, 1) or None.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..nn import driver
from ..nn.driver import outputs, state_or_zeros
from ..nn.lookup import Lookup
from ..nn.module import is_grad_enabled
from . import blas, threads

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


def _buffers(workspace, dtype):
    """empty(name, shape): the workspace's buffer, or a new one; both start on a cache line."""
    if workspace is None:
        return lambda name, shape: aligned_empty(shape, dtype)
    return lambda name, shape: workspace.empty(name, shape, dtype, allocate=aligned_empty)


def whole_loop(B: int, G: int, H: int) -> bool:
    """Run the whole time loop with its GEMM in Numba (fused.*_sweep) rather than calling BLAS each
    step: for one sequence at a time whose step GEMM (B, H) @ (H, G*H) is small, where BLAS does not
    pay for its call (BENCHMARKS.md)."""
    return B == 1 and G * H * H <= 1 << 17


def live_mask(mask, T: int, B: int, dtype) -> np.ndarray:
    """The (T, B) mask Numba's steps take, from a (T, B, 1) mask or None (every step live)."""
    return np.ones((T, B), dtype) if mask is None else np.ascontiguousarray(mask[:, :, 0], dtype=dtype)


class CompiledLoop:
    """The compiled time loop of one cell definition (see the module docstring)."""

    def __init__(self, cell, dtype=np.float64):
        from . import fused

        self.cell, self.fused = cell, fused
        self.loops = fused.loops_for(cell, dtype)  # compiled on first use, then kept (settings.fast.compiled)

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, params, x, state, mask=None, workspace=None, extras=()):
        """x (T, B, D), state (S arrays (B, H)), mask (T, B, 1) or None -> y (T, B, H), final state, cache."""
        cell, loops = self.cell, self.loops
        T, B = x.shape[:2]
        H, G = state[0].shape[1], cell.G
        dense = cell.recurrence == "dense"
        save = is_grad_enabled()  # under no_grad() no saved activations: nothing will run backward
        in_parts = not save and dense and not whole_loop(B, G, H)
        empty = _buffers(workspace, x.dtype)
        with threads.time_loop(B, H, G, in_parts) as parts:
            if in_parts:
                loop = self._prepare_parts(params, x, state, mask, _part_ends(H, parts, x.dtype.itemsize), empty,
                                           extras)
                self._run_parts(loop, parts, empty)
            else:
                loop = self._prepare(params, x, state, mask, empty, save, extras)
                if not dense:
                    sweep = loops.forward_sweep if save else loops.forward_sweep_lean
                    sweep(np.empty((0, 0), x.dtype), *loop.args)
                elif whole_loop(B, G, H):
                    sweep = loops.forward_sweep if save else loops.forward_sweep_lean
                    sweep(_transposed(loop.W_hh, empty), *loop.args)
                elif loops.forward_blas is not None:  # each step's GEMM NumPy's BLAS's, called from the loop
                    loops.forward_blas(_transposed(loop.W_hh, empty), *loop.args)
                else:  # BLAS cannot be called from the loop: W_hh^T packed once
                    packed = _packed(self.fused, loop.W_hh, "packed", empty)
                    loops.forward_packed(packed, empty("scratch", (B, packed.shape[2])), *loop.args)
        states = loop.states
        return outputs(states[0], mask), tuple(s[T].copy() for s in states), (x, states, loop.saved, mask)

    def _prepare(self, params, x, state, mask, empty, save: bool, extras) -> _Loop:
        """The loop's arguments: xw (each step's x_t W_ih^T, by row), the biases, the states' buffers
        and, with `save`, those of the saved activations."""
        W_ih, W_hh, b_ih, b_hh = params
        xw, rows = _input_side(x, W_ih, empty)
        return self._arguments(x, state, mask, empty, save, xw, rows, W_ih, W_hh, b_ih, b_hh, None, False, extras)

    def _arguments(self, x, state, mask, empty, save, xw, rows, W_ih, W_hh, b_ih, b_hh, inputs, x_in_step,
                   extras) -> _Loop:
        cell = self.cell
        T, B = x.shape[:2]
        H, G = state[0].shape[1], cell.G
        has_bias = b_ih is not None
        # where only a_x + a_h matters, both biases go to the x side: one add less per gate and step
        bias_x = np.zeros(G * H, x.dtype) if not has_bias else (b_ih if cell.h_side_apart else b_ih + b_hh)
        bias_h = b_hh if has_bias and cell.h_side_apart else np.zeros(G * H if cell.h_side_apart else 0, x.dtype)
        states = [empty(f"state{k}", (T + 1, B, H)) for k in range(len(cell.state_names))]  # each s_0 .. s_T
        for s, s0 in zip(states, state):
            s[0] = s0
        saved = [empty(f"saved{k}", (T, B, H) if save else (0, 0, 0)) for k in range(len(cell.saved))]
        hw = empty("hw", (B, G * H))  # h_{t-1} W_hh^T, reused every step
        u = np.ascontiguousarray(W_hh) if cell.recurrence != "dense" else np.empty(0, x.dtype)
        args = (xw.reshape(-1, G * H), rows, hw, bias_x, bias_h, u, live_mask(mask, T, B, x.dtype), *states, *saved,
                _extra_array(extras, H, x.dtype))
        return _Loop(args, states, saved, W_ih, W_hh, x_in_step, inputs)

    # --- forward under no_grad(), the units shared among threads ---------------------------------
    def _prepare_parts(self, params, x, state, mask, ends: list, empty, extras) -> _Loop:
        """The lean loop's arguments: the weights' and biases' gate rows reordered part by part
        (_part_order); each part fills its own columns of xw, or takes x_t W_ih^T into its step's GEMM
        (x_in_step: xw is then a row of zeros)."""
        W_ih, W_hh, b_ih, b_hh = params
        T, B = x.shape[:2]
        G, H = self.cell.G, state[0].shape[1]
        order = _part_order(G, tuple(ends))
        b_ih, b_hh = (None if b is None else b[order] for b in (b_ih, b_hh))
        folded = isinstance(x, Lookup) and x.folded
        x_in_step = self.loops.forward_part_lean_x is not None and not folded
        if x_in_step:
            xw, rows, inputs = np.zeros((1, G * H), x.dtype), np.zeros((T, B), np.intp), _rows(x)
        elif folded:  # the projected table (V, G*H), by id
            xw, rows, inputs = empty("xw", (len(x.table), G * H)), x.ids, x.table
        else:  # (T*B, G*H), each step its own row
            xw, rows = empty("xw", (T * B, G * H)), np.arange(T * B, dtype=np.intp).reshape(T, B)
            inputs = _rows(x).reshape(T * B, -1)
        loop = self._arguments(x, state, mask, empty, False, xw, rows, W_ih, W_hh, b_ih, b_hh, inputs, x_in_step,
                               extras)
        return loop._replace(ends=ends)

    def _run_parts(self, loop: _Loop, parts: int, empty) -> None:
        fused, ends = self.fused, loop.ends
        part = self.loops.forward_part_lean_x if loop.x_in_step else self.loops.forward_part_lean
        flags = fused.meet_flags(parts)
        inputs = (loop.inputs,) if loop.x_in_step else ()
        made, operands = zip(*(_part_operands(fused, loop, ends, p, empty) for p in range(parts)))

        def run(p: int) -> None:
            fused.pack_part(*made[p])
            part(p, flags, ends[p], ends[p + 1], *inputs, *operands[p], *loop.args)
        threads.run_parts(run, parts, flags)

    # --- backward ---------------------------------------------------------------------------------
    def backward(self, params, cache, dy, dstate, flow=None, workspace=None, extras=()):
        """dy (T, B, H) or None, dstate (S entries (B, H) or None) -> dx, dstate0, grads (nn/driver.py)."""
        cell, loops = self.cell, self.loops
        W_ih, W_hh, b_ih, _ = params
        x, states, saved, mask = cache
        T, B, D = x.shape
        H, G = states[0].shape[2], cell.G
        dense = cell.recurrence == "dense"
        empty = _buffers(workspace, x.dtype)
        with threads.time_loop(B, H, G):
            d_state = [state_or_zeros(d, (B, H), x.dtype) for d in dstate]  # dL/ds_T, then dL/ds_t going back
            dXW = empty("dXW", (T, B, G * H))  # gradient of x_t W_ih^T + b_ih, per step
            dHW = empty("dHW", (T, B, G * H)) if cell.h_side_apart else dXW  # of the recurrence's side
            live = live_mask(mask, T, B, x.dtype)
            dy = np.zeros((T, B, H), x.dtype) if dy is None else np.ascontiguousarray(dy)
            flows = [np.empty((T if flow is not None else 1, B, H), x.dtype) for _ in cell.state_names]  # 1: scratch
            dh = d_state[0]  # what reaches h_t through the GEMM (all of dL/dh_T at first)
            carry = np.zeros((B, H), x.dtype)  # what reaches h_t around the GEMM
            if not dense:  # no GEMM: everything goes around it, and dh stays zero
                dh, carry = carry, dh
            u = np.ascontiguousarray(W_hh) if not dense else np.empty(0, x.dtype)
            W = np.ascontiguousarray(W_hh) if dense else np.empty((0, 0), x.dtype)
            d_extras = np.zeros((len(extras), H), x.dtype)  # the cell's own parameters' gradients, summed
            args = (live, dy, dh, carry, dXW, dHW, u, *flows, *states, *saved, *d_state[1:],
                    _extra_array(extras, H, x.dtype), d_extras)
            if not dense or whole_loop(B, G, H):
                loops.backward_sweep(W, *args)
            elif loops.backward_blas is not None:
                loops.backward_blas(W, *args)
            else:  # dh = dA W_hh on W_hh packed once (as forward)
                packed = _packed(self.fused, W.T, "packed_T", empty)
                loops.backward_packed(packed, empty("scratch", (B, packed.shape[2])), *args)
            dh += carry
            if flow is not None:
                flow.update(zip(cell.state_names, flows))
        with threads.gemm(T * B, D, G * H):  # dx, dW_ih and dW_hh: the same work each (D ~ H)
            dx, grads = driver.input_and_weight_grads(cell, W_ih, b_ih is not None, x, states, dXW, dHW,
                                                      scatter=self.scatter_rows)
        grads.update(zip(cell.extra_parameters, d_extras))
        return dx, tuple(d_state), grads

    def scatter_rows(self, values: np.ndarray, ids: np.ndarray, V: int) -> np.ndarray:
        """(V, F): row v the sum of the rows of values (N, F) whose id is v, in one compiled pass."""
        out = np.zeros((V, values.shape[1]), values.dtype)
        self.fused.add_rows(np.ascontiguousarray(values), ids.astype(np.intp, copy=False), out)
        return out


class _Loop(NamedTuple):
    """One layer's compiled loop made ready: its arguments and what else it reads."""

    args: tuple  # the compiled steps' arguments (fused.py's fwd_args)
    states: list  # each state variable s_0 .. s_T (T+1, B, H)
    saved: list  # the saved activations (T, B, H), or empty under no_grad()
    W_ih: np.ndarray  # the weights, as given (a lean loop's parts read their own rows)
    W_hh: np.ndarray
    x_in_step: bool  # x_t W_ih^T in each step's GEMM (xw then a row of zeros)
    inputs: np.ndarray | None  # lean: what the parts multiply by W_ih^T (x, or an embedding's table)
    ends: list | None = None  # lean: where each part's units begin (_part_ends)


def _extra_array(extras, H: int, dtype) -> np.ndarray:
    """The cell's own parameters as one (E, H) array for the compiled steps ((0, H) for none)."""
    return np.ascontiguousarray(np.stack(extras), dtype) if extras else np.empty((0, H), dtype)


def _rows(x) -> np.ndarray:
    """x (T, B, D) as an array: an embedding's rows gathered."""
    return x.rows() if isinstance(x, Lookup) else x


def _input_side(x, W_ih, empty):
    """xw, rows: x_t W_ih^T for every step as one GEMM on the policy's threads, where the compiled step
    of sequence b reads row rows[t, b] of xw seen as (rows, G*H). An embedding's folded rows give the
    projected table itself (V, G*H) and their ids: nothing gathered (nn/lookup.py)."""
    T, B, D = x.shape
    if isinstance(x, Lookup) and x.folded:
        return threads.matmul(x.table, W_ih.T), x.ids  # (V, G*H)
    xw = empty("xw", (T, B, len(W_ih)))
    threads.matmul(_rows(x).reshape(T * B, D), W_ih.T, out=xw.reshape(T * B, -1))
    return xw, np.arange(T * B, dtype=np.intp).reshape(T, B)  # each step its own row


def _part_operands(fused, loop: _Loop, ends: list, p: int, empty) -> tuple[tuple, tuple]:
    """Part p's buffers, in two tuples: the arguments of fused.pack_part, which fills them in p's own
    thread as its loop starts (the parts at once): its gate rows of W_hh and W_ih packed where they lie
    (packed.py) and, unless x_t W_ih^T is in its GEMM, its columns of xw; and the loop's operands among
    them: (packed W_ih^T, with x_in_step), packed W_hh^T, the scratch of its last block."""
    G, dtype = len(loop.W_hh) // ends[-1], loop.W_hh.dtype
    lo, hi = G * ends[p], G * ends[p + 1]
    packed_h = empty(f"packed{p}", fused.packed_shape(hi - lo, loop.W_hh.shape[1], dtype))
    packed_x = empty(f"packed_x{p}", fused.packed_shape(hi - lo, loop.W_ih.shape[1], dtype))
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


def _transposed(W_hh, empty):
    """W_hh^T (H, G*H) in C order, where BLAS is fastest (copied by BLAS's omatcopy: blas.py)."""
    return blas.transpose(W_hh, empty("W_hh_T", W_hh.shape[::-1]))


def _packed(fused, W, name: str, empty):
    """W^T packed for the compiled loops' GEMM (packed.py), into the buffer `name`."""
    return fused.pack(W, empty(name, fused.packed_shape(len(W), W.shape[1], W.dtype)))


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

