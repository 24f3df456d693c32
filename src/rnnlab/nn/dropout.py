"""Inverted dropout: in training, zero each element with probability p and scale the rest by
1/(1-p), so evaluation needs no rescaling; in eval mode it is the identity."""
from __future__ import annotations

import numpy as np

from .module import Layer, as_generator, check_probability, save_for_backward, saved_for_backward


class Dropout(Layer):
    def __init__(self, p: float = 0.5, rng=None):
        self.p = p
        self.rng = as_generator(rng)
        self._keep = None

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, value) -> None:  # checked when set, not only at construction
        self._p = check_probability("p", value)

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._keep = None
            return x
        mask = ((self.rng.random(x.shape) >= self.p) / (1.0 - self.p)).astype(x.dtype)  # same shape as x
        self._keep = save_for_backward(mask)
        return x * mask

    def backward(self, dy):
        return dy if saved_for_backward(self, self._keep) is None else dy * self._keep

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
