"""Plots as figures that need no display: written to files, or drawn inline in Jupyter (rnnlab.display)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def new_figure(width: float = 8, height: float = 4.5):
    """A figure that never needs a display (no pyplot state, no GUI backend) and shows inline in Jupyter."""
    from .display import Figure

    return Figure(figsize=(width, height), layout="constrained")


def write_figure(fig, path, **savefig_kwargs) -> Path:
    """fig.savefig into memory, then onto `path` atomically as a regular file (io.atomic_write_bytes):
    a failed or interrupted save leaves the old file whole, and a FIFO or device at `path` is refused."""
    from io import BytesIO

    from .io import atomic_write_bytes

    path = Path(path)
    savefig_kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    buffer = BytesIO()
    fig.savefig(buffer, **savefig_kwargs)
    return atomic_write_bytes(path, buffer.getvalue())


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
    _label_axes(ax, "step", "cross-entropy (bits/char)", title)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=120)
    return path


# -- gradient flow and the lecture's two stories (see rnnlab.diagnostics and rnnlab.demos) ---------
COLORS = {"RNN": "tab:red", "GRU": "tab:green", "LSTM": "tab:blue"}


def save_figure(fig, stem, formats=("png", "svg"), dpi: int = 120) -> list[Path]:
    """Write `fig` as stem.png, stem.svg, ... (folders created); return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        write_figure(fig, path, dpi=dpi)
        paths.append(path)
    return paths


def _positive(values) -> np.ndarray:
    """float64 copy with zeros and negatives (float32 underflow) as nan, so a log axis skips them."""
    values = np.array(values, dtype=np.float64)
    values[~(values > 0)] = np.nan
    return values


def plot_gradient_flow(panels: dict, title: str | None = None, relative: bool = True,
                       ylabel: str = "||dL/dh_t||", floor: float | None = None):
    """Gradient norm against time step on a log scale, one panel per model side by side.

    panels: {panel title: {curve label: norms (T,)}} e.g. {"RNN": {"h": ...}, "LSTM": {"h": ..., "c": ...}}.
    relative: divide each curve by its value at the last step (where the loss is read), so every
    panel starts at 1 on the right and shows what fraction of it reaches each earlier step.
    floor: a horizontal dotted line (e.g. the classifier's fraction).
    """
    if not panels:
        raise ValueError("plot_gradient_flow needs at least one panel")
    fig = new_figure(4.2 * len(panels) + 0.6, 4.2)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    styles = ["-", "--", ":", "-."]
    for ax, (name, curves) in zip(axes, panels.items()):
        color = COLORS.get(name.split()[0].upper(), None)
        for k, (label, norms) in enumerate(curves.items()):
            norms = _positive(norms)
            if relative and np.isfinite(norms[-1]):
                norms = norms / norms[-1]
            ax.plot(np.arange(len(norms)), norms, styles[k % len(styles)], color=color, lw=2, label=label)
        if floor is not None:
            ax.axhline(floor, color="0.4", ls=":", lw=1)
            ax.annotate(f"{floor:g}", (0, floor), xycoords=("axes fraction", "data"), xytext=(3, 3),
                        textcoords="offset points", color="0.4", fontsize=9)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3, which="major")
        if len(curves) > 1:
            ax.legend(loc="lower right")
    axes[0].set_ylabel(f"{ylabel} / its value at the last step" if relative else ylabel)
    if title:
        fig.suptitle(title)
    return fig


def plot_flow_heatmap(steps, norms, title: str | None = None, relative: bool = True,
                      label: str = "||dL/dh_t||"):
    """log10 of the gradient reaching each time step (x) at each recorded training step (y).

    steps (N,) training steps; norms (N, T) a profile per recorded step.
    """
    steps = np.asarray(steps)
    norms = _positive(norms)
    if norms.ndim != 2 or len(steps) != norms.shape[0]:
        raise ValueError(f"norms must have shape (len(steps), T) = ({len(steps)}, T); got {norms.shape}")
    if relative:
        norms = norms / norms[:, -1:]
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    T = norms.shape[1]
    image = ax.imshow(np.log10(norms), aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                      extent=(-0.5, T - 0.5, -0.5, len(steps) - 0.5))
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int))
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(f"log10 {label}" + (" / last step" if relative else ""))
    if title:
        ax.set_title(title)
    return fig


