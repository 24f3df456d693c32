"""Where one training step's time goes, rnnlab and PyTorch side by side, for one config.

    python benchmarks/profile_step.py lstm 64 100 512            # cell B T H [layers]
    python benchmarks/profile_step.py lstm 32 64 128 --threads 1

rnnlab: cProfile over a few steps, each function's own time per step (a GEMM called from a
function counts in that function's own time: the driver's _forward's is the input projection and
the per-step h W_hh^T, _backward's the per-step dA W_hh and dx, weight_grads' dW_ih and dW_hh).
The compiled steps are wrapped in Python functions so that they show up on any Python (3.12's
cProfile folds calls into compiled code into the caller). PyTorch: its profiler's operators.
Same model as bench_rnn.py.
"""
from __future__ import annotations

import argparse
import os
import sys

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("cell", choices=["lstm", "gru", "rnn"])
p.add_argument("B", type=int)
p.add_argument("T", type=int)
p.add_argument("H", type=int)
p.add_argument("L", type=int, nargs="?", default=1)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--no-torch", action="store_true", help="profile rnnlab alone")
args = p.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import cProfile  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import bench_rnn as bench  # noqa: E402  (its two sides and their data)

cfg = bench.Config(args.cell, args.B, args.T, args.H, args.L)
weights = str(Path(tempfile.mkdtemp()) / "weights.npz")


def timed(fn):
    def step(*a):  # a Python frame around the compiled call, for cProfile to see
        return fn(*a)
    step.__code__ = step.__code__.replace(co_name=f"numba:{fn.__name__}")  # one row per step function
    return step


ours = bench.RnnlabSide()
fast = __import__("rnnlab").settings.fast
ours.setup(cfg, weights)
for _ in range(2):
    ours.train_step()
if fast is not None:  # the compiled loops of each cell (fused.loops_for), made by the warm-up steps
    for key, loops in fast.compiled.items():
        if key[0] != "loops":
            continue
        for name in ("forward_step", "backward_step", "forward_sweep", "backward_sweep"):
            setattr(loops, name, timed(getattr(loops, name)))
profiler = cProfile.Profile(time.perf_counter)
start = time.perf_counter()
profiler.enable()
for _ in range(args.steps):
    ours.train_step()
profiler.disable()
total = (time.perf_counter() - start) / args.steps
stats = pstats.Stats(profiler).stats
rows = sorted(((tt / args.steps, nc / args.steps, f"{os.path.basename(file)}:{name}")
               for (file, line, name), (_, nc, tt, _, _) in stats.items()), reverse=True)
print(f"## rnnlab {cfg.name}, {args.threads} thread(s): {total * 1e3:.1f} ms per training step (profiled)\n")
print("| function | own ms per step | share | calls per step |\n|---|---|---|---|")
for tt, nc, name in rows[:12]:
    print(f"| {name} | {tt * 1e3:.1f} | {tt / total:.0%} | {nc:g} |")

if not args.no_torch:  # in this process: run it with --no-torch and again alone for clean figures
    theirs = bench.TorchSide(args.threads)
    torch = theirs.torch
    theirs.setup(cfg, weights)
    for _ in range(2):
        theirs.train_step()
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            theirs.train_step()
    total = (time.perf_counter() - start) / args.steps
    print(f"\n## torch {cfg.name}, {args.threads} thread(s): {total * 1e3:.1f} ms per training step (profiled)\n")
    print("| operator | self ms per step | share | calls per step |\n|---|---|---|---|")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    for e in events[:10]:
        ms = e.self_cpu_time_total / 1e3 / args.steps
        print(f"| {e.key} | {ms:.1f} | {ms / 1e3 / total:.0%} | {e.count / args.steps:g} |")
