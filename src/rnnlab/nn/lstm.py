"""LSTM: forward and backward through time, in the lecture's letters and PyTorch's gate order.

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)       input gate: how much new information enters
    f = sigma(W_if x + b_if + W_hf h + b_hf)       forget gate: how much of the memory is kept
    g = tanh (W_ig x + b_ig + W_hg h + b_hg)       candidate memory
    o = sigma(W_io x + b_io + W_ho h + b_ho)       output gate: how much of the memory is shown
    c' = f * c + i * g
    h' = o * tanh(c')

Shapes: T = time, B = batch, D = input features, H = hidden units, G = 4 gates.
params = (W_ih (4H, D), W_hh (4H, H), b_ih (4H,) | None, b_hh (4H,) | None), rows i, f, g, o.
"""
from __future__ import annotations

import numpy as np

from .backend import live_mask, outputs, state_or_zeros, sweeps_for, whole_loop
from .functional import CellKind, dsigmoid_from_output, dtanh_from_output, sigmoid, weight_grads


# --- one step: the readable reference and the single-step cell ------------------------------------
def lstm_step_forward(params, x, state):
    W_ih, W_hh, b_ih, b_hh = params
    h, c = state
    a = x @ W_ih.T + h @ W_hh.T  # (B, 4H) pre-activations
    if b_ih is not None:
        a = a + b_ih + b_hh
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c
    return (h_new, c_new), (x, h, c, i, f, g, o, tanh_c)


def lstm_step_backward(params, cache, dstate):
    W_ih, W_hh, b_ih, _ = params
    x, h, c, i, f, g, o, tanh_c = cache
    dh_new, dc_new = dstate
    do = dh_new * tanh_c
    dc = dc_new + dh_new * o * dtanh_from_output(tanh_c)
    di, df, dg = dc * g, dc * c, dc * i
    da = np.concatenate(
        [di * dsigmoid_from_output(i), df * dsigmoid_from_output(f),
         dg * dtanh_from_output(g), do * dsigmoid_from_output(o)], axis=1)  # (B, 4H)
    dx = da @ W_ih
    dh = da @ W_hh
    return dx, (dh, dc * f), weight_grads(da, x, h, b_ih is not None)


# --- the whole sequence: the fast path ------------------------------------------------------------
def lstm_forward(params, x, state, mask=None, backend=None):
    """x (T, B, D), state = (h0, c0) each (B, H), mask (T, B, 1) or None -> y (T, B, H), (hT, cT), cache.

    The input projection of all T steps is one GEMM; only h_{t-1} @ W_hh^T is done per step, in the
    time loop: one GEMM and one compiled Numba call per step (fused.py), or the NumPy sweep below
    (`backend`, see backend.py).
    """
    W_ih, W_hh, b_ih, b_hh = params
    T, B, D = x.shape
    H = W_hh.shape[1]
    gates = (x.reshape(T * B, D) @ W_ih.T).reshape(T, B, 4 * H)  # a, then i f g o in place
    bias = b_ih + b_hh if b_ih is not None else np.zeros(4 * H, x.dtype)
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # h_0 .. h_T
    cs = np.empty((T + 1, B, H), dtype=x.dtype)  # c_0 .. c_T
    tanh_cs = np.empty((T, B, H), dtype=x.dtype)
    hs[0], cs[0] = state
    W_hh_T = np.ascontiguousarray(W_hh.T)  # (H, 4H): NumPy's BLAS is fastest on C-ordered operands
    fused = sweeps_for(backend, x, *params)
    if fused is None:
        if b_ih is not None:
            gates += bias
        _forward_sweep(gates, W_hh_T, hs, cs, tanh_cs, mask)
    else:
        live = live_mask(mask, T, B, x.dtype)
        hw, act = np.empty((B, 4 * H), x.dtype), np.empty(4 * H, x.dtype)  # scratch, reused every step
        if whole_loop(B, 4, H):  # one sequence: the whole loop in one compiled call
            fused.lstm_forward_sweep(gates, W_hh_T, bias, hs, cs, tanh_cs, live, hw, act)
        else:
            for t in range(T):
                np.matmul(hs[t], W_hh_T, out=hw)  # h_{t-1} W_hh^T: the one GEMM per step
                fused.lstm_forward_step(t, gates, hw, bias, hs, cs, tanh_cs, live, act)  # the rest of the step
    y = outputs(hs, mask)
    cache = (x, hs, cs, tanh_cs, gates, mask)
    return y, (hs[T].copy(), cs[T].copy()), cache


def _forward_sweep(gates, W_hh_T, hs, cs, tanh_cs, mask):
    """The time loop in NumPy, in place, as fused.lstm_forward_sweep: gates (T, B, 4H) hold
    x_t W_ih^T + b on entry and i, f, g, o on return; hs, cs (T+1, B, H) get h_1.., c_1..."""
    T, B, H = tanh_cs.shape
    for t in range(T):
        a = gates[t]
        a += hs[t] @ W_hh_T
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])  # i, f
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])  # g
        sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])  # o
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = cs[t + 1]
        np.multiply(f, cs[t], out=c)
        c += i * g
        np.tanh(c, out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])
        if mask is not None:  # past the end: hold the state
            m = mask[t] > 0
            np.copyto(hs[t + 1], hs[t], where=~m)
            np.copyto(cs[t + 1], cs[t], where=~m)


