"""Finished runs on disk, so a sweep can be resumed: OUT/runs/<experiment>-<cell>-T<T>-s<seed>-<key>.json.

The key hashes the run's whole configuration and seed (`RunSpec.key`), so a changed setting
never reuses an old number. Each file is written atomically (a temporary file in the same
folder, then a rename): a sweep killed mid-write leaves the old state, never half a run. A file
that does not parse, or whose configuration differs from the run's, counts as missing.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .registry import RunSpec


class RunStore:
    """One JSON file per finished run, {"spec": ..., "row": ...}, under `root`/runs."""

    def __init__(self, root):
        self.folder = Path(root) / "runs"

    def path(self, spec: RunSpec) -> Path:
        T = "" if spec.T is None else f"-T{spec.T}"
        return self.folder / f"{spec.experiment}-{spec.cell}{T}-s{spec.seed}-{spec.key()}.json"

    def load(self, spec: RunSpec) -> dict | None:
        """The stored row of this exact run, or None."""
        try:
            stored = json.loads(self.path(spec).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("spec") != asdict(spec):
            return None
        return stored.get("row")

    def save(self, spec: RunSpec, row: dict) -> Path:
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"spec": asdict(spec), "row": row}), encoding="utf-8")
        os.replace(tmp, path)
        return path
