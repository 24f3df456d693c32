"""The char model's whole per-character step, compiled: what sample.generate runs where Numba can.

One compiled call samples N characters: for each, draw from the logits (temperature, top-k, inverse
CDF of one uniform, as numpy's Generator.choice does), then step every layer and the output layer
from the carried state, nothing allocated. The first layer's input projection is a lookup: the
embedding times W_ih^T plus b_ih is one (V, G*H) table, computed once per generate call. Any cell
definition runs: its own `forward` is inlined on scalars, as the driver's Numba loops do (fused.py).

Shapes: V = vocabulary, E = embedding, H = hidden units, L = layers, G = gates, S = state
variables, N = characters per call.
"""
from __future__ import annotations

import inspect
import math

import numpy as np



# --- the loops, plain Python here; compiled per cell with the cell's step inlined (see _run_for) ---
def matvec_add(x, W_T, out):
    """out (N,) += x (K,) @ W_T (K, N): row by row, so the inner loop is a vectorized axpy."""
    for k in range(x.shape[0]):
        xk, row = x[k], W_T[k]
        for j in range(out.shape[0]):
            out[j] += xk * row[j]


def sample(logits, temperature, top_k, u, p):
    """An id drawn from softmax(logits / temperature) kept to the top k, as Generator.choice draws
    it from one uniform u: the first index whose normalized cumulative probability exceeds u; -1 if
    a logit is NaN or infinite (a damaged or diverged model: there is nothing to draw from)."""
    V = logits.shape[0]
    for v in range(V):
        if not math.isfinite(logits[v]):
            return -1
        p[v] = np.float64(logits[v]) / temperature
    if 0 < top_k < V:
        cutoff = np.sort(p)[V - top_k]  # the k-th largest, as np.partition finds it
        for v in range(V):
            if p[v] < cutoff:
                p[v] = -np.inf
    top = p.max()
    if math.isinf(top):  # logits / temperature overflowed: only the likeliest remain, evenly
        for v in range(V):
            p[v] = 0.0 if p[v] == top else -np.inf
        top = 0.0
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


def run(first_logits, uniforms, temperature, top_k, table, W_ih_T, W_hh, b_ih, b_hh, head_W_T, head_b,
        states, out_ids, logits, ax, ah, p):
    """Sample len(uniforms) ids into out_ids, stepping the model after each (up to a -1: non-finite
    logits, where it stops); logits (V,) and states
    (S, L, H) are left ready for the next call. table (V, G*H) = embedding W_ih^T + b_ih of layer 0;
    W_ih_T (max(L-1, 1), H, G*H) for layers 1..; W_hh (L, H, G*H) = W_hh^T, or (L, 1, G*H) = u for a
    diagonal recurrence; b_ih, b_hh (L, G*H); head_W_T (H, V), head_b (V,); ax, ah (G*H,), p (V,) scratch."""
    L = states.shape[1]
    logits[:] = first_logits
    for n in range(uniforms.shape[0]):
        x_id = sample(logits, temperature, top_k, uniforms[n], p)
        out_ids[n] = x_id
        if x_id < 0:  # non-finite logits: the caller stops here
            return
        for layer in range(L):
            if layer == 0:
                ax[:] = table[x_id]
            else:
                ax[:] = b_ih[layer]
                matvec_add(states[0, layer - 1], W_ih_T[layer - 1], ax)
            ah[:] = b_hh[layer]
            if DENSE:
                matvec_add(states[0, layer], W_hh[layer], ah)
            cell_update(ax, ah, W_hh[layer, 0], states, layer)
        logits[:] = head_b
        matvec_add(states[0, L - 1], head_W_T, logits)


def cell_source(G: int, S: int, dense: bool) -> str:
    """cell_update(ax, ah, u, states, layer): the cell's step for every unit j of one layer, in place.
    ax, ah (G*H,) are the two sides' pre-activations with their biases; u (G*H,) the diagonal
    recurrence's weights (unused when dense)."""
    a_x = ", ".join(f"ax[{g} * H + j]" for g in range(G)) + ("," if G == 1 else "")
    if dense:
        a_h = ", ".join(f"ah[{g} * H + j]" for g in range(G))
    else:
        a_h = ", ".join(f"u[{g} * H + j] * states[0, layer, j] + ah[{g} * H + j]" for g in range(G))
    a_h += "," if G == 1 else ""
    state = ", ".join(f"states[{k}, layer, j]" for k in range(S)) + ("," if S == 1 else "")
    return "\n".join([
        "def cell_update(ax, ah, u, states, layer):",
        "    H = states.shape[2]",
        "    for j in range(H):",
        f"        new, _ = step(({a_x}), ({a_h}), ({state}))",
        *[f"        states[{k}, layer, j] = new[{k}]" for k in range(S)],
        ""])


