"""A noisy neighbour: what a second RNN run next to yours does to the cores.

    python benchmarks/neighbour.py        # until killed

Loops 64 GEMMs of (32, 128) x (128, 512) float32 on NumPy's default threads (OpenBLAS spins its
workers between calls), as one step of a second small LSTM run would. bench_rnn.py and
thread_policy.py start it for the busy measurements and stop it by its PID.
"""
import numpy as np

rng = np.random.default_rng(0)
a = rng.standard_normal((32, 128), dtype=np.float32)
w = rng.standard_normal((128, 512), dtype=np.float32)
out = np.empty((32, 512), np.float32)
while True:
    for _ in range(64):
        np.matmul(a, w, out=out)
