"""Recurrent layers as PyTorch has them: stacked, bidirectional, with dropout between layers and
variable-length batches, for any registered cell (cells/). The time-loop driver (driver.py) does
the arithmetic; this module only routes sequences through layers and directions and adds the
driver's gradients into the parameters.

Shapes: B = batch, T = time, D = input features, H = hidden units, L = layers, K = directions.
Public arrays are batch-first like `batch_first=True`: x (B, T, D), y (B, T, K*H),
states (L*K, B, H). Kernels get time-major (T, B, D) copies, transposed once. x may also be an
embedding's rows, Lookup(ids (B, T), table (V, D)) (Embedding.lookup), which the first layer folds
into its input projection (lookup.py); backward then returns the gradient of the table (V, D).
"""
from __future__ import annotations

import re
import threading
import weakref
from functools import partial

import numpy as np

from ..settings import KERNELS, settings
from . import driver
from .cells import CellDefinition, get_cell
from .lookup import Lookup, scatter_rows
from .module import (Layer, Parameter, as_generator, check_bool, check_probability, is_grad_enabled, save_for_backward,
                     saved_for_backward)

INITS = ("uniform", "orthogonal")
# kernel: "fast": the driver's time loop compiled where rnnlab.fast runs, else in NumPy (settings.py);
# "numba" / "numpy": that time loop, by name; "reference": one whole cell step at a time.


def check_array(name: str, value, ndim: int, dtype) -> np.ndarray:
    """`value` as a `dtype` array of rank `ndim`, or one clear error naming the argument.

    The dtype policy: real numbers (any float or integer dtype, or lists of them) are cast to the
    layer's dtype without a warning, so NumPy's default float64 feeds a float32 layer as it does
    Keras; bool, complex, string and object arrays are refused with TypeError, since a cast would
    drop an imaginary part or read text as numbers."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric array; got {type(value).__name__} ({error})") from None
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array of real numbers (float or integer); got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {array.shape}")
    return array.astype(dtype, copy=False)


def lengths_to_mask(lengths, B: int, T: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Validate `lengths` (B,) in 1..T and return it with the mask (T, B, 1): 1 inside a sequence."""
    try:
        lengths = np.asarray(lengths)
    except Exception as error:  # pragma: no cover - exotic objects
        raise TypeError(f"lengths must be a 1-D array of integers; got {type(lengths).__name__}") from error
    if lengths.ndim != 1 or lengths.shape[0] != B:
        raise ValueError(f"lengths must have shape (batch,) = ({B},); got shape {lengths.shape}")
    if lengths.size and not np.issubdtype(lengths.dtype, np.integer):
        if not np.all(np.equal(np.mod(lengths, 1), 0)):
            raise TypeError(f"lengths must be integers; got {lengths.dtype} values {lengths}")
        lengths = lengths.astype(np.int64)
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in 1..T = 1..{T}; got min {lengths.min()}, max {lengths.max()}")
    mask = (np.arange(T)[:, None] < lengths[None, :]).astype(dtype)[:, :, None]
    return lengths.astype(np.int64), mask


