"""Models built from the engine's layers: the lecture's four kinds of RNN and the char-level LM.

    OneToOne    x (B, D)              -> Linear -> tanh -> Linear          -> y (B, O)      no memory
    OneToMany   x (B, D)              -> h_0 = tanh(W x + b) -> decoder    -> logits (B, U, V)
    ManyToOne   x (B, T, D), lengths  -> RNN/LSTM/GRU -> last state h_T    -> y (B, O)
    ManyToMany  x (B, T, D), lengths  -> RNN/LSTM/GRU -> Linear at every t -> y (B, T, O)
    Seq2Seq     src (B, S), lengths   -> encoder -> final state -> decoder -> logits (B, U, V)
    CharRNN     ids (B, T) -> Embedding -> RNN/LSTM/GRU stack -> Dropout -> Linear -> logits (B, T, V)

Every recurrence is the engine's `RNN`/`LSTM`/`GRU` stack (`make_recurrent`); the models only
route inputs, states and outputs. Each follows the Layer protocol: `forward` keeps what `backward`
needs, `backward(dy)` returns the input gradient (None for integer ids) and adds into `.grad`.
With `input_vocab=V` a model reads integer ids (looked up in an Embedding of size input_size)
instead of float features.

    m = ManyToOne("lstm", input_size=2, hidden_size=64, output_size=1)      # the adding problem
    y = m(x, lengths)                      # x (B, T, 2), lengths (B,) -> y (B, 1)
    loss, dy = mse(y, target); m.backward(dy)

    s = Seq2Seq("gru", src_vocab=11, tgt_vocab=11, hidden_size=64)
    logits = s(src, tgt_in, src_lengths)   # teacher forcing: (B, U, V)
    ids = s.greedy_decode(src, steps=9, src_lengths=src_lengths)   # (B, 9), its own argmax fed back

Shapes: B = batch, T = time, S = source length, U = target length, D = input features,
V = vocabulary, E = embedding size, H = hidden units, L = layers, K = directions, O = outputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from .nn import GRU, LSTM, RNN, Dropout, Embedding, Layer, Linear
from .nn.module import as_generator
from .nn.stack import check_array

if TYPE_CHECKING:  # pragma: no cover
    from .data.text import Vocab
    from .io import Checkpoint

CELLS = ("lstm", "gru", "rnn", "rnn_relu")


def make_recurrent(cell: str, input_size: int, hidden_size: int, **kwargs) -> Layer:
    """The recurrent stack for a cell name: lstm, gru, rnn (tanh) or rnn_relu."""
    if cell == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if cell == "gru":
        return GRU(input_size, hidden_size, **kwargs)
    if cell in ("rnn", "rnn_tanh", "rnn_relu"):
        return RNN(input_size, hidden_size, nonlinearity="relu" if cell == "rnn_relu" else "tanh", **kwargs)
    raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")


@dataclass
class CharRNNConfig:
    """Everything needed to rebuild a CharRNN (stored in every checkpoint)."""

    vocab_size: int
    cell: str = "lstm"          # lstm | gru | rnn | rnn_relu
    hidden_size: int = 256
    num_layers: int = 2
    embedding_dim: int = 64     # a learned vector per character; small: V is only ~100
    dropout: float = 0.0        # between layers and before the output layer (training only)
    init: str = "orthogonal"    # orthogonal W_hh + forget bias 1 (Keras); "uniform" = PyTorch's
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CharRNNConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class CharRNN(Layer):
    """A character-level language model: predicts the next character at every step."""

    def __init__(self, config: CharRNNConfig, rng=None):
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}; got {config.cell!r}")
        rng = as_generator(rng)
        self.config = config
        dtype = np.dtype(config.dtype)
        self.embedding = Embedding(config.vocab_size, config.embedding_dim, dtype=dtype, rng=rng)
        self.rnn = make_recurrent(config.cell, config.embedding_dim, config.hidden_size,
                                  num_layers=config.num_layers, dropout=config.dropout, dtype=dtype,
                                  rng=rng, init=config.init)
        self.drop = Dropout(config.dropout, rng=rng)
        self.head = Linear(config.hidden_size, config.vocab_size, dtype=dtype, rng=rng)

    def forward(self, ids, state=None):
        """ids (B, T) int -> logits (B, T, V), final state (to carry into the next chunk)."""
        x = self.embedding(ids)  # (B, T, E)
        h, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(h)), state

    def backward(self, dlogits, dstate=None, record_flow: bool = False):
        """dlogits (B, T, V) -> gradient of the initial state; parameter gradients accumulate."""
        dh = self.drop.backward(self.head.backward(dlogits))
        dx, dstate0 = self.rnn.backward(dh, dstate, record_flow=record_flow)
        self.embedding.backward(dx)
        return dstate0

    def rng_state(self) -> dict:
        """The dropout generator's state (one generator is shared by every dropout in the model)."""
        return self.drop.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.drop.rng.bit_generator.state = state


def load_char_model(path) -> tuple[CharRNN, "Vocab", "Checkpoint"]:
    """A CharRNN, its vocabulary and the checkpoint, from a checkpoint file or a run directory."""
    from pathlib import Path

    from .data.text import Vocab
    from .io import CheckpointError, load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    ckpt = load_checkpoint(path)
    try:
        config = CharRNNConfig.from_dict(ckpt.model_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path} does not hold a character-level model ({error})") from None
    if ckpt.vocab is None or len(ckpt.vocab) != config.vocab_size:
        raise CheckpointError(f"{path} has no vocabulary matching its model; it cannot generate text")
    model = CharRNN(config, rng=0)
    try:
        model.load_state_dict(ckpt.model_state)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return model, Vocab.from_list(ckpt.vocab), ckpt
