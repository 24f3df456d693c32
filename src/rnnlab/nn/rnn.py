"""Elman RNN: the recurrence of the lecture, h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).

The state h is the network's memory: each step sees the present input and, through W_hh, the past.

Shapes: T = time, B = batch, D = input features, H = hidden units, G = 1.
params = (W_ih (H, D), W_hh (H, H), b_ih (H,) | None, b_hh (H,) | None).
"""
from __future__ import annotations

import numpy as np

from .backend import live_mask, outputs, state_or_zeros, sweeps_for, whole_loop
from .functional import CellKind, drelu_from_output, dtanh_from_output, weight_grads

ACTIVATIONS = {"tanh": (np.tanh, dtanh_from_output), "relu": (lambda a: np.maximum(a, 0), drelu_from_output)}


def make_rnn_kind(nonlinearity: str) -> CellKind:
    """The RNN kernels for one nonlinearity ("tanh" or "relu")."""
    act, dact_from_output = ACTIVATIONS[nonlinearity]

    # --- one step: the readable reference and the single-step cell --------------------------------
    def rnn_step_forward(params, x, state):
        W_ih, W_hh, b_ih, b_hh = params
        (h,) = state
        a = x @ W_ih.T + h @ W_hh.T  # (B, H)
        if b_ih is not None:
            a = a + b_ih + b_hh
        h_new = act(a)
        return (h_new,), (x, h, h_new)

    def rnn_step_backward(params, cache, dstate):
        W_ih, W_hh, b_ih, _ = params
        x, h, h_new = cache
        (dh_new,) = dstate
        da = dh_new * dact_from_output(h_new)
        return da @ W_ih, (da @ W_hh,), weight_grads(da, x, h, b_ih is not None)

    # --- the whole sequence: the fast path --------------------------------------------------------
    def rnn_forward(params, x, state, mask=None, backend=None):
        """x (T, B, D), state = (h0 (B, H),), mask (T, B, 1) or None -> y (T, B, H), (hT,), cache.

        One GEMM projects the inputs of all steps; in the time loop each step is one GEMM and one
        compiled Numba call (fused.py), or the NumPy sweep below (`backend`, see backend.py).
        """
        W_ih, W_hh, b_ih, b_hh = params
        T, B, D = x.shape
        H = W_hh.shape[1]
        hs = np.empty((T + 1, B, H), dtype=x.dtype)  # h_0 .. h_T
        hs[0] = state[0]
        xw = (x.reshape(T * B, D) @ W_ih.T).reshape(T, B, H)  # one GEMM for all steps
        bias = b_ih + b_hh if b_ih is not None else np.zeros(H, x.dtype)
        W_hh_T = np.ascontiguousarray(W_hh.T)  # (H, H): NumPy's BLAS is fastest on C-ordered operands
        fused = sweeps_for(backend, x, *params)
        if fused is None:
            if b_ih is not None:
                xw += bias
            forward_sweep(xw, W_hh_T, hs, mask)
        else:
            live, use_relu = live_mask(mask, T, B, x.dtype), nonlinearity == "relu"
            if whole_loop(B, 1, H):  # one sequence: the whole loop in one compiled call
                fused.rnn_forward_sweep(xw, W_hh_T, bias, hs, live, use_relu)
            else:
                for t in range(T):
                    np.matmul(hs[t], W_hh_T, out=hs[t + 1])  # h_{t-1} W_hh^T: the one GEMM per step
                    fused.rnn_forward_step(t, xw, bias, hs, live, use_relu)  # + x_t W_ih^T + b, activation
        y = outputs(hs, mask)
        return y, (hs[T].copy(),), (x, hs, mask)

    def forward_sweep(xw, W_hh_T, hs, mask):
        """The time loop in NumPy, as fused.rnn_forward_sweep: hs (T+1, B, H) gets h_1 .. h_T."""
        for t in range(xw.shape[0]):
            a = hs[t + 1]
            np.matmul(hs[t], W_hh_T, out=a)
            a += xw[t]
            if nonlinearity == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0, out=a)
            if mask is not None:  # past the end: hold the state
                np.copyto(a, hs[t], where=~(mask[t] > 0))

    def rnn_backward(params, cache, dy, dstate, flow=None, backend=None):
        """dy (T, B, H) or None, dstate = (dhT,) (may be None) -> dx, (dh0,), grads.

        With a dict `flow`, also records flow["h"] = dL/dh_t (T, B, H), the gradient reaching each step.
        """
        W_ih, W_hh, b_ih, _ = params
        x, hs, mask = cache
        T, B, D = x.shape
        H = W_hh.shape[1]
        dh = state_or_zeros(dstate[0], (B, H), x.dtype)  # dL/dh_T, then dL/dh_t going back
        dA = np.empty((T, B, H), dtype=x.dtype)  # gradient of the pre-activation, per step
        W_hh = np.ascontiguousarray(W_hh)
        fused = sweeps_for(backend, x, *params, dy)
        if fused is None:
            dh = backward_sweep(W_hh, hs, mask, dy, dh, dA, flow)
        else:
            live = live_mask(mask, T, B, x.dtype)
            dy = np.zeros((T, B, H), x.dtype) if dy is None else np.ascontiguousarray(dy)
            flow_h = np.empty((T if flow is not None else 1, B, H), x.dtype)  # one row: scratch
            dh_carry = np.zeros((B, H), x.dtype)  # a held step's gradient, around the GEMM
            use_relu = nonlinearity == "relu"
            if whole_loop(B, 1, H):
                fused.rnn_backward_sweep(W_hh, hs, live, dy, dh, dA, flow_h, dh_carry, use_relu)
            else:
                for t in reversed(range(T)):
                    fused.rnn_backward_step(t, hs, live, dy, dh, dA, flow_h, dh_carry, use_relu)
                    np.matmul(dA[t], W_hh, out=dh)  # dL/dh_{t-1} through W_hh: the one GEMM per step
            dh += dh_carry
            if flow is not None:
                flow["h"] = flow_h
        dA2 = dA.reshape(T * B, H)
        dx = (dA2 @ W_ih).reshape(T, B, D)
        return dx, (dh,), weight_grads(dA2, x.reshape(T * B, D), hs[:T].reshape(T * B, H), b_ih is not None)

    def backward_sweep(W_hh, hs, mask, dy, dh_next, dA, flow):
        """The time loop of BPTT in NumPy, as fused.rnn_backward_sweep: fills dA and flow, returns dL/dh_0."""
        T = dA.shape[0]
        if flow is not None:
            flow["h"] = np.empty(dA.shape, dA.dtype)
        if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
            dy = dy * mask
        for t in reversed(range(T)):
            dh = dh_next if dy is None else dh_next + dy[t]
            if mask is not None:  # a held step passes dh through; only live steps reach the cell
                dh_skip = dh * (1 - mask[t])
                dh = dh * mask[t]
            if flow is not None:
                flow["h"][t] = dh
            np.multiply(dh, dact_from_output(hs[t + 1]), out=dA[t])
            dh_next = dA[t] @ W_hh
            if mask is not None:
                dh_next += dh_skip
        return dh_next

    return CellKind(f"rnn_{nonlinearity}", 1, ("h",), rnn_forward, rnn_backward, rnn_step_forward, rnn_step_backward)


RNN_TANH_KIND = make_rnn_kind("tanh")
RNN_RELU_KIND = make_rnn_kind("relu")
