"""The peephole LSTM of docs/cells.md: a cell with parameters of its own (the peephole weights), defined
outside the package, through rnnlab.testing.check_cell, the CLI, and the wider cell contract's errors."""
import zlib
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from conftest import assert_close
from external_cells.peephole_lstm import PEEPHOLE_LSTM
from rnnlab.testing import check_cell, check_cli_trains

ROOT = Path(__file__).resolve().parents[1]
needs_numba = pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba cannot run here")


def test_passes_check_cell():
    """Finite differences, every time loop against the reference (float64 and float32, with and
    without bias, batch 1), no_grad(); the ONNX export refuses a cell with parameters of its own."""
    check_cell(PEEPHOLE_LSTM)


def test_peepholes_get_their_gradient_and_change_the_output():
    """Nothing is created that does not train: each peephole weight gets a gradient, and moves y."""
    layer = rnnlab.Recurrent("peephole_lstm", 3, 4, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    y, _ = layer(x)
    layer.backward(np.ones_like(y))
    for name in ("weight_ci_l0", "weight_cf_l0", "weight_co_l0"):
        assert np.abs(getattr(layer, name).grad).min() > 0, name
    layer.weight_co_l0.data[...] = 0.5
    assert np.abs(layer(x)[0] - y).max() > 1e-3


def test_equals_the_equations_written_out():
    """One step of the layer against the equations of docs/cells.md, in plain NumPy."""
    rng = np.random.default_rng(0)
    layer = rnnlab.Recurrent("peephole_lstm", 3, 4, dtype=np.float64, rng=1)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.data.shape)
    x, h, c = rng.standard_normal((2, 1, 3)), rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4))
    y, (_, c_new) = layer(x, (h, c))
    W, U, b, d, w_ci, w_cf, w_co = (p.data for p in layer.parameters())
    sig = lambda a: 1 / (1 + np.exp(-a))
    a = x[:, 0] @ W.T + b + h[0] @ U.T + d
    i, f, g = sig(a[:, :4] + w_ci * c[0]), sig(a[:, 4:8] + w_cf * c[0]), np.tanh(a[:, 8:12])
    c_ref = f * c[0] + i * g
    o = sig(a[:, 12:] + w_co * c_ref)
    assert_close("c'", c_new[0], c_ref, 1e-12)
    assert_close("h'", y[:, 0], o * np.tanh(c_ref), 1e-12)


@needs_numba
def test_no_grad_forward_in_parts(monkeypatch):
    """Under no_grad() the hidden units shared among 3 threads: the peepholes read per unit."""
    from rnnlab.fast import threads

    layer = rnnlab.Recurrent("peephole_lstm", 5, 6, num_layers=2, dtype=np.float64, rng=1, kernel="numba")
    for p in layer.parameters():
        p.data[...] = np.random.default_rng(zlib.crc32(b"peep")).uniform(-0.5, 0.5, p.data.shape)
    x = np.random.default_rng(2).standard_normal((4, 7, 5))
    y, _ = layer(x, lengths=[7, 3, 5, 1])
    monkeypatch.setattr(threads, "step_parts", lambda B, H, G: 3)
    with rnnlab.no_grad():
        y_parts, _ = layer(x, lengths=[7, 3, 5, 1])
    assert_close("parts y", y_parts, y, 1e-12)


def test_trains_from_the_cli_with_the_compiled_loop(tmp_path):
    path = str(ROOT / "tests" / "external_cells" / "peephole_lstm.py")
    out = check_cli_trains("peephole_lstm", tmp_path, steps=20, extra_env={"RNNLAB_CELLS": path})
    if rnnlab.settings.numba_available():
        assert "time loop compiled (Numba" in out
    from rnnlab.io import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert ckpt.extra["cell_origin"] == str(Path(path).resolve())  # where the cell came from
    assert "rnn.weight_co_l0" in ckpt.model_state


def test_docs_show_this_very_file():
    """docs/cells.md walks through the file the tests run, verbatim."""
    import external_cells.peephole_lstm as module

    assert Path(module.__file__).read_text() in (ROOT / "docs" / "cells.md").read_text()


def _cell_function_source(tmp_path, body: str):
    """A cell function defined in a file of its own (its source must be readable to be retyped)."""
    import importlib.util

    path = tmp_path / "cell_fn.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location("cell_fn_for_the_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.forward


@needs_numba
def test_constants_keep_the_loops_dtype(tmp_path):
    """0.5 * x and 1 - z in a cell stay float32 in the float32 compiled loop (Numba would type the
    literals as 64-bit and compute in float64), and float64 where the loop is float64."""
    import numba

    from rnnlab.fast.fused import literals_of_dtype

    forward = _cell_function_source(tmp_path, "def forward(a_x, a_h, state):\n"
                                              "    (x,), (h,), (s,) = a_x, a_h, state\n"
                                              "    z = 0.5 * x + h\n"
                                              "    return ((1 - z) * s + 2 * z,), (z, 0.0)\n")
    one = np.float32(0.3)
    for dtype, expected in ((np.float32, "float32"), (np.float64, "float64")):
        fn = numba.njit(literals_of_dtype(forward, dtype))
        fn((one,), (one,), (one,))
        assert str(fn.nopython_signatures[0].return_type).count(expected) >= 1, fn.nopython_signatures
        if dtype == np.float32:
            assert "float64" not in str(fn.nopython_signatures[0].return_type)
    plain = numba.njit(forward)
    plain((one,), (one,), (one,))
    assert "float64" in str(plain.nopython_signatures[0].return_type)  # what the copy mends


def test_a_parameter_of_the_wrong_shape_is_refused_in_one_line():
    from rnnlab.nn.cells import Param, standard_parameters

    with pytest.raises(ValueError, match="one value per hidden unit"):
        rnnlab.CellDefinition("bad_gain", gates=PEEPHOLE_LSTM.gates, state_names=("h", "c"), saved=PEEPHOLE_LSTM.saved,
                              forward=PEEPHOLE_LSTM.forward, backward=PEEPHOLE_LSTM.backward,
                              parameters=standard_parameters() + (Param("gain", lambda D, H, G: (G * H,), "ones"),))


def test_a_forward_returning_the_wrong_values_is_named_in_one_line():
    """A user cell whose forward returns the wrong number of values is refused at registration, with
    its file and function, before anything compiles it."""
    def forward(a_x, a_h, state):
        return (a_x[0] + a_h[0],)  # forgot the saved activations

    def backward(saved, state, new_state, d_new):
        return d_new, d_new, d_new, d_new

    with pytest.raises(ValueError) as error:
        rnnlab.register_cell(rnnlab.CellDefinition("forgetful", gates=("a",), state_names=("h",), saved=(),
                                                   forward=forward, backward=backward))
    message = str(error.value)
    assert "\n" not in message and "test_cell_peephole.py" in message and "forward" in message
    assert "forgetful" not in rnnlab.cell_names()


def test_unknown_cell_names_rnnlab_cells():
    with pytest.raises(ValueError, match="RNNLAB_CELLS"):
        rnnlab.Recurrent("no_such_cell", 3, 4)
