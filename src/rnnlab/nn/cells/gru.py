"""GRU, in PyTorch's form and gate order r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)       reset gate: how much of the past feeds n
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)       update gate: how much of h is kept
    n = tanh (W_in x + b_in + r * (W_hn h + b_hn)) candidate state
    h' = (1 - z) * n + z * h

Parameters: weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,), rows r, z, n.
b_hn sits inside r * (...), so the gradients of the x side and the h side differ at n.
"""
from ..functional import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from .definition import CellDefinition


def forward(a_x, a_h, state):
    (x_r, x_z, x_n), (h_r, h_z, h_n), (h,) = a_x, a_h, state
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return (n + z * (h - n),), (r, z, n, h_n)  # (1 - z) n + z h, written without a literal 1


def backward(saved, state, new_state, d_new):
    (r, z, n, h_n), (h,), (dh,) = saved, state, d_new
    da_n = (dh - dh * z) * dtanh_from_output(n)  # dn = dh (1 - z)
    da_r = da_n * h_n * dsigmoid_from_output(r)
    da_z = dh * (h - n) * dsigmoid_from_output(z)
    return (da_r, da_z, da_n), (da_r, da_z, da_n * r), (dh * z,), d_new


GRU = CellDefinition("gru", gates=("r", "z", "n"), state_names=("h",), saved=("r", "z", "n", "h_n"),
                     forward=forward, backward=backward, h_side_apart=True,
                     doc="GRU (Cho et al. 2014), PyTorch's form")
