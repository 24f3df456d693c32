"""A sweep end to end: plan the runs, execute them, write results.json, table.md and the plot."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..plots import plot_experiment
from .engine import run_all
from .registry import EXPERIMENTS, _positive, plan
from .tables import format_neurone, format_table


@dataclass
class ExperimentResult:
    name: str
    rows: list[dict]                # one per run: the table's columns plus losses and extras
    table: str                      # the printed table (and any per-experiment detail)
    run_dir: Path | None
    files: list[Path]
    seconds: float




def run_experiment(name: str, cells=None, Ts=None, steps=None, hidden=None, seed: int = 0, batch=None, lr=None,
                   out=None, jobs: int = 1, progress: bool = False, command: str | None = None) -> ExperimentResult:
    """Run every (cell, T) of an experiment, print nothing, and write results.json, table.md and
    NAME.png into `out` (None: write nothing). Arguments left None take the experiment's defaults."""
    specs = plan(name, cells, Ts, steps, hidden, seed, batch, lr)
    jobs = _positive("jobs", jobs)
    start = time.perf_counter()
    rows = run_all(specs, jobs, progress)
    seconds = time.perf_counter() - start
    table = format_table(rows)
    if name == "neurone":
        table += "\n\n" + format_neurone(rows)
    files: list[Path] = []
    run_dir = None
    if out is not None:
        run_dir = Path(out)
        run_dir.mkdir(parents=True, exist_ok=True)
        summary = {"experiment": name, "command": command, "seconds": seconds, "jobs": jobs,
                   "runs": [asdict(s) for s in specs], "rows": rows}
        files.append(_write(run_dir / "results.json", json.dumps(summary, indent=1)))
        files.append(_write(run_dir / "table.md", (f"`{command}`\n\n" if command else "") + table + "\n"))
        kind = EXPERIMENTS[name].kind
        files.append(plot_experiment(rows, run_dir / f"{name}.png", name if kind == name else f"{name} ({kind})",
                                     neurone=name == "neurone"))
    return ExperimentResult(name, rows, table, run_dir, files, seconds)


def _write(path: Path, text: str) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
