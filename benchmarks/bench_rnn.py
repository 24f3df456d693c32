"""rnnlab against PyTorch on the CPU, each in its own process: training step, inference, generation.

    python benchmarks/bench_rnn.py                     # every config, idle then beside a noisy neighbour
    python benchmarks/bench_rnn.py --out results.md    # the same, also written to a file
    python benchmarks/bench_rnn.py --tiny              # tiny sizes in seconds: proves it runs (CI)
    python benchmarks/bench_rnn.py --only lstm-32x64x128 --no-busy --no-generate

The step is char-rnn's: Embedding(V=65, H) -> LSTM/GRU/RNN(H, H, layers) -> Linear(H, V) ->
softmax cross-entropy -> backward -> Adam (rnnlab's CharRNN with PyTorch's uniform init, against
the same three torch.nn modules); inference is the forward alone (torch under inference_mode,
rnnlab under no_grad). Each framework runs in a persistent worker
process of its own (this script with --worker), started with the same thread count in
OPENBLAS/OMP/MKL_NUM_THREADS before it imports anything, so no two thread pools share a process.
The coordinator (no numerics of its own) sends both workers the same config; rnnlab's worker
builds the model and writes its weights to a .npz file, torch's worker loads them, and both
compute the first loss on the same batch, which must agree. Then the workers take turns in blocks
of calls (rnnlab, torch, torch, rnnlab, ...), and each cell is a median. After each block the
coordinator waits until none of that worker's threads runs (Linux's /proc; a 0.3 s pause
elsewhere): a runtime's pool spins after its last call (torch's ~20 ms, OpenBLAS's ~120 ms here),
and without the wait the next block shared the cores with it, and rnnlab's thread policy read it as
a neighbour (its 2-layer (64, 100, 256) LSTM inference read 173-196 ms that way, 123 ms with the
wait). The first call of each block is not counted either.

Dense inputs: the bare LSTM layer alone, x (B, T, H) float32 in, loss sum(y * dy) for a fixed random
dy (what a time series, a decoder or an upper layer gets: no embedding to fold), torch.nn.LSTM
against rnnlab.LSTM with the same weights, training step (forward, backward, Adam) and inference;
with each side's share of the machine's sgemm peak, measured in rnnlab's worker as the best of
(2048, 512) x (512, 2048) float32 GEMMs on the same threads (the recurrent layer's flops:
forward 2 * B * T * (D + H) * 4H, backward twice that).

Busy: the same, for the neighbour configs, while benchmarks/neighbour.py (64 GEMMs of (32, 128) x
(128, 512) in a loop on NumPy's default threads: a second small RNN run) runs beside; the
coordinator starts it and stops it by its PID. Generation: the default char model (E = 64, 2 x 256
LSTM) sampling one character at a time, rnnlab's sampler against torch.nn.LSTM stepped one
character at a time with the same weights.

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
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
V = 65  # vocabulary: tinyshakespeare's characters
GEN_MODEL = {"E": 64, "H": 256, "L": 2}  # rnnlab's default CharRNN


@dataclass(frozen=True)
class Config:
    cell: str  # "lstm", "gru", "rnn" (tanh)
    B: int
    T: int
    H: int
    L: int = 1
    dense: bool = False  # the bare layer on dense inputs, not the char model

    @property
    def name(self) -> str:
        return (("dense-" if self.dense else "") + f"{self.cell}-{self.B}x{self.T}x{self.H}"
                + (f"-L{self.L}" if self.L > 1 else ""))

    @property
    def label(self) -> str:
        return ("dense " if self.dense else "") + f"{self.cell} {self.B}, {self.T}, {self.H}, {self.L}"

    def flops(self, train: bool) -> float:
        """The recurrent layers' flops for one call (D = H): the forward's GEMMs, and twice that back."""
        G = {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]
        forward = 2 * self.B * self.T * 2 * self.H * G * self.H * self.L
        return 3 * forward if train else forward


def _c(cell, B, T, H, L=1):
    return Config(cell, B, T, H, L)


CONFIGS = [_c("lstm", 32, 64, 128), _c("lstm", 32, 64, 128, 2), _c("lstm", 64, 100, 256),
           _c("lstm", 64, 100, 256, 2), _c("lstm", 64, 100, 512), _c("lstm", 64, 100, 512, 2),
           _c("lstm", 1, 25, 100), _c("gru", 64, 100, 256), _c("gru", 32, 64, 128),
           _c("rnn", 64, 100, 256), _c("rnn", 32, 64, 128)]
DENSE_CONFIGS = [Config("lstm", 32, 64, 128, dense=True), Config("lstm", 64, 100, 256, dense=True),
                 Config("lstm", 64, 100, 512, dense=True), Config("lstm", 16, 100, 1024, dense=True)]
DENSE_TARGET = 1.0  # issue 27: rnnlab/torch <= 1 for training and inference on dense inputs
BUSY_CONFIGS = [_c("lstm", 32, 64, 128), _c("lstm", 64, 100, 256)]
TINY = _c("lstm", 2, 5, 8)
# issue 11's targets: the largest rnnlab/torch time ratio (train), every inference <= 0.8, busy <= 3x idle
TRAIN_TARGET = {c: (0.5 if c.B == 1 else 1.0) if c.cell == "lstm" else 0.8 for c in CONFIGS}
INFER_TARGET = 0.8
BUSY_TARGET = 3.0
GEN_TARGET = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for each side (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing budget per config, task and side (default 2)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, a few calls each: proves it runs")
    p.add_argument("--only", nargs="*", help="run only the configs with these names (e.g. lstm-32x64x128-L2)")
    p.add_argument("--no-busy", action="store_true", help="skip the noisy-neighbour table")
    p.add_argument("--no-generate", action="store_true", help="skip the generation row")
    p.add_argument("--no-dense", action="store_true", help="skip the dense-input bare layer table")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--worker", choices=["rnnlab", "torch"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the workers (each its own process) ------------------------------------------------------------
def data(cfg: Config, seed: int = 1):
    import numpy as np

    rng = np.random.default_rng(seed)
    if cfg.dense:  # x (B, T, H), and the fixed upstream gradient dy of the loss sum(y * dy)
        return (rng.standard_normal((cfg.B, cfg.T, cfg.H)).astype(np.float32),
                rng.standard_normal((cfg.B, cfg.T, cfg.H)).astype(np.float32))
    return rng.integers(0, V, (cfg.B, cfg.T)), rng.integers(0, V, (cfg.B, cfg.T))


class RnnlabSide:
    """rnnlab's own char model (models.CharRNN: Embedding -> recurrent stack -> Linear, the embedding
    folded into the first layer's input projection) and a hand-written training step."""

    def __init__(self):
        import numpy as np
        import rnnlab
        self.np, self.rnnlab = np, rnnlab
        self.info = (f"rnnlab: NumPy {np.__version__}, {rnnlab.settings.describe()}; "
                     f"inference {'under rnnlab.no_grad()' if hasattr(rnnlab, 'no_grad') else 'in eval mode'}")

    def _save(self, weights: str) -> None:
        """The model's weights under the names TorchSide loads (emb.weight, rnn.*, head.*)."""
        state = self.model.state_dict()
        self.np.savez(weights, **{"emb.weight": state["embedding.weight"], "head.weight": state["head.weight"],
                                  "head.bias": state["head.bias"],
                                  **{f"rnn.{k[4:]}": v for k, v in state.items() if k.startswith("rnn.")}})

    def setup(self, cfg: Config, weights: str) -> None:
        from rnnlab.models import CharRNN, CharRNNConfig
        from rnnlab.optim import Adam

        self.dense = cfg.dense
        if cfg.dense:  # the bare layer
            self.model = self.rnnlab.LSTM(cfg.H, cfg.H, num_layers=cfg.L, rng=0)
            self.opt = Adam(self.model.parameters(), lr=1e-3)
            self.ids, self.targets = data(cfg)  # x, dy
            self.np.savez(weights, **{f"rnn.{k}": v for k, v in self.model.state_dict().items()})
            return
        config = CharRNNConfig(vocab_size=V, cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.L,
                               embedding_dim=cfg.H, init="uniform")
        self.model = CharRNN(config, rng=0)
        self.opt = Adam(self.model.parameters(), lr=1e-3)
        self.ids, self.targets = data(cfg)
        self._save(weights)

    def train_step(self) -> float:
        self.opt.zero_grad()
        if self.dense:
            y, _ = self.model(self.ids)
            self.model.backward(self.targets)
            self.opt.step()
            return float((y.astype(self.np.float64) * self.targets).sum())
        loss, dlogits = self.rnnlab.cross_entropy(self.model(self.ids), self.targets)  # logits (B, T, V)
        self.model.backward(dlogits)
        self.opt.step()
        return float(loss)

    def infer(self) -> None:
        with self.rnnlab.no_grad():
            self.model(self.ids)

    def gemm_peak(self, seconds: float) -> float:
        """The best sgemm rate on this worker's threads, flops/s: (2048, 512) x (512, 2048) float32."""
        np = self.np
        a, b = np.ones((2048, 512), np.float32), np.ones((512, 2048), np.float32)
        out, best, end = np.empty((2048, 2048), np.float32), float("inf"), time.perf_counter() + seconds
        while True:
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            now = time.perf_counter()
            best = min(best, now - start)
            if now > end:
                return 2 * 2048 * 512 * 2048 / best

    def setup_generate(self, weights: str) -> None:
        from rnnlab.data.text import Vocab
        from rnnlab.models import CharRNN, CharRNNConfig

        config = CharRNNConfig(vocab_size=V, cell="lstm", hidden_size=GEN_MODEL["H"], num_layers=GEN_MODEL["L"],
                               embedding_dim=GEN_MODEL["E"])
        self.model = CharRNN(config, rng=0)
        self.vocab = Vocab.from_list([chr(32 + i) for i in range(V - 1)] + ["\n"])
        self._save(weights)

    def generate(self, n: int) -> None:
        from rnnlab.sample import generate

        generate(self.model, self.vocab, length=n, temperature=0.8, rng=0)


