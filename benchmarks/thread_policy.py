"""The measurements behind rnnlab's thread policy (src/rnnlab/fast/threads.py): one GEMM of each kind
the time loop does, at 1 thread and at every allowed thread, idle and beside a noisy neighbour.

    python benchmarks/thread_policy.py              # idle, then busy (starts neighbour.py itself)
    python benchmarks/thread_policy.py --threads 4

Kinds: "step" is one step's recurrent GEMM h_{t-1} W_hh^T, (B, H) x (H, G*H); "all steps" is the
input projection of a whole sequence, (T*B, H) x (H, G*H). Each cell: median microseconds per call.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

SHAPES = [  # (kind, rows, inner, cols)
    ("step", 1, 100, 400), ("step", 32, 128, 512), ("step", 64, 256, 1024), ("step", 64, 512, 2048),
    ("all steps", 32 * 64, 128, 512), ("all steps", 64 * 100, 256, 1024), ("all steps", 64 * 100, 512, 2048),
]


def median_us(a, b, out, seconds: float) -> float:
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def table(controller, threads: int, seconds: float) -> list[str]:
    rng = np.random.default_rng(0)
    rows = []
    for kind, m, k, n in SHAPES:
        a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        us = {}
        for count in (1, threads):
            with controller.limit(limits=count, user_api="blas"):
                np.matmul(a, b, out=out)
                us[count] = median_us(a, b, out, seconds)
        rows.append(f"| {kind} | ({m}, {k}) x ({k}, {n}) | {us[1]:.1f} | {us[threads]:.1f} | "
                    f"{us[threads] / us[1]:.2f} |")
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seconds", type=float, default=0.5, help="per shape and thread count")
    args = p.parse_args()
    controller = ThreadpoolController()
    header = ["| kind | GEMM | 1 thread, us | %d threads, us | ratio |" % args.threads, "|---|---|---|---|---|"]
    print("## idle\n", *header, *table(controller, args.threads, args.seconds), sep="\n", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # its default threads
    neighbour = subprocess.Popen([sys.executable, str(Path(__file__).with_name("neighbour.py"))], env=env)
    try:
        time.sleep(1.0)
        print("\n## beside the noisy neighbour (pid %d)\n" % neighbour.pid, *header,
              *table(controller, args.threads, args.seconds), sep="\n", flush=True)
    finally:
        neighbour.terminate()
        neighbour.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
