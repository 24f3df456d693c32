"""Gradient clipping in place on Parameter.grad, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.

    clip_grad_norm   n = || (||g_1||_p, ..., ||g_k||_p) ||_p       (the p-norm of all grads as one vector)
                     g_i = g_i * min(max_norm / (n + 1e-6), 1)
    clip_grad_value  g_i = clip(g_i, -c, c)
"""
from __future__ import annotations

import math

import numpy as np

from .optim import _parameter_list

__all__ = ["clip_grad_norm", "clip_grad_value"]


def _vector_norm(x: np.ndarray, p: float) -> float:
    """||x||_p of x flattened (0 for an empty array)."""
    if x.size == 0:
        return 0.0
    return float(np.linalg.norm(x.ravel(), ord=p))


def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    """Scale all grads by one factor so their global norm is at most max_norm; return the norm before.

    n = ||(||g_1||_p, ..., ||g_k||_p)||_p,   g_i = g_i * min(max_norm / (n + 1e-6), 1)
    """
    params = _parameter_list(params, "clip_grad_norm", allow_empty=True)
    p, max_norm = float(norm_type), float(max_norm)
    if not p > 0:
        raise ValueError(f"clip_grad_norm: norm_type must be > 0 or inf; got {norm_type}")
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm: max_norm must be >= 0; got {max_norm}")
    if not params:
        return 0.0
    norms = np.array([_vector_norm(q.grad, p) for q in params])  # (k,)
    n = _vector_norm(norms, p)
    if error_if_nonfinite and not math.isfinite(n):
        raise FloatingPointError(
            f"clip_grad_norm: the total gradient norm (order {p}) is {n}, so it cannot be clipped. "
            "Training has probably diverged: lower the learning rate, clip with a smaller max_norm, or "
            "look for inf/nan in the loss. Pass error_if_nonfinite=False to scale the gradients anyway.")
    # np.minimum, not min(): a nan norm must give a nan factor, as torch.clamp does.
    coef = float(np.minimum(max_norm / (n + 1e-6), 1.0))
    for q in params:
        q.grad *= coef
    return n


def clip_grad_value(params, clip_value: float) -> None:
    """Clip every gradient element into [-c, c] in place.

    g_i = clip(g_i, -c, c)
    """
    params = _parameter_list(params, "clip_grad_value", allow_empty=True)
    c = float(clip_value)
    if not c >= 0:
        raise ValueError(f"clip_grad_value: clip_value must be >= 0; got {clip_value}")
    for q in params:
        np.clip(q.grad, -c, c, out=q.grad)
