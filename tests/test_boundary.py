"""The boundary between the lecture's engine (rnnlab.nn) and the speed path (rnnlab.fast): nn imports
nothing of fast, trains with fast blocked, and kernel="numpy" runs no thread policy and no ctypes."""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NN = ROOT / "src" / "rnnlab" / "nn"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def imported_modules(path: Path, package: str | None = None) -> list[str]:
    """Every module an `import` or `from ... import` statement in the file names, relative imports
    resolved against the file's own package (rnnlab.nn..., or `package`)."""
    package = package.split(".") if package else ["rnnlab", *path.relative_to(ROOT / "src" / "rnnlab").parent.parts]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_nn_imports_nothing_of_fast():
    offenders = {str(p.relative_to(ROOT)): name for p in NN.rglob("*.py") for name in imported_modules(p)
                 if name == "rnnlab.fast" or name.startswith("rnnlab.fast.")}
    assert offenders == {}


def test_the_scan_sees_a_relative_import_of_fast(tmp_path):
    """The scan itself can fail: `from ..fast import x` in a file of nn/ resolves to rnnlab.fast."""
    fake = tmp_path / "probe.py"
    fake.write_text("from ...fast import loop\nfrom .. import driver\n")
    names = imported_modules(fake, "rnnlab.nn.cells")
    assert "rnnlab.fast" in names and "rnnlab.nn.driver" in names


def test_nn_trains_with_fast_blocked():
    """rnnlab.fast unimportable (sys.modules entry None): rnnlab.nn still trains a tiny model, on the
    NumPy loop, and nothing of rnnlab.fast or numba is imported."""
    code = (
        "import sys\n"
        "sys.modules['rnnlab.fast'] = None\n"
        "import numpy as np\n"
        "import rnnlab.nn as nn\n"
        "from rnnlab import settings\n"
        "from rnnlab.optim import Adam\n"
        "assert settings.fast is None and 'rnnlab.fast' in settings.fast_missing, settings.fast_missing\n"
        "rng = np.random.default_rng(0)\n"
        "lstm, head = nn.LSTM(3, 8, rng=1), nn.Linear(8, 1, rng=2)\n"
        "params = list(lstm.parameters()) + list(head.parameters())\n"
        "opt = Adam(params, lr=0.05)\n"
        "x = rng.standard_normal((16, 5, 3)).astype(np.float32)\n"
        "target = x.sum(axis=(1, 2))[:, None].astype(np.float32)\n"
        "losses = []\n"
        "for _ in range(60):\n"
        "    for p in params: p.grad[...] = 0\n"
        "    y, _ = lstm(x)\n"
        "    out = head(y[:, -1])\n"
        "    losses.append(float(((out - target) ** 2).mean()))\n"
        "    dy = np.zeros_like(y); dy[:, -1] = head.backward(2 * (out - target) / len(out))\n"
        "    lstm.backward(dy)\n"
        "    opt.step()\n"
        "assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])\n"
        "assert not [m for m in sys.modules if m.startswith('rnnlab.fast.') or m == 'numba'], 'fast was imported'\n"
        "print('ok')\n"
    )
    _prints_ok(code)


def _prints_ok(code: str) -> None:
    """Run code in a fresh interpreter (what it imports is its own) and expect it to print ok."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env(),
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_numpy_kernel_runs_no_thread_policy_and_no_ctypes():
    """kernel="numpy", forward and backward: no function of rnnlab.fast and none of ctypes is called."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import rnnlab\n"
        "layer = rnnlab.LSTM(3, 8, num_layers=2, kernel='numpy', rng=0)\n"
        "x = np.ones((4, 6, 3), np.float32)\n"
        "layer(x); layer.backward(np.ones((4, 6, 8), np.float32))\n"
        "called = set()\n"
        "def trace(frame, event, arg):\n"
        "    if event == 'call':\n"
        "        name = frame.f_globals.get('__name__', '')\n"
        "        if name.startswith('rnnlab.fast') or name.startswith('ctypes') or name == 'threadpoolctl':\n"
        "            called.add(name + '.' + frame.f_code.co_name)\n"
        "sys.setprofile(trace)\n"
        "y, _ = layer(x)\n"
        "layer.backward(np.ones_like(y))\n"
        "with rnnlab.no_grad():\n"
        "    layer(x)\n"
        "sys.setprofile(None)\n"
        "assert not called, sorted(called)\n"
        "print('ok')\n"
    )
    _prints_ok(code)
