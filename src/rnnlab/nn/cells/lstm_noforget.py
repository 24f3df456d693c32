"""The original LSTM (Hochreiter & Schmidhuber 1997): input and output gates, no forget gate.

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)       input gate
    g = tanh (W_ig x + b_ig + W_hg h + b_hg)       candidate memory
    o = sigma(W_io x + b_io + W_ho h + b_ho)       output gate
    c' = c + i * g                                  the constant error carousel: dc'/dc = 1
    h' = o * tanh(c')

Without f the memory is never erased: on a stream that is never reset, c grows (Gers, Schmidhuber &
Cummins 2000 added the forget gate for that); with it, the lstm cell can learn to let go.
Parameters: weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,), rows i, g, o.
"""
from ..functional import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from .definition import CellDefinition


def forward(a_x, a_h, state):
    (x_i, x_g, x_o), (h_i, h_g, h_o), (_, c) = a_x, a_h, state
    i, g, o = sigmoid(x_i + h_i), tanh(x_g + h_g), sigmoid(x_o + h_o)
    c_new = c + i * g
    tanh_c = tanh(c_new)
    return (o * tanh_c, c_new), (i, g, o, tanh_c)


def backward(saved, state, new_state, d_new):
    (i, g, o, tanh_c), (dh, dc) = saved, d_new
    dc = dc + dh * o * dtanh_from_output(tanh_c)  # c' reaches the loss also through h'
    da = (dc * g * dsigmoid_from_output(i),   # di * sigma'
          dc * i * dtanh_from_output(g),      # dg * tanh'
          dh * tanh_c * dsigmoid_from_output(o))  # do * sigma'
    return da, da, (0.0, dc), (dh, dc)  # c passes on whole: no f to scale it


LSTM_NOFORGET = CellDefinition(
    "lstm_noforget", gates=("i", "g", "o"), state_names=("h", "c"), saved=("i", "g", "o", "tanh_c"),
    forward=forward, backward=backward, label="LSTM (no forget gate)",
    doc="the original LSTM (Hochreiter & Schmidhuber 1997): input and output gates, no forget gate")