def _mark_divergence(ax, rows, key, color, cap=None):
    """An x where a run stopped on a non-finite value, at its last finite point (or at the cap)."""
    last = rows[-1]
    if math.isfinite(last["loss"]) and math.isfinite(last.get("grad_norm", 0.0)):
        return
    finite = [r for r in rows if math.isfinite(r[key])]
    if finite:
        y = finite[-1][key] if cap is None else min(finite[-1][key], cap)
        ax.plot(finite[-1]["step"], y, "x", color=color, ms=12, mew=3, clip_on=False, zorder=5)
        ax.annotate(f"{key.replace('_', ' ')} -> {last[key]:g} at step {last['step']}", (finite[-1]["step"], y),
                    textcoords="offset points", xytext=(9, -14), color=color, fontsize=10)


def plot_grad_norms(histories: dict, clip: float | None = None, ax=None, title: str | None = None,
                    xlog: bool = False):
    """Total gradient norm (before clipping) per training step, log scale; one curve per run.

    histories: {label: rows from `optimize`} (each row: step, loss, grad_norm); xlog: log step axis.
    """
    fig, ax = _figure_and_axes(ax)
    for k, (label, rows) in enumerate(histories.items()):
        color = f"C{k}"
        steps = [r["step"] for r in rows]
        ax.plot(steps, _positive([r["grad_norm"] for r in rows]), color=color, lw=1.2, label=label)
        _mark_divergence(ax, rows, "grad_norm", color)
    if clip:
        ax.axhline(clip, color="0.3", ls="--", lw=1, label=f"clip threshold {clip:g}")
    _label_axes(ax, "training step", "total gradient norm (before clipping)", title, xlog=xlog, ylog=True)
    return fig


def plot_loss_curves(histories: dict, ax=None, title: str | None = None, baseline: float | None = None,
                     log: bool = True, xlog: bool = False, cap: float | None = None, baseline_label: str = "baseline"):
    """Training loss per step, one curve per run (raw, faint, and smoothed); x where a run hit nan.

    cap: top of the y axis, so a blow-up leaves the plot instead of squashing the other curves.
    """
    fig, ax = _figure_and_axes(ax)
    for k, (label, rows) in enumerate(histories.items()):
        color = f"C{k}"
        steps = np.array([r["step"] for r in rows])
        loss = _positive([r["loss"] for r in rows])
        ax.plot(steps, loss, color=color, alpha=0.3, lw=0.8)
        finite = np.isfinite(loss)
        if finite.any():
            ax.plot(steps[finite], smooth(loss[finite], 10), color=color, lw=2, label=label)
        _mark_divergence(ax, rows, "loss", color, cap)
    if baseline is not None:
        ax.axhline(baseline, color="0.3", ls=":", lw=1, label=f"{baseline_label} {baseline:.3g}")
    _label_axes(ax, "training step", "training loss", title, xlog=xlog, ylog=log)
    if cap is not None:
        ax.set_ylim(top=cap)
    return fig


def plot_clipping(histories: dict, clip: float | None, title: str | None = None, baseline: float | None = None,
                  xlog: bool = False, loss_cap: float | None = None, baseline_label: str = "baseline"):
    """The exploding-gradient story in one figure: gradient norms (left) and losses (right) per run."""
    fig = new_figure(12, 4.5)
    left, right = fig.subplots(1, 2)
    plot_grad_norms(histories, clip, ax=left, title="total gradient norm", xlog=xlog)
    plot_loss_curves(histories, ax=right, title="training loss", baseline=baseline, xlog=xlog, cap=loss_cap,
                     baseline_label=baseline_label)
    if title:
        fig.suptitle(title)
    return fig


