"""An input given as rows of a table, x[t, b] = table[ids[t, b]]: what an Embedding feeds the first
recurrent layer (Embedding.lookup). The layer's input projection then needs no (T*B, D) x (D, G*H)
GEMM, since a row's projection depends only on its id:

    forward    x W_ih^T = P[ids],        P = table W_ih^T  (V, G*H)
    backward   dP[v] = sum of dXW over the steps whose id is v  (V, G*H)
               dW_ih = dP^T table,   db_ih = sum_v dP[v],   dtable = dP W_ih

That is V rows of GEMM instead of T*B, and a scatter of T*B rows: for a char model (V = 65) at
(B, T) = (32, 64), 65 rows instead of 2,048. The compiled time loop reads each step's row of P by
its id (P stays in cache; NumPy's loop gathers the rows first). Where the vocabulary is larger than
the batch's steps (V > T*B) it would cost more, so the rows are gathered and projected as any input.

Shapes: ids (T, B) in the layers' time-major order (B, T as the caller gives them to the layer),
table (V, D); the driver sees `shape` (T, B, D) and `dtype` as for an array input.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

ONEHOT_MAX = 2 ** 25  # NumPy's scatter: a one-hot GEMM up to V * N entries, a sort above


def scatter_rows(values: np.ndarray, ids: np.ndarray, V: int) -> np.ndarray:
    """(V, F): row v is the sum of the rows of values (N, F) whose id (N,) is v (np.add.at's result)."""
    out = np.zeros((V, values.shape[1]), values.dtype)
    if V * len(ids) <= ONEHOT_MAX:  # one GEMM with the one-hot matrix (V, N): np.add.at is far slower
        onehot = np.zeros((V, len(ids)), values.dtype)
        onehot[ids, np.arange(len(ids))] = 1
        np.matmul(onehot, values, out=out)
    else:  # a large vocabulary: each id's rows summed after a sort, without a V x N matrix
        order = np.argsort(ids, kind="stable")
        unique, starts = np.unique(ids[order], return_index=True)
        out[unique] = np.add.reduceat(values[order], starts, axis=0)
    return out


class Lookup(NamedTuple):
    """The rows table[ids], not gathered: ids (T, B) integers in 0..V-1, table (V, D)."""

    ids: np.ndarray
    table: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.ids.shape, self.table.shape[1])

    @property
    def dtype(self):
        return self.table.dtype

    @property
    def folded(self) -> bool:
        """Whether the projection goes through the projected table P (fewer rows: V <= T*B)."""
        return len(self.table) <= self.ids.size

    def rows(self) -> np.ndarray:
        """x (T, B, D), gathered."""
        return self.table[self.ids]

    def projected(self, W_ih: np.ndarray) -> np.ndarray:
        """P = table W_ih^T (V, G*H): row v is the input side of every step whose id is v (the compiled
        steps read it by id, so nothing is gathered)."""
        return self.table @ W_ih.T

    def input_side(self, dXW: np.ndarray, scatter=scatter_rows) -> tuple[np.ndarray, np.ndarray]:
        """(dax, x) with dW_ih = dax^T x and dtable from dax W_ih (table_grad), from dXW (T*B, G*H):
        (dP (V, G*H), table) when folded, else (dXW, the gathered rows (T*B, D)). `scatter` sums rows by
        id (scatter_rows, or the fast path's compiled one)."""
        if self.folded:
            return scatter(dXW, self.ids.reshape(-1), len(self.table)), self.table
        return dXW, self.rows().reshape(self.ids.size, -1)

    def table_grad(self, dax_W_ih: np.ndarray, scatter=scatter_rows) -> np.ndarray:
        """dtable (V, D) from dax W_ih: already per row of the table when folded, else per step (T*B, D)."""
        if self.folded:
            return dax_W_ih
        return scatter(dax_W_ih.reshape(self.ids.size, -1), self.ids.reshape(-1), len(self.table))
