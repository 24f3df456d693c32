"""rnnlab's own checks of a cell definition, for anyone who writes one: `check_cell(definition)`.

    from rnnlab.testing import check_cell
    check_cell(MY_CELL)          # raises AssertionError naming what disagrees, by how much

On a 2-layer bidirectional stack with lengths (padding inside the batch), random states and state
gradients, every check comparing numbers prints ours, theirs and the largest difference on failure:
  - finite differences in float64 for every parameter, the input and the initial state (rel. error < 1e-6);
  - each time loop (the compiled one, its whole-loop form at B = 1, NumPy's) equal to the one-step
    reference, to 1e-10 in float64 and 1e-5 in float32, gradient flow included, with and without bias;
  - under no_grad(): the same outputs, and nothing kept for backward;
  - where onnx and onnxruntime are installed, the exported graph gives the same outputs.
The tests of rnnlab's own cells (tests/test_cell_*.py) run these same functions.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .nn import Recurrent, no_grad
from .nn.cells import get_cell
from .settings import settings

TOLERANCES = ((np.float64, 1e-10), (np.float32, 1e-5))


def kernels() -> list[tuple[str, int]]:
    """(kernel, batch) pairs of the time loops to hold to the reference here: the compiled loop (and
    its whole-loop form at B = 1) where Numba runs, and NumPy's."""
    return ([("numba", 4), ("numba", 1)] if settings.numba_available() else []) + [("numpy", 4)]


def assert_close(name: str, ours, theirs, tol: float) -> None:
    """Relative-to-scale agreement; on failure: ours, theirs and the max difference."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise AssertionError(f"{name}: shape {ours.shape} != {theirs.shape}")
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(ours - theirs).max(initial=0.0))
    if not diff <= tol * scale:
        raise AssertionError(f"{name}: max |ours - theirs| = {diff:.3e} > {tol:.0e} * {scale:.3g}\n"
                             f"ours:\n{ours}\ntheirs:\n{theirs}")


def assert_rel(name: str, analytic, numeric, tol: float = 1e-6) -> None:
    """Max error relative to the larger of the two gradients; on failure: both."""
    denom = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-8)
    rel = np.abs(analytic - numeric).max() / denom
    if not rel < tol:
        raise AssertionError(f"{name}: relative error {rel:.2e}\nanalytic:\n{analytic}\nnumeric:\n{numeric}")


def numerical_grad(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f() with respect to every entry of `array` (restored after)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + eps
        plus = f()
        array[i] = old - eps
        minus = f()
        array[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def _pack(layer, parts):
    return tuple(parts) if len(layer.kind.state_names) > 1 else parts[0]


def _unpack(layer, state):
    return tuple(state) if len(layer.kind.state_names) > 1 else (state,)


def check_finite_differences(cell, kernel: str = "fast") -> None:
    """Every gradient of a 2-layer bidirectional stack with lengths against central differences."""
    rng = np.random.default_rng(7)
    layer = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng, kernel=kernel)
    name = layer.kind.name
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
    assert_rel(f"{name} {kernel} dx", dx, numerical_grad(loss, x))
    for state_name, s, ds in zip(layer.kind.state_names, state, _unpack(layer, dstate0)):
        assert_rel(f"{name} {kernel} d{state_name}0", ds, numerical_grad(loss, s))
    for param_name, p in layer.named_parameters():
        assert_rel(f"{name} {kernel} {param_name}", p.grad, numerical_grad(loss, p.data))


def _problem(n_states: int, B: int, dtype, seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, 9, 5)).astype(dtype)
    state = [rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n_states)]
    dstate = [rng.standard_normal((4, B, 6)).astype(dtype) for _ in range(n_states)]
    dy = rng.standard_normal((B, 9, 12)).astype(dtype)
    lengths = np.array([9, 3, 7, 1][:B]) if B > 1 else np.array([6])
    return x, state, lengths, dy, dstate


def _run(layer, x, state, lengths, dy, dstate):
    y, final = layer(x, _pack(layer, state), lengths=lengths)
    dx, d0 = layer.backward(dy, _pack(layer, dstate), record_flow=layer.kernel != "reference")
    out = {"y": y, "final": np.stack(_unpack(layer, final)), "dx": dx, "dstate0": np.stack(_unpack(layer, d0))}
    out.update({n: p.grad.copy() for n, p in layer.named_parameters()})
    return out, getattr(layer, "grad_flow", None)


def check_time_loop_equals_reference(cell, kernel: str, B: int, dtype, tol: float, bias: bool = True) -> None:
    """A time loop of the driver against the one-step reference: outputs, states, every gradient;
    the gradient flow of the compiled loop against NumPy's."""
    make = lambda kernel: Recurrent(cell, 5, 6, num_layers=2, bidirectional=True, dtype=dtype, rng=1,
                                    kernel=kernel, bias=bias)
    name = get_cell(cell).name
    problem = _problem(len(get_cell(cell).state_names), B, dtype)
    ours, flow = _run(make(kernel), *problem)
    ref, _ = _run(make("reference"), *problem)
    for key in ref:
        assert_close(f"{name} {kernel} {key}", ours[key], ref[key], tol)
    if kernel != "numpy":
        _, flow_numpy = _run(make("numpy"), *problem)
        for key in flow_numpy:
            assert_close(f"{name} flow {key}", flow[key], flow_numpy[key], tol)


