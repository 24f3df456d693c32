"""Single-step cells, for generation one step at a time and for writing the unrolled loop by hand.

Each call to `forward` pushes what its backward needs; `backward` pops it, so a loop of T forward
calls followed by T backward calls is exactly BPTT over the unrolled network.

Shapes: B = batch, D = input features, H = hidden units. x (B, D); h, c (B, H).
"""
from __future__ import annotations

import numpy as np

from .functional import CellKind
from .gru import GRU_KIND
from .lstm import LSTM_KIND
from .module import Layer, Parameter, as_generator
from .rnn import RNN_RELU_KIND, RNN_TANH_KIND
from .stack import check_array


class Cell(Layer):
    """One recurrent step of a given kind, with PyTorch's parameter names (weight_ih, weight_hh, ...)."""

    def __init__(self, kind: CellKind, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=np.float32, rng=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.kind = kind
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        self.dtype = np.dtype(dtype)
        rng = as_generator(rng)
        G, H, bound = kind.gates, self.hidden_size, 1.0 / np.sqrt(hidden_size)
        uniform = lambda *shape: rng.uniform(-bound, bound, shape).astype(self.dtype)  # PyTorch's init
        self.weight_ih = Parameter(uniform(G * H, self.input_size))
        self.weight_hh = Parameter(uniform(G * H, H))
        if self.bias:
            self.bias_ih = Parameter(uniform(G * H))
            self.bias_hh = Parameter(uniform(G * H))
        self._caches: list = []

    def _params(self):
        if self.bias:
            return (self.weight_ih.data, self.weight_hh.data, self.bias_ih.data, self.bias_hh.data)
        return (self.weight_ih.data, self.weight_hh.data, None, None)

    def forward(self, x, state=None):
        """x (B, D), state (B, H) [or (h, c) for the LSTM] -> the new state, same form."""
        x = check_array("x", x, 2, self.dtype)
        if x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, input_size={self.input_size}); got {x.shape}")
        B, names = x.shape[0], self.kind.state_names
        parts = (None,) * len(names) if state is None else (tuple(state) if len(names) == 2 else (state,))
        if len(parts) != len(names):
            raise TypeError(f"{type(self).__name__} state must be {'(h, c)' if len(names) == 2 else 'one array h'}")
        parts = tuple(np.zeros((B, self.hidden_size), self.dtype) if p is None else check_array(n, p, 2, self.dtype)
                      for n, p in zip(names, parts))
        for n, p in zip(names, parts):
            if p.shape != (B, self.hidden_size):
                raise ValueError(f"{n} must have shape (batch, hidden_size) = {(B, self.hidden_size)}; got {p.shape}")
        new_state, cache = self.kind.step_forward(self._params(), x, parts)
        self._caches.append(cache)
        return new_state if len(names) == 2 else new_state[0]

    def backward(self, dstate):
        """dstate like the new state -> dx (B, D), gradient of the previous state; undoes the last forward."""
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward called more times than forward")
        names = self.kind.state_names
        parts = tuple(dstate) if len(names) == 2 else (dstate,)
        cache = self._caches.pop()
        B = cache[0].shape[0]
        parts = tuple(np.zeros((B, self.hidden_size), self.dtype) if p is None else np.asarray(p, self.dtype)
                      for p in parts)
        dx, dprev, grads = self.kind.step_backward(self._params(), cache, parts)
        for name, grad in grads.items():
            getattr(self, name).grad += grad
        return dx, (dprev if len(names) == 2 else dprev[0])


class RNNCell(Cell):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu); like torch.nn.RNNCell."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32, rng=None):
        kinds = {"tanh": RNN_TANH_KIND, "relu": RNN_RELU_KIND}
        if nonlinearity not in kinds:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(kinds[nonlinearity], input_size, hidden_size, bias, dtype, rng)


class LSTMCell(Cell):
    """One LSTM step, (h, c) -> (h', c'); like torch.nn.LSTMCell."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, rng=None):
        super().__init__(LSTM_KIND, input_size, hidden_size, bias, dtype, rng)


class GRUCell(Cell):
    """One GRU step, h -> h'; like torch.nn.GRUCell."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, rng=None):
        super().__init__(GRU_KIND, input_size, hidden_size, bias, dtype, rng)
