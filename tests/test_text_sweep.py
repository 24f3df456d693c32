"""benchmarks/text_sweep.py: a seed-averaged sweep of `rnnlab train` on a real Dask LocalCluster."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "text_sweep.py"


def sweep(tmp_path, steps):
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 60, encoding="utf-8")
    command = [sys.executable, str(SCRIPT), "--data", str(text), "--grid", "dropout=0.0,0.2", "--seeds", "0-1",
               "--workers", "1", "--out", str(tmp_path / "sweep"), "--", "--hidden", "8", "--layers", "1",
               "--steps", str(steps), "--eval-every", "3", "--batch", "4", "--seq-len", "10"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def last_step(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()][-1]["step"]


def test_sweep_trains_each_point_per_seed_then_reuses_and_extends(tmp_path):
    first = sweep(tmp_path, 6)
    assert "4 run(s): 0 finished before and reused, 4 to train" in first
    rows = [line for line in first.splitlines() if line.startswith("| dropout")]
    assert len(rows) == 2 and all(row.split("|")[2].strip() == "2" for row in rows)  # two seeds each
    assert "±" in rows[0] and (tmp_path / "sweep" / "sweep.png").exists()
    assert "4 finished before and reused, 0 to train" in sweep(tmp_path, 6)
    assert "0 finished before and reused, 4 to train" in sweep(tmp_path, 9)  # each resumes from its checkpoint
    assert {last_step(d) for d in (tmp_path / "sweep").iterdir() if d.is_dir()} == {9}
