"""LSTM, in the lecture's letters and PyTorch's gate order i, f, g, o.

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)       input gate: how much new information enters
    f = sigma(W_if x + b_if + W_hf h + b_hf)       forget gate: how much of the memory is kept
    g = tanh (W_ig x + b_ig + W_hg h + b_hg)       candidate memory
    o = sigma(W_io x + b_io + W_ho h + b_ho)       output gate: how much of the memory is shown
    c' = f * c + i * g
    h' = o * tanh(c')

Parameters: weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,), rows i, f, g, o.
"""
from ..functional import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from .definition import CellDefinition


def forward(a_x, a_h, state):
    (x_i, x_f, x_g, x_o), (h_i, h_f, h_g, h_o), (_, c) = a_x, a_h, state
    i, f, g, o = sigmoid(x_i + h_i), sigmoid(x_f + h_f), tanh(x_g + h_g), sigmoid(x_o + h_o)
    c_new = f * c + i * g
    tanh_c = tanh(c_new)
    return (o * tanh_c, c_new), (i, f, g, o, tanh_c)


def backward(saved, state, new_state, d_new):
    (i, f, g, o, tanh_c), (_, c), (dh, dc) = saved, state, d_new
    dc = dc + dh * o * dtanh_from_output(tanh_c)  # c' reaches the loss also through h'
    da = (dc * g * dsigmoid_from_output(i),   # di * sigma'
          dc * c * dsigmoid_from_output(f),   # df * sigma'
          dc * i * dtanh_from_output(g),      # dg * tanh'
          dh * tanh_c * dsigmoid_from_output(o))  # do * sigma'
    return da, da, (0.0, dc * f), (dh, dc)  # h reaches this step only through a_h


LSTM = CellDefinition("lstm", gates=("i", "f", "g", "o"), state_names=("h", "c"), saved=("i", "f", "g", "o", "tanh_c"),
                      forward=forward, backward=backward, gate_bias={"f": 1.0},
                      doc="LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)")
