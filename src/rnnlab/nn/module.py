"""Parameters and the Layer protocol every module follows.

A Layer's `forward` keeps what its `backward` needs; `backward(dy)` returns the gradient with
respect to the input and *adds* into each `Parameter.grad` (so, as in PyTorch, two backward passes
accumulate and one `zero_grad()` clears them). Parameter names follow PyTorch, so a `state_dict`
moves between rnnlab and `torch.nn` modules with no renaming.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

_grad = threading.local()  # per thread, as torch's: a Dask or joblib worker thread training beside
# another thread's no_grad() evaluation must keep its caches
NO_CACHE = type("NoCache", (), {"__repr__": lambda self: "NO_CACHE"})()  # a forward under no_grad kept this


@contextmanager
def no_grad():
    """Inside the block, forwards keep nothing for backward (as under torch.no_grad()): inference
    without the per-step activations BPTT needs. A backward after such a forward raises."""
    saved, _grad.enabled = is_grad_enabled(), False
    try:
        yield
    finally:
        _grad.enabled = saved


def is_grad_enabled() -> bool:
    return getattr(_grad, "enabled", True)


def save_for_backward(cache):
    """What a forward stores for its backward: the cache, or NO_CACHE under no_grad()."""
    return cache if is_grad_enabled() else NO_CACHE


def saved_for_backward(layer, cache):
    """The cache a backward needs, or one clear error where the forward ran under no_grad()."""
    if cache is NO_CACHE:
        raise RuntimeError(f"{type(layer).__name__}.backward after a forward under rnnlab.no_grad(): that forward "
                           f"kept nothing for backward; run it outside no_grad()")
    return cache


class Parameter:
    """A trainable array and the gradient accumulated into it (same shape and dtype)."""

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """The one way randomness enters rnnlab: a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None; got {type(rng).__name__}")


def check_bool(name: str, value) -> bool:
    """`value` if it is a bool (NumPy's too), else TypeError naming the argument, as torch does:
    bias="False" is a non-empty string, hence true, and would silently keep the biases."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False); got {value!r} ({type(value).__name__})")
    return bool(value)


def check_probability(name: str, value) -> float:
    """A dropout probability in [0, 1) (1 would divide by zero: every unit dropped, outputs NaN)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1); got {value!r} ({type(value).__name__})")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return float(value)


class Layer:
    """Base class: parameters, child layers, train/eval mode and PyTorch-style state dicts.

    Layers pickle and deep-copy (joblib, Dask, multiprocessing, copy.deepcopy) with their weights,
    gradients and settings; what a forward kept for its backward (`_transient`) is left behind."""

    training: bool = True
    _transient = ("_cache", "_caches", "_x", "_ids", "_keep", "grad_flow")

    def __getstate__(self):
        state = dict(vars(self))
        for name in self._transient:
            if name in state:
                state[name] = [] if isinstance(state[name], list) else None
        return state

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError

    # -- structure ---------------------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, "Layer"]]:
        """Child layers in the order they were assigned (lists of layers are numbered)."""
        for name, value in vars(self).items():
            if isinstance(value, Layer):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value):
                for i, v in enumerate(value):
                    yield f"{name}.{i}", v

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter under this layer with its PyTorch-style dotted name."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.children():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode: bool = True) -> "Layer":
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    # -- weights in and out --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter under its PyTorch name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays (NumPy, or anything with `.numpy()` / `__array__`) into the parameters.

        Raises ValueError naming every missing, unexpected or wrongly shaped key; nothing is
        changed unless the whole dict fits.
        """
        if not hasattr(state, "items"):
            raise TypeError(f"state_dict must be a mapping of name -> array; got {type(state).__name__}")
        own = dict(self.named_parameters())
        arrays = {}
        problems = []
        for name, value in state.items():
            if name not in own:
                if strict:
                    problems.append(f"unexpected key {name!r}")
                continue
            array = _to_numpy(value)
            if array.shape != own[name].data.shape:
                problems.append(f"{name!r} has shape {array.shape}, expected {own[name].data.shape}")
            arrays[name] = array
        missing = [name for name in own if name not in state]
        if strict and missing:
            problems.extend(f"missing key {name!r}" for name in missing)
        if problems:
            raise ValueError(f"cannot load state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, array in arrays.items():
            own[name].data[...] = array


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)
