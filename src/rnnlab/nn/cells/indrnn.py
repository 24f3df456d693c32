"""IndRNN (Li, Li, Cook, Zhu & Gao 2018): each unit is its own recurrence, a vector u instead of W_hh.

    h' = relu(W_ih x + b_ih + u * h + b_hh)

dh'/dh = relu' * u is diagonal, so how far a gradient travels back is each unit's own u^T, not
the spectrum of a matrix: with 0 < u <= 1 it neither explodes nor mixes units (layers mix them).
Parameters: weight_ih (H, D), weight_hh = u (H,), bias_ih (H,), bias_hh (H,); one gate, "a".
init="orthogonal" starts u in U(0, 1): positive, at most 1.
"""
from ..functional import drelu_from_output, relu
from .definition import CellDefinition, Param


def forward(a_x, a_h, state):  # a_h = u * h + b_hh, from the driver (recurrence="diagonal")
    return (relu(a_x[0] + a_h[0]),), ()


def backward(saved, state, new_state, d_new):
    da = (d_new[0] * drelu_from_output(new_state[0]),)
    return da, da, (0.0,), d_new  # h reaches this step only through u * h


INDRNN = CellDefinition(
    "indrnn", gates=("a",), state_names=("h",), saved=(), forward=forward, backward=backward,
    recurrence="diagonal", label="IndRNN", doc="IndRNN (Li et al. 2018): h' = relu(W x + u * h + b), u a vector",
    parameters=(Param("weight_ih", lambda D, H, G: (G * H, D), "glorot"),
                Param("weight_hh", lambda D, H, G: (G * H,), "unit_uniform"),
                Param("bias_ih", lambda D, H, G: (G * H,), "zeros"),
                Param("bias_hh", lambda D, H, G: (G * H,), "zeros")))
