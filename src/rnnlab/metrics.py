"""Metrics for `fit`, `evaluate` and the CLI: regression (MSE, MAE, RMSE) and classification
(accuracy, macro F1, the confusion matrix), each over the elements a mask keeps.

    regression_metrics(pred, true)            # {"mse", "mae", "rmse"}; pred, true (*S, O) or (*S,)
    classification_metrics(pred, true, C)     # {"accuracy", "macro_f1"}; class ids (*S,)
    confusion_matrix(true, pred, C)           # (C, C) counts: row = true class, column = predicted

macro F1 averages the per-class F1 over the classes present in `true` or `pred` (as scikit-learn's
f1_score(average="macro")); a class never predicted and never true is not counted.
"""
from __future__ import annotations

import numpy as np

REGRESSION = ("mse", "mae", "rmse")
CLASSIFICATION = ("accuracy", "macro_f1")


def _kept(a: np.ndarray, mask) -> np.ndarray:
    """The elements of a (*S, ...) array at the positions mask (*S,) keeps, flattened over S."""
    a = np.asarray(a)
    if mask is None:
        return a
    return a[np.asarray(mask, dtype=bool)]


def regression_metrics(pred, true, mask=None) -> dict[str, float]:
    """MSE, MAE and RMSE of pred against true (same shape), over the positions mask (*S,) keeps."""
    diff = _kept(np.asarray(pred, np.float64) - np.asarray(true, np.float64), mask)
    if diff.size == 0:
        return {name: float("nan") for name in REGRESSION}
    mse = float(np.mean(diff * diff))
    return {"mse": mse, "mae": float(np.mean(np.abs(diff))), "rmse": mse ** 0.5}


def confusion_matrix(true, pred, n_classes: int, mask=None) -> np.ndarray:
    """(C, C) int64 counts; entry [i, j] counts the elements of true class i predicted as j."""
    true, pred = _kept(true, mask).ravel(), _kept(pred, mask).ravel()
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(confusion: np.ndarray) -> float:
    """The mean F1 over classes that occur as true or predicted labels."""
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    present = (predicted + actual) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp[present] / (predicted[present] + actual[present])  # = 2PR / (P + R), 0 where tp = 0
    return float(f1.mean())


def classification_metrics(pred, true, n_classes: int, mask=None) -> dict[str, float]:
    """Accuracy and macro F1 of predicted class ids against true ones, over the positions mask keeps."""
    confusion = confusion_matrix(true, pred, n_classes, mask)
    total = confusion.sum()
    if total == 0:
        return {name: float("nan") for name in CLASSIFICATION}
    return {"accuracy": float(np.trace(confusion) / total), "macro_f1": macro_f1(confusion)}
