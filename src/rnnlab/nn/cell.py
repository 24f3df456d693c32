"""Single-step cells, for generation one step at a time and for writing the unrolled loop by hand.

Each call to `forward` pushes what its backward needs; `backward` pops it, so a loop of T forward
calls followed by T backward calls is exactly BPTT over the unrolled network.

Shapes: B = batch, D = input features, H = hidden units. x (B, D); h, c (B, H).
"""
from __future__ import annotations

import numpy as np

from . import driver
from .cells import CellDefinition, get_cell
from .module import Layer, Parameter, as_generator, check_bool, is_grad_enabled
from .stack import _state_text, check_array


class Cell(Layer):
    """One recurrent step of any registered cell, by name (Cell("gru", 3, 4)), with PyTorch's
    parameter names (weight_ih, weight_hh, ...)."""

    def __init__(self, cell: str | CellDefinition, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=np.float32, rng=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.kind = get_cell(cell)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), check_bool("bias", bias)
        self.dtype = np.dtype(dtype)
        rng = as_generator(rng)
        bound = 1.0 / np.sqrt(hidden_size)  # PyTorch's init
        for name, shape in self.kind.shapes(self.input_size, self.hidden_size).items():
            if self.bias or not name.startswith("bias"):
                setattr(self, name, Parameter(rng.uniform(-bound, bound, shape).astype(self.dtype)))
        self._caches: list = []

    def _params(self):
        if self.bias:
            return (self.weight_ih.data, self.weight_hh.data, self.bias_ih.data, self.bias_hh.data)
        return (self.weight_ih.data, self.weight_hh.data, None, None)

    def _extras(self) -> tuple:
        return tuple(getattr(self, name).data for name in self.kind.extra_parameters)

    def _parts(self, state) -> tuple:
        """A state as given (one array, or a tuple for a cell of several variables) -> a tuple."""
        many = len(self.kind.state_names) > 1
        if many and not (isinstance(state, (tuple, list)) and len(state) == len(self.kind.state_names)):
            raise TypeError(f"the {self.kind.name} state must be {_state_text(self.kind.state_names)}")
        return tuple(state) if many else (state,)

    def forward(self, x, state=None):
        """x (B, D), state (B, H) [or (h, c) for the LSTM] -> the new state, same form."""
        x = check_array("x", x, 2, self.dtype)
        if x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, input_size={self.input_size}); got {x.shape}")
        B, names = x.shape[0], self.kind.state_names
        parts = (None,) * len(names) if state is None else self._parts(state)
        parts = tuple(np.zeros((B, self.hidden_size), self.dtype) if p is None else check_array(n, p, 2, self.dtype)
                      for n, p in zip(names, parts))
        for n, p in zip(names, parts):
            if p.shape != (B, self.hidden_size):
                raise ValueError(f"{n} must have shape (batch, hidden_size) = {(B, self.hidden_size)}; got {p.shape}")
        new_state, cache = driver.step_forward(self.kind, self._params(), x, parts, self._extras())
        if is_grad_enabled():  # under no_grad() nothing is kept for backward
            self._caches.append(cache)
        return new_state if len(names) > 1 else new_state[0]

    def backward(self, dstate):
        """dstate like the new state -> dx (B, D), gradient of the previous state; undoes the last forward."""
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward called more times than forward (forwards under "
                               f"rnnlab.no_grad() keep nothing for backward)")
        names = self.kind.state_names
        parts = self._parts(dstate)
        cache = self._caches.pop()
        B = cache.x.shape[0]
        parts = tuple(np.zeros((B, self.hidden_size), self.dtype) if p is None else np.asarray(p, self.dtype)
                      for p in parts)
        dx, dprev, grads = driver.step_backward(self.kind, self._params(), cache, parts, self._extras())
        for name, grad in grads.items():
            getattr(self, name).grad += grad
        return dx, (dprev if len(names) > 1 else dprev[0])


class RNNCell(Cell):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu); like torch.nn.RNNCell."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32, rng=None):
        cells = {"tanh": "rnn", "relu": "rnn_relu"}
        if nonlinearity not in cells:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(cells[nonlinearity], input_size, hidden_size, bias, dtype, rng)


class LSTMCell(Cell):
    """One LSTM step, (h, c) -> (h', c'); like torch.nn.LSTMCell."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, rng=None):
        super().__init__("lstm", input_size, hidden_size, bias, dtype, rng)


class GRUCell(Cell):
    """One GRU step, h -> h'; like torch.nn.GRUCell."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, rng=None):
        super().__init__("gru", input_size, hidden_size, bias, dtype, rng)
