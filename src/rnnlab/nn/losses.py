"""Losses with their gradients: softmax cross-entropy over integer targets, and mean squared error.

Each pure function returns (loss, dlogits): the gradient of the (mean) loss, ready for backward.
Shapes: S = any leading shape (B, or B, T), V = classes.
"""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p over the last axis, stable: subtract the max before exponentiating."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def _check_mask(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask must have the targets' shape {shape}; got {mask.shape}")
    return mask.astype(bool)


def cross_entropy(logits, targets, mask=None) -> tuple[float, np.ndarray]:
    """Mean of -log softmax(logits)[target] over unmasked positions; logits (*S, V), targets (*S,).

    The gradient is the fused (p - onehot(target)) / N, zero at masked positions, whatever the
    logits and targets hold there (NaN, a padding id).
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be integer class ids; got dtype {targets.dtype}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits must have shape targets.shape + (classes,) = {targets.shape} + (V,); "
                         f"got logits {logits.shape}")
    V = logits.shape[-1]
    mask = _check_mask(mask, targets.shape)
    if mask is not None:  # masked positions may hold anything (a pad id, NaN logits): they never count
        targets = np.where(mask, targets, 0)
        logits = np.where(mask[..., None], logits, 0)
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets must lie in 0..{V - 1}; got min {targets.min()}, max {targets.max()}")
    count = targets.size if mask is None else int(mask.sum())
    if count == 0:
        raise ValueError("the mask leaves no position to average the loss over")
    # log_softmax's steps, each exp taken once: p and log p from the same exp(shifted)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (*S, V)
    dlogits = np.exp(shifted)
    total = dlogits.sum(axis=-1, keepdims=True)  # (*S, 1)
    target = targets[..., None]
    picked = np.take_along_axis(shifted, target, axis=-1)[..., 0] - np.log(total[..., 0])  # log p[target] (*S,)
    loss = -(picked.sum() if mask is None else picked[mask].sum()) / count
    dlogits *= 1 / (total * count)  # p / count
    np.put_along_axis(dlogits, target, np.take_along_axis(dlogits, target, -1) - 1 / count, -1)
    if mask is not None:
        dlogits *= mask[..., None]
    return float(loss), dlogits


def mse(pred, target, mask=None) -> tuple[float, np.ndarray]:
    """Mean of (pred - target)^2 over all (unmasked) elements, like torch's MSELoss(reduction="mean").

    A mask of the leading shape (*S,) or of the full shape selects the elements that count; the
    others may hold anything, NaN included, and get a zero gradient.
    """
    pred = np.asarray(pred)
    target = np.asarray(target, dtype=pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape; got {pred.shape} and {target.shape}")
    if mask is None:
        diff = pred - target
        count = diff.size
    else:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != pred.shape:
            if mask.shape != pred.shape[:mask.ndim]:
                raise ValueError(f"mask must have shape {pred.shape} or a leading part of it; got {mask.shape}")
            mask = np.broadcast_to(mask.reshape(mask.shape + (1,) * (pred.ndim - mask.ndim)), pred.shape)
        diff = np.where(mask, pred, 0) - np.where(mask, target, 0)  # NaN padding never enters the gradient
        count = int(mask.sum())
        if count == 0:
            raise ValueError("the mask leaves no element to average the loss over")
    return float((diff * diff).sum() / count), (2.0 / count) * diff
