"""The minimal gated unit (Zhou, Wu, Zhang & Zhou 2016), defined outside rnnlab and registered.

    f  = sigma(W_f x + b_f + U_f h + c_f)          forget gate, the only gate
    n  = tanh (W_n x + b_n + f * (U_n h + c_n))    candidate state
    h' = (1 - f) * h + f * n

The paper writes n = tanh(W_n x + U_n (f * h) + b_n): U_n acts on the gated state, so f would have
to be known before the recurrent GEMM of its own step. This is the variant that gates after the
GEMM, as PyTorch's GRU does with its reset gate: one GEMM per step for both gates, at the price of
an h-side pre-activation whose gradient differs from the x side at n (h_side_apart).

Parameters: weight_ih (2H, D), weight_hh (2H, H), bias_ih (2H,), bias_hh (2H,), rows f, n.
"""
import rnnlab
from rnnlab.nn.functional import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh


def forward(a_x, a_h, state):
    (x_f, x_n), (h_f, h_n), (h,) = a_x, a_h, state
    f = sigmoid(x_f + h_f)
    n = tanh(x_n + f * h_n)
    return (h + f * (n - h),), (f, n, h_n)  # (1 - f) h + f n


def backward(saved, state, new_state, d_new):
    (f, n, h_n), (h,), (dh,) = saved, state, d_new
    da_n = dh * f * dtanh_from_output(n)              # dn = dh f
    df = dh * (n - h) + da_n * h_n                    # f reaches h' directly and through n
    da_f = df * dsigmoid_from_output(f)
    return (da_f, da_n), (da_f, da_n * f), (dh - dh * f,), d_new  # dh (1 - f): h' keeps (1 - f) h


MGU = rnnlab.register_cell(rnnlab.CellDefinition(
    "mgu", gates=("f", "n"), state_names=("h",), saved=("f", "n", "h_n"), forward=forward, backward=backward,
    h_side_apart=True, label="MGU", doc="minimal gated unit (Zhou et al. 2016), gated after the GEMM"))
