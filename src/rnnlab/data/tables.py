"""A user's own sequences: tables and arrays -> padded batches, forecasting windows, labelled sequences.

Shapes (batch first):  N = sequences (or windows), T = time steps, D = features per step,
                       W = window (input steps), H = horizon (steps forecast).

    X, lengths = pad_sequences([a0, a1, a2])          # (N, T_max, D) zero-padded, lengths (N,)
"""
from __future__ import annotations

import numpy as np

from .text import DataError  # one error type for all user data (a ValueError)

__all__ = ["DataError", "pad_sequences"]


def pad_sequences(seqs, dtype=None, value=0) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length sequences into one array padded at the end with `value`.

    seqs: a list of (T_i, D) arrays (or (T_i,) arrays, e.g. token ids), every D the same.
    Returns X (N, T_max, D) or (N, T_max), and lengths (N,) int64. `dtype` defaults to the
    common dtype of the sequences.
    """
    if isinstance(seqs, np.ndarray) and seqs.dtype != object:
        seqs = list(seqs)  # a regular (N, T, ...) array: every row has the full length
    try:
        arrays = [np.asarray(s) for s in seqs]
    except (TypeError, ValueError) as e:
        raise DataError(f"pad_sequences: expected a list of arrays ({e})") from None
    if not arrays:
        raise DataError("pad_sequences: no sequences given (an empty list)")
    ndim = arrays[0].ndim
    if ndim not in (1, 2):
        raise DataError(f"pad_sequences: sequence 0 has shape {arrays[0].shape}; "
                        f"expected (T,) or (T, D)")
    tail = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim != ndim or a.shape[1:] != tail:
            raise DataError(f"pad_sequences: sequence {i} has shape {a.shape}, sequence 0 has "
                            f"{arrays[0].shape}; every sequence must be (T_i,{' D' if tail else ''}) "
                            f"with the same {'D' if tail else 'rank'}")
        if a.shape[0] == 0:
            raise DataError(f"pad_sequences: sequence {i} is empty (length 0)")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)  # (N,)
    if dtype is None:
        dtype = np.result_type(*arrays)
    X = np.full((len(arrays), int(lengths.max()), *tail), value, dtype=dtype)  # (N, T_max[, D])
    for i, a in enumerate(arrays):
        X[i, : a.shape[0]] = a
    return X, lengths