class TorchSide:
    """The same model with torch.nn and torch.optim.Adam, loading rnnlab's weights."""

    def __init__(self, threads: int):
        import numpy as np
        import torch

        torch.set_num_threads(threads)
        self.np, self.torch = np, torch
        self.info = (f"torch {torch.__version__}: {torch.get_num_threads()} threads, mkldnn "
                     f"{torch.backends.mkldnn.is_available()}; inference under inference_mode")

    def _build(self, E: int, H: int, L: int, cell: str, weights: str):
        torch = self.torch
        self.emb = torch.nn.Embedding(V, E)
        make = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        self.rnn = make(E, H, num_layers=L, batch_first=True)
        self.head = torch.nn.Linear(H, V)
        self.modules = torch.nn.ModuleDict({"emb": self.emb, "rnn": self.rnn, "head": self.head})
        with self.np.load(weights, allow_pickle=False) as arrays:
            self.modules.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})

    def setup(self, cfg: Config, weights: str) -> None:
        self.dense = cfg.dense
        if cfg.dense:  # the bare layer
            torch = self.torch
            self.rnn = torch.nn.LSTM(cfg.H, cfg.H, num_layers=cfg.L, batch_first=True)
            with self.np.load(weights, allow_pickle=False) as arrays:
                self.rnn.load_state_dict({k[4:]: torch.from_numpy(arrays[k]) for k in arrays.files})
            self.opt = torch.optim.Adam(self.rnn.parameters(), lr=1e-3)
            x, dy = data(cfg)
            self.ids, self.targets = torch.from_numpy(x), torch.from_numpy(dy)
            return
        self._build(cfg.H, cfg.H, cfg.L, cfg.cell, weights)
        self.opt = self.torch.optim.Adam(self.modules.parameters(), lr=1e-3)
        ids, targets = data(cfg)
        self.ids, self.targets = self.torch.from_numpy(ids), self.torch.from_numpy(targets)

    def train_step(self) -> float:
        self.opt.zero_grad()
        if self.dense:
            y, _ = self.rnn(self.ids)
            loss = (y * self.targets).sum()
            loss.backward()
            self.opt.step()
            return float((y.detach().double() * self.targets.double()).sum())
        y, _ = self.rnn(self.emb(self.ids))
        loss = self.torch.nn.functional.cross_entropy(self.head(y).reshape(-1, V), self.targets.reshape(-1))
        loss.backward()
        self.opt.step()
        return loss.item()

    def infer(self) -> None:
        with self.torch.inference_mode():
            if self.dense:
                self.rnn(self.ids)
            else:
                self.head(self.rnn(self.emb(self.ids))[0])

    def setup_generate(self, weights: str) -> None:
        self._build(GEN_MODEL["E"], GEN_MODEL["H"], GEN_MODEL["L"], "lstm", weights)
        self.gen = self.torch.Generator().manual_seed(0)

    def generate(self, n: int) -> None:
        """One character at a time: embedding, one LSTM step from the carried state, head, sample."""
        torch = self.torch
        with torch.inference_mode():
            x, state = torch.zeros((1, 1), dtype=torch.long), None
            for _ in range(n):
                y, state = self.rnn(self.emb(x), state)
                p = torch.softmax(self.head(y[0, -1]) / 0.8, dim=-1)
                x = torch.multinomial(p, 1, generator=self.gen).view(1, 1)


