"""The minimal gated unit of docs/cells.md, defined in a file outside the package, through every check."""
import numpy as np
import pytest

import rnnlab
from conftest import CELL_KERNEL_IDS as KERNEL_IDS
from conftest import CELL_KERNELS as KERNELS
from rnnlab.testing import (TOLERANCES, check_cli_trains, check_finite_differences, check_no_grad,
                            check_time_loop_equals_reference)
from conftest import assert_close
from external_cells.mgu import MGU


def test_registered_by_name():
    assert "mgu" in rnnlab.cell_names() and rnnlab.Recurrent("mgu", 3, 4).kind is MGU
    assert rnnlab.Recurrent("mgu", 3, 4).weight_hh_l0.shape == (8, 4)


def test_finite_differences():
    check_finite_differences("mgu")


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_equals_reference(kernel, B, dtype, tol):
    check_time_loop_equals_reference("mgu", kernel, B, dtype, tol)


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_no_grad_keeps_nothing_and_gives_the_same_outputs(kernel, B, dtype, tol):
    check_no_grad("mgu", kernel, B, dtype, tol)


@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_without_bias(kernel, B):
    check_time_loop_equals_reference("mgu", kernel, B, np.float64, 1e-10, bias=False)


def test_equals_the_equations_written_out():
    """One step of the layer against the three lines of docs/cells.md, in plain NumPy."""
    rng = np.random.default_rng(0)
    layer = rnnlab.Recurrent("mgu", 3, 4, dtype=np.float64, rng=1)
    x, h = rng.standard_normal((2, 1, 3)), rng.standard_normal((1, 2, 4))
    y, _ = layer(x, h)
    W, U, b, c = (p.data for p in layer.parameters())
    sig = lambda a: 1 / (1 + np.exp(-a))
    f = sig(x[:, 0] @ W[:4].T + b[:4] + h[0] @ U[:4].T + c[:4])
    n = np.tanh(x[:, 0] @ W[4:].T + b[4:] + f * (h[0] @ U[4:].T + c[4:]))
    assert_close("h'", y[:, 0], (1 - f) * h[0] + f * n, 1e-12)


def test_cli_trains_a_user_cell(tmp_path):
    """RNNLAB_CELLS names the file; `rnnlab train --model mgu` sees the cell."""
    path = str(__import__("external_cells.mgu").mgu.__file__)
    check_cli_trains("mgu", tmp_path, steps=5, extra_env={"RNNLAB_CELLS": path})


def test_docs_show_this_very_file():
    """docs/cells.md walks through the file the tests run, verbatim."""
    from pathlib import Path

    import external_cells.mgu as module

    root = Path(__file__).resolve().parents[1]
    assert Path(module.__file__).read_text() in (root / "docs" / "cells.md").read_text()
