"""A seed-averaged sweep of `rnnlab train` settings on Dask: which recipe for a text, and how sure.

    python benchmarks/text_sweep.py --data ../shared/data/tinyshakespeare.txt \\
        --grid dropout=0.1,0.25 --seeds 0-1 --out runs/sweep -- --hidden 384 --steps 1500
    python benchmarks/text_sweep.py ... --address tcp://host:8786    # the workers of a running scheduler

Every point of the grid (the product of the --grid options) runs once per seed, each as its own
`rnnlab train` process on a Dask worker, with one BLAS thread (--threads, default 1). The
arguments after `--` go to every run. Each run has its own run directory, OUT/<point>-s<seed>: a
run that finished is reused, one that was stopped resumes from its checkpoint (`--resume`, bit
for bit), so running the same command again trains only what is missing. The table gives, per
point, the validation loss (nats/char) at the end and the best one, mean ± sample std over the
seeds, and the wall time; sweep.md and sweep.png (each seed faint, the mean bold) go to OUT.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rnnlab.experiments.registry import parse_seeds


def parse_grid(options: list[str]) -> list[dict]:
    """['dropout=0.1,0.25', 'hidden=256,384'] -> the 4 points of their product, as dicts."""
    axes = []
    for option in options:
        name, _, values = option.partition("=")
        if not name or not values:
            raise SystemExit(f"--grid takes name=v1,v2 (e.g. dropout=0.1,0.25); got {option!r}")
        axes.append([(name, v) for v in values.split(",")])
    return [dict(point) for point in itertools.product(*axes)]


def slug(point: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in point.items()) or "default"


def read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: rnnlab's own resume drops it too
            continue
    return rows


def finished(run_dir: Path, steps: int | None) -> bool:
    rows = [r for r in read_log(run_dir) if "step" in r]
    return bool(rows) and steps is not None and rows[-1]["step"] >= steps


def train(command: list[str], threads: int) -> tuple[int, float, str]:
    """One `rnnlab train` in a worker: (exit status, wall seconds, the last lines it printed)."""
    env = {**os.environ, **{v: str(threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return done.returncode, time.perf_counter() - start, tail


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, passthrough = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--grid", nargs="*", default=[], help="name=v1,v2 for a `rnnlab train` option --name")
    p.add_argument("--seeds", default="0-1")
    p.add_argument("--out", required=True)
    p.add_argument("--address", help="a running Dask scheduler (default: a LocalCluster of --workers processes)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per run")
    args = p.parse_args(ours)
    points, seeds, out = parse_grid(args.grid), parse_seeds(args.seeds), Path(args.out)
    steps = option(passthrough, "--steps")
    steps = int(steps) if steps else None

    runs = []  # (point, seed, run_dir, command or None when finished)
    for point, seed in itertools.product(points, seeds):
        run_dir = out / f"{slug(point)}-s{seed}"
        if finished(run_dir, steps):
            command = None
        elif (run_dir / "checkpoint.safetensors").exists():
            command = [sys.executable, "-m", "rnnlab", "train", "--resume", str(run_dir), "--no-progress",
                       "--threads", str(args.threads)] + (["--steps", str(steps)] if steps else [])
        else:
            options = [a for k, v in point.items() for a in (f"--{k.replace('_', '-')}", v)]
            command = [sys.executable, "-m", "rnnlab", "train", "--data", args.data, "--seed", str(seed), "--out",
                       str(run_dir), "--overwrite", "--no-progress", "--threads", str(args.threads)] + \
                options + passthrough
        runs.append((point, seed, run_dir, command))
    todo = [r for r in runs if r[3] is not None]
    print(f"{len(runs)} run(s): {len(runs) - len(todo)} finished before and reused, {len(todo)} to train", flush=True)

    start = time.perf_counter()
    if todo:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None if args.address else LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                         processes=True, dashboard_address=None)
        with Client(args.address or cluster) as client:
            futures = {client.submit(train, command, args.threads, pure=False): (point, seed)
                       for point, seed, _, command in todo}
            for future in as_completed(futures):
                code, seconds, tail = future.result()
                point, seed = futures[future]
                print(f"{slug(point)} seed {seed}: exit {code} after {seconds / 60:.1f} min", flush=True)
                if code != 0:
                    print(tail, file=sys.stderr)
        if cluster is not None:
            cluster.close()
    wall = time.perf_counter() - start

    table = summarize(points, seeds, out)
    text = (f"`python benchmarks/text_sweep.py {' '.join(argv)}`\n\n{table}\n\n"
            f"wall time of this invocation: {wall / 60:.1f} min\n")
    (out / "sweep.md").write_text(text, encoding="utf-8")
    plot(points, seeds, out)
    print(text)
    return 0


def curves(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [r for r in read_log(run_dir) if r.get("val_loss") is not None]
    return (np.array([r["step"] for r in rows]), np.array([r["wall_s"] for r in rows]) / 60,
            np.array([r["val_loss"] for r in rows]))


def summarize(points: list[dict], seeds: list[int], out: Path) -> str:
    lines = ["| setting | seeds | validation at the end | best validation | minutes per run |",
             "|---|---|---:|---:|---:|"]
    for point in points:
        last, best, minutes = [], [], []
        for seed in seeds:
            _, wall, val = curves(out / f"{slug(point)}-s{seed}")
            if len(val):
                last.append(val[-1]), best.append(val.min()), minutes.append(wall[-1])
        if not last:
            continue
        spread = lambda v: f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
        lines.append(f"| {slug(point)} | {len(last)} | {spread(last)} | {spread(best)} | {np.mean(minutes):.1f} |")
    return "\n".join(lines)


def plot(points: list[dict], seeds: list[int], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, point in enumerate(points):
        runs = [curves(out / f"{slug(point)}-s{seed}") for seed in seeds]
        runs = [r for r in runs if len(r[0])]
        for steps, _, val in runs:
            ax.plot(steps, val, color=f"C{k}", alpha=0.3, lw=1)
        n = min(len(r[0]) for r in runs) if runs else 0
        if n:
            ax.plot(runs[0][0][:n], np.mean([r[2][:n] for r in runs], axis=0), color=f"C{k}", lw=2,
                    label=f"{slug(point)} ({len(runs)} seeds)")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
