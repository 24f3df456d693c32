"""A sweep end to end: plan the runs, reuse the finished ones, execute the rest, write the tables and plot."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..plots import plot_experiment, plot_horizon, plot_state_norms
from .engine import check_engine, run_specs
from .registry import EXPERIMENTS, plan
from .store import RunStore
from .tables import format_neurone, format_table, summarize


@dataclass
class ExperimentResult:
    name: str
    rows: list[dict]                # one per run (every seed): the table's columns plus losses and extras
    table: str                      # the printed table (and any per-experiment detail)
    run_dir: Path | None
    files: list[Path]
    seconds: float
    reused: int = 0                 # runs found finished in run_dir/runs and not trained again
    trained: int = 0
    set_aside: list[str] = field(default_factory=list)  # damaged run files moved aside (and retrained), one line each


def run_experiment(name: str, cells=None, Ts=None, steps=None, hidden=None, seed: int = 0, batch=None, lr=None,
                   out=None, jobs: int = 1, progress: bool = False, command: str | None = None, seeds=None,
                   engine: str = "local", address: str | None = None, warn=None) -> ExperimentResult:
    """Run every (cell, T, seed) of an experiment, print nothing, and write results.json, table.md and
    NAME.png into `out` (None: write nothing). Arguments left None take the experiment's defaults.

    With `out`, each finished run is stored in out/runs/ as it arrives; calling again with the
    same settings reuses those runs (`reused`) and trains only the missing ones (`trained`).
    A stored run file that does not read back as its run is moved to out/runs/set-aside/ and the
    run trained again; each such file is one line of `set_aside`, passed to `warn` (if given) before
    any training starts. `engine`, `jobs` and `address` say where runs execute (see rnnlab.experiments.engine).
    """
    specs = plan(name, cells, Ts, steps, hidden, seed, batch, lr, seeds)
    check_engine(engine, jobs, address)
    start = time.perf_counter()
    store = RunStore(out) if out is not None else None
    rows: list[dict | None] = [store.load(spec) if store else None for spec in specs]
    missing = [i for i, row in enumerate(rows) if row is None]
    set_aside = list(store.set_aside) if store else []
    for line in set_aside if warn is not None else ():
        warn(line)
    reused = len(specs) - len(missing)

    def keep(k, row):
        row = json.loads(json.dumps(row))  # as it will read back from the store (tuples become lists)
        rows[missing[k]] = row
        if store is not None:
            store.save(specs[missing[k]], row)

    run_specs([specs[i] for i in missing], engine, jobs, address, progress, on_result=keep, label=name)
    seconds = time.perf_counter() - start
    table = format_table(rows)
    if name == "neurone":
        table += "\n\n" + format_neurone([r for r in rows if r["seed"] == rows[0]["seed"]])
    files: list[Path] = []
    run_dir = None
    if out is not None:
        run_dir = Path(out)
        run_dir.mkdir(parents=True, exist_ok=True)
        # seconds: this invocation's wall time (near 0 where it reused every run); run_seconds: the
        # training time of every run, stored with each run, so it survives reuse
        summary = {"experiment": name, "command": command, "seconds": seconds,
                   "run_seconds": sum(r["seconds"] for r in rows), "engine": engine, "jobs": jobs,
                   "address": address, "seeds": sorted({s.seed for s in specs}), "reused": reused,
                   "trained": len(missing), "set_aside": set_aside, "runs": [asdict(s) for s in specs],
                   "summary": summarize(rows),
                   "rows": rows}
        files.append(_write(run_dir / "results.json", json.dumps(summary, indent=1)))
        files.append(_write(run_dir / "table.md", (f"`{command}`\n\n" if command else "") + table + "\n"))
        kind = EXPERIMENTS[name].kind
        if name == "horizon":
            files.append(plot_horizon(rows, run_dir / "horizon.png"))
        else:
            if name == "stream":
                files.append(plot_state_norms(rows, run_dir / "stream_norms.png"))
            files.append(plot_experiment(rows, run_dir / f"{name}.png", name if kind == name else f"{name} ({kind})",
                                         neurone=name == "neurone"))
    return ExperimentResult(name, rows, table, run_dir, files, seconds, reused, len(missing), set_aside)


def _write(path: Path, text: str) -> Path:
    from ..rundir import write_atomic

    return write_atomic(path, text)
