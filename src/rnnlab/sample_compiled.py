"""The char model's whole per-character step, compiled: what sample.generate runs where Numba can.

One compiled call samples N characters: for each, draw from the logits (temperature, top-k, inverse
CDF of one uniform, as numpy's Generator.choice does), then step every layer and the output layer
from the carried state, nothing allocated. The first layer's input projection is a lookup: the
embedding times W_ih^T plus the biases is one (V, G*H) table, computed once per generate call.

Shapes: V = vocabulary, E = embedding, H = hidden units, L = layers, G = gates, N = characters.
cell codes: 0 LSTM (i, f, g, o), 1 GRU (r, z, n), 2 tanh RNN, 3 ReLU RNN; PyTorch's equations.
"""
from __future__ import annotations

import math

import numpy as np

from .nn.backend import fused_or_none

CELL_CODES = {"lstm": 0, "gru": 1, "rnn": 2, "rnn_tanh": 2, "rnn_relu": 3}
_compiled = None  # (jit-compiled run, packing) once numba has imported


def _build():
    """Compile on first use: importing numba costs a second that `import rnnlab` should not pay."""
    fused = fused_or_none()
    if fused is None:
        return None
    from numba import njit

    sigmoid, tanh, relu = fused.sigmoid, fused.tanh, fused.relu  # the training path's activations
    jit = njit(cache=True, error_model="numpy", nogil=True)

    @jit
    def matvec_add(x, W_T, out):
        """out (N,) += x (K,) @ W_T (K, N): row by row, so the inner loop is a vectorized axpy."""
        for k in range(x.shape[0]):
            xk, row = x[k], W_T[k]
            for j in range(out.shape[0]):
                out[j] += xk * row[j]

    @jit
    def sample(logits, temperature, top_k, u, p):
        """An id drawn from softmax(logits / temperature) kept to the top k, as Generator.choice
        draws it from one uniform u: the first index whose normalized cumulative p exceeds u."""
        V = logits.shape[0]
        for v in range(V):
            p[v] = np.float64(logits[v]) / temperature
        if 0 < top_k < V:
            cutoff = np.sort(p)[V - top_k]  # the k-th largest, as np.partition finds it
            for v in range(V):
                if p[v] < cutoff:
                    p[v] = -np.inf
        top = p.max()
        total = 0.0
        for v in range(V):
            total += math.exp(p[v] - top)
        log_total = math.log(total)
        cumulative = 0.0
        for v in range(V):
            cumulative += math.exp(p[v] - top - log_total)
            p[v] = cumulative
        for v in range(V):
            if p[v] / cumulative > u:
                return v
        return V - 1

    @jit
    def run(cell, first_logits, uniforms, temperature, top_k, table, W_ih_T, W_hh_T, b_ih, b_hh,
            head_W_T, head_b, h, c, out_ids, logits, ax, ah, p):
        """Sample len(uniforms) ids into out_ids, stepping the model after each; logits (V,) and the
        state h, c (L, H) are left ready for the next call. table (V, G*H); W_ih_T (max(L-1, 1), H,
        G*H) for layers 1..; W_hh_T (L, H, G*H); b_ih, b_hh (L, G*H) (layer 0's b_ih is in the
        table); head_W_T (H, V), head_b (V,); ax, ah (G*H,) and p (V,) scratch."""
        L, H = h.shape
        logits[:] = first_logits
        for n in range(uniforms.shape[0]):
            x_id = sample(logits, temperature, top_k, uniforms[n], p)
            out_ids[n] = x_id
            for layer in range(L):
                if layer == 0:
                    ax[:] = table[x_id]
                else:
                    ax[:] = b_ih[layer]
                    matvec_add(h[layer - 1], W_ih_T[layer - 1], ax)
                ah[:] = b_hh[layer]
                matvec_add(h[layer], W_hh_T[layer], ah)
                hl = h[layer]
                if cell == 0:
                    cl = c[layer]
                    for j in range(H):
                        i = sigmoid(ax[j] + ah[j])
                        f = sigmoid(ax[H + j] + ah[H + j])
                        g = tanh(ax[2 * H + j] + ah[2 * H + j])
                        o = sigmoid(ax[3 * H + j] + ah[3 * H + j])
                        cl[j] = f * cl[j] + i * g
                        hl[j] = o * tanh(cl[j])
                elif cell == 1:
                    for j in range(H):
                        r = sigmoid(ax[j] + ah[j])
                        z = sigmoid(ax[H + j] + ah[H + j])
                        nn = tanh(ax[2 * H + j] + r * ah[2 * H + j])
                        hl[j] = nn + z * (hl[j] - nn)  # (1 - z) n + z h
                elif cell == 2:
                    for j in range(H):
                        hl[j] = tanh(ax[j] + ah[j])
                else:
                    for j in range(H):
                        hl[j] = relu(ax[j] + ah[j])
            logits[:] = head_b
            matvec_add(h[L - 1], head_W_T, logits)

    return run


