"""Embedding: a lookup table from integer ids (any shape S) to vectors, ids S -> (*S, E)."""
from __future__ import annotations

import numpy as np

from .lookup import Lookup, scatter_rows
from .module import Layer, Parameter, as_generator, save_for_backward, saved_for_backward


class Embedding(Layer):
    """Like torch.nn.Embedding: weight (V, E) initialised N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype=np.float32, rng=None):
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        rng = as_generator(rng)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype))
        self._ids = None

    def _check(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers; got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in 0..{self.num_embeddings - 1}; got min {ids.min()}, max {ids.max()}")
        return ids

    def forward(self, ids):
        ids = self._check(ids)
        self._ids = save_for_backward(ids)
        return self.weight.data[ids]

    def lookup(self, ids) -> Lookup:
        """The rows weight[ids], not gathered, for a recurrent layer to fold into its input projection
        (lookup.py). Nothing is kept: that layer's backward returns the gradient of the table, to add
        into `weight.grad`."""
        return Lookup(self._check(ids), self.weight.data)

    def backward(self, dy):
        """Scatter-add dy into the rows that were looked up (a row used twice gets both); ids have no gradient."""
        if saved_for_backward(self, self._ids) is None:
            raise RuntimeError("Embedding.backward called before forward")
        dy = np.asarray(dy, dtype=self.weight.data.dtype).reshape(-1, self.embedding_dim)  # (N, E)
        self.weight.grad += scatter_rows(dy, self._ids.reshape(-1), self.num_embeddings)
        return None

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