def without_padding(a: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """a (B, T, ...) with every position past its sequence's length set to zero: NaN or inf padding
    (common in time series) never meets a weight, so no kernel can carry it into a gradient."""
    inside = np.arange(a.shape[1])[None, :] < lengths[:, None]  # (B, T)
    if inside.all():
        return a
    return np.where(inside.reshape(inside.shape + (1,) * (a.ndim - 2)), a, 0).astype(a.dtype, copy=False)


def reverse_in_place_order(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Each sequence reversed within its own length (padding stays put); its own inverse.

    x (T, B, ...). This is what the backward direction reads, as with `pack_padded_sequence`.
    """
    if lengths is None:
        return x[::-1]
    T, B = x.shape[:2]
    t = np.arange(T)[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    return x[source, np.arange(B)[None, :]]


def _reversed(seq, lengths):
    """The backward direction's input: x (T, B, D) or a Lookup's ids (T, B), reversed in place order."""
    if isinstance(seq, Lookup):
        return Lookup(np.ascontiguousarray(reverse_in_place_order(seq.ids, lengths)), seq.table)
    return np.ascontiguousarray(reverse_in_place_order(seq, lengths))


def orthogonal(rng: np.random.Generator, n: int, dtype) -> np.ndarray:
    """A random (n, n) orthogonal matrix (Saxe et al. 2014): QR of a Gaussian, signs fixed."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.sign(np.diag(r))).astype(dtype)


_workspaces = threading.local()  # per thread: layer -> {(layer*K + direction, grad mode): driver.Workspace}


def workspace(layer, index: int, grad: bool):
    """The driver's buffers for one layer and direction of `layer`, kept from call to call in this
    thread (two threads evaluating one model each get their own) while the layer lives; a no_grad()
    evaluation between training steps has its own and leaves the training buffers alone."""
    if not hasattr(_workspaces, "by_layer"):
        _workspaces.by_layer = weakref.WeakKeyDictionary()
    return _workspaces.by_layer.setdefault(layer, {}).setdefault((index, grad), driver.Workspace())


def _state_text(names) -> str:
    return "one array h0" if len(names) == 1 else "a tuple (" + ", ".join(f"{n}0" for n in names) + ")"


class Recurrent(Layer):
    """A stack of recurrent layers of any registered cell, by name: Recurrent("lstm", 10, 20,
    num_layers=2), with the interface of LSTM (the base of RNN, LSTM and GRU). The state is one array
    h for a one-variable cell, else a tuple (h, c, ...) in the order of the cell's state_names."""

    def __init__(self, cell: str | CellDefinition, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=np.float32, rng=None, init: str = "uniform", kernel: str = "fast"):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        bias, bidirectional = check_bool("bias", bias), check_bool("bidirectional", bidirectional)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
        if kernel == "numba":
            settings.require_numba()  # fail here, with the reason, if numba cannot run
        self.kind = get_cell(cell)
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.dropout, self.bidirectional = bias, dropout, bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dtype = np.dtype(dtype)
        self.kernel = kernel
        self.rng = as_generator(rng)
        self._cache = None
        H = self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                for name, shape in self.kind.shapes(layer_input, H).items():
                    if self.bias or not name.startswith("bias"):
                        setattr(self, f"{name}{suffix}", Parameter(np.zeros(shape, self.dtype)))
        self.reset_parameters(init)

    @property
    def dropout(self) -> float:
        """Dropout between layers in training, checked whenever it is set (layer.dropout = 1 raises)."""
        return self._dropout

    @dropout.setter
    def dropout(self, value) -> None:
        self._dropout = check_probability("dropout", value)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def reset_parameters(self, init: str = "uniform") -> None:
        """"uniform": PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every weight (parity).
        "orthogonal": Keras's defaults that train best, as each cell's parameter specs name them:
        Glorot-uniform W_ih, an orthogonal W_hh block per gate (so the recurrence neither grows nor
        shrinks the state at the start), zero biases, and the cell's gate biases (the LSTM's forget
        gate 1: Jozefowicz et al. 2015, remember by default).
        """
        H, G = self.hidden_size, self.kind.G
        if init == "uniform":
            bound = 1.0 / np.sqrt(H)
            for p in self.parameters():
                p.data[...] = self.rng.uniform(-bound, bound, p.data.shape)
            return
        specs = {spec.name: spec.init for spec in self.kind.parameters}
        for name, p in self.named_parameters():
            how = specs[re.sub(r"_l\d+(_reverse)?$", "", name)]
            if how == "glorot":
                fan_out, fan_in = p.data.shape[0], int(np.prod(p.data.shape[1:]))
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                p.data[...] = self.rng.uniform(-bound, bound, p.data.shape)
            elif how == "orthogonal":
                p.data[...] = np.concatenate([orthogonal(self.rng, H, self.dtype) for _ in range(G)])
            elif how == "unit_uniform":
                p.data[...] = self.rng.uniform(0.0, 1.0, p.data.shape)
            else:
                p.data[...] = {"zeros": 0.0, "ones": 1.0}[how]
            if name.startswith("bias_ih"):
                for gate, value in self.kind.gate_bias.items():
                    g = self.kind.gates.index(gate)
                    p.data[g * H:(g + 1) * H] = value

    def _params(self, suffix: str):
        get = lambda name: getattr(self, f"{name}{suffix}").data if self.bias or "weight" in name else None
        return (get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"))

    def _extras(self, suffix: str) -> dict:
        """The cell's own parameters for the driver (definition.py), none for most cells."""
        if not self.kind.extra_parameters:
            return {}
        return {"extras": tuple(getattr(self, f"{name}{suffix}").data for name in self.kind.extra_parameters)}

    # -- state in and out ----------------------------------------------------------------------
    def _initial_state(self, state, B: int) -> tuple[np.ndarray, ...]:
        """The initial state as a tuple of (L*K, B, H) arrays (zeros for None)."""
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        names = self.kind.state_names
        if state is None:
            return tuple(np.zeros(shape, self.dtype) for _ in names)
        if len(names) > 1:
            if not isinstance(state, (tuple, list)) or len(state) != len(names):
                raise TypeError(f"the {self.kind.name} state must be {_state_text(names)}; got {type(state).__name__}")
            parts = state
        else:
            if isinstance(state, (tuple, list)):
                raise TypeError(f"the {self.kind.name} state must be {_state_text(names)}; got a {type(state).__name__}")
            parts = (state,)
        result = []
        for name, part in zip(names, parts):
            if part is None:
                result.append(np.zeros(shape, self.dtype))
                continue
            array = check_array(f"{name}0", part, 3, self.dtype)
            if array.shape != shape:
                raise ValueError(f"{name}0 must have shape (num_layers*num_directions, batch, hidden_size) = "
                                 f"{shape}; got {array.shape}")
            result.append(array)
        return tuple(result)

    def _pack_state(self, parts: tuple[np.ndarray, ...]):
        return parts if len(self.kind.state_names) > 1 else parts[0]

    # -- forward and backward ------------------------------------------------------------------
    def _kernels(self):
        """(forward, backward) of this layer's cell with the chosen kernel."""
        if self.kernel == "reference":
            return (partial(driver.reference_forward, self.kind), partial(driver.reference_backward, self.kind))
        return (partial(driver.forward, self.kind, kernel=self.kernel),
                partial(driver.backward, self.kind, kernel=self.kernel))

    def _buffers(self, index: int, grad: bool) -> dict:
        """The driver's workspace for one layer and direction: the cache of this layer's previous
        forward, which the next forward replaces, is where the next one writes (driver.py). No
        workspace for the reference kernel, which allocates step by step."""
        return {} if self.kernel == "reference" else {"workspace": workspace(self, index, grad)}

    def _time_major(self, name: str, a: np.ndarray, grad: bool) -> np.ndarray:
        """a (B, T, F) copied to (T, B, F) in C order, into the layer's own workspace (the input stays in
        the cache, as the driver's buffers do, until the next forward)."""
        if self.kernel == "reference":
            return np.ascontiguousarray(a.transpose(1, 0, 2))
        B, T, F = a.shape
        out = workspace(self, -1, grad).empty(name, (T, B, F), self.dtype)
        np.copyto(out, a.transpose(1, 0, 2))
        return out

    def _check_lookup(self, x: Lookup, lengths=None) -> Lookup:
        """An embedding's rows with ids (B, T) in range and a (V, input_size) table of this layer's dtype;
        ids past a sequence's length read row 0, whatever padding value they held."""
        ids, table = np.asarray(x.ids), check_array("the lookup's table", x.table, 2, self.dtype)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 2:
            raise TypeError(f"a Lookup's ids must be a 2-D integer array (batch, time); got {ids.dtype} {ids.shape}")
        if lengths is not None:
            ids = without_padding(ids, lengths_to_mask(lengths, *ids.shape, self.dtype)[0])
        if table.shape[1] != self.input_size or len(table) == 0:
            raise ValueError(f"a Lookup's table must have shape (vocabulary, input_size={self.input_size}); "
                             f"got {table.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
            raise ValueError(f"a Lookup's ids must lie in 0..{len(table) - 1}; got min {ids.min()}, max {ids.max()}")
        return Lookup(ids, table)

    def _first_input(self, x, grad: bool):
        """The first layer's input, time-major: x (T, B, D), or a Lookup with ids (T, B) (the reference
        kernel steps through gathered rows)."""
        if not isinstance(x, Lookup):
            return self._time_major("x", x, grad)
        if self.kernel == "reference":
            return np.ascontiguousarray(x.rows().transpose(1, 0, 2))
        return Lookup(np.ascontiguousarray(x.ids.T, dtype=np.intp), x.table)

    def forward(self, x, state=None, lengths=None):
        """x (B, T, D) or Lookup(ids (B, T), table (V, D)), state (L*K, B, H) [or (h, c)], lengths (B,)
        -> y (B, T, K*H), final state."""
        x = self._check_lookup(x, lengths) if isinstance(x, Lookup) else check_array("x", x, 3, self.dtype)
        B, T, D = x.shape
        if D != self.input_size:
            raise ValueError(f"x must have shape (batch, time, input_size={self.input_size}); got {x.shape}")
        if T == 0 or B == 0:
            raise ValueError(f"x must have at least one sequence and one time step; got shape {x.shape}")
        state0 = self._initial_state(state, B)
        mask = None
        if lengths is not None:
            lengths, mask = lengths_to_mask(lengths, B, T, self.dtype)
            if not isinstance(x, Lookup):
                x = without_padding(x, lengths)
        forward = self._kernels()[0]
        grad = is_grad_enabled()
        layer_input = self._first_input(x, grad)  # (T, B, D)
        finals = [np.empty_like(s) for s in state0]
        caches, drop_masks = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:  # between layers, as PyTorch
                keep = (self.rng.random(layer_input.shape) >= self.dropout) / (1.0 - self.dropout)
                drop_masks.append(keep.astype(self.dtype))
                layer_input = layer_input * drop_masks[-1]
            else:
                drop_masks.append(None)
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                index = layer * self.num_directions + direction
                seq = layer_input if direction == 0 else _reversed(layer_input, lengths)
                y, final, cache = forward(self._params(suffix), seq, tuple(s[index] for s in state0), mask,
                                          **self._buffers(index, grad), **self._extras(suffix))
                outputs.append(y if direction == 0 else reverse_in_place_order(y, lengths))
                for f, part in zip(finals, final):
                    f[index] = part
                caches.append(cache)
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
        self._cache = save_for_backward((caches, drop_masks, lengths, B, T, x if isinstance(x, Lookup) else None))
        y = layer_input.transpose(1, 0, 2).copy()  # a copy even where B = 1: the kernels' y is a view of their cache
        return y, self._pack_state(tuple(finals))

    def backward(self, dy=None, dstate=None, record_flow: bool = False):
        """dy (B, T, K*H) or None, dstate like the final state (entries may be None) -> dx, dstate0.

        Adds each parameter's gradient into its `.grad`. With record_flow, also keeps the gradient
        that reached every step, `self.grad_flow = {"h": dL/dh_t, "c": dL/dc_t (LSTM), ...}`, each
        (L*K, T, B, H) in the sequence's own time order (the sequence kernels record it, not "reference").
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        caches, drop_masks, lengths, B, T, lookup = saved_for_backward(self, self._cache)
        H, K = self.hidden_size, self.num_directions
        if dy is not None:
            dy = check_array("dy", dy, 3, self.dtype)
            if dy.shape != (B, T, K * H):
                raise ValueError(f"dy must have the output's shape {(B, T, K * H)}; got {dy.shape}")
            if lengths is not None:
                dy = without_padding(dy, lengths)
            d_out = self._time_major("dy", dy, True)  # (T, B, K*H)
        else:
            d_out = None
        dfinal = self._dstate_parts(dstate, B)
        if record_flow and self.kernel == "reference":
            raise ValueError("record_flow needs the sequence kernels; build the layer with kernel='fast'")
        backward = self._kernels()[1]
        dstate0 = [np.zeros((self.num_layers * K, B, H), self.dtype) for _ in self.kind.state_names]
        flows = {name: np.empty((self.num_layers * K, T, B, H), self.dtype)
                 for name in self.kind.state_names} if record_flow else None
        for layer in reversed(range(self.num_layers)):
            d_in = None
            for direction, suffix in enumerate(self._suffixes(layer)):
                index = layer * K + direction
                dy_dir = None if d_out is None else d_out[:, :, direction * H:(direction + 1) * H]
                if direction == 1 and dy_dir is not None:
                    dy_dir = reverse_in_place_order(dy_dir, lengths)
                params = self._params(suffix)
                flow = {} if record_flow else None
                dx, ds0, grads = backward(params, caches[index], dy_dir, tuple(d[index] for d in dfinal),
                                          *([flow] if record_flow else []), **self._buffers(index, True),
                                          **self._extras(suffix))
                if direction == 1 and dx.ndim == 3:  # (an embedding's table has no time axis)
                    dx = reverse_in_place_order(dx, lengths)
                for name, values in (flow or {}).items():
                    flows[name][index] = values if direction == 0 else reverse_in_place_order(values, lengths)
                d_in = dx if d_in is None else d_in + dx
                for d0, part in zip(dstate0, ds0):
                    d0[index] = part
                for name, grad in grads.items():
                    getattr(self, f"{name}{suffix}").grad += grad
            if drop_masks[layer] is not None:
                d_in = d_in * drop_masks[layer]
            d_out = d_in
        self.grad_flow = flows
        return self._input_grad(d_out, lookup), self._pack_state(tuple(dstate0))

    @staticmethod
    def _input_grad(d_in, lookup: Lookup | None) -> np.ndarray:
        """dx (B, T, D) from the first layer's (T, B, D); for a Lookup, the gradient of its table (V, D)."""
        if d_in.ndim == 2:  # the driver's, per row of the table
            return d_in
        dx = np.ascontiguousarray(d_in.transpose(1, 0, 2))
        if lookup is None:
            return dx
        return scatter_rows(dx.reshape(-1, dx.shape[2]), lookup.ids.reshape(-1), len(lookup.table))  # reference

    def _dstate_parts(self, dstate, B: int) -> list:
        """Per-state-variable lists indexed by layer*K + direction (None where no gradient came)."""
        n = self.num_layers * self.num_directions
        names = self.kind.state_names
        if dstate is None:
            parts = (None,) * len(names)
        elif len(names) > 1:
            if not isinstance(dstate, (tuple, list)) or len(dstate) != len(names):
                raise TypeError(f"the {self.kind.name} state gradient must be a tuple "
                                f"({', '.join(f'd{n}_n' for n in names)}); entries may be None")
            parts = dstate
        else:
            parts = (dstate,)
        result = []
        for name, part in zip(names, parts):
            if part is None:
                result.append([None] * n)
                continue
            array = check_array(f"d{name}_n", part, 3, self.dtype)
            if array.shape != (n, B, self.hidden_size):
                raise ValueError(f"d{name}_n must have shape {(n, B, self.hidden_size)}; got {array.shape}")
            result.append(list(array))
        return result

    def extra_repr(self) -> str:
        cell = "" if type(self) is not Recurrent else f"{self.kind.name!r}, "
        return (f"{cell}{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dtype={self.dtype.name}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class RNN(Recurrent):
    """Elman RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu); like torch.nn.RNN(batch_first=True)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, dropout=0.0,
                 bidirectional=False, dtype=np.float32, rng=None, init="uniform", kernel="fast"):
        cells = {"tanh": "rnn", "relu": "rnn_relu"}
        if nonlinearity not in cells:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(cells[nonlinearity], input_size, hidden_size, num_layers, bias, dropout,
                         bidirectional, dtype, rng, init, kernel)


class LSTM(Recurrent):
    """LSTM with gates i, f, g, o; like torch.nn.LSTM(batch_first=True). The state is (h, c)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0,
                 bidirectional=False, dtype=np.float32, rng=None, init="uniform", kernel="fast"):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, dropout,
                         bidirectional, dtype, rng, init, kernel)


class GRU(Recurrent):
    """GRU with gates r, z, n in PyTorch's form; like torch.nn.GRU(batch_first=True)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0,
                 bidirectional=False, dtype=np.float32, rng=None, init="uniform", kernel="fast"):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, dropout,
                         bidirectional, dtype, rng, init, kernel)