def worker(framework: str, threads: int) -> int:
    """Answer the coordinator's requests, one JSON line in, one out, until stdin closes."""
    protocol = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print stays off the protocol
    side = RnnlabSide() if framework == "rnnlab" else TorchSide(threads)
    for line in sys.stdin:
        request = json.loads(line)
        op, reply = request["op"], {}
        if op == "info":
            reply["info"] = side.info
        elif op == "setup":
            side.setup(Config(**request["cfg"]), request["weights"])
        elif op == "first_loss":
            reply["loss"] = side.train_step()
        elif op == "gemm_peak":
            reply["flops"] = side.gemm_peak(request["seconds"])
        elif op == "setup_generate":
            side.setup_generate(request["weights"])
        elif op == "time":
            fn = {"train": side.train_step, "infer": side.infer,
                  "generate": lambda: side.generate(request.get("chars", 0))}[request["task"]]
            times = []
            for _ in range(request["calls"]):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            reply["times"] = times
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()
    return 0


# --- the coordinator -------------------------------------------------------------------------------
class Worker:
    def __init__(self, framework: str, threads: int):
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.name = framework
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", framework, "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, op: str, **fields) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died (exit {self.proc.wait()}); its stderr is above")
        return json.loads(line)

    def running_threads(self) -> int | None:
        """How many of the worker's threads are running or runnable now (Linux), None where unknown."""
        try:
            tasks = os.listdir(f"/proc/{self.proc.pid}/task")
        except OSError:
            return None
        count = 0
        for task in tasks:
            try:
                with open(f"/proc/{self.proc.pid}/task/{task}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            count += stat[stat.rindex(b")") + 2:][:1] == b"R"
        return count

    def settle(self, timeout: float = 2.0) -> float:
        """Wait until none of the worker's threads runs (a runtime's pool spins for a while after its
        last call: OpenMP's, OpenBLAS's), so that the next block has the cores to itself; the seconds waited."""
        start = time.perf_counter()
        quiet = 0
        while time.perf_counter() - start < timeout:
            running = self.running_threads()
            if running is None:  # no /proc: a fixed pause instead
                time.sleep(0.3)
                break
            quiet = quiet + 1 if running == 0 else 0
            if quiet >= 3:  # three readings 5 ms apart
                break
            time.sleep(0.005)
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def time_in_turns(workers: list[Worker], task: str, seconds: float, warmup: int = 1, **fields) -> dict:
    """Median seconds per call of `task` on each worker: blocks of calls taking turns in alternating
    order (A B B A ...), each block >= 0.2 s and >= 3 calls, its first call not counted. Before the
    timed blocks each worker runs one untimed block: both sides' first block after another task (the
    training step before inference) ran 20-40% slower for a second or so, and the first worker's
    first block would otherwise count it."""
    per_call = {}
    for w in workers:
        times = w.ask("time", task=task, calls=warmup + 1, **fields)["times"]
        per_call[w.name] = max(times[-1], 1e-6)
    block = {name: int(min(50, max(3, 0.2 / s))) for name, s in per_call.items()}
    for w in workers:
        w.ask("time", task=task, calls=block[w.name], **fields)
        w.settle()
    longest = max(block[name] * per_call[name] for name in per_call)
    rounds = int(min(20, max(2, seconds / longest)))
    times = {w.name: [] for w in workers}
    for r in range(rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            times[w.name] += w.ask("time", task=task, calls=block[w.name], **fields)["times"][1:]
            w.settle()  # the next block starts on quiet cores
    return {name: statistics.median(ts) for name, ts in times.items()}


def same_model(workers: dict, cfg: Config, weights: str) -> None:
    """rnnlab's weights into torch, then the first loss on the same batch must agree."""
    workers["rnnlab"].ask("setup", cfg=asdict(cfg), weights=weights)
    workers["torch"].ask("setup", cfg=asdict(cfg), weights=weights)
    ours, theirs = (workers[name].ask("first_loss")["loss"] for name in ("rnnlab", "torch"))
    if not abs(ours - theirs) <= 1e-4 * max(1.0, abs(theirs)):
        raise AssertionError(f"{cfg.name}: rnnlab's first loss {ours} != torch's {theirs} from the same weights")


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def mark(ratio: float, target: float | None, at_most: bool = True) -> str:
    if target is None:
        return f"{ratio:.2f}"
    met = ratio <= target if at_most else ratio >= target
    return f"{ratio:.2f} {'met' if met else '**MISSED**'} ({'<=' if at_most else '>='} {target:g})"


def machine_lines(args, infos: list[str]) -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"- machine: {cpu}, {os.cpu_count()} logical cores, this run may use CPUs {cpus}; "
            f"load average at the start (1/5/15 min): {load}",
            f"- Python {platform.python_version()}; {args.threads} threads on each side", *[f"- {i}" for i in infos],
            f"- command: `python benchmarks/bench_rnn.py {' '.join(sys.argv[1:])}`".replace(" `", " `").replace("  ", " "),
            ""]


