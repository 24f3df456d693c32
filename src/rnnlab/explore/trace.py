"""What a character model does while it reads a text: states, gates, predictions, connectivity.

Shapes: T = characters read, L = layers, H = hidden units, V = vocabulary, E = embedding size,
N = positions whose connectivity is computed, W = connectivity window.

    model, vocab, _ = load_char_model("runs/char")
    tr = read(model, vocab, text)           # tr.h (L, T, H), tr.c (L, T, H) or None, tr.logp (T, V)
    conn = connectivity(model, vocab, text, tr, positions=[10, 20], window=100)

h[l, t] is layer l's state after reading text[t], starting from zeros; logp[t] is the model's log
distribution of the character after text[t]. Everything comes from the model's own layers (its
recurrent stack, output layer and backward pass); the gates come from the cell definition's own
forward, by the names it gives them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nn.losses import log_softmax

def gate_names(rnn) -> list[str]:
    """The gates the stack's cell definition names and keeps among its saved activations (i, f, g, o
    for the LSTM; r, z, n for the GRU; none for the plain RNN)."""
    return [g for g in rnn.kind.gates if g in rnn.kind.saved]


def state_names(rnn) -> tuple[str, ...]:
    """("h", "c") for the LSTM, ("h",) for the others: the cell definition's state variables."""
    return tuple(rnn.kind.state_names)


@dataclass
class Trace:
    """A model reading one text from a zero state."""

    text: str
    ids: np.ndarray                       # (T,) int64
    states: dict[str, np.ndarray]         # the cell's state variables (h; c for the LSTM), each (L, T, H) after each character
    gates: dict[str, np.ndarray]          # name -> (L, T, H) each named gate of the cell at each step
    logp: np.ndarray                      # (T, V) float64 log p(next char | text[:t+1])

    @property
    def h(self) -> np.ndarray:
        return self.states["h"]

    @property
    def c(self) -> np.ndarray | None:
        return self.states.get("c")

    def state(self, name: str) -> np.ndarray | None:
        """A state variable (L, T, H) by name; None for one this cell does not have."""
        return self.states.get(name)


