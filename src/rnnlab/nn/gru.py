"""GRU: forward and backward through time, in PyTorch's form and gate order r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)       reset gate: how much of the past feeds n
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)       update gate: how much of h is kept
    n = tanh (W_in x + b_in + r * (W_hn h + b_hn)) candidate state
    h' = (1 - z) * n + z * h

Shapes: T = time, B = batch, D = input features, H = hidden units, G = 3 gates.
params = (W_ih (3H, D), W_hh (3H, H), b_ih (3H,) | None, b_hh (3H,) | None), rows r, z, n.
"""
from __future__ import annotations

import numpy as np

from .backend import live_mask, outputs, state_or_zeros, sweeps_for, whole_loop
from .functional import CellKind, dsigmoid_from_output, dtanh_from_output, sigmoid, weight_grads


# --- one step: the readable reference and the single-step cell ------------------------------------
def gru_step_forward(params, x, state):
    W_ih, W_hh, b_ih, b_hh = params
    (h,) = state
    xw = x @ W_ih.T  # (B, 3H)
    hw = h @ W_hh.T  # (B, 3H)
    if b_ih is not None:
        xw, hw = xw + b_ih, hw + b_hh
    xw_r, xw_z, xw_n = np.split(xw, 3, axis=1)
    hw_r, hw_z, hw_n = np.split(hw, 3, axis=1)
    r, z = sigmoid(xw_r + hw_r), sigmoid(xw_z + hw_z)
    n = np.tanh(xw_n + r * hw_n)
    h_new = (1 - z) * n + z * h
    return (h_new,), (x, h, r, z, n, hw_n)


def gru_step_backward(params, cache, dstate):
    W_ih, W_hh, b_ih, _ = params
    x, h, r, z, n, hw_n = cache
    (dh_new,) = dstate
    dn = dh_new * (1 - z)
    dz = dh_new * (h - n)
    da_n = dn * dtanh_from_output(n)
    da_r = da_n * hw_n * dsigmoid_from_output(r)
    da_z = dz * dsigmoid_from_output(z)
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H) gradient of x @ W_ih^T + b_ih
    dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H) gradient of h @ W_hh^T + b_hh
    dx = dxw @ W_ih
    dh = dh_new * z + dhw @ W_hh
    return dx, (dh,), weight_grads(dxw, x, h, b_ih is not None, dhw)


# --- the whole sequence: the fast path ------------------------------------------------------------
def gru_forward(params, x, state, mask=None, backend=None):
    """x (T, B, D), state = (h0 (B, H),), mask (T, B, 1) or None -> y (T, B, H), (hT,), cache.

    The input projection of all T steps is one GEMM; only h_{t-1} @ W_hh^T is done per step, in the
    time loop: one GEMM and one compiled Numba call per step (fused.py), or the NumPy sweep below
    (`backend`, see backend.py).
    """
    W_ih, W_hh, b_ih, b_hh = params
    T, B, D = x.shape
    H = W_hh.shape[1]
    xw = (x.reshape(T * B, D) @ W_ih.T).reshape(T, B, 3 * H)  # becomes r, z, n in place
    bias = np.zeros(3 * H, x.dtype)  # r and z see both biases; b_hn sits inside r * (...)
    if b_ih is not None:
        bias += b_ih
        bias[:2 * H] += b_hh[:2 * H]
    b_hn = np.ascontiguousarray(b_hh[2 * H:]) if b_hh is not None else np.zeros(H, x.dtype)
    hw_n = np.empty((T, B, H), dtype=x.dtype)  # W_hn h + b_hn, needed by dr
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # h_0 .. h_T
    (hs[0],) = state
    W_hh_T = np.ascontiguousarray(W_hh.T)  # (H, 3H): NumPy's BLAS is fastest on C-ordered operands
    fused = sweeps_for(backend, x, *params)
    if fused is None:
        if b_ih is not None:
            xw += bias
        _forward_sweep(xw, W_hh_T, b_hn, hs, hw_n, mask)
    else:
        live = live_mask(mask, T, B, x.dtype)
        hw, act = np.empty((B, 3 * H), x.dtype), np.empty(3 * H, x.dtype)  # scratch, reused every step
        if whole_loop(B, 3, H):  # one sequence: the whole loop in one compiled call
            fused.gru_forward_sweep(xw, W_hh_T, bias, b_hn, hs, hw_n, live, hw, act)
        else:
            for t in range(T):
                np.matmul(hs[t], W_hh_T, out=hw)  # h_{t-1} W_hh^T: the one GEMM per step
                fused.gru_forward_step(t, xw, hw, bias, b_hn, hs, hw_n, live, act)  # the rest of the step
    y = outputs(hs, mask)
    return y, (hs[T].copy(),), (x, hs, xw, hw_n, mask)


