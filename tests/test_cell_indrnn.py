"""indrnn (Li et al. 2018), whose recurrent weight is a vector u (H,), through every check of a cell."""
import numpy as np
import pytest

import rnnlab
from conftest import CELL_KERNEL_IDS as KERNEL_IDS
from conftest import CELL_KERNELS as KERNELS
from rnnlab.testing import (TOLERANCES, check_cli_trains, check_finite_differences, check_no_grad,
                            check_time_loop_equals_reference)
from conftest import assert_close


def test_finite_differences():
    check_finite_differences("indrnn")


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_equals_reference(kernel, B, dtype, tol):
    check_time_loop_equals_reference("indrnn", kernel, B, dtype, tol)


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_no_grad_keeps_nothing_and_gives_the_same_outputs(kernel, B, dtype, tol):
    check_no_grad("indrnn", kernel, B, dtype, tol)


@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_without_bias(kernel, B):
    check_time_loop_equals_reference("indrnn", kernel, B, np.float64, 1e-10, bias=False)


def test_is_a_relu_rnn_with_a_diagonal_recurrent_matrix():
    """u * h is h diag(u): the relu RNN with W_hh = diag(u) gives the same outputs and gradients."""
    rng = np.random.default_rng(0)
    ours = rnnlab.Recurrent("indrnn", 3, 4, dtype=np.float64, rng=1, init="orthogonal")
    assert ours.weight_hh_l0.shape == (4,) and np.all((ours.weight_hh_l0.data >= 0) & (ours.weight_hh_l0.data <= 1))
    dense = rnnlab.RNN(3, 4, nonlinearity="relu", dtype=np.float64)
    for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
        getattr(dense, name).data[...] = getattr(ours, name).data
    dense.weight_hh_l0.data[...] = np.diag(ours.weight_hh_l0.data)
    x, dy = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 4))
    y, _ = ours(x)
    y_dense, _ = dense(x)
    assert_close("y", y, y_dense, 1e-14)
    ours.backward(dy)
    dense.backward(dy)
    assert_close("du", ours.weight_hh_l0.grad, np.diag(dense.weight_hh_l0.grad), 1e-12)
    assert_close("dW_ih", ours.weight_ih_l0.grad, dense.weight_ih_l0.grad, 1e-12)


def test_cli_trains(tmp_path):
    check_cli_trains("indrnn", tmp_path)