def check_no_grad(cell, kernel: str, B: int, dtype, tol: float) -> None:
    """Under no_grad(): the outputs and final states of the forward with gradients, and a backward
    after it refused (nothing was kept)."""
    layer = Recurrent(cell, 5, 6, num_layers=2, bidirectional=True, dtype=dtype, rng=1, kernel=kernel)
    x, state, lengths, _, _ = _problem(len(layer.kind.state_names), B, dtype)
    y, final = layer(x, _pack(layer, state), lengths=lengths)
    with no_grad():
        y_lean, final_lean = layer(x, _pack(layer, state), lengths=lengths)
    name = layer.kind.name
    assert_close(f"{name} {kernel} no_grad y", y_lean, y, tol)
    for a, b in zip(_unpack(layer, final_lean), _unpack(layer, final)):
        assert_close(f"{name} {kernel} no_grad final state", a, b, tol)
    try:
        layer.backward(np.ones_like(y))
    except RuntimeError:
        pass
    else:
        raise AssertionError(f"{name} {kernel}: a backward after a forward under no_grad() ran; it must raise")


def check_onnx_round_trip(cell) -> bool:
    """The layer exported to ONNX gives the same outputs in onnxruntime (float32, 1e-5); False where
    onnx or onnxruntime is not installed, or the cell has parameters of its own (which the export
    refuses, in one line)."""
    try:
        import onnxruntime
        from .export import onnx_model
    except ImportError:
        return False
    if get_cell(cell).extra_parameters:
        return False
    layer = Recurrent(cell, 5, 6, num_layers=2, dtype=np.float32, rng=1)
    x, state, _, _, _ = _problem(len(layer.kind.state_names), 3, np.float32)
    y, final = layer(x, _pack(layer, state))
    session = onnxruntime.InferenceSession(onnx_model(layer).SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outs = session.run(None, dict(zip(names, [x, *[s[:2] for s in state]])))
    assert_close(f"{layer.kind.name} onnx y", outs[0], y, 1e-5)
    return True


def check_cell(cell, onnx: bool = True) -> None:
    """Every check above for one cell definition (or a registered name); raises AssertionError on the
    first disagreement, with the numbers."""
    check_finite_differences(cell, "numpy")
    if settings.numba_available():
        check_finite_differences(cell, "numba")
    for kernel, B in kernels():
        for dtype, tol in TOLERANCES:
            check_time_loop_equals_reference(cell, kernel, B, dtype, tol)
            check_no_grad(cell, kernel, B, dtype, tol)
        check_time_loop_equals_reference(cell, kernel, B, np.float64, 1e-10, bias=False)
    if onnx:
        check_onnx_round_trip(cell)


def check_cli_trains(name: str, workdir, steps: int = 50, extra_env: dict | None = None,
                     extra_args: tuple = ()) -> str:
    """`rnnlab train --model NAME --steps N` at a tiny size, in its own process (a user cell through
    RNNLAB_CELLS in extra_env); returns its output, or raises with the end of its errors."""
    src = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    workdir = Path(workdir)
    text = workdir / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    command = [sys.executable, "-m", "rnnlab", "train", "--model", name, "--steps", str(steps), "--data", str(text),
               "--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch", "4", "--out", str(workdir / "run"),
               *extra_args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"rnnlab train --model {name} failed:\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr
