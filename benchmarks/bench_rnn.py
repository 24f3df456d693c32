"""rnnlab against PyTorch on the CPU: a char-level model's training step and its forward pass.

    python benchmarks/bench_rnn.py                       # every config, the cost-growth table, peak memory
    python benchmarks/bench_rnn.py --out results.md      # the same, also written to a file
    python benchmarks/bench_rnn.py --tiny                # one tiny config in seconds (CI runs this)
    python benchmarks/bench_rnn.py --only lstm-32x64x128 --kernel numpy   # one row, NumPy time loop

The model is the one char-rnn trains: Embedding(V=65, H) -> LSTM/GRU/RNN(H, H, layers) ->
Linear(H, V) -> softmax cross-entropy, then backward and an Adam step. rnnlab writes that step with
its own layers; PyTorch with torch.nn and torch.optim.Adam. Both run float32 on the same number of
threads, in this one process, interleaved in blocks (rnnlab's, torch's, torch's, rnnlab's, ...; see
time_interleaved) after a warm-up, and each row reports the median. GFLOP/s counts the GEMMs only
(3x the forward's for a training step) and is given as a share of the float32 GEMM peak this script
measures through NumPy's BLAS. Pin the process to the cores you mean (`taskset -c 0,1 python ...`).

Shapes: B = batch, T = time, H = hidden units, L = layers, V = vocabulary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

V = 65  # vocabulary: tinyshakespeare's characters


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS / torch threads (default 2)")
    p.add_argument("--kernel", default="fast", choices=["fast", "numba", "numpy", "reference"],
                   help="rnnlab's recurrent kernel (default fast: Numba where installed)")
    p.add_argument("--tiny", "--quick", action="store_true", help="one tiny config, a few calls: proves it runs")
    p.add_argument("--only", nargs="*", help="run only the configs with these names")
    p.add_argument("--seconds", type=float, default=3.0, help="timing budget per config and side (default 3)")
    p.add_argument("--no-growth", action="store_true", help="skip the cost-growth table")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-torch", action="store_true", help="time rnnlab alone")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--memory-probe", nargs=2, metavar=("FRAMEWORK", "CONFIG"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread counts must be set before NumPy / torch load their libraries
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import rnnlab  # noqa: E402
from rnnlab.nn import backend  # noqa: E402

from rnnlab.optim import Adam  # noqa: E402

try:
    import torch
except ImportError:  # rnnlab alone
    torch = None


@dataclass(frozen=True)
class Config:
    cell: str  # "lstm", "gru", "rnn" (tanh)
    B: int
    T: int
    H: int
    L: int = 1

    @property
    def name(self) -> str:
        return f"{self.cell}-{self.B}x{self.T}x{self.H}" + (f"-L{self.L}" if self.L > 1 else "")

    def gemm_flops(self, train: bool) -> float:
        """GEMM flops of one forward (train: x3, for dx and dW in backward) over all layers and the head."""
        G = {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]
        per_layer = 2 * self.T * self.B * G * self.H * (self.H + self.H)  # x W_ih^T and h W_hh^T, D = H
        forward = self.L * per_layer + 2 * self.T * self.B * self.H * V
        return forward * (3 if train else 1)


# issue 6: the largest rnnlab/torch ratio each training step may have (every forward pass: 1.0)
TRAIN_TARGETS = {
    Config("lstm", 32, 64, 128): 0.8, Config("lstm", 64, 100, 256): 0.8, Config("lstm", 64, 100, 512): 1.0,
    Config("lstm", 1, 25, 100): 0.5, Config("gru", 64, 100, 256): 1.0, Config("rnn", 64, 100, 256): 1.0,
}
CONFIGS = [
    Config("lstm", 32, 64, 128), Config("lstm", 64, 100, 256), Config("lstm", 64, 100, 512), Config("lstm", 1, 25, 100),
    Config("lstm", 32, 64, 128, 2), Config("lstm", 64, 100, 256, 2), Config("lstm", 64, 100, 512, 2),
    Config("lstm", 1, 25, 100, 2), Config("gru", 64, 100, 256), Config("rnn", 64, 100, 256),
]
LONG = Config("lstm", 16, 2000, 256)
TINY = Config("lstm", 2, 5, 8)
PEAK_SHARE_TARGET = {Config("lstm", 64, 100, 512): 0.70}


# --- the two models ------------------------------------------------------------------------------
class RnnlabModel:
    """Embedding -> recurrent stack -> Linear, with a hand-written training step (the Layer protocol)."""

    def __init__(self, cfg: Config, kernel: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.emb = rnnlab.Embedding(V, cfg.H, rng=rng)
        make = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}[cfg.cell]
        self.rnn = make(cfg.H, cfg.H, num_layers=cfg.L, rng=rng, kernel=kernel)
        self.head = rnnlab.Linear(cfg.H, V, rng=rng)
        self.layers = (self.emb, self.rnn, self.head)
        self.params = [p for layer in self.layers for p in layer.parameters()]
        self.opt = Adam(self.params, lr=1e-3)

    def load_from(self, theirs) -> None:
        """Copy a TorchModel's weights (PyTorch's parameter names, so no renaming)."""
        for ours, their in zip(self.layers, (theirs.emb, theirs.rnn, theirs.head)):
            ours.load_state_dict({k: v.detach().numpy() for k, v in their.state_dict().items()})

    def train_step(self, ids, targets) -> float:
        self.opt.zero_grad()
        for layer in self.layers:
            layer.train()
        y, _ = self.rnn(self.emb(ids))  # (B, T, H)
        loss, dlogits = rnnlab.cross_entropy(self.head(y), targets)  # logits (B, T, V)
        dx, _ = self.rnn.backward(self.head.backward(dlogits))
        self.emb.backward(dx)
        self.opt.step()
        return loss

    def infer(self, ids):
        for layer in self.layers:
            layer.eval()
        y, _ = self.rnn(self.emb(ids))
        return self.head(y)


class TorchModel:
    def __init__(self, cfg: Config, seed: int = 0):
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(V, cfg.H)
        make = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell]
        self.rnn = make(cfg.H, cfg.H, num_layers=cfg.L, batch_first=True)
        self.head = torch.nn.Linear(cfg.H, V)
        self.modules = torch.nn.ModuleList([self.emb, self.rnn, self.head])
        self.opt = torch.optim.Adam(self.modules.parameters(), lr=1e-3)

    def train_step(self, ids, targets) -> float:
        self.opt.zero_grad()
        self.modules.train()
        y, _ = self.rnn(self.emb(ids))
        loss = torch.nn.functional.cross_entropy(self.head(y).reshape(-1, V), targets.reshape(-1))
        loss.backward()
        self.opt.step()
        return loss.item()

    def infer(self, ids):
        self.modules.eval()
        with torch.inference_mode():
            y, _ = self.rnn(self.emb(ids))
            return self.head(y)


# --- measuring -----------------------------------------------------------------------------------
def machine_info(threads: int) -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except Exception:
        pass
    numba_version = "not installed"
    if backend.numba_available():
        import numba
        numba_version = numba.__version__
    if ARGS.kernel == "reference":
        loop = "one cell step at a time"
    else:
        loop = "time loop in " + ("Numba" if backend.resolve(None if ARGS.kernel == "fast" else ARGS.kernel) else "NumPy")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = f", pinned to CPUs {cpus}" if cpus and len(cpus) < (os.cpu_count() or 0) else ""
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical cores{pinned}; threads used: {threads} (BLAS and torch)",
             f"- Python {platform.python_version()}, NumPy {np.__version__} ({blas}), numba {numba_version}",
             f"- rnnlab kernel: {ARGS.kernel} ({loop})"]
    if torch is not None:
        lines.append(f"- PyTorch {torch.__version__} (mkldnn {torch.backends.mkldnn.is_available()}, "
                     f"{torch.get_num_threads()} threads)")
    return lines


def gemm_peak(seconds: float = 1.0, n: int = 2048) -> float:
    """Best float32 GEMM rate through NumPy's BLAS, GFLOP/s, on (n, n) @ (n, n)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def data(cfg: Config, seed: int = 1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (cfg.B, cfg.T))
    targets = rng.integers(0, V, (cfg.B, cfg.T))
    return ids, targets


