"""The peephole LSTM (Gers & Schmidhuber 2000): the gates also look at the memory cell.

    i  = sigma(W_ii x + b_ii + W_hi h + b_hi + w_ci * c)     input gate, sees the old memory
    f  = sigma(W_if x + b_if + W_hf h + b_hf + w_cf * c)     forget gate, sees the old memory
    g  = tanh (W_ig x + b_ig + W_hg h + b_hg)                candidate memory
    c' = f * c + i * g
    o  = sigma(W_io x + b_io + W_ho h + b_ho + w_co * c')    output gate, sees the new memory
    h' = o * tanh(c')

Parameters: the LSTM's weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,), rows
i, f, g, o; and the cell's own peephole weights weight_ci, weight_cf, weight_co (H,), one per unit
(a diagonal matrix each), which forward and backward receive as `p`.
"""
import rnnlab
from rnnlab.nn.cells import Param, standard_parameters
from rnnlab.nn.functional import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh


def forward(a_x, a_h, state, p):
    (x_i, x_f, x_g, x_o), (h_i, h_f, h_g, h_o), (_, c), (w_ci, w_cf, w_co) = a_x, a_h, state, p
    i, f, g = sigmoid(x_i + h_i + w_ci * c), sigmoid(x_f + h_f + w_cf * c), tanh(x_g + h_g)
    c_new = f * c + i * g
    o = sigmoid(x_o + h_o + w_co * c_new)
    tanh_c = tanh(c_new)
    return (o * tanh_c, c_new), (i, f, g, o, tanh_c)


def backward(saved, state, new_state, d_new, p):
    (i, f, g, o, tanh_c), (_, c), (_, c_new), (dh, dc), (w_ci, w_cf, w_co) = saved, state, new_state, d_new, p
    da_o = dh * tanh_c * dsigmoid_from_output(o)
    dc = dc + dh * o * dtanh_from_output(tanh_c) + da_o * w_co  # c' reaches the loss through h' and o
    da_i, da_f = dc * g * dsigmoid_from_output(i), dc * c * dsigmoid_from_output(f)
    da = (da_i, da_f, dc * i * dtanh_from_output(g), da_o)
    dc_prev = dc * f + da_i * w_ci + da_f * w_cf  # c reaches this step through c' and the two peepholes
    return da, da, (0.0, dc_prev), (dh, dc), (da_i * c, da_f * c, da_o * c_new)


PEEPHOLES = tuple(Param(name, lambda D, H, G: (H,), "zeros") for name in ("weight_ci", "weight_cf", "weight_co"))
PEEPHOLE_LSTM = rnnlab.register_cell(rnnlab.CellDefinition(
    "peephole_lstm", gates=("i", "f", "g", "o"), state_names=("h", "c"), saved=("i", "f", "g", "o", "tanh_c"),
    forward=forward, backward=backward, parameters=standard_parameters() + PEEPHOLES, gate_bias={"f": 1.0},
    label="Peephole LSTM", doc="LSTM with peephole connections (Gers & Schmidhuber 2000)"))
