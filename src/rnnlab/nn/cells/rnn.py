"""Elman RNN: the recurrence of the lecture, h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).

The state h is the network's memory: each step sees the present input and, through W_hh, the past.
Parameters: weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,); one gate, "a".
"""
from ..functional import drelu_from_output, dtanh_from_output, relu, tanh
from .definition import CellDefinition


def forward_tanh(a_x, a_h, state):
    return (tanh(a_x[0] + a_h[0]),), ()


def backward_tanh(saved, state, new_state, d_new):
    da = (d_new[0] * dtanh_from_output(new_state[0]),)
    return da, da, (0.0,), d_new


def forward_relu(a_x, a_h, state):
    return (relu(a_x[0] + a_h[0]),), ()


def backward_relu(saved, state, new_state, d_new):
    da = (d_new[0] * drelu_from_output(new_state[0]),)
    return da, da, (0.0,), d_new


RNN_TANH = CellDefinition("rnn", gates=("a",), state_names=("h",), saved=(), forward=forward_tanh,
                          backward=backward_tanh, label="RNN", doc="Elman RNN, tanh")
RNN_RELU = CellDefinition("rnn_relu", gates=("a",), state_names=("h",), saved=(), forward=forward_relu,
                          backward=backward_relu, label="RNN (relu)", doc="Elman RNN, relu")
