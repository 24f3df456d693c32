"""One time step's gate arithmetic, compiled with Numba: each step is one GEMM and one call here.

The cell modules (lstm.py, gru.py, rnn.py) do the GEMMs over all steps at once and, in the time
loop, h_{t-1} W_hh^T with NumPy's BLAS; everything else a step does (sigmoid, tanh, the cell update,
and in backward the gate derivatives) is one compiled loop over the batch and the hidden units
here: no temporaries, nothing allocated per step, one Python call instead of ~15 ufunc calls.
The same equations written with NumPy ufuncs sit beside each cell as its fallback.

This module imports numba, so it is imported only on first use (see backend.py); each function is
compiled on its first call for the dtype it sees and cached on disk (`cache=True`), so later runs
pay nothing.

Shapes: T = time, B = batch, H = hidden units; a step reads and writes row t of (T, B, ...) arrays.
mask (T, B): 1 inside a sequence, 0 past its end (all ones when there are no lengths).
How the loops are written was measured (ns per hidden unit: LLVM vectorizes a loop or it does not):
each inner loop over j has no branch inside (held rows are patched after it) and does not write a
row that it also reads at other offsets (the forward's activations go through the scratch row
`act`). The backward steps index per-gate (H,) views with j itself (_split4): 15% faster there,
while the same in the forward steps was 10-25% slower, measured in the time loop. The biases are
added here, not in a separate pass over all T steps' pre-activations.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

jit = numba.njit(cache=True, error_model="numpy", nogil=True)  # numpy's x/0 -> inf: lets loops vectorize


# --- scalar activations, typed per dtype ------------------------------------------------------
# Plain Python here; inside the jitted steps the overloads below stand in for them, each compiled
# for the array's own dtype with constants of that dtype, so float32 stays float32 all the way.
def tanh(a):
    return math.tanh(a)


def sigmoid(a):
    """sigma(a) = (1 + tanh(a/2)) / 2, the same formula as functional.sigmoid: no overflow."""
    return 0.5 + 0.5 * math.tanh(0.5 * a)


def relu(a):
    return max(a, 0.0)


def drelu_from_output(y):
    return 1.0 if y > 0 else 0.0


def dsigmoid_from_output(s):
    return s * (1 - s)


def dtanh_from_output(y):
    return 1 - y * y


def _constant(numba_type, value):
    """value as a scalar of the numba type's dtype (a compile-time constant in the sweeps)."""
    return as_dtype(numba_type).type(value)


