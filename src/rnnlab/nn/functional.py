"""Activations, their derivatives, and the plain step-by-step reference for any recurrent cell.

Shapes: T = time steps, B = batch, D = input features, H = hidden units.
Inside the kernels sequences are time-major, x (T, B, D), so each step is a contiguous slice.
A mask (T, B, 1) holds 1 where a step belongs to its sequence and 0 past the sequence's end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """sigma(a) = 1 / (1 + e^-a), computed as (1 + tanh(a/2)) / 2: no overflow for any a."""
    out = np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def dsigmoid_from_output(s: np.ndarray) -> np.ndarray:
    """sigma'(a) written in terms of s = sigma(a)."""
    return s * (1 - s)


def dtanh_from_output(y: np.ndarray) -> np.ndarray:
    """tanh'(a) written in terms of y = tanh(a)."""
    return 1 - y * y


def relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


def drelu_from_output(y: np.ndarray) -> np.ndarray:
    """relu'(a) written in terms of y = relu(a) (0 at a = 0, as PyTorch)."""
    return (y > 0).astype(y.dtype)


@dataclass(frozen=True)
class CellKind:
    """Everything a recurrent stack needs to know about one kind of cell.

    forward(params, x, state, mask) -> y, final_state, cache            x (T, B, D), y (T, B, H)
    backward(params, cache, dy, dfinal_state) -> dx, dstate0, grads       dy may be None
    step_forward(params, x_t, state) -> new_state, cache                 x_t (B, D)
    step_backward(params, cache, dnew_state) -> dx_t, dstate, grads
    A state is a tuple of (B, H) arrays: (h,) for RNN and GRU, (h, c) for LSTM.
    """

    name: str
    gates: int  # G: weight_ih is (G*H, D)
    state_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    step_forward: Callable
    step_backward: Callable


def weight_grads(dxw, x, h, has_bias: bool, dhw=None) -> dict:
    """Weight gradients of all steps at once, one GEMM each after the sweep.

    dxw (N, G*H) is the gradient of x W_ih^T + b_ih over N = T*B rows, dhw that of h W_hh^T + b_hh:
    the same array for RNN and LSTM, different for the GRU (whose b_hn sits inside r * (...)).
    x (N, D) and h (N, H) are each step's input and previous state.
    """
    dhw = dxw if dhw is None else dhw
    grads = {"weight_ih": dxw.T @ x, "weight_hh": dhw.T @ h}
    if has_bias:
        grads["bias_ih"] = dxw.sum(axis=0)
        grads["bias_hh"] = dhw.sum(axis=0) if dhw is not dxw else grads["bias_ih"].copy()
    return grads


def add_grads(total: dict | None, grads: dict) -> dict:
    if total is None:
        return {k: v.copy() for k, v in grads.items()}
    for k, v in grads.items():
        total[k] += v
    return total


def reference_forward(kind: CellKind, params, x, state, mask=None):
    """The unrolled network, literally: one cell step per time step (the test oracle)."""
    caches, ys = [], []
    for t in range(x.shape[0]):
        new_state, cache = kind.step_forward(params, x[t], state)
        if mask is not None:  # past a sequence's end its state is held and its output is zero
            new_state = tuple(np.where(mask[t] > 0, new, old) for new, old in zip(new_state, state))
        ys.append(new_state[0] if mask is None else new_state[0] * mask[t])
        caches.append(cache)
        state = new_state
    return np.stack(ys), state, (caches, mask)


def reference_backward(kind: CellKind, params, cache, dy, dstate):
    """BPTT over the unrolled network: from the last step back to the first, one cell at a time."""
    caches, mask = cache
    T = len(caches)
    if mask is not None and dy is not None:  # y_t = m_t * h_t: no gradient past the end
        dy = dy * mask
    dxs, grads = [None] * T, None
    for t in reversed(range(T)):
        dh = dstate[0] + (dy[t] if dy is not None else 0)
        dnew = (dh,) + tuple(dstate[1:])
        if mask is not None:
            m = mask[t]
            dnew = tuple(m * d for d in dnew)
        dxs[t], dprev, step_grads = kind.step_backward(params, caches[t], dnew)
        if mask is not None:  # a held state passes its gradient straight through
            dprev = tuple(dp + (1 - m) * d for dp, d in zip(dprev, (dh,) + tuple(dstate[1:])))
        dstate = dprev
        grads = add_grads(grads, step_grads)
    return np.stack(dxs), dstate, grads
