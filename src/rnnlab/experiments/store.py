"""Finished runs on disk, so a sweep can be resumed: OUT/runs/<experiment>-<cell>-T<T>-s<seed>-<key>.json.

The key hashes the run's whole configuration and seed (`RunSpec.key`), so a changed setting
never reuses an old number. Each file is written atomically (a temporary file in the same
folder, then a rename): a sweep killed mid-write leaves the old state, never half a run.

A file is reused only when it reads back as the run it is named for: JSON holding this run's
exact settings and a row with every column the tables and plots read, of the right type, for the
same run. Any other file under that name (cut short, edited, copied from another sweep) is moved to
OUT/runs/set-aside/, never deleted, and named in `set_aside`; the run is trained again.

    store = RunStore("runs/adding")
    row = store.load(spec)          # the stored row, or None (missing, or set aside: see store.set_aside)
    store.save(spec, row)
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from .registry import EXPERIMENTS, RunSpec

ASIDE = "set-aside"
# the row's copy of the run's settings: column -> RunSpec field
SETTINGS = {"task": "experiment", "model": "cell", "hidden": "hidden", "T": "T", "steps": "steps",
            "batch": "batch", "lr": "lr", "seed": "seed"}
# what an experiment's tables and plots read beyond the common columns
EXTRA_LISTS = {"neurone": ("positions",), "stream": ("state_norms_training", "state_norms_stream")}


class RunStore:
    """One JSON file per finished run, {"spec": ..., "row": ...}, under `root`/runs."""

    def __init__(self, root):
        self.folder = Path(root) / "runs"
        self.set_aside: list[str] = []  # one line per file moved aside: which, why, and where it went

    def path(self, spec: RunSpec) -> Path:
        T = "" if spec.T is None else f"-T{spec.T}"
        return self.folder / f"{spec.experiment}-{spec.cell}{T}-s{spec.seed}-{spec.key()}.json"

    def load(self, spec: RunSpec) -> dict | None:
        """The stored row of this exact run; None when there is none or the file was set aside."""
        path = self.path(spec)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            return self._aside(path, f"unreadable ({error.strerror or error})")
        try:
            stored = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._aside(path, "not a JSON document (cut short or damaged)")
        problem = record_problem(stored, spec)
        return self._aside(path, problem) if problem else stored["row"]

    def _aside(self, path: Path, reason: str) -> None:
        folder = path.parent / ASIDE
        dest = folder / path.name
        n = 1
        while dest.exists():
            dest, n = folder / f"{path.name}.{n}", n + 1
        try:
            folder.mkdir(exist_ok=True)
            os.replace(path, dest)
            where = f"moved to {dest}"
        except OSError as error:  # the run is trained again all the same, and its save replaces the file
            where = f"could not be moved aside ({error.strerror or error})"
        self.set_aside.append(f"{path}: {reason}; {where}; the run is trained again")
        return None

    def save(self, spec: RunSpec, row: dict) -> Path:
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..io import atomic_write_bytes  # the one atomic writer (fsynced temp file, renamed)

        return atomic_write_bytes(path, json.dumps({"spec": asdict(spec), "row": row}))


def _real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def record_problem(stored, spec: RunSpec) -> str | None:
    """Why `stored` (a parsed run file) is not this run's record, or None when it is."""
    if not isinstance(stored, dict) or not isinstance(stored.get("row"), dict) or "spec" not in stored:
        return "not a run record ({\"spec\": ..., \"row\": ...})"
    if stored["spec"] != asdict(spec):
        return "its settings are not the ones its name stands for (edited, or another run's file)"
    row = stored["row"]
    for column, field in SETTINGS.items():
        if column not in row or row[column] != getattr(spec, field):
            return f"its row's {column!r} is {row.get(column)!r}, not the run's {getattr(spec, field)!r}"
    experiment = EXPERIMENTS.get(spec.experiment)
    if experiment is not None and row.get("metric") != experiment.metric:
        return f"its row's 'metric' is {row.get('metric')!r}, not {experiment.metric!r}"
    for column in ("value", "baseline"):
        if not _real(row.get(column)):
            return f"its row's {column!r} is {row.get(column)!r}, not a number"
    if not _real(row.get("seconds")) or not math.isfinite(row["seconds"]) or row["seconds"] < 0:
        return f"its row's 'seconds' is {row.get('seconds')!r}, not a duration"
    if not isinstance(row.get("losses"), list) or not all(_real(x) for x in row["losses"]):
        return "its row's 'losses' is not a list of numbers"
    if row.get("success") not in (True, False, None):
        return f"its row's 'success' is {row.get('success')!r}, not true, false or null"
    for column in EXTRA_LISTS.get(spec.experiment, ()):
        if not isinstance(row.get(column), list) or not row[column]:
            return f"its row's {column!r} is missing or empty"
    if spec.experiment == "neurone" and not all(
            isinstance(p, dict) and {"reads", "next", "guess"} <= set(p) and _real(p.get("p_next"))
            and _real(p.get("bayes_current_char")) and _real(p.get("bayes_prefix")) for p in row["positions"]):
        return "its row's 'positions' are damaged"
    if spec.experiment == "stream" and not all(_real(x) for column in EXTRA_LISTS["stream"] for x in row[column]):
        return "its row's state norms are not numbers"
    if spec.experiment == "copy" and not _real(row.get("symbol_accuracy")):
        return f"its row's 'symbol_accuracy' is {row.get('symbol_accuracy')!r}, not a number"
    examples = row.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, dict) and {"source", "predicted", "target"} <= set(e)
                                                 for e in examples):
        return "its row's 'examples' are damaged"
    return None
