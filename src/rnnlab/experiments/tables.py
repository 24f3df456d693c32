"""Markdown tables of a sweep's rows: the held-out metric over seeds beside its baseline."""
from __future__ import annotations

import numpy as np


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def seed_list(seeds) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7'."""
    seeds, parts = sorted(seeds), []
    for s in seeds:
        if parts and s == parts[-1][1] + 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def _groups(rows: list[dict]) -> dict:
    """{(task, model, T): [rows, one per seed]} in the order the rows come."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["T"]), []).append(r)
    return groups


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, and for seeds that differ only in
    float rounding: 0.8103 ± 1.24e-16 says nothing 0.8103 ± 0 does not)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, 0.0 if std <= 1e-9 * abs(mean) else std


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (task, model, T): seeds, mean and sample std of the metric, runs that succeeded."""
    out = []
    for (task, model, T), runs in _groups(rows).items():
        mean, std = _mean_std([r["value"] for r in runs])
        verdicts = [r.get("success") for r in runs]
        out.append({"task": task, "model": model, "T": T, "metric": runs[0]["metric"],
                    "seeds": [r["seed"] for r in runs], "mean": mean, "std": std,
                    "succeeded": None if None in verdicts else sum(verdicts), "runs": len(runs)})
    return out


def format_table(rows: list[dict]) -> str:
    """A Markdown table, one line per (task, model, T): hidden, steps, seeds, metric (mean ± sample std
    over seeds), runs that succeeded where the task has a threshold, baseline, wall time per run."""
    groups = _groups(rows)
    with_success = any(runs[0].get("success") is not None for runs in groups.values())
    header = ["task", "model", "hidden", "T", "steps", "seeds", "metric", "value"] + \
             (["succeeded"] if with_success else []) + ["baseline", "time"]
    lines = []
    for (task, model, T), runs in groups.items():
        r = runs[0]
        mean, std = _mean_std([x["value"] for x in runs])
        value = _fmt(mean) if len(runs) == 1 else f"{_fmt(mean)} ± {_fmt(std)}"
        verdicts = [x.get("success") for x in runs]
        success = ["-" if None in verdicts else f"{sum(verdicts)}/{len(runs)}"] if with_success else []
        seconds = np.mean([x["seconds"] for x in runs])
        lines.append([task, model, str(r["hidden"]), "-" if T is None else str(T), str(r["steps"]),
                      seed_list(x["seed"] for x in runs), r["metric"], value] + success +
                     [f"{_fmt(r['baseline'])} ({r['baseline_name']})", f"{seconds:.0f} s"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    numeric = {i for i, h in enumerate(header) if h in ("hidden", "T", "steps", "value", "succeeded", "time")}

    def render(cells):
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    extra = []
    for (task, model, T), runs in groups.items():
        if "symbol_accuracy" in runs[0]:
            mean, std = _mean_std([x["symbol_accuracy"] for x in runs])
            spread = f" ± {std:.1%} over {len(runs)} seeds" if len(runs) > 1 else ""
            extra.append(f"{task} {model} T={T}: {mean:.1%}{spread} of the recalled symbols right")
        for e in runs[0].get("examples", [])[:3]:
            extra.append(f"{task} {model}: {e['source']!r} -> {e['predicted']!r} (target {e['target']!r})")
    return "\n".join([render(header), rule] + [render(line) for line in lines] + ([""] + extra if extra else []))


def format_neurone(rows: list[dict]) -> str:
    """Per position of "neurone": each model's guess and P(next), beside the most P(next) can be
    from the current character alone and from the whole prefix."""
    from ..data.tasks import neurone_data
    from ..plots import NEURONE_CAPTION

    positions = [r["positions"] for r in rows]
    best = neurone_data().best_probability_per_position("neurone")
    head = ["t", "reads", "next"] + [f"{r['model']}: guess, P(next)" for r in rows] + \
           ["best P(next): this letter", "best P(next): whole prefix"]
    lines = []
    for t, base in enumerate(positions[0]):
        lines.append([str(t), repr(base["reads"]), repr(base["next"])] +
                     [f"{p[t]['guess']!r} {'ok' if p[t]['guess'] == base['next'] else '--'} {p[t]['p_next']:.2f}"
                      for p in positions] + [f"{best.current_char[t]:.2f}", f"{best.prefix[t]:.2f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    render = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join(["Reading \"neurone\" one character at a time:", "", render(head), rule] +
                     [render(line) for line in lines] + ["", "In the plot: " + NEURONE_CAPTION])