def lstm_backward(params, cache, dy, dstate, flow=None, backend=None):
    """dy (T, B, H) or None, dstate = (dhT, dcT) (entries may be None) -> dx, (dh0, dc0), grads.

    With a dict `flow`, also records the gradient reaching each step, flow["h"] = dL/dh_t and
    flow["c"] = dL/dc_t, each (T, B, H): the gradient flow through time that diagnostics plot.

    The sweep stores each step's pre-activation gradient dA; dW_ih, dW_hh and dx are then one
    GEMM each over all steps.
    """
    W_ih, W_hh, b_ih, _ = params
    x, hs, cs, tanh_cs, gates, mask = cache
    T, B, D = x.shape
    H = W_hh.shape[1]
    dh = state_or_zeros(dstate[0], (B, H), x.dtype)  # dL/dh_T, then dL/dh_t going back
    dc = state_or_zeros(dstate[1], (B, H), x.dtype)
    dA = np.empty((T, B, 4 * H), dtype=x.dtype)  # gradient of the pre-activations, per step
    W_hh = np.ascontiguousarray(W_hh)
    fused = sweeps_for(backend, x, *params, dy)
    if fused is None:
        dh, dc = _backward_sweep(gates, W_hh, cs, tanh_cs, mask, dy, dh, dc, dA, flow)
    else:
        live = live_mask(mask, T, B, x.dtype)
        dy = np.zeros((T, B, H), x.dtype) if dy is None else np.ascontiguousarray(dy)
        flow_h = np.empty((T if flow is not None else 1, B, H), x.dtype)  # one row: scratch
        flow_c = np.empty_like(flow_h)
        dh_carry = np.zeros((B, H), x.dtype)  # what reaches h_t around the cell (held steps)
        if whole_loop(B, 4, H):
            fused.lstm_backward_sweep(gates, W_hh, cs, tanh_cs, live, dy, dh, dc, dA, flow_h, flow_c, dh_carry)
        else:
            for t in reversed(range(T)):
                fused.lstm_backward_step(t, gates, cs, tanh_cs, live, dy, dh, dc, dA, flow_h, flow_c, dh_carry)
                np.matmul(dA[t], W_hh, out=dh)  # dL/dh_{t-1} through the recurrence: the one GEMM per step
        dh += dh_carry
        if flow is not None:
            flow["h"], flow["c"] = flow_h, flow_c
    dA2 = dA.reshape(T * B, 4 * H)
    dx = (dA2 @ W_ih).reshape(T, B, D)
    grads = weight_grads(dA2, x.reshape(T * B, D), hs[:T].reshape(T * B, H), b_ih is not None)
    return dx, (dh, dc), grads


def _backward_sweep(gates, W_hh, cs, tanh_cs, mask, dy, dh_next, dc_next, dA, flow):
    """The time loop of BPTT in NumPy, as fused.lstm_backward_sweep: fills dA (T, B, 4H) and flow,
    returns (dL/dh_0, dL/dc_0)."""
    T, B, H = tanh_cs.shape
    if flow is not None:
        flow["h"], flow["c"] = np.empty((T, B, H), dA.dtype), np.empty((T, B, H), dA.dtype)
    if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
        dy = dy * mask
    for t in reversed(range(T)):
        a = gates[t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dh = dh_next if dy is None else dh_next + dy[t]
        dc = dc_next
        if mask is not None:  # a held step passes dh, dc through; only live steps reach the cell
            m = mask[t]
            dh_skip, dc_skip = dh * (1 - m), dc * (1 - m)
            dh, dc = dh * m, dc * m
        tanh_c = tanh_cs[t]
        dc = dc + dh * o * dtanh_from_output(tanh_c)
        if flow is not None:
            flow["h"][t], flow["c"][t] = dh, dc
        da = dA[t]
        np.multiply(dc * i, dtanh_from_output(g), out=da[:, 2 * H:3 * H])  # dg * tanh'
        np.multiply(dc * g, dsigmoid_from_output(i), out=da[:, :H])  # di * sigma'
        np.multiply(dc * cs[t], dsigmoid_from_output(f), out=da[:, H:2 * H])  # df * sigma'
        np.multiply(dh * tanh_c, dsigmoid_from_output(o), out=da[:, 3 * H:])  # do * sigma'
        dh_next = da @ W_hh
        dc_next = dc * f
        if mask is not None:
            dh_next += dh_skip
            dc_next += dc_skip
    return dh_next, dc_next


LSTM_KIND = CellKind("lstm", 4, ("h", "c"), lstm_forward, lstm_backward, lstm_step_forward, lstm_step_backward)