class CompiledSampler:
    """A CharRNN's weights packed for `run`, and its state between calls."""

    def __init__(self, run, model, state):
        rnn, dtype = model.rnn, model.rnn.dtype
        L, H = rnn.num_layers, rnn.hidden_size
        params = [rnn._params(f"_l{layer}") for layer in range(L)]  # (W_ih, W_hh, b_ih, b_hh) per layer
        G = params[0][1].shape[0] // H
        zeros = np.zeros(G * H, dtype)
        b_ih = np.stack([zeros if b is None else b for _, _, b, _ in params]).astype(dtype)  # (L, G*H)
        b_hh = np.stack([zeros if b is None else b for _, _, _, b in params]).astype(dtype)
        emb = model.embedding.weight.data  # (V, E)
        self.table = np.ascontiguousarray(emb @ params[0][0].T + b_ih[0], dtype=dtype)  # (V, G*H)
        self.W_ih_T = np.ascontiguousarray(np.stack([W.T for W, _, _, _ in params[1:]] or [np.zeros((H, G * H))]),
                                           dtype=dtype)  # (max(L-1, 1), H, G*H)
        self.W_hh_T = np.ascontiguousarray(np.stack([W.T for _, W, _, _ in params]), dtype=dtype)  # (L, H, G*H)
        self.b_ih, self.b_hh = b_ih, b_hh
        self.head_W_T = np.ascontiguousarray(model.head.weight.data.T, dtype=dtype)  # (H, V)
        V = self.head_W_T.shape[1]
        self.head_b = np.zeros(V, dtype) if model.head.bias is None else model.head.bias.data.astype(dtype)
        parts = state if isinstance(state, tuple) else (state, np.zeros_like(state))
        self.h = np.ascontiguousarray(parts[0][:, 0], dtype=dtype)  # (L, H): batch of one
        self.c = np.ascontiguousarray(parts[1][:, 0], dtype=dtype)
        self.cell = CELL_CODES[model.config.cell]
        self.logits = np.empty(V, dtype)  # (V,) carried between calls
        self.ax, self.ah, self.p = np.empty(G * H, dtype), np.empty(G * H, dtype), np.empty(V)
        self.run = run

    def sample(self, first_logits, uniforms, temperature: float, top_k: int | None) -> np.ndarray:
        """len(uniforms) ids, the first drawn from first_logits (V,), each next from the model's step."""
        out = np.empty(len(uniforms), np.int64)
        self.run(self.cell, np.asarray(first_logits, self.logits.dtype), uniforms, float(temperature),
                 int(top_k or 0), self.table, self.W_ih_T, self.W_hh_T, self.b_ih, self.b_hh, self.head_W_T,
                 self.head_b, self.h, self.c, out, self.logits, self.ax, self.ah, self.p)
        return out


def compiled_sampler(model, state):
    """A CompiledSampler for this model from this state, or None where the Python loop must do:
    numba cannot import, a cell this module does not know, or a dtype Numba does not take."""
    global _compiled
    rnn = getattr(model, "rnn", None)
    if getattr(getattr(model, "config", None), "cell", None) not in CELL_CODES or rnn is None:
        return None
    if rnn.dtype not in (np.float32, np.float64) or rnn.bidirectional:
        return None
    if _compiled is None:
        _compiled = _build() or False
    return CompiledSampler(_compiled, model, state) if _compiled else None
