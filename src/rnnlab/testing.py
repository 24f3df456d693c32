"""The checks every cell definition must pass, for the tests of one cell each (test_cell_*.py).

2 layers, both directions, lengths (padding inside the batch), random states and state gradients:
  - finite differences in float64 for every parameter, the input and the initial state (rel. error < 1e-6);
  - each time loop (Numba, Numba's whole loop at B = 1, NumPy) equal to the one-step reference,
    to 1e-10 in float64 and 1e-5 in float32, gradient flow included;
  - a CLI training run of a few steps.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from conftest import assert_close, assert_rel, numerical_grad
from rnnlab.nn import backend

ROOT = Path(__file__).resolve().parents[1]
KERNELS = [pytest.param("numba", 4, marks=pytest.mark.skipif(not backend.numba_available(), reason="no numba")),
           pytest.param("numba", 1, marks=pytest.mark.skipif(not backend.numba_available(), reason="no numba")),
           ("numpy", 4)]
KERNEL_IDS = ["numba", "numba-B1", "numpy"]
TOLERANCES = [(np.float64, 1e-10), (np.float32, 1e-5)]


def _pack(layer, parts):
    return tuple(parts) if len(layer.kind.state_names) > 1 else parts[0]


def _unpack(layer, state):
    return tuple(state) if len(layer.kind.state_names) > 1 else (state,)


def check_finite_differences(name: str, kernel: str = "fast") -> None:
    """Every gradient of a 2-layer bidirectional stack with lengths against central differences."""
    rng = np.random.default_rng(7)
    layer = rnnlab.Recurrent(name, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng, kernel=kernel)
    for p in layer.parameters():  # biases too: nothing at zero
        p.data[...] = rng.uniform(-0.8, 0.8, p.data.shape)
    B, T, K = 3, 4, 2
    x = rng.standard_normal((B, T, 3))
    state = [rng.standard_normal((2 * K, B, 4)) for _ in layer.kind.state_names]
    lengths = np.array([T, 2, 3])
    dy = rng.standard_normal((B, T, K * 4))
    dstate = [rng.standard_normal(s.shape) for s in state]

    def loss():
        y, final = layer(x, _pack(layer, state), lengths=lengths)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(_unpack(layer, final), dstate)))

    loss()
    layer.zero_grad()
    dx, dstate0 = layer.backward(dy, _pack(layer, dstate))
    assert_rel(f"{name} dx", dx, numerical_grad(loss, x))
    for state_name, s, ds in zip(layer.kind.state_names, state, _unpack(layer, dstate0)):
        assert_rel(f"{name} d{state_name}0", ds, numerical_grad(loss, s))
    for param_name, p in layer.named_parameters():
        assert_rel(f"{name} {param_name}", p.grad, numerical_grad(loss, p.data))


def _run(layer, x, state, lengths, dy, dstate):
    y, final = layer(x, _pack(layer, state), lengths=lengths)
    dx, d0 = layer.backward(dy, _pack(layer, dstate), record_flow=layer.kernel != "reference")
    out = {"y": y, "final": np.stack(_unpack(layer, final)), "dx": dx, "dstate0": np.stack(_unpack(layer, d0))}
    out.update({n: p.grad.copy() for n, p in layer.named_parameters()})
    return out, getattr(layer, "grad_flow", None)


def check_time_loop_equals_reference(name: str, kernel: str, B: int, dtype, tol: float, bias: bool = True) -> None:
    """A time loop of the driver against the one-step reference: outputs, states, every gradient;
    the gradient flow of Numba's loop against NumPy's."""
    rng = np.random.default_rng(5)
    make = lambda kernel: rnnlab.Recurrent(name, 5, 6, num_layers=2, bidirectional=True, dtype=dtype, rng=1,
                                           kernel=kernel, bias=bias)
    n = len(make("numpy").kind.state_names)
    x = rng.standard_normal((B, 9, 5)).astype(dtype)
    state = [rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n)]
    dstate = [rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n)]
    dy = rng.standard_normal((B, 9, 12)).astype(dtype)
    lengths = np.array([9, 3, 7, 1][:B]) if B > 1 else np.array([6])
    ours, flow = _run(make(kernel), x, state, lengths, dy, dstate)
    ref, _ = _run(make("reference"), x, state, lengths, dy, dstate)
    for key in ref:
        assert_close(f"{name} {kernel} {key}", ours[key], ref[key], tol)
    if kernel != "numpy":
        _, flow_numpy = _run(make("numpy"), x, state, lengths, dy, dstate)
        for key in flow_numpy:
            assert_close(f"{name} flow {key}", flow[key], flow_numpy[key], tol)


def check_cli_trains(name: str, tmp_path, steps: int = 50, extra_env: dict | None = None) -> str:
    """`rnnlab train --model NAME --steps N` at a tiny size, in its own process; returns its output."""
    env = dict(os.environ, **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    command = [sys.executable, "-m", "rnnlab", "train", "--model", name, "--steps", str(steps), "--data", str(text),
               "--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch", "4", "--out", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr
