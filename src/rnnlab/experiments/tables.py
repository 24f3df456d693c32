"""Markdown tables of a sweep's rows: the held-out metric of every run beside its baseline."""
from __future__ import annotations


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def format_table(rows: list[dict]) -> str:
    """A Markdown table: task, model, hidden, T, steps, metric, value, baseline, wall time."""
    header = ["task", "model", "hidden", "T", "steps", "metric", "value", "baseline", "time"]
    lines = [[r["task"], r["model"], str(r["hidden"]), "-" if r["T"] is None else str(r["T"]), str(r["steps"]),
              r["metric"], _fmt(r["value"]), f"{_fmt(r['baseline'])} ({r['baseline_name']})",
              f"{r['seconds']:.0f} s"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    numeric = {2, 3, 4, 6, 8}

    def render(cells):
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    extra = []
    for r in rows:
        if "symbol_accuracy" in r:
            extra.append(f"{r['task']} {r['model']} T={r['T']}: {r['symbol_accuracy']:.1%} of the recalled "
                         "symbols right")
        for e in r.get("examples", [])[:3]:
            extra.append(f"{r['task']} {r['model']}: {e['source']!r} -> {e['predicted']!r} (target {e['target']!r})")
    return "\n".join([render(header), rule] + [render(line) for line in lines] + ([""] + extra if extra else []))


def format_neurone(rows: list[dict]) -> str:
    """Per position of "neurone": each model's guess and P(next), beside the two Bayes limits."""
    positions = [r["positions"] for r in rows]
    head = ["t", "reads", "next"] + [f"{r['model']}: guess, P(next)" for r in rows] + \
           ["Bayes: current char", "Bayes: prefix"]
    lines = []
    for t, base in enumerate(positions[0]):
        lines.append([str(t), repr(base["reads"]), repr(base["next"])] +
                     [f"{p[t]['guess']!r} {'ok' if p[t]['guess'] == base['next'] else '--'} {p[t]['p_next']:.2f}"
                      for p in positions] + [f"{base['bayes_current_char']:.2f}", f"{base['bayes_prefix']:.2f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    render = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join(["Reading \"neurone\" one character at a time:", "", render(head), rule] +
                     [render(line) for line in lines])
