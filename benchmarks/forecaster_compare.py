"""The same sunspot forecaster in rnnlab, PyTorch and Keras 3: lines of code and wall time.

    python benchmarks/forecaster_compare.py            # about a minute alone; minutes on a busy machine

Runs forecaster_rnnlab.py, forecaster_torch.py and forecaster_keras.py (KERAS_BACKEND=torch), each
in a fresh process, one after another, and prints a Markdown table: code lines (no blank lines,
comments or docstrings), wall time of the whole process (imports, data, training, save, load,
predict), epochs run before early stopping, wall time per epoch, the validation RMSE and the
persistence baseline's. Wall time depends on the machine and what else runs on it: the table
says the load average next to it.
"""
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [("rnnlab", "forecaster_rnnlab.py", "model.safetensors"),
        ("PyTorch", "forecaster_torch.py", "model.pt"),
        ("Keras 3 (torch backend)", "forecaster_keras.py", "model.keras")]
NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not the module docstring."""
    tokens = list(tokenize.tokenize(io.BytesIO(path.read_bytes()).readline))
    lines = set()
    first = True
    for tok in tokens:
        if tok.type in NOT_CODE:
            continue
        if first and tok.type == tokenize.STRING:  # the module docstring
            first = False
            continue
        first = False
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def version(module: str) -> str:
    probe = f"import importlib.metadata as m; print(m.version({module!r}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() or "not installed"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks", "src"], capture_output=True,
                           text=True, cwd=HERE).stdout.strip()
    return done.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")


def main() -> int:
    env = dict(os.environ, KERAS_BACKEND="torch")
    header = (f"commit {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, torch {version('torch')}, "
              f"keras {version('keras')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, script, out in RUNS:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(HERE / script), str(Path(tmp) / out)],
                                  capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            lines = code_lines(HERE / script)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append(f"| {name} | {lines} | failed: {last} | | | | | {load:.1f} |")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(f"| {name} | {lines} | {wall:.1f} | {result['epochs']} | "
                        f"{wall / result['epochs']:.2f} | {result['val_rmse']:.1f} | "
                        f"{result['persistence_rmse']:.1f} | {load:.1f} |")
            print(f"{name}: done in {wall:.1f} s", file=sys.stderr, flush=True)
    print(header)
    print()
    print("| framework | code lines | wall s | epochs | wall s / epoch | val RMSE | persistence RMSE | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