def time_interleaved(fns: dict, seconds: float, warmup: int = 2) -> dict:
    """Median seconds per call of each fn. The fns take turns in blocks of calls, in alternating
    order (A B B A A B ...), and the first call of each block is not counted: on two cores, the
    runtime that just ran leaves its thread pool spinning (OpenMP's and OpenBLAS's workers wait
    busy for a while after each parallel call), and the other's first call would pay for it."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    per_call = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        fn()
        per_call[name] = time.perf_counter() - t
    block = {name: int(min(20, max(3, 0.2 / max(s, 1e-9)))) for name, s in per_call.items()}  # >= 0.2 s
    longest = max(block[name] * per_call[name] for name in fns)
    rounds = int(min(50, max(2, seconds / max(longest, 1e-9))))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            for k in range(block[name]):
                t = time.perf_counter()
                fns[name]()
                if k > 0:
                    times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def check_same_loss(cfg: Config, ours: RnnlabModel, theirs: TorchModel) -> None:
    """Same weights, same batch -> the same loss: both sides compute the same model."""
    ids, targets = data(cfg)
    ours.load_from(theirs)
    a = ours.train_step(ids, targets)
    b = theirs.train_step(torch.from_numpy(ids), torch.from_numpy(targets))
    if not abs(a - b) <= 1e-3 * max(1.0, abs(b)):
        raise AssertionError(f"{cfg.name}: rnnlab loss {a} != torch loss {b}")


def run_config(cfg: Config, train: bool, seconds: float, use_torch: bool) -> dict:
    ours = RnnlabModel(cfg, ARGS.kernel)
    ids, targets = data(cfg)
    fns = {"rnnlab": (lambda: ours.train_step(ids, targets)) if train else (lambda: ours.infer(ids))}
    if use_torch:
        theirs = TorchModel(cfg)
        if train:
            check_same_loss(cfg, ours, theirs)
        ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets)
        fns["torch"] = (lambda: theirs.train_step(ids_t, targets_t)) if train else (lambda: theirs.infer(ids_t))
    return time_interleaved(fns, seconds)


def memory_probe(framework: str, cfg: Config) -> dict:
    """Run in a fresh process: the resident memory one training step adds to the process as it was
    before the model was built (weights, gradients, optimizer state, activations and workspace)."""
    import resource
    import tracemalloc

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    ids, targets = data(cfg)
    warm = Config(cfg.cell, cfg.B, 2, 8, cfg.L)  # load each side's libraries (oneDNN; numba, the same kernels) first
    if framework == "torch":
        ids, targets = torch.from_numpy(ids), torch.from_numpy(targets)
        TorchModel(warm).train_step(*(torch.from_numpy(a) for a in data(warm)))
    else:
        RnnlabModel(warm, ARGS.kernel).train_step(*data(warm))
    base = rss_mb()
    tracemalloc.start()
    model = TorchModel(cfg) if framework == "torch" else RnnlabModel(cfg, ARGS.kernel)
    model.train_step(ids, targets)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"rss_peak_mb": peak - base, "tracemalloc_peak_mb": traced_peak / 2 ** 20}


def peak_memory(cfg: Config, use_torch: bool) -> dict:
    results = {}
    for framework in (["rnnlab", "torch"] if use_torch else ["rnnlab"]):
        cmd = [sys.executable, __file__, "--threads", str(ARGS.threads), "--kernel", ARGS.kernel,
               "--memory-probe", framework, json.dumps(cfg.__dict__)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[framework] = json.loads(out.strip().splitlines()[-1])
    return results


# --- the report ----------------------------------------------------------------------------------
def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def verdict(ratio: float | None, target: float | None) -> str:
    if target is None or ratio is None:
        return ""
    return f"<= {target:.2f}: {'met' if ratio <= target else 'MISSED'}"


def main() -> int:
    if ARGS.memory_probe:
        framework, cfg_json = ARGS.memory_probe
        print(json.dumps(memory_probe(framework, Config(**json.loads(cfg_json)))))
        return 0
    use_torch = torch is not None and not ARGS.no_torch
    if use_torch:
        torch.set_num_threads(ARGS.threads)
    peak = gemm_peak(0.1, 256) if ARGS.tiny else gemm_peak(2.0)
    lines = ["## rnnlab vs PyTorch, CPU, float32", "", *machine_info(ARGS.threads),
             f"- float32 GEMM peak through NumPy ({'256' if ARGS.tiny else '2048'}^3 matmul, best of runs): "
             f"{peak:.0f} GFLOP/s",
             f"- command: `python benchmarks/bench_rnn.py {' '.join(sys.argv[1:])}`".replace("  ", " "), ""]
    print("\n".join(lines), flush=True)

    header = ("| config (B, T, H, L) | step | rnnlab ms | torch ms | rnnlab/torch | target | GEMM-peak bound ms | "
              "rnnlab chars/s | rnnlab GFLOP/s (% of peak) | torch GFLOP/s (% of peak) |")
    table = [header, "|" + "---|" * (header.count("|") - 1)]
    print("\n".join(table), flush=True)
    configs = [TINY] if ARGS.tiny else CONFIGS
    if ARGS.only:
        configs = [c for c in CONFIGS + [LONG, TINY] if c.name in ARGS.only]
    for cfg in configs:
        for train in (True, False):
            t = run_config(cfg, train, 0.0 if ARGS.tiny else ARGS.seconds, use_torch)
            ratio = t["rnnlab"] / t["torch"] if "torch" in t else None
            target = (TRAIN_TARGETS.get(cfg) if train else 1.0) if not ARGS.tiny else None
            flops = cfg.gemm_flops(train)
            cells = [f"{cfg.cell} {cfg.B}, {cfg.T}, {cfg.H}, {cfg.L}", "train" if train else "forward",
                     fmt_ms(t["rnnlab"]), fmt_ms(t["torch"]) if "torch" in t else "-",
                     f"{ratio:.2f}" if ratio is not None else "-", verdict(ratio, target),
                     fmt_ms(flops / peak / 1e9), f"{cfg.B * cfg.T / t['rnnlab']:,.0f}",
                     f"{flops / t['rnnlab'] / 1e9:.0f} ({100 * flops / t['rnnlab'] / 1e9 / peak:.0f}%)",
                     f"{flops / t['torch'] / 1e9:.0f} ({100 * flops / t['torch'] / 1e9 / peak:.0f}%)" if "torch" in t else "-"]
            share_target = PEAK_SHARE_TARGET.get(cfg) if train and not ARGS.tiny else None
            if share_target is not None:
                share = flops / t["rnnlab"] / 1e9 / peak
                cells[5] += f"; peak >= {share_target:.0%}: {'met' if share >= share_target else 'MISSED'}"
            row = "| " + " | ".join(cells) + " |"
            table.append(row)
            print(row, flush=True)
    lines += table

    if not ARGS.tiny and not ARGS.only:
        lines += long_sequence(use_torch)
        if not ARGS.no_growth:
            lines += cost_growth()
    if ARGS.out:
        ARGS.out.write_text("\n".join(lines) + "\n")
    return 0


def long_sequence(use_torch: bool) -> list[str]:
    cfg = LONG
    t = run_config(cfg, True, ARGS.seconds, use_torch)
    out = ["", f"### Long sequence: LSTM training step at B={cfg.B}, T={cfg.T}, H={cfg.H}", ""]
    row = f"- time: rnnlab {fmt_ms(t['rnnlab'])} ms"
    if "torch" in t:
        row += f", torch {fmt_ms(t['torch'])} ms, ratio {t['rnnlab'] / t['torch']:.2f}"
    out.append(row)
    if not ARGS.no_memory:
        mem = peak_memory(cfg, use_torch)
        ours = mem["rnnlab"]
        row = (f"- peak memory of one training step (resident memory added to the process before the "
               f"model was built, fresh process each): rnnlab {ours['rss_peak_mb']:.0f} MB "
               f"(tracemalloc peak {ours['tracemalloc_peak_mb']:.0f} MB)")
        if "torch" in mem:
            theirs = mem["torch"]["rss_peak_mb"]
            row += (f", torch {theirs:.0f} MB; rnnlab/torch {ours['rss_peak_mb'] / theirs:.2f}: "
                    f"target <= 1.00 {'met' if ours['rss_peak_mb'] <= theirs else 'MISSED'}")
        out.append(row)
    print("\n".join(out), flush=True)
    return out


def cost_growth() -> list[str]:
    """rnnlab's LSTM training step as T, B and H grow: ms, and the exponent between neighbours."""
    out = ["", "### Cost growth: rnnlab LSTM training step (ms; exponent k of time ~ size^k between neighbours)", ""]
    sweeps = [("T", [Config("lstm", 32, T, 256) for T in (25, 50, 100, 200, 400)]),
              ("B", [Config("lstm", B, 100, 256) for B in (8, 16, 32, 64, 128)]),
              ("H", [Config("lstm", 32, 50, H) for H in (64, 128, 256, 512, 1024)])]
    for axis, cfgs in sweeps:
        sizes, ms = [], []
        for cfg in cfgs:
            t = run_config(cfg, True, min(ARGS.seconds, 1.5), use_torch=False)["rnnlab"]
            sizes.append(getattr(cfg, axis))
            ms.append(t * 1e3)
        slopes = [np.log(ms[i + 1] / ms[i]) / np.log(sizes[i + 1] / sizes[i]) for i in range(len(ms) - 1)]
        fixed = {"T": "B=32, H=256", "B": "T=100, H=256", "H": "B=32, T=50"}[axis]
        row = f"- {axis} ({fixed}): " + ", ".join(f"{s}: {m:.3g}" for s, m in zip(sizes, ms))
        row += "; k = " + ", ".join(f"{k:.2f}" for k in slopes)
        out.append(row)
        print(row, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
