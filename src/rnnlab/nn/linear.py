"""Linear map on the last axis: y = x W^T + b, for x of any leading shape (..., D) -> (..., O)."""
from __future__ import annotations

import numpy as np

from ..settings import settings
from .module import Layer, Parameter, as_generator, check_bool, save_for_backward, saved_for_backward


class Linear(Layer):
    """Like torch.nn.Linear: weight (O, D), bias (O,), initialised U(-1/sqrt(D), 1/sqrt(D))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32, rng=None):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        bias = check_bool("bias", bias)
        rng = as_generator(rng)
        self.in_features, self.out_features, self.dtype = int(in_features), int(out_features), np.dtype(dtype)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(self.dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(self.dtype)) if bias else None
        self._x = None

    def forward(self, x):
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., in_features={self.in_features}); got {x.shape}")
        self._x = save_for_backward(x)
        rows = x.reshape(-1, self.in_features)  # one GEMM: on (B, T, D) matmul makes one per sequence
        y = settings.matmul(rows, self.weight.data.T).reshape(x.shape[:-1] + (self.out_features,))  # (..., O)
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy):
        x = saved_for_backward(self, self._x)
        if x is None:
            raise RuntimeError("Linear.backward called before forward")
        dy = np.asarray(dy, dtype=self.dtype)
        if dy.shape != x.shape[:-1] + (self.out_features,):
            raise ValueError(f"dy must have shape {x.shape[:-1] + (self.out_features,)}; got {dy.shape}")
        dy2 = dy.reshape(-1, self.out_features)
        self.weight.grad += settings.matmul(dy2.T, x.reshape(-1, self.in_features))
        dx = settings.matmul(dy2, self.weight.data).reshape(x.shape)
        if self.bias is not None:
            self.bias.grad += dy2.sum(axis=0)
        return dx

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