def _layer_params(rnn, layer: int):
    get = lambda name: getattr(rnn, f"{name}_l{layer}", None)
    return tuple(None if get(n) is None else get(n).data for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _split_state(state, names) -> tuple[np.ndarray, ...]:
    return tuple(state) if len(names) > 1 else (state,)


def read(model, vocab, text: str, chunk: int = 32) -> Trace:
    """Run `model` over `text` from a zero state and keep every layer's states, gates and predictions."""
    rnn = model.rnn
    if getattr(rnn, "num_directions", 1) != 1:
        raise ValueError("explore reads text left to right; a bidirectional model has no next-character prediction")
    if not text:
        raise ValueError("the text to explore is empty")
    ids = vocab.encode(text, source="the text to explore")  # (T,)
    names = state_names(rnn)
    model.eval()
    T, L, H = len(ids), rnn.num_layers, rnn.hidden_size
    logits = model(ids[None, :])  # (1, T, V): the prediction after every character, in one pass
    x = model.embedding(ids[None, :])[0]  # (T, E)
    states = {name: np.empty((L, T, H), rnn.dtype) for name in names}
    # Every layer's state after every character, K characters per call: a batch of K copies of the
    # chunk, copy j of length j+1 (the stack holds a state past its sequence's end), so copy j's
    # final state is the state after character j of the chunk. One call per chunk, not per character.
    K = chunk
    state = tuple(np.zeros((L, 1, H), rnn.dtype) for _ in names)
    for s in range(0, T, K):
        n = min(K, T - s)
        batch = np.broadcast_to(x[s:s + n], (n, n, x.shape[1]))  # (n, n, E)
        start = tuple(np.repeat(part, n, axis=1) for part in state)  # (L, n, H) each
        _, final = rnn(batch, start if len(names) > 1 else start[0], np.arange(1, n + 1))
        final = _split_state(final, names)
        for name, part in zip(names, final):
            states[name][:, s:s + n] = part  # (L, n, H)
        state = tuple(part[:, -1:] for part in final)
    return Trace(text, ids, states, gate_values(rnn, x, states),
                 log_softmax(logits[0].astype(np.float64)))


def gate_values(rnn, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each named gate (L, T, H), from the cell definition's own forward on every step at once.

    x (T, E) is the stack's input, states[name] (L, T, H) every layer's state variables after each
    step. A step's pre-activations are a_x = x W_ih^T + b_ih and a_h = h W_hh^T + b_hh (u * h + b_hh
    for a diagonal recurrence), cut into G row blocks; `cell.forward(a_x, a_h, previous state)` gives
    the saved activations by name. The T steps go through as one batch of T rows."""
    cell, names = rnn.kind, gate_names(rnn)
    L, T, H = states["h"].shape
    out = {name: np.empty((L, T, H), states["h"].dtype) for name in names}
    if not names:
        return out
    inputs = x
    for layer in range(L):
        W_ih, W_hh, b_ih, b_hh = _layer_params(rnn, layer)
        prev = tuple(np.concatenate([np.zeros((1, H), s.dtype), s[layer, :-1]])  # (T, H): the state before step t
                     for s in (states[n] for n in cell.state_names))
        a_x = inputs @ W_ih.T  # (T, G*H)
        a_h = prev[0] @ W_hh.T if cell.recurrence == "dense" else W_hh * np.tile(prev[0], cell.G)
        if b_ih is not None:
            a_x, a_h = a_x + b_ih, a_h + b_hh
        blocks = lambda a: tuple(a[:, g * H:(g + 1) * H] for g in range(cell.G))
        _, saved = cell.forward(blocks(a_x), blocks(a_h), prev)
        for name in names:
            out[name][layer] = saved[cell.saved.index(name)]
        inputs = states["h"][layer]
    return out


def top_k(logp: np.ndarray, chars: list[str], k: int = 5, round_to=None) -> list[list]:
    """Per position the k likeliest next characters with their probabilities, [[char, p], ...]
    (round_to: a function applied to the (T, k) probabilities, e.g. codec.round_sig)."""
    k = min(k, logp.shape[-1])
    best = np.argsort(-logp, axis=-1, kind="stable")[:, :k]  # (T, k)
    p = np.exp(np.take_along_axis(logp, best, axis=-1))
    if round_to is not None:
        p = round_to(p)
    return [[[chars[j], float(q)] for j, q in zip(row, prow)] for row, prow in zip(best, p)]


def default_positions(T: int, max_positions: int = 250) -> list[int]:
    """Every k-th position (k = ceil((T-1) / max_positions)) among those with a next character, plus the last."""
    if T < 2 or max_positions < 1:
        return []
    k = max(1, -(-(T - 1) // max_positions))
    positions = list(range(k - 1, T - 1, k))
    if positions[-1] != T - 2:
        positions.append(T - 2)
    return positions[-max_positions:] if len(positions) > max_positions else positions


def connectivity(model, trace: Trace, positions, window: int = 200, group: int = 32) -> list[np.ndarray]:
    """For each position t: ||d log p(text[t+1] | text[:t+1]) / d e_t'|| for t' = max(0, t-window+1) .. t.

    e_t' is the embedding vector of text[t'] (the recurrent stack's input). Each position is its own
    backward pass through the model's BPTT: the window is read from the states stored in `trace`
    (held fixed), the output layer gives d log p / d logits = onehot - p, and the recurrent layer's
    backward returns the gradient at every input of the window. Positions run `group` at a time as
    one batch. Returns one float64 array per position, oldest first, ending at t' = t.
    """
    rnn, names = model.rnn, state_names(model.rnn)
    T = len(trace.ids)
    positions = [int(t) for t in positions]
    for t in positions:
        if not 0 <= t < T - 1:
            raise ValueError(f"connectivity positions must lie in 0..{T - 2} (a next character must follow); got {t}")
    model.eval()
    L, H = rnn.num_layers, rnn.hidden_size
    result: dict[int, np.ndarray] = {}
    # Windows of one length batch together; only the first window-1 positions have shorter ones.
    by_length: dict[int, list[int]] = {}
    for t in positions:
        by_length.setdefault(min(window, t + 1), []).append(t)
    params = model.parameters()
    saved = [p.grad.copy() for p in params]
    try:
        for W, ts in by_length.items():
            for g0 in range(0, len(ts), group):
                chunk = np.array(ts[g0:g0 + group])  # (N,)
                starts = chunk - W + 1
                ids = trace.ids[starts[:, None] + np.arange(W)[None, :]]  # (N, W)
                state0 = []
                for name in names:
                    s = np.zeros((L, len(chunk), H), rnn.dtype)
                    held = starts > 0
                    s[:, held] = trace.state(name)[:, starts[held] - 1]  # the state before the window
                    state0.append(s)
                x = model.embedding(ids)  # (N, W, E)
                y, _ = rnn(x, tuple(state0) if len(names) > 1 else state0[0])  # (N, W, H)
                logits = model.head(y[:, -1])  # (N, V)
                onehot = np.zeros_like(logits)
                onehot[np.arange(len(chunk)), trace.ids[chunk + 1]] = 1
                dlogits = onehot - np.exp(log_softmax(logits.astype(np.float64))).astype(logits.dtype)
                dy = np.zeros_like(y)
                dy[:, -1] = model.head.backward(dlogits)
                dx, _ = rnn.backward(dy)  # (N, W, E)
                norms = np.sqrt(np.einsum("nwe,nwe->nw", dx.astype(np.float64), dx.astype(np.float64)))
                for t, row in zip(chunk, norms):
                    result[int(t)] = row
    finally:
        for p, grad in zip(params, saved):
            p.grad[...] = grad
    return [result[t] for t in positions]
