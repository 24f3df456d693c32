"""Plots written to files with matplotlib's Agg backend (no display needed)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def new_figure(width: float = 8, height: float = 4.5):
    """A figure that never needs a display (no pyplot state, no GUI backend)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def smooth(values, window: int = 25) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    values = np.asarray(values, dtype=np.float64)
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumsum[1:] - cumsum[np.arange(1, len(values) + 1) - counts]) / counts


def plot_loss_curve(history: list[dict], path, title: str = "training") -> Path:
    """Training loss (raw and smoothed) and validation loss, in bits per character, against steps."""
    path = Path(path)
    fig = new_figure()
    ax = fig.add_subplot()
    steps = np.array([row["step"] for row in history])
    bits = np.array([row["loss"] for row in history]) / math.log(2)
    ax.plot(steps, bits, color="tab:blue", alpha=0.25, lw=0.8, label="train (per step)")
    ax.plot(steps, smooth(bits), color="tab:blue", lw=2, label="train (smoothed)")
    val = [(row["step"], row["val_loss"] / math.log(2)) for row in history if "val_loss" in row]
    if val:
        ax.plot(*zip(*val), "o-", color="tab:orange", lw=2, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (bits/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