def _forward_sweep(xw, W_hh_T, b_hn, hs, hw_n, mask):
    """The time loop in NumPy, in place, as fused.gru_forward_sweep: xw (T, B, 3H) holds
    x_t W_ih^T + b on entry and r, z, n on return; hs (T+1, B, H) gets h_1..; hw_n (T, B, H) W_hn h + b_hn."""
    T, B, H = hw_n.shape
    for t in range(T):
        a = xw[t]
        hw = hs[t] @ W_hh_T  # (B, 3H)
        a[:, :2 * H] += hw[:, :2 * H]
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])  # r, z
        np.add(hw[:, 2 * H:], b_hn, out=hw_n[t])
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        n += r * hw_n[t]
        np.tanh(n, out=n)
        h_new = hs[t + 1]
        np.subtract(hs[t], n, out=h_new)  # h' = n + z * (h - n)
        h_new *= z
        h_new += n
        if mask is not None:  # past the end: hold the state
            np.copyto(h_new, hs[t], where=~(mask[t] > 0))


def gru_backward(params, cache, dy, dstate, flow=None, backend=None):
    """dy (T, B, H) or None, dstate = (dhT,) (may be None) -> dx, (dh0,), grads.

    With a dict `flow`, also records flow["h"] = dL/dh_t (T, B, H), the gradient reaching each step.
    """
    W_ih, W_hh, b_ih, _ = params
    x, hs, gates, hw_n, mask = cache
    T, B, D = x.shape
    H = W_hh.shape[1]
    dh = state_or_zeros(dstate[0], (B, H), x.dtype)  # dL/dh_T, then dL/dh_t going back
    dXW = np.empty((T, B, 3 * H), dtype=x.dtype)  # gradient of x @ W_ih^T + b_ih per step
    dHW = np.empty((T, B, 3 * H), dtype=x.dtype)  # gradient of h @ W_hh^T + b_hh per step
    W_hh = np.ascontiguousarray(W_hh)
    fused = sweeps_for(backend, x, *params, dy)
    if fused is None:
        dh = _backward_sweep(gates, W_hh, hs, hw_n, mask, dy, dh, dXW, dHW, flow)
    else:
        live = live_mask(mask, T, B, x.dtype)
        dy = np.zeros((T, B, H), x.dtype) if dy is None else np.ascontiguousarray(dy)
        flow_h = np.empty((T if flow is not None else 1, B, H), x.dtype)  # one row: scratch
        dh_carry = np.zeros((B, H), x.dtype)  # what reaches h_t around the GEMM: z h, held steps
        if whole_loop(B, 3, H):
            fused.gru_backward_sweep(gates, W_hh, hs, hw_n, live, dy, dh, dXW, dHW, flow_h, dh_carry)
        else:
            for t in reversed(range(T)):
                fused.gru_backward_step(t, gates, hs, hw_n, live, dy, dh, dXW, dHW, flow_h, dh_carry)
                np.matmul(dHW[t], W_hh, out=dh)  # dL/dh_{t-1} through W_hh: the one GEMM per step
        dh += dh_carry
        if flow is not None:
            flow["h"] = flow_h
    dXW2, dHW2 = dXW.reshape(T * B, 3 * H), dHW.reshape(T * B, 3 * H)
    dx = (dXW2 @ W_ih).reshape(T, B, D)
    grads = weight_grads(dXW2, x.reshape(T * B, D), hs[:T].reshape(T * B, H), b_ih is not None, dHW2)
    return dx, (dh,), grads


def _backward_sweep(gates, W_hh, hs, hw_n, mask, dy, dh_next, dXW, dHW, flow):
    """The time loop of BPTT in NumPy, as fused.gru_backward_sweep: fills dXW, dHW (T, B, 3H) and
    flow, returns dL/dh_0."""
    T, B, H = hw_n.shape
    if flow is not None:
        flow["h"] = np.empty((T, B, H), dXW.dtype)
    if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
        dy = dy * mask
    for t in reversed(range(T)):
        a = gates[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        dh = dh_next if dy is None else dh_next + dy[t]
        if mask is not None:  # a held step passes dh through; only live steps reach the cell
            dh_skip = dh * (1 - mask[t])
            dh = dh * mask[t]
        if flow is not None:
            flow["h"][t] = dh
        dxw, dhw = dXW[t], dHW[t]
        np.multiply(dh * (1 - z), dtanh_from_output(n), out=dxw[:, 2 * H:])  # da_n
        np.multiply(dxw[:, 2 * H:] * hw_n[t], dsigmoid_from_output(r), out=dxw[:, :H])  # da_r
        np.multiply(dh * (hs[t] - n), dsigmoid_from_output(z), out=dxw[:, H:2 * H])  # da_z
        dhw[:, :2 * H] = dxw[:, :2 * H]
        np.multiply(dxw[:, 2 * H:], r, out=dhw[:, 2 * H:])
        dh_next = dh * z + dhw @ W_hh
        if mask is not None:
            dh_next += dh_skip
    return dh_next


GRU_KIND = CellKind("gru", 3, ("h",), gru_forward, gru_backward, gru_step_forward, gru_step_backward)