def _run_for(fast, cell, dtype):
    """`run` compiled for this cell definition and dtype (once per process, kept in fast.compiled; on
    disk through Numba's cache). The cell's step is its typed copy (fused.literals_of_dtype): a literal
    in its equations keeps float32 arithmetic float32, as in the time loops."""
    dtype = np.dtype(dtype)
    if ("sampler", cell, dtype) in fast.compiled:
        return fast.compiled["sampler", cell, dtype]
    fused = fast.fused()
    import numba

    dense = cell.recurrence == "dense"
    functions = ["@jit\n" + inspect.getsource(fn) for fn in (matvec_add, sample, run)]
    functions.append("@jit\n" + cell_source(cell.G, len(cell.state_names), dense))
    source = f"# the sampler of cell {cell.name!r} on {dtype.name} arrays\n" + "\n\n".join(functions)
    module = fused.generated_module(cell, source, f"sampler_{dtype.name}", {
        "np": np, "math": math, "DENSE": dense,
        "step": numba.njit(inline="always", error_model="numpy")(fused.literals_of_dtype(cell.forward, dtype))})
    fast.compiled["sampler", cell, dtype] = module.run
    return module.run


class CompiledSampler:
    """A char model's weights packed for `run`, and its state between calls."""

    def __init__(self, run_fn, model, state):
        rnn, dtype = model.rnn, model.rnn.dtype
        cell, L, H = rnn.kind, rnn.num_layers, rnn.hidden_size
        G = cell.G
        params = [rnn._params(f"_l{layer}") for layer in range(L)]  # (W_ih, W_hh, b_ih, b_hh) per layer
        zeros = np.zeros(G * H, dtype)
        self.b_ih = np.stack([zeros if b is None else b for _, _, b, _ in params]).astype(dtype)  # (L, G*H)
        self.b_hh = np.stack([zeros if b is None else b for _, _, _, b in params]).astype(dtype)
        emb = model.embedding.weight.data  # (V, E)
        self.table = np.ascontiguousarray(emb @ params[0][0].T + self.b_ih[0], dtype=dtype)  # (V, G*H)
        self.W_ih_T = np.ascontiguousarray(
            np.stack([W.T for W, _, _, _ in params[1:]] or [np.zeros((H, G * H))]), dtype=dtype)  # (max(L-1, 1), H, G*H)
        if cell.recurrence == "dense":
            self.W_hh = np.ascontiguousarray(np.stack([W.T for _, W, _, _ in params]), dtype=dtype)  # (L, H, G*H)
        else:
            self.W_hh = np.ascontiguousarray(np.stack([W[None, :] for _, W, _, _ in params]), dtype=dtype)  # (L, 1, G*H)
        self.head_W_T = np.ascontiguousarray(model.head.weight.data.T, dtype=dtype)  # (H, V)
        V = self.head_W_T.shape[1]
        self.head_b = np.zeros(V, dtype) if model.head.bias is None else model.head.bias.data.astype(dtype)
        parts = state if isinstance(state, tuple) else (state,)
        self.states = np.ascontiguousarray(np.stack([s[:, 0] for s in parts]), dtype=dtype)  # (S, L, H): batch of one
        self.logits = np.empty(V, dtype)  # (V,) carried between calls
        self.ax, self.ah, self.p = np.empty(G * H, dtype), np.empty(G * H, dtype), np.empty(V)
        self.run = run_fn

    def sample(self, first_logits, uniforms, temperature: float, top_k: int | None) -> np.ndarray:
        """len(uniforms) ids, the first drawn from first_logits (V,), each next from the model's step; the
        ids end at a -1 if the logits turned non-finite."""
        out = np.empty(len(uniforms), np.int64)
        self.run(np.asarray(first_logits, self.logits.dtype), uniforms, float(temperature), int(top_k or 0),
                 self.table, self.W_ih_T, self.W_hh, self.b_ih, self.b_hh, self.head_W_T, self.head_b,
                 self.states, out, self.logits, self.ax, self.ah, self.p)
        return out


def compiled_sampler(fast, model, state):
    """A CompiledSampler for this model from this state, or None where the Python loop must do: a
    dtype or layout the compiled step does not take."""
    rnn = getattr(model, "rnn", None)
    if rnn is None or not hasattr(rnn, "kind") or rnn.bidirectional or rnn.dtype not in (np.float32, np.float64):
        return None
    if rnn.kind.extra_parameters:  # the compiled step takes the four standard parameters: the Python loop
        return None
    return CompiledSampler(_run_for(fast, rnn.kind, rnn.dtype), model, state)
