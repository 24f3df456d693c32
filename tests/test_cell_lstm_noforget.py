"""lstm_noforget, the LSTM of Hochreiter & Schmidhuber (1997), through every check of a cell."""
import numpy as np
import pytest

import rnnlab
from conftest import CELL_KERNEL_IDS as KERNEL_IDS
from conftest import CELL_KERNELS as KERNELS
from rnnlab.testing import (TOLERANCES, check_cli_trains, check_finite_differences, check_no_grad,
                            check_time_loop_equals_reference)
from conftest import assert_close


def test_finite_differences():
    check_finite_differences("lstm_noforget")


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_equals_reference(kernel, B, dtype, tol):
    check_time_loop_equals_reference("lstm_noforget", kernel, B, dtype, tol)


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_no_grad_keeps_nothing_and_gives_the_same_outputs(kernel, B, dtype, tol):
    check_no_grad("lstm_noforget", kernel, B, dtype, tol)


@pytest.mark.parametrize("kernel,B", KERNELS, ids=KERNEL_IDS)
def test_time_loop_without_bias(kernel, B):
    check_time_loop_equals_reference("lstm_noforget", kernel, B, np.float64, 1e-10, bias=False)


def test_is_the_lstm_with_its_forget_gate_held_open():
    """With f = 1 (forget bias +40) the LSTM is this cell: the same outputs and states, weights copied."""
    rng = np.random.default_rng(0)
    ours = rnnlab.Recurrent("lstm_noforget", 3, 4, dtype=np.float64, rng=1)
    lstm = rnnlab.LSTM(3, 4, dtype=np.float64, rng=2)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        mine, theirs = getattr(ours, name).data, getattr(lstm, name).data
        theirs[:4], theirs[8:] = mine[:4], mine[4:]  # i | g, o
        theirs[4:8] = 0.0
    lstm.bias_ih_l0.data[4:8] = 40.0  # sigma(40) = 1 in float64
    x = rng.standard_normal((2, 6, 3))
    state = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    y, (h, c) = ours(x, state)
    y_lstm, (h_lstm, c_lstm) = lstm(x, state)
    assert_close("y", y, y_lstm, 1e-14)
    assert_close("c_n", c, c_lstm, 1e-14)


def test_cli_trains(tmp_path):
    check_cli_trains("lstm_noforget", tmp_path)