def plot_gates(text: str, trace: dict, names=None, units: int = 16, title: str | None = None):
    """What a cell computes reading `text`, one row per name: its gates and state variables.

    trace: {name: (T, H)} for one sequence (e.g. `gate_trace(...)[name][:, b]`), T = len(text);
    names: the rows to show, in order (default: every entry of trace but h). Values inside [0, 1]
    (sigmoid gates) are drawn on 0..1, others on a range symmetric around 0. Shows the first `units`
    units as rows, the characters along the x axis.
    """
    T = len(text)
    names = [k for k in trace if k != "h"] if names is None else list(names)
    for key in names:
        if key not in trace or np.asarray(trace[key]).shape[0] != T:
            raise ValueError(f"trace[{key!r}] must have shape (len(text)={T}, H)")
    if not names:
        raise ValueError("plot_gates needs at least one row to show")
    H = min(units, np.asarray(trace[names[0]]).shape[1])
    fig = new_figure(max(6.0, 0.16 * T + 2.5), 1.4 + len(names) * (0.16 * H + 0.5))
    axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True))
    for ax, key in zip(axes, names):
        values = np.asarray(trace[key], dtype=np.float64)[:, :H].T  # (H, T)
        unit = values.size and values.min() >= 0 and values.max() <= 1
        limit = float(np.abs(values).max()) or 1.0
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis" if unit else "RdBu_r",
                          vmin=0 if unit else -limit, vmax=1 if unit else limit)
        ax.set_ylabel("unit")
        ax.set_title(key, loc="left", fontsize=11)
        fig.colorbar(image, ax=ax, pad=0.01)
    shown = [{"\n": "\\n", " ": "␣", "\t": "\\t"}.get(ch, ch) for ch in text]
    axes[-1].set_xticks(np.arange(T), shown, fontsize=8)
    axes[-1].set_xlabel("character read")
    if title:
        fig.suptitle(title)
    return fig


def _label_axes(ax, xlabel: str, ylabel: str, title: str | None, xlog: bool = False, ylog: bool = False):
    """What every curve plot ends with: labels, log scales as asked, a light grid, legend, title."""
    if ylog:
        ax.set_yscale("log")
    if xlog:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)


def _figure_and_axes(ax):
    if ax is None:
        fig = new_figure()
        return fig, fig.add_subplot()
    return ax.figure, ax


