"""Loading a corpus of any size: seconds to the first training step and peak memory, per corpus size.

    python benchmarks/bench_loading.py                       # 10 MB, 100 MB and 1 GB corpora under /tmp
    python benchmarks/bench_loading.py --sizes 10 100        # sizes in MB
    python benchmarks/bench_loading.py --tiny                # 2 MB: proves it runs, in seconds

Each corpus is generated once under --dir (never in the repository): Python's standard-library
source (the built-in corpus) with a line of non-ASCII text ("café — naïve ’quoted’ 日本語")
every 40 lines and Windows line endings in every fifth block, repeated to the size. Each
measurement is a fresh process (`--child`) that runs `rnnlab.train.Trainer` with the default
model (2 x 128 LSTM, batch 32 x 64) and stops after its third step: "first step" is the wall time
from before the process starts to the end of step 1, imports included; "peak RSS" is the child's
ru_maxrss at step 3 (the reading pass is over by then). "cold" starts with an empty id cache
(RNNLAB_CACHE), "cached" runs again on the same one; the text file itself is in the page cache
both times (dropping it needs root).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def make_corpus(path: Path, megabytes: float) -> Path:
    """A UTF-8 text of `megabytes` MB (10**6 bytes), written once and kept."""
    size = int(megabytes * 1e6)
    if path.is_file() and path.stat().st_size == size:
        return path
    sys.path.insert(0, str(SRC))
    from rnnlab.data.text import builtin_corpus

    lines = builtin_corpus()[0].splitlines(keepends=True)
    for i in range(0, len(lines), 40):
        lines[i] = "café — naïve ’quoted’ 日本語\n" + lines[i]
    block = "".join(lines).encode("utf-8")
    crlf = block.replace(b"\n", b"\r\n")
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        written, k = 0, 0
        while written < size:
            part = (crlf if k % 5 == 4 else block)[:size - written]
            while part and (part[-1] & 0xC0) == 0x80:  # never cut a character at the very end
                part = part[:-1] + b" "
            out.write(part)
            written, k = written + len(part), k + 1
    os.replace(tmp, path)
    return path


def child(data: str, out: str) -> None:
    """One measurement: train three steps, print a JSON line at step 3, exit at once."""
    import resource

    started = float(os.environ["BENCH_T0"])
    from rnnlab.train import TrainConfig, Trainer

    seen = {}

    def at_step(row):
        if row["step"] == 1:
            seen["first_step_s"] = time.time() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            seen["first_step_cpu_s"] = usage.ru_utime + usage.ru_stime
        if row["step"] == 3:
            seen["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
            print(json.dumps(seen), flush=True)
            os._exit(0)

    config = TrainConfig(data=data, steps=1000, eval_every=10**6, sample_every=10**6, save_every=10**6, out=out)
    Trainer(config, progress=False, log=lambda line: None).fit(callback=at_step)


def measure(data: Path, cache: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "RNNLAB_CACHE": str(cache), "BENCH_T0": repr(time.time())}
    out = tempfile.mkdtemp(dir=work)
    result = subprocess.run([sys.executable, __file__, "--child", str(data), out], env=env, capture_output=True,
                            text=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"child failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100, 1000], help="corpus sizes in MB")
    parser.add_argument("--tiny", action="store_true", help="one 2 MB corpus")
    parser.add_argument("--dir", default="/tmp/rnnlab-bench-loading", help="where corpora and caches go")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for megabytes in ([2] if args.tiny else args.sizes):
        data = make_corpus(work / f"corpus-{megabytes:g}MB.txt", megabytes)
        cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
        cold = measure(data, cache, work)
        cached = measure(data, cache, work)
        ids = sum(f.stat().st_size for f in (cache / "corpora").glob("*.ids"))
        rows.append((megabytes, cold, cached, ids))
        print(f"{megabytes:g} MB: cold {_cell(cold)}; cached {_cell(cached)}; ids on disk {ids / 1e6:.0f} MB; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("\n| corpus | first step, cold: wall (CPU) | cached: wall (CPU) | peak RSS, cold | cached | ids on disk |")
    print("|---|---|---|---|---|---|")
    for megabytes, cold, cached, ids in rows:
        print(f"| {megabytes:g} MB | {cold['first_step_s']:.1f} s ({cold['first_step_cpu_s']:.1f} s) | "
              f"{cached['first_step_s']:.1f} s ({cached['first_step_cpu_s']:.1f} s) | "
              f"{cold['peak_rss_mb']:.0f} MB | {cached['peak_rss_mb']:.0f} MB | {ids / 1e6:.0f} MB |")


def _cell(run: dict) -> str:
    return (f"first step {run['first_step_s']:.1f} s wall, {run['first_step_cpu_s']:.1f} s CPU, "
            f"peak RSS {run['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
