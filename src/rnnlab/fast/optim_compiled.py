"""Adam's update in one compiled pass over each parameter: what Adam.step runs where Numba can.

The NumPy update (optim.py) makes about eleven passes over a parameter, one ufunc call each. For the
small models trained one sequence at a time (B = 1) those calls were a sixth of the training step.
This is the same arithmetic, element by element, in the same order and in the parameter's dtype
(every constant rounded to it first, as NumPy does with a Python float), so it gives the same bits;
tests/test_optim.py checks that against the NumPy update and against torch.
"""
from __future__ import annotations

import numpy as np


def adam_update(theta, g, m, v, v_max, one_minus_b1, b2, one_minus_b2, bias2_sqrt, eps, step_size, wd, decay,
                decoupled):
    """One Adam step in place on flat arrays (N,): theta, its gradient g, the moments m and v, and
    v_max (N,) for AMSGrad or (0,) without; the scalars are optim.py's, in theta's dtype; decoupled:
    AdamW's decay theta*(1 - lr*wd) instead of Adam's g + theta*wd."""
    amsgrad = v_max.shape[0] > 0
    for i in range(theta.shape[0]):
        if decoupled:  # AdamW: theta = theta*(1 - lr*wd) first
            theta[i] *= decay
        gi = g[i]
        if wd != 0 and not decoupled:  # Adam's L2 term: g = theta*wd + g
            gi = theta[i] * wd + gi
        mi = m[i] + (gi - m[i]) * one_minus_b1
        m[i] = mi
        vi = v[i] * b2 + (gi * one_minus_b2) * gi
        v[i] = vi
        if amsgrad:  # np.maximum: NaN wins
            vm = v_max[i]
            vi = vi if (vi >= vm or vi != vi) else vm
            v_max[i] = vi
        denom = np.sqrt(vi) / bias2_sqrt + eps
        theta[i] -= (mi / denom) * step_size


def compiled_adam(fast):
    """adam_update compiled by Numba, once per process (kept in fast.compiled), cached on disk."""
    if ("adam", None) not in fast.compiled:
        import numba

        fast.compiled["adam", None] = numba.njit(cache=True, error_model="numpy", nogil=True)(adam_update)
    return fast.compiled["adam", None]
