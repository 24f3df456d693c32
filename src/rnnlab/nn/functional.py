"""Activations and their derivatives, for cell definitions: each works on NumPy arrays (the NumPy sweep,
the reference) and, through the overloads in fused.py, on scalars inside the compiled Numba loop.

Derivatives are written in terms of the activation's output, as the backward pass has it saved:
`dtanh_from_output(y)` is tanh'(a) for y = tanh(a).
"""
from __future__ import annotations

import numpy as np


def sigmoid(a):
    """sigma(a) = 1 / (1 + e^-a), computed as (1 + tanh(a/2)) / 2: no overflow for any a."""
    return 0.5 + 0.5 * np.tanh(0.5 * a)


def tanh(a):
    return np.tanh(a)


def relu(a):
    return np.maximum(a, 0)


def dsigmoid_from_output(s):
    """sigma'(a) written in terms of s = sigma(a)."""
    return s * (1 - s)


def dtanh_from_output(y):
    """tanh'(a) written in terms of y = tanh(a)."""
    return 1 - y * y


def drelu_from_output(y):
    """relu'(a) written in terms of y = relu(a) (0 at a = 0, as PyTorch)."""
    return np.heaviside(y, 0.0)


def add_grads(total: dict | None, grads: dict) -> dict:
    if total is None:
        return {k: v.copy() for k, v in grads.items()}
    for k, v in grads.items():
        total[k] += v
    return total