# -- experiments (see rnnlab.experiments) ----------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _groups(rows: list[dict]) -> dict:
    """{(task, model, T): [rows, one per seed]} in the order the rows come."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["T"]), []).append(r)
    return groups


def plot_experiment(rows: list[dict], path, title: str, neurone: bool = False) -> Path:
    """Training loss (smoothed) of every configuration with its baseline: each seed faintly, the mean
    over seeds boldly. neurone adds P(next) per position (first seed)."""
    path = Path(path)
    fig = new_figure(12 if neurone else 8, 4.5)
    axes = fig.subplots(1, 2) if neurone else [fig.add_subplot()]
    ax = axes[0]
    groups = _groups(rows)
    several_tasks = len({task for task, _, _ in groups}) > 1
    all_T = sorted({T or 0 for _, _, T in groups})
    colors = {}
    for (task, model, T), runs in groups.items():
        color = colors.setdefault((task, model) if several_tasks else model, f"C{len(colors)}")
        style = ["-", "--", ":", "-."][all_T.index(T or 0) % 4]
        label = model if T is None else f"{model} T={T}"
        if several_tasks:
            label = f"{task}: {label}"
        n = min(len(r["losses"]) for r in runs)
        window = max(1, min(50, n // 20))
        curves = np.stack([smooth(np.asarray(r["losses"][:n], dtype=np.float64), window) for r in runs])  # (seeds, n)
        steps = np.arange(1, n + 1)
        if len(runs) > 1:
            for curve in curves:
                ax.plot(steps, curve, color=color, ls=style, lw=0.8, alpha=0.3)
        value = np.mean([r["value"] for r in runs])
        seeds = f", mean of {len(runs)} seeds" if len(runs) > 1 else ""
        ax.plot(steps, curves.mean(axis=0), color=color, ls=style, lw=1.8,
                label=f"{label} ({runs[0]['metric']} {_fmt(value)}{seeds})")
        if runs[0]["loss_baseline"] is not None:
            ax.axhline(runs[0]["loss_baseline"], color=color, ls=style, lw=0.8, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed); thin lines: baselines")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if neurone:
        neurone_panel(axes[1], [runs[0] for runs in groups.values()])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=110)
    return path


NEURONE_CAPTION = ("Each bar shows how sure a network is of the letter that really comes next, and each line "
                   "the most that any network could be, knowing only the current letter (dashed) or every letter "
                   "so far (solid).")


def neurone_panel(ax, rows: list[dict]) -> None:
    """Reading "neurone": each model's P(right next letter) as bars, against the most any model can
    give it from the current letter alone (dashed) and from the whole prefix (solid), on one axis."""
    from .data.tasks import neurone_data

    best = neurone_data().best_probability_per_position("neurone")
    t = np.arange(len(best.inputs))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        x = t - 0.4 + width * (i + 0.5)
        p = [q["p_next"] for q in r["positions"]]
        name = "feed-forward net (one letter)" if r["model"] == "ff" else f"{r['model'].upper()} (all letters so far)"
        ax.bar(x, p, width, color=f"C{i}", label=name)
        for xi, pi in zip(x, p):
            ax.text(xi, pi + 0.015, f"{pi:.2f}", ha="center", va="bottom", fontsize=7)
    for values, style, label in ((best.current_char, "--", "best possible from the current letter"),
                                 (best.prefix, "-", "best possible from all letters so far")):
        ax.hlines(values, t - 0.45, t + 0.45, colors="k", linestyles=style, lw=1.6, label=label)
    ax.set_xticks(t, [f"{a}->{b}" for a, b in zip(best.inputs, best.targets)])
    ax.set_xlabel("reads -> must predict ('^' start, '$' end)")
    ax.set_ylabel("probability of the right next letter")
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title('reading "neurone": how sure each network is of the right next letter', fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncols=2)


def plot_neurone(rows: list[dict]):
    """The neurone chart alone (rows: one per model, as `rnnlab experiment neurone` returns them),
    with its one-sentence caption underneath."""
    fig = new_figure(9, 5)
    neurone_panel(fig.add_subplot(), rows)
    fig.supxlabel(NEURONE_CAPTION, fontsize=9, wrap=True)
    return fig


def plot_horizon(rows: list[dict], path) -> Path:
    """The memory horizon: success rate over seeds against T, one line per cell, one panel per task."""
    path = Path(path)
    groups = _groups(rows)
    tasks = list(dict.fromkeys(task for task, _, _ in groups))
    fig = new_figure(5 * len(tasks) + 1, 4.2)
    axes = fig.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    cells = list(dict.fromkeys(model for _, model, _ in groups))
    markers = "osD^vP*X"
    for ax, task in zip(axes, tasks):
        for k, cell in enumerate(cells):
            points = sorted((T, np.mean([bool(r["success"]) for r in runs]), len(runs))
                            for (t, model, T), runs in groups.items() if t == task and model == cell)
            if points:
                Ts, rates, n = zip(*points)
                lift = 0.012 * (k - (len(cells) - 1) / 2)  # cells that agree would hide each other's line
                ax.plot(Ts, np.add(rates, lift), "-", marker=markers[k % len(markers)], color=f"C{k}", lw=2,
                        label=f"{cell} ({max(n)} seed{'s' * (max(n) > 1)})")
        metric = next(runs[0]["metric"] for (t, _, _), runs in groups.items() if t == task)
        ax.set_xscale("log")
        Ts = sorted({T for (t, _, T) in groups if t == task})
        ax.set_xticks(Ts, [str(T) for T in Ts])
        ax.minorticks_off()
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{task} ({metric})", fontsize=10)
        ax.set_xlabel("sequence length T (the gap to remember)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction of seeds that succeeded")
    fig.suptitle("memory horizon: where each cell stops remembering")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=110)
    return path


def plot_state_norms(rows: list[dict], path) -> Path:
    """The continual stream: mean ||c_t|| at each chunk's end, while training and after, one line per cell
    (each seed faintly when there are several)."""
    path = Path(path)
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    for k, ((task, model, T), runs) in enumerate(_groups(rows).items()):
        curves = np.array([r["state_norms_training"] + r["state_norms_stream"] for r in runs])  # (seeds, chunks)
        chunks = np.arange(1, curves.shape[1] + 1)
        if len(runs) > 1:
            for curve in curves:
                ax.plot(chunks, curve, color=f"C{k}", lw=0.8, alpha=0.3)
        ax.plot(chunks, curves.mean(axis=0), color=f"C{k}", lw=2, label=f"{model} (T={T} per chunk)")
    ax.axvline(len(rows[0]["state_norms_training"]) + 0.5, color="0.4", ls=":", lw=1)
    ax.annotate("training stops; the stream goes on", (len(rows[0]["state_norms_training"]), 0),
                xycoords=("data", "axes fraction"), xytext=(4, 6), textcoords="offset points", fontsize=9)
    ax.set_yscale("log")
    _label_axes(ax, "chunk of the stream (state carried, never reset)", "mean ||c_t|| at the chunk's end",
                "cell state on a stream never reset: with and without the forget gate")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=110)
    return path


# -- fit runs (rnnlab fit) --------------------------------------------------------------------------
def plot_learning_curves(rows: list[dict], path, title: str = "fit") -> Path:
    """Per epoch: training and validation loss (left), and the first metric beside them (right)."""
    path = Path(path)
    fig = new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    metric = next((m for m in ("accuracy", "rmse") if m in rows[0]), None)
    for ax, key in ((left, "loss"), (right, metric)):
        if key is None:
            continue
        ax.plot(epochs, [row[key] for row in rows], "o-", color="tab:blue", label="train")
        if f"val_{key}" in rows[0]:
            ax.plot(epochs, [row[f"val_{key}"] for row in rows], "o-", color="tab:orange", label="validation")
        _label_axes(ax, "epoch", key, f"{title}: {key}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_forecast(true, predicted, baseline, path, title: str = "validation part") -> Path:
    """The first forecast step of each validation window: true, the model's and persistence's."""
    path = Path(path)
    fig = new_figure(10, 4)
    ax = fig.add_subplot()
    steps = np.arange(len(true))
    ax.plot(steps, true, color="black", lw=1.5, label="true")
    ax.plot(steps, predicted, color="tab:blue", lw=1.2, label="predicted")
    ax.plot(steps, baseline, color="tab:gray", lw=1, ls="--", label="persistence (last value)")
    _label_axes(ax, "validation window", "target (its own units)", title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_one_to_many(words, snapshots: dict[int, dict[str, str]], losses):
    """Left: the training loss. Right: what the net writes from each first letter (its one input)
    after more and more training steps, green where it is the word, red where not yet."""
    fig = new_figure(11, 0.3 * len(words) + 1.6)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.3])
    left.plot(np.arange(1, len(losses) + 1), losses, color="tab:blue", label="all words, teacher forcing")
    for step in snapshots:
        left.axvline(step, color="0.6", lw=0.8, ls=":")
    _label_axes(left, "training step", "cross-entropy (nats per letter)", "training", ylog=True)
    right.axis("off")
    right.set_xlim(-0.6, len(snapshots))
    right.set_ylim(len(words), -1.2)
    right.text(-0.35, -0.9, "input", ha="center", fontsize=9, color="0.35")
    for col, (step, written) in enumerate(snapshots.items()):
        right.text(col + 0.5, -0.9, f"after {step} steps", ha="center", fontsize=9, color="0.35")
        for row, word in enumerate(words):
            out = written[word[0]] or "(nothing)"
            right.text(col + 0.5, row, out, ha="center", va="center", fontsize=10, family="monospace",
                       color="tab:green" if out == word else "tab:red")
    for row, word in enumerate(words):
        right.text(-0.35, row, f"{word[0]} ->", ha="center", va="center", fontsize=10, family="monospace")
    right.set_title("one input (a letter), a sequence out (the word it writes)", fontsize=10)
    return fig


def plot_bptt_cost(rows: list[dict], window: int, title: str | None = None):
    """Time and peak memory of one weight update against T, full vs truncated BPTT, and the share of
    the full gradient that truncation misses."""
    T = [r["T"] for r in rows]
    fig = new_figure(13, 4.2)
    axes = fig.subplots(1, 3)
    full, trunc = dict(color="tab:red", marker="o", label="full BPTT"), \
        dict(color="tab:blue", marker="s", label=f"truncated, k = {window}")
    axes[0].plot(T, [r["full_ms"] for r in rows], **full)
    axes[0].plot(T, [r["truncated_ms"] for r in rows], **trunc)
    axes[0].plot(T, [r["truncated_total_ms"] for r in rows], color="tab:blue", ls=":",
                 label="truncated, all T/k updates")
    _label_axes(axes[0], "T (time steps)", "ms per weight update", "time")
    axes[1].plot(T, [r["full_mb"] for r in rows], **full)
    axes[1].plot(T, [r["truncated_mb"] for r in rows], **trunc)
    _label_axes(axes[1], "T (time steps)", "peak memory (MB)", "memory")
    axes[2].plot(T, [100 * r["missed"] for r in rows], color="tab:blue", marker="s",
                 label="||g_full - g_truncated|| / ||g_full||")
    _label_axes(axes[2], "T (time steps)", "% of the gradient", "what truncation no longer sees")
    for ax in axes:
        ax.set_ylim(bottom=0)
    if title:
        fig.suptitle(title)
    return fig