def main(args) -> int:
    configs = [TINY] if args.tiny else CONFIGS
    busy_configs = [TINY] if args.tiny else BUSY_CONFIGS
    if args.only:
        configs = [c for c in CONFIGS + [TINY] if c.name in args.only]
        busy_configs = [c for c in busy_configs if c in configs]
    seconds = 0.0 if args.tiny else args.seconds
    lines: list[str] = []

    def emit(*new):
        lines.extend(new)
        print("\n".join(new), flush=True)

    workers = {name: Worker(name, args.threads) for name in ("rnnlab", "torch")}
    tmp = tempfile.TemporaryDirectory()
    weights = str(Path(tmp.name) / "weights.npz")
    neighbour = None
    try:
        order = [workers["rnnlab"], workers["torch"]]
        emit("## rnnlab vs PyTorch, CPU, float32, each in its own process", "",
             *machine_lines(args, [w.ask("info")["info"] for w in order]))
        emit("### Idle (nothing of the harness's own beside)", "",
             "| cell, B, T, H, layers | train: torch ms | train: rnnlab ms | ratio | inference: torch ms | "
             "inference: rnnlab ms | ratio |", "|---|---|---|---|---|---|---|")
        idle = {}
        for cfg in configs:
            same_model(workers, cfg, weights)
            train = time_in_turns(order, "train", seconds)
            infer = time_in_turns(order, "infer", seconds)
            idle[cfg] = (train, infer)
            target = None if args.tiny else TRAIN_TARGET.get(cfg)
            emit(f"| {cfg.label} | {fmt_ms(train['torch'])} | {fmt_ms(train['rnnlab'])} | "
                 f"{mark(train['rnnlab'] / train['torch'], target)} | {fmt_ms(infer['torch'])} | "
                 f"{fmt_ms(infer['rnnlab'])} | {mark(infer['rnnlab'] / infer['torch'], None if args.tiny else INFER_TARGET)} |")

        if not args.no_dense:
            dense_configs = [Config("lstm", 2, 5, 8, dense=True)] if args.tiny else DENSE_CONFIGS
            if args.only:
                dense_configs = [c for c in dense_configs if c.name in args.only]
            peak = workers["rnnlab"].ask("gemm_peak", seconds=0.05 if args.tiny else 1.0)["flops"]
            emit("", f"### Dense inputs: the bare LSTM layer (sgemm peak {peak / 1e9:.0f} GFLOP/s on "
                     f"{args.threads} threads)", "",
                 "| cell, B, T, H, layers | train: torch ms | train: rnnlab ms | ratio | share of peak: torch, rnnlab | "
                 "inference: torch ms | inference: rnnlab ms | ratio | share of peak: torch, rnnlab |",
                 "|---|---|---|---|---|---|---|---|---|")
            for cfg in dense_configs:
                same_model(workers, cfg, weights)
                train = time_in_turns(order, "train", seconds)
                infer = time_in_turns(order, "infer", seconds)
                target = None if args.tiny else DENSE_TARGET
                share = lambda t, train_: f"{cfg.flops(train_) / t['torch'] / peak:.0%}, {cfg.flops(train_) / t['rnnlab'] / peak:.0%}"
                emit(f"| {cfg.label} | {fmt_ms(train['torch'])} | {fmt_ms(train['rnnlab'])} | "
                     f"{mark(train['rnnlab'] / train['torch'], target)} | {share(train, True)} | "
                     f"{fmt_ms(infer['torch'])} | {fmt_ms(infer['rnnlab'])} | "
                     f"{mark(infer['rnnlab'] / infer['torch'], target)} | {share(infer, False)} |")

        if not args.no_generate:
            chars = 20 if args.tiny else 200
            for w in order:
                w.ask("setup_generate", weights=weights)
            t = time_in_turns(order, "generate", seconds, chars=chars)
            ours, theirs = chars / t["rnnlab"], chars / t["torch"]
            emit("", f"### Generation: one character at a time, a {GEN_MODEL['L']}-layer {GEN_MODEL['H']}-unit LSTM "
                     f"(embedding {GEN_MODEL['E']}), temperature 0.8, {chars} characters per call", "",
                 "| torch chars/s | rnnlab chars/s | rnnlab/torch |", "|---|---|---|",
                 f"| {theirs:,.0f} | {ours:,.0f} | {mark(ours / theirs, None if args.tiny else GEN_TARGET, False)} |")

        if not args.no_busy and busy_configs:
            env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # its default threads
            neighbour = subprocess.Popen([sys.executable, str(HERE / "neighbour.py")], env=env)
            time.sleep(0.5)
            emit("", f"### Busy: beside a noisy neighbour (benchmarks/neighbour.py, pid {neighbour.pid}: 64 GEMMs of "
                     "(32, 128) x (128, 512) in a loop on NumPy's default threads)", "",
                 "| cell, B, T, H, layers | step | torch idle ms | torch busy ms | torch busy/idle | "
                 "rnnlab idle ms | rnnlab busy ms | rnnlab busy/idle |", "|---|---|---|---|---|---|---|---|")
            for cfg in busy_configs:
                same_model(workers, cfg, weights)
                for k, task in enumerate(("train", "infer")):
                    busy, before = time_in_turns(order, task, seconds), idle[cfg][k]
                    target = None if args.tiny else BUSY_TARGET
                    emit(f"| {cfg.label} | {'training step' if task == 'train' else 'inference'} | "
                         f"{fmt_ms(before['torch'])} | {fmt_ms(busy['torch'])} | {busy['torch'] / before['torch']:.2f} | "
                         f"{fmt_ms(before['rnnlab'])} | {fmt_ms(busy['rnnlab'])} | "
                         f"{mark(busy['rnnlab'] / before['rnnlab'], target)} |")
        emit("", "load average at the end (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if neighbour is not None:
            neighbour.terminate()  # by its PID, which the table names
            neighbour.wait()
        for w in workers.values():
            w.close()
        tmp.cleanup()
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(worker(ARGS.worker, ARGS.threads) if ARGS.worker else main(ARGS))