def _tanh_float32(a):
    """tanh for float32 as a rational function (Eigen's and TensorFlow's): no libm call, so the
    loop vectorizes; max error 4e-7 against tanh in float64 (float32's own rounding is 6e-8)."""
    x = min(max(a, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@overload(tanh)
def _tanh(a):
    if a == types.float32:
        return _tanh_float32
    return lambda a: math.tanh(a)  # float64: libm, exact to the last bit or so


@overload(sigmoid)
def _sigmoid(a):
    half = _constant(a, 0.5)
    return lambda a: half + half * tanh(half * a)


@overload(relu)
def _relu(a):
    zero = _constant(a, 0.0)
    return lambda a: zero if a < zero else a  # NaN stays NaN, as np.maximum(a, 0)


@overload(drelu_from_output)
def _drelu_from_output(y):
    zero, one = _constant(y, 0.0), _constant(y, 1.0)
    return lambda y: one if y > zero else zero


@overload(dsigmoid_from_output)
def _dsigmoid_from_output(s):
    return lambda s: s - s * s


@overload(dtanh_from_output)
def _dtanh_from_output(y):
    one = _constant(y, 1.0)
    return lambda y: one - y * y


# --- LSTM ---------------------------------------------------------------------------------------
@jit
def lstm_forward_step(t, gates, hw, bias, hs, cs, tanh_cs, mask, act):
    """gates[t] (B, 4H): x_t W_ih^T on entry, i, f, g, o on return; hw (B, 4H) = h_{t-1} W_hh^T;
    bias (4H,) = b_ih + b_hh; writes hs[t+1], cs[t+1] (T+1, B, H) and tanh_cs[t] (T, B, H); act
    (4H,) scratch."""
    B, H = hw.shape[0], tanh_cs.shape[2]
    for b in range(B):
        a, rec = gates[t, b], hw[b]  # (4H,)
        c_prev, c, tanh_c, h = cs[t, b], cs[t + 1, b], tanh_cs[t, b], hs[t + 1, b]  # (H,)
        for j in range(H):
            i = sigmoid(a[j] + rec[j] + bias[j])
            f = sigmoid(a[H + j] + rec[H + j] + bias[H + j])
            g = tanh(a[2 * H + j] + rec[2 * H + j] + bias[2 * H + j])
            o = sigmoid(a[3 * H + j] + rec[3 * H + j] + bias[3 * H + j])
            act[j], act[H + j], act[2 * H + j], act[3 * H + j] = i, f, g, o
            c[j] = f * c_prev[j] + i * g
            tanh_c[j] = tanh(c[j])
            h[j] = o * tanh_c[j]
        _copy(act, a)  # i, f, g, o: what backward needs
        if mask[t, b] == 0:  # past the end of its sequence the row holds its state
            _copy(hs[t, b], h)
            _copy(c_prev, c)


@jit
def lstm_backward_step(t, gates, cs, tanh_cs, mask, dy, dh, dc, dA, flow_h, flow_c, dh_carry):
    """dh (B, H) = dA_{t+1} W_hh, the gradient reaching h_t through the recurrence, and dh_carry
    (B, H) what reaches it around the cell (a held step's whole gradient); dc (B, H) = dL/dc_t.
    Writes dA[t] (B, 4H), the pre-activation gradient, and leaves dL/dc_{t-1} in dc. flow_h, flow_c
    (T, B, H) get dL/dh_t, dL/dc_t (give them one row when not recording: no branch in the loop)."""
    B, H = dh.shape
    row = t if flow_h.shape[0] > t else 0
    for b in range(B):
        fh, fc, carry, dh_b, dc_b, dy_b = flow_h[row, b], flow_c[row, b], dh_carry[b], dh[b], dc[b], dy[t, b]
        if mask[t, b] == 0:  # a held step passes dh, dc straight through; its gates get nothing
            for j in range(H):
                carry[j] += dh_b[j]
                fh[j] = fc[j] = 0
            _fill(dA[t, b], 0)
            continue
        s_i, s_f, s_g, s_o = _split4(gates[t, b], H)
        da_i, da_f, da_g, da_o = _split4(dA[t, b], H)
        c_prev, tanh_c = cs[t, b], tanh_cs[t, b]
        for j in range(H):
            i, f, g, o = s_i[j], s_f[j], s_g[j], s_o[j]
            dh_j = dh_b[j] + carry[j] + dy_b[j]
            dc_j = dc_b[j] + dh_j * o * dtanh_from_output(tanh_c[j])
            da_i[j] = dc_j * g * dsigmoid_from_output(i)  # di * sigma'
            da_f[j] = dc_j * c_prev[j] * dsigmoid_from_output(f)  # df * sigma'
            da_g[j] = dc_j * i * dtanh_from_output(g)  # dg * tanh'
            da_o[j] = dh_j * tanh_c[j] * dsigmoid_from_output(o)  # do * sigma'
            dc_b[j] = dc_j * f
            fh[j], fc[j] = dh_j, dc_j
            carry[j] = 0


# --- GRU ----------------------------------------------------------------------------------------
@jit
def gru_forward_step(t, xw, hw, bias, b_hn, hs, hw_n, mask, act):
    """xw[t] (B, 3H): x_t W_ih^T on entry, r, z, n on return; hw (B, 3H) = h_{t-1} W_hh^T; bias (3H,)
    = b_ih + (b_hr, b_hz, 0); b_hn (H,); writes hs[t+1] (T+1, B, H) and hw_n[t] = W_hn h_{t-1} + b_hn
    (T, B, H), which dr needs; act (3H,) scratch."""
    B, H = hw.shape[0], hw_n.shape[2]
    for b in range(B):
        a, rec, hn, h_prev, h = xw[t, b], hw[b], hw_n[t, b], hs[t, b], hs[t + 1, b]
        for j in range(H):
            r = sigmoid(a[j] + rec[j] + bias[j])
            z = sigmoid(a[H + j] + rec[H + j] + bias[H + j])
            hn[j] = rec[2 * H + j] + b_hn[j]
            n = tanh(a[2 * H + j] + bias[2 * H + j] + r * hn[j])
            act[j], act[H + j], act[2 * H + j] = r, z, n
            h[j] = n + z * (h_prev[j] - n)  # (1 - z) n + z h
        _copy(act, a)  # r, z, n: what backward needs
        if mask[t, b] == 0:  # past the end of its sequence the row holds its state
            _copy(h_prev, h)


@jit
def gru_backward_step(t, gates, hs, hw_n, mask, dy, dh, dXW, dHW, flow_h, dh_carry):
    """dh (B, H) = dHW_{t+1} W_hh and dh_carry (B, H) = what reaches h_t around the GEMM (z h, or a
    held step's whole gradient). Writes dXW[t], dHW[t] (B, 3H), the gradients of x_t W_ih^T + b_ih
    and of h_{t-1} W_hh^T + b_hh, and flow_h[t] = dL/dh_t (one row when not recording)."""
    B, H = dh.shape
    row = t if flow_h.shape[0] > t else 0
    for b in range(B):
        fh, carry, dh_b, dy_b = flow_h[row, b], dh_carry[b], dh[b], dy[t, b]
        if mask[t, b] == 0:  # a held step passes dh straight through; its gates get nothing
            for j in range(H):
                carry[j] += dh_b[j]
                fh[j] = 0
            _fill(dXW[t, b], 0)
            _fill(dHW[t, b], 0)
            continue
        s_r, s_z, s_n = _split3(gates[t, b], H)
        dxw_r, dxw_z, dxw_n = _split3(dXW[t, b], H)
        dhw_r, dhw_z, dhw_n = _split3(dHW[t, b], H)
        hn, h_prev = hw_n[t, b], hs[t, b]
        for j in range(H):
            r, z, n = s_r[j], s_z[j], s_n[j]
            dh_j = dh_b[j] + carry[j] + dy_b[j]
            da_n = (dh_j - dh_j * z) * dtanh_from_output(n)  # dn = dh (1 - z)
            da_r = da_n * hn[j] * dsigmoid_from_output(r)
            da_z = dh_j * (h_prev[j] - n) * dsigmoid_from_output(z)
            dxw_r[j], dxw_z[j], dxw_n[j] = da_r, da_z, da_n
            dhw_r[j], dhw_z[j], dhw_n[j] = da_r, da_z, da_n * r
            carry[j] = dh_j * z
            fh[j] = dh_j


# --- Elman RNN ----------------------------------------------------------------------------------
@jit
def rnn_forward_step(t, xw, bias, hs, mask, use_relu):
    """hs[t+1] (B, H) holds h_{t-1} W_hh^T on entry and h_t on return; xw[t] = x_t W_ih^T; bias (H,)
    = b_ih + b_hh."""
    B, H = hs.shape[1], hs.shape[2]
    for b in range(B):
        a, h = xw[t, b], hs[t + 1, b]
        if use_relu:
            for j in range(H):
                h[j] = relu(h[j] + a[j] + bias[j])
        else:
            for j in range(H):
                h[j] = tanh(h[j] + a[j] + bias[j])
        if mask[t, b] == 0:  # past the end of its sequence the row holds its state
            _copy(hs[t, b], h)


@jit
def rnn_backward_step(t, hs, mask, dy, dh, dA, flow_h, dh_carry, use_relu):
    """dh (B, H) = dA_{t+1} W_hh, dh_carry (B, H) = a held step's gradient; writes dA[t] (B, H) and
    flow_h[t] = dL/dh_t (one row when not recording)."""
    B, H = dh.shape
    row = t if flow_h.shape[0] > t else 0
    for b in range(B):
        da, h, fh, carry, dh_b, dy_b = dA[t, b], hs[t + 1, b], flow_h[row, b], dh_carry[b], dh[b], dy[t, b]
        if mask[t, b] == 0:  # a held step passes dh straight through
            for j in range(H):
                carry[j] += dh_b[j]
                fh[j] = da[j] = 0
            continue
        for j in range(H):
            dh_j = dh_b[j] + carry[j] + dy_b[j]
            da[j] = dh_j * (drelu_from_output(h[j]) if use_relu else dtanh_from_output(h[j]))
            carry[j] = 0
            fh[j] = dh_j


# --- whole time loops, for one small sequence at a time -------------------------------------------
# With B = 1 (min-char-rnn: H = 100) a step's GEMM is a vector times a matrix, tens of thousands of
# multiply-adds: calling BLAS from Python each step costs more than the arithmetic (and a threaded
# BLAS whose second thread must be woken, more still). Then the whole loop runs here in one call,
# the vector-matrix product as a plain loop; backend.whole_loop draws the line, measured.
@jit
def lstm_forward_sweep(gates, W_hh_T, bias, hs, cs, tanh_cs, mask, hw, act):
    for t in range(gates.shape[0]):
        matmul(hs[t], W_hh_T, hw)
        lstm_forward_step(t, gates, hw, bias, hs, cs, tanh_cs, mask, act)


@jit
def lstm_backward_sweep(gates, W_hh, cs, tanh_cs, mask, dy, dh, dc, dA, flow_h, flow_c, dh_carry):
    for t in range(gates.shape[0] - 1, -1, -1):
        lstm_backward_step(t, gates, cs, tanh_cs, mask, dy, dh, dc, dA, flow_h, flow_c, dh_carry)
        matmul(dA[t], W_hh, dh)


@jit
def gru_forward_sweep(xw, W_hh_T, bias, b_hn, hs, hw_n, mask, hw, act):
    for t in range(xw.shape[0]):
        matmul(hs[t], W_hh_T, hw)
        gru_forward_step(t, xw, hw, bias, b_hn, hs, hw_n, mask, act)


@jit
def gru_backward_sweep(gates, W_hh, hs, hw_n, mask, dy, dh, dXW, dHW, flow_h, dh_carry):
    for t in range(gates.shape[0] - 1, -1, -1):
        gru_backward_step(t, gates, hs, hw_n, mask, dy, dh, dXW, dHW, flow_h, dh_carry)
        matmul(dHW[t], W_hh, dh)


@jit
def rnn_forward_sweep(xw, W_hh_T, bias, hs, mask, use_relu):
    for t in range(xw.shape[0]):
        matmul(hs[t], W_hh_T, hs[t + 1])
        rnn_forward_step(t, xw, bias, hs, mask, use_relu)


@jit
def rnn_backward_sweep(W_hh, hs, mask, dy, dh, dA, flow_h, dh_carry, use_relu):
    for t in range(dA.shape[0] - 1, -1, -1):
        rnn_backward_step(t, hs, mask, dy, dh, dA, flow_h, dh_carry, use_relu)
        matmul(dA[t], W_hh, dh)


@jit
def matmul(a, b, out):
    """out = a @ b for a (M, K), b (K, N), M small: each row of out is a sum of rows of b, taken four
    at a time (one pass over the output row per four rows of b); the inner loop vectorizes."""
    M, K = a.shape
    N = b.shape[1]
    for i in range(M):
        row = out[i]
        _fill(row, 0)
        k = 0
        while k + 4 <= K:
            a0, a1, a2, a3 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
            b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
            for n in range(N):
                row[n] += a0 * b0[n] + a1 * b1[n] + a2 * b2[n] + a3 * b3[n]
            k += 4
        for k in range(k, K):
            a_ik, b_k = a[i, k], b[k]
            for n in range(N):
                row[n] += a_ik * b_k[n]


# --- helpers: loops, not slices (a slice assignment costs seconds of compile time) --------------
@jit
def _split4(row, H):
    """A (4H,) row as its four gates' (H,) views. The kernels index these with j in range(H): an
    index LLVM knows is not negative (row[2 * H + j] might be, to it), so the loops vectorize."""
    return row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:4 * H]


@jit
def _split3(row, H):
    return row[:H], row[H:2 * H], row[2 * H:3 * H]


@jit
def _copy(src, dst):
    for j in range(src.shape[0]):
        dst[j] = src[j]


@jit
def _fill(dst, value):
    for j in range(dst.shape[0]):
        dst[j] = value
