"""Models built from the engine's layers: the lecture's four kinds of RNN and the char-level LM.

    OneToOne    x (B, D)              -> Linear -> tanh -> Linear          -> y (B, O)      no memory
    OneToMany   x (B, D)              -> h_0 = tanh(W x + b) -> decoder    -> logits (B, U, V)
    ManyToOne   x (B, T, D), lengths  -> RNN/LSTM/GRU -> last state h_T    -> y (B, O)
    ManyToMany  x (B, T, D), lengths  -> RNN/LSTM/GRU -> Linear at every t -> y (B, T, O)
    Seq2Seq     src (B, S), lengths   -> encoder -> final state -> decoder -> logits (B, U, V)
    CharRNN     ids (B, T) -> Embedding -> RNN/LSTM/GRU stack -> Dropout -> Linear -> logits (B, T, V)

Every recurrence is the engine's `Recurrent` stack of a registered cell (`make_recurrent`); the models only
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

import functools
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from .nn import Dropout, Embedding, Layer, Linear, Recurrent
from .nn.cells import RegisteredNames, get_cell
from .nn.module import as_generator
from .nn.stack import check_array

if TYPE_CHECKING:  # pragma: no cover
    from .data.text import Vocab
    from .io import Checkpoint

CELLS = RegisteredNames()  # every registered cell: lstm, gru, rnn (tanh), rnn_relu, ... and the user's own


def make_recurrent(cell: str, input_size: int, hidden_size: int, **kwargs) -> Layer:
    """The recurrent stack for a registered cell's name."""
    return Recurrent(get_cell(cell), input_size, hidden_size, **kwargs)


@dataclass
class CharRNNConfig:
    """Everything needed to rebuild a CharRNN (stored in every checkpoint)."""

    vocab_size: int
    cell: str = "lstm"          # any registered cell: lstm | gru | rnn | rnn_relu | ...
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
        self.final_state = None  # the recurrent state after the last forward's last step

    def forward(self, ids, state=None):
        """ids (B, T) int -> logits (B, T, V), like every model here; the state after the last step
        is kept in `self.final_state`, to carry into the next chunk."""
        x = self.embedding.lookup(ids)  # the rows (B, T, E), folded into the first layer's input projection
        h, self.final_state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(h))

    def backward(self, dlogits, dstate=None, record_flow: bool = False):
        """dlogits (B, T, V) -> gradient of the initial state; parameter gradients accumulate."""
        dh = self.drop.backward(self.head.backward(dlogits))
        dtable, dstate0 = self.rnn.backward(dh, dstate, record_flow=record_flow)  # (V, E): the lookup's
        self.embedding.weight.grad += dtable
        return dstate0

    def rng_state(self) -> dict:
        """The dropout generator's state (one generator is shared by every dropout in the model)."""
        return self.drop.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.drop.rng.bit_generator.state = state


def char_rnn_shapes(config: CharRNNConfig) -> dict[str, tuple[int, ...]]:
    """{state_dict name: shape} of a CharRNN built from `config`, computed without building it."""
    V, E, H, cell = config.vocab_size, config.embedding_dim, config.hidden_size, get_cell(config.cell)
    shapes = {"embedding.weight": (V, E)}
    for k in range(config.num_layers):  # the cell's own parameter shapes (IndRNN's weight_hh is (H,))
        shapes |= {f"rnn.{name}_l{k}": shape for name, shape in cell.shapes(E if k == 0 else H, H).items()}
    return shapes | {"head.weight": (V, H), "head.bias": (V,)}


def check_char_config(config: CharRNNConfig) -> None:
    """ValueError naming every field of a CharRNNConfig that no model can be built from."""
    from .validate import POSITIVE_INT, PROBABILITY, check_values

    problems = check_values(vars(config), {"vocab_size": POSITIVE_INT, "hidden_size": POSITIVE_INT,
                                           "num_layers": POSITIVE_INT, "embedding_dim": POSITIVE_INT,
                                           "dropout": PROBABILITY})
    if config.cell not in CELLS:
        problems.append(f"cell must be one of {', '.join(CELLS)}; got {config.cell!r} (a cell of your own is "
                        f"loaded from its file by RNNLAB_CELLS=path/to/cell.py)")
    if config.init not in ("orthogonal", "uniform"):
        problems.append(f"init must be orthogonal or uniform; got {config.init!r}")
    if config.dtype not in ("float32", "float64"):
        problems.append(f"dtype must be float32 or float64; got {config.dtype!r}")
    if problems:
        raise ValueError("; ".join(problems))


def load_char_model(path) -> tuple[CharRNN, "Vocab", "Checkpoint"]:
    """A CharRNN, its vocabulary and the checkpoint, from a checkpoint file or a run directory, or
    from a safetensors file of torch.nn weights with a vocabulary (rnnlab.export.from_torch).

    The config is checked against the tensors' shapes in the file header before anything is
    allocated, so a forged config (hidden_size 10**6 beside small tensors) costs nothing."""
    from pathlib import Path

    from .data.text import Vocab
    from .io import CheckpointError, is_checkpoint, load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    if not is_checkpoint(path):
        return _load_torch_char_model(path)
    ckpt = load_checkpoint(path, check_shapes=functools.partial(check_char_checkpoint, path))
    config = CharRNNConfig.from_dict(ckpt.model_config)
    try:
        vocab = Vocab.from_list(ckpt.vocab)
        model = CharRNN(config, rng=0)
        model.load_state_dict(ckpt.model_state)
    except ValueError as error:  # DataError included: a damaged vocabulary
        raise CheckpointError(f"{path}: {error}") from None
    return model, vocab, ckpt


def check_char_checkpoint(path, doc: dict, shapes: dict) -> None:
    """CheckpointError unless the header `doc` holds a valid CharRNN config whose tensors are `shapes`
    (load_checkpoint's check_shapes hook: it runs before any tensor is read)."""
    from .io import CheckpointError

    cell = doc["model_config"].get("cell")
    if isinstance(cell, str) and cell not in CELLS:
        raise CheckpointError(f"{path}: its model uses the cell {cell!r}, which is not registered in this process "
                              f"(registered: {', '.join(CELLS)}); if it is your own cell, set RNNLAB_CELLS to the "
                              f"file that registers it, e.g. RNNLAB_CELLS=my_cells.py rnnlab ...")
    try:
        config = CharRNNConfig.from_dict(doc["model_config"])
        check_char_config(config)
    except (TypeError, ValueError) as error:
        origin = (doc.get("extra") or {}).get("cell_origin")
        came = f"; its cell came from {origin}" if origin else ""
        raise CheckpointError(f"{path} does not hold a character-level model ({error}{came})") from None
    got = {k: v for k, v in shapes.items() if k.startswith("model.")}
    definition = get_cell(config.cell)
    # checked first: a forged num_layers of 10**9 is no loop
    if len(definition.parameters) * config.num_layers + 3 > len(got):
        raise CheckpointError(f"{path}: its model config says {config.num_layers} layers but the file holds "
                              f"{len(got)} model tensors; {_mismatch_cause(definition)}")
    expected = {"model." + k: v for k, v in char_rnn_shapes(config).items()}
    if got != expected:
        diffs = [f"{k}: config says {expected.get(k, 'absent')}, file has {got.get(k, 'absent')}"
                 for k in list(expected) + [k for k in got if k not in expected] if expected.get(k) != got.get(k)]
        raise CheckpointError(f"{path}: its model config does not match its tensors ({'; '.join(diffs[:3])}"
                              f"{'; ...' if len(diffs) > 3 else ''}); {_mismatch_cause(definition)}")
    if doc["vocab"] is None or len(doc["vocab"]) != config.vocab_size:
        raise CheckpointError(f"{path} has no vocabulary matching its model; it cannot generate text")


def _mismatch_cause(definition) -> str:
    """Why a checkpoint's tensors may not fit its cell: a user's definition registered under that name
    (RNNLAB_CELLS, or register_cell(..., replace=True)) that is not the one it was trained with, or,
    for rnnlab's own cells, a damaged file."""
    module = getattr(definition.forward, "__module__", None) or ""
    if module.startswith("rnnlab."):
        return "the file is corrupted or forged"
    where = getattr(getattr(definition.forward, "__code__", None), "co_filename", None) or f"module {module}"
    if module.startswith("rnnlab_user_cells_"):
        where += " (RNNLAB_CELLS)"
    return (f"the cell {definition.name!r} is defined here by {where}, not by rnnlab, and its parameters differ "
            f"from those the checkpoint was trained with; load it without that definition (unset RNNLAB_CELLS), "
            f"or register your cell under a new name")


def _load_torch_char_model(path) -> tuple[CharRNN, "Vocab", "Checkpoint"]:
    """load_char_model for a torch weight file: a Checkpoint with no training state (step 0)."""
    from .export import from_torch  # export/ reads and writes the torch files; it builds on this module
    from .io import Checkpoint, CheckpointError

    try:
        model, vocab = from_torch(path)
    except CheckpointError as error:
        reason = str(error).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not an rnnlab checkpoint (no 'rnnlab' checkpoint metadata), nor a torch "
                              f"char model ({reason})") from None
    if not isinstance(model, CharRNN):
        raise CheckpointError(f"{path} holds a bare recurrent layer, not a character-level model")
    if vocab is None:
        raise CheckpointError(f"{path} has no vocabulary, so it cannot generate text; save it with "
                              "metadata={'rnnlab': json.dumps({'vocab': chars})} (docs/interop.md)")
    return model, vocab, Checkpoint(model_config=model.config.to_dict(), model_state=model.state_dict(),
                                    optimizer_state=None, step=0, vocab=vocab.to_list(), rng_state=None,
                                    train_config=None, extra={"source": "torch"})


# -- the four kinds of RNN -------------------------------------------------------------------------
def _positive_int(who: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer; got {value!r}")
    return int(value)


def _check_cell(who: str, cell) -> str:
    if cell not in CELLS:
        raise ValueError(f"{who}: cell must be one of {', '.join(CELLS)}; got {cell!r}")
    return cell


def _with_h(rnn: Recurrent, h: np.ndarray, rest):
    """A state of rnn's cell from h and rest(h) for each further state variable: h, or (h, rest(h), ...)."""
    names = rnn.kind.state_names
    return h if len(names) == 1 else (h,) + tuple(rest(h) for _ in names[1:])


def _top_layer_h(state) -> np.ndarray:
    """h_n (L*K, B, H) out of a final state (the LSTM's is (h, c))."""
    return state[0] if isinstance(state, tuple) else state


class Inputs(Layer):
    """What a model reads at each step: float features (*S, D) as given, or integer ids (*S) looked
    up in an Embedding(input_vocab, D). `lead` names the leading shape S in error messages."""

    def __init__(self, input_size: int, input_vocab: int | None = None, dtype=np.float32, rng=None,
                 who: str = "model"):
        self.who = who
        self.input_size = _positive_int(who, "input_size", input_size)
        self.input_vocab = None if input_vocab is None else _positive_int(who, "input_vocab", input_vocab)
        self.dtype = np.dtype(dtype)
        self.embedding = (Embedding(self.input_vocab, self.input_size, dtype=self.dtype, rng=rng)
                          if self.input_vocab is not None else None)
        self._looked_up = False  # whether the last forward gave ids as a Lookup

    def forward(self, x, name: str = "x", lead: tuple[str, ...] = ("batch",), lookup: bool = False):
        """x (*S, D) float or ids (*S) -> (*S, D); len(S) must equal len(lead). With lookup, ids come
        back as Embedding.lookup's rows, for a recurrent layer to fold into its input projection."""
        self._looked_up = False
        if self.embedding is not None:
            ids = np.asarray(x)
            shape = "(" + ", ".join(lead) + ")"
            if ids.dtype == object or not np.issubdtype(ids.dtype, np.integer):
                raise TypeError(f"{self.who}: {name} must be integer ids in 0..{self.input_vocab - 1} of shape "
                                f"{shape} (the model has input_vocab={self.input_vocab}); got dtype {ids.dtype}")
            if ids.ndim != len(lead):
                raise ValueError(f"{self.who}: {name} must be integer ids of shape {shape}; got shape {ids.shape}")
            if ids.size and (ids.min() < 0 or ids.max() >= self.input_vocab):
                raise ValueError(f"{self.who}: {name} ids must lie in 0..{self.input_vocab - 1}; "
                                 f"got min {ids.min()}, max {ids.max()}")
            self._looked_up = lookup
            return self.embedding.lookup(ids) if lookup else self.embedding(ids)  # (*S, D)
        shape = "(" + ", ".join(lead + (f"input_size={self.input_size}",)) + ")"
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer) and x.ndim == len(lead):
            raise TypeError(f"{self.who}: {name} looks like integer ids of shape {x.shape}; give float features "
                            f"{shape}, or build the model with input_vocab=V to read ids")
        array = check_array(name, x, len(lead) + 1, self.dtype) if np.ndim(x) == len(lead) + 1 else None
        if array is None or array.shape[-1] != self.input_size:
            raise ValueError(f"{self.who}: {name} must have shape {shape}; got shape {np.shape(x)}")
        return array

    def backward(self, dx):
        """The gradient for float inputs; for ids, scatter into the embedding and return None (after a
        lookup, dx is already the table's gradient, from the recurrent layer)."""
        if self.embedding is None:
            return dx
        if self._looked_up:
            self.embedding.weight.grad += dx
        else:
            self.embedding.backward(dx)
        return None


class Fittable(Layer):
    """fit / predict / evaluate (rnnlab.fitting) and what they keep: `init_args` (the constructor's
    arguments, so rnnlab.save can rebuild the model), `fit_info` (the task fit saw) and
    `preprocessing` (scalers, vocabularies, label names a loader attached; saved with the model)."""

    init_args: dict  # every kind sets it first thing in __init__
    fit_info: dict | None = None
    preprocessing: dict | None = None

    def fit(self, X, y, **options):
        """Train on (X, y); returns a History. See rnnlab.fitting.fit for every option."""
        from .fitting import fit

        return fit(self, X, y, **options)

    def predict(self, X, **options):
        """Class ids or values for X (generated ids for OneToMany and Seq2Seq)."""
        from .fitting import predict

        return predict(self, X, **options)

    def predict_proba(self, X, **options):
        """Class probabilities for X."""
        from .fitting import predict_proba

        return predict_proba(self, X, **options)

    def evaluate(self, X, y, **options) -> dict:
        """Loss and metrics on (X, y)."""
        from .fitting import evaluate

        return evaluate(self, X, y, **options)


def _dtype_name(dtype) -> str:
    return np.dtype(dtype).name


class OneToOne(Fittable):
    """One input, one output, no memory: y = W2 tanh(W1 x + b1) + b2 (the feed-forward baseline).

    x (*S, D) float, or ids (*S) with input_vocab -> y (*S, O). Any leading shape S: applied to a
    sequence (B, T) it answers at every step from that step alone, as the lecture's feed-forward
    net reading "neurone" one character at a time.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, input_vocab: int | None = None,
                 dtype=np.float32, rng=None):
        rng = as_generator(rng)
        self.init_args = dict(input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                              input_vocab=input_vocab, dtype=_dtype_name(dtype))
        self.dtype = np.dtype(dtype)
        self.inputs = Inputs(input_size, input_vocab, self.dtype, rng, who="OneToOne")
        hidden_size = _positive_int("OneToOne", "hidden_size", hidden_size)
        output_size = _positive_int("OneToOne", "output_size", output_size)
        self.hidden = Linear(input_size, hidden_size, dtype=self.dtype, rng=rng)
        self.head = Linear(hidden_size, output_size, dtype=self.dtype, rng=rng)
        self._a = None

    def forward(self, x):
        """x (*S, D) or ids (*S) -> y (*S, O)."""
        ndim = np.ndim(x) if self.inputs.embedding is not None else max(np.ndim(x) - 1, 0)
        e = self.inputs(x, "x", tuple(f"S{i}" for i in range(ndim)))  # (*S, D)
        self._a = np.tanh(self.hidden(e))  # (*S, H)
        return self.head(self._a)  # (*S, O)

    def backward(self, dy):
        """dy (*S, O) -> dx (*S, D), or None for ids."""
        if self._a is None:
            raise RuntimeError("OneToOne.backward called before forward")
        da = self.head.backward(dy)  # (*S, H)
        return self.inputs.backward(self.hidden.backward(da * (1 - self._a * self._a)))  # tanh' from output


class ManyToOne(Fittable):
    """Reads a whole sequence, answers once from its last state: y = W h_T + b.

    x (B, T, D) float or ids (B, T) with input_vocab; lengths (B,) for padded batches, so h_T is
    each sequence's state at its own last step -> y (B, O). Bidirectional: the answer reads
    [h_T of the forward direction, h_1 of the backward one] (as torch's h_n[-2:]), K*H features.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, *,
                 input_vocab: int | None = None, num_layers: int = 1, bidirectional: bool = False,
                 dtype=np.float32, rng=None, init: str = "orthogonal"):
        rng = as_generator(rng)
        self.init_args = dict(cell=cell, input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                              input_vocab=input_vocab, num_layers=num_layers, bidirectional=bidirectional,
                              dtype=_dtype_name(dtype), init=init)
        self.cell = _check_cell("ManyToOne", cell)
        self.dtype = np.dtype(dtype)
        self.inputs = Inputs(input_size, input_vocab, self.dtype, rng, who="ManyToOne")
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers=num_layers,
                                  bidirectional=bidirectional, dtype=self.dtype, rng=rng, init=init)
        K = self.rnn.num_directions
        self.head = Linear(K * self.rnn.hidden_size, _positive_int("ManyToOne", "output_size", output_size),
                           dtype=self.dtype, rng=rng)
        self._h_shape = None

    def forward(self, x, lengths=None, state=None, return_state: bool = False):
        """x (B, T, D) or ids (B, T), lengths (B,) or None -> y (B, O).

        state: the recurrent state to start from, (L*K, B, H) [LSTM: (h, c)], as a previous call's;
        return_state: also return the final state, (y, state), so a long series is read in pieces
        (a forecast goes on step by step without re-reading the window)."""
        e = self.inputs(x, "x", ("batch", "time"), lookup=True)  # (B, T, D)
        _, final = self.rnn(e, state, lengths)
        h = _top_layer_h(final)  # (L*K, B, H)
        self._h_shape = h.shape
        K = self.rnn.num_directions
        y = self.head(np.concatenate(list(h[-K:]), axis=1))  # (B, K*H) -> (B, O)
        return (y, final) if return_state else y

    def backward(self, dy, record_flow: bool = False):
        """dy (B, O) -> dx (B, T, D), or None for ids. record_flow: keep dL/dh_t in rnn.grad_flow."""
        if self._h_shape is None:
            raise RuntimeError("ManyToOne.backward called before forward")
        dlast = self.head.backward(dy)  # (B, K*H)
        K, H = self.rnn.num_directions, self.rnn.hidden_size
        dh = np.zeros(self._h_shape, self.dtype)  # (L*K, B, H): only the top layer's final h is read
        for k in range(K):
            dh[len(dh) - K + k] = dlast[:, k * H:(k + 1) * H]
        dx, _ = self.rnn.backward(None, _with_h(self.rnn, dh, lambda h: None), record_flow=record_flow)
        return self.inputs.backward(dx)


class ManyToMany(Fittable):
    """An output at every step, aligned with the input: y_t = W h_t + b.

    x (B, T, D) float or ids (B, T) with input_vocab; lengths (B,) -> y (B, T, O). Past a
    sequence's end h_t is zero, so y_t = b there: mask those steps in the loss. Bidirectional:
    h_t = [forward h_t, backward h_t], so each output also sees the future of the sequence.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, *,
                 input_vocab: int | None = None, num_layers: int = 1, bidirectional: bool = False,
                 dtype=np.float32, rng=None, init: str = "orthogonal"):
        rng = as_generator(rng)
        self.init_args = dict(cell=cell, input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                              input_vocab=input_vocab, num_layers=num_layers, bidirectional=bidirectional,
                              dtype=_dtype_name(dtype), init=init)
        self.cell = _check_cell("ManyToMany", cell)
        self.dtype = np.dtype(dtype)
        self.inputs = Inputs(input_size, input_vocab, self.dtype, rng, who="ManyToMany")
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers=num_layers,
                                  bidirectional=bidirectional, dtype=self.dtype, rng=rng, init=init)
        self.head = Linear(self.rnn.num_directions * self.rnn.hidden_size,
                           _positive_int("ManyToMany", "output_size", output_size), dtype=self.dtype, rng=rng)

    def forward(self, x, lengths=None, state=None, return_state: bool = False):
        """x (B, T, D) or ids (B, T), lengths (B,) or None -> y (B, T, O).

        state / return_state: start from a given recurrent state and also return the final one,
        (y, state), as ManyToOne.forward: feeding a series in pieces gives the outputs of one pass."""
        e = self.inputs(x, "x", ("batch", "time"), lookup=True)  # (B, T, D)
        h, final = self.rnn(e, state, lengths)  # (B, T, K*H)
        y = self.head(h)  # (B, T, O)
        return (y, final) if return_state else y

    def backward(self, dy, record_flow: bool = False):
        """dy (B, T, O) -> dx (B, T, D), or None for ids. record_flow: keep dL/dh_t in rnn.grad_flow."""
        dh = self.head.backward(dy)  # (B, T, K*H)
        dx, _ = self.rnn.backward(dh, record_flow=record_flow)
        return self.inputs.backward(dx)


class Decoder(Layer):
    """The generating half of OneToMany and Seq2Seq: tokens in, next-token logits out, from a
    given initial state. Training reads the true previous tokens (teacher forcing); `greedy`
    feeds back its own argmax instead.

    tokens (B, U) int, state (L, B, H) [LSTM: (h, c)] -> logits (B, U, V).
    """

    def __init__(self, cell: str, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1,
                 dtype=np.float32, rng=None, init: str = "orthogonal", who: str = "Decoder"):
        rng = as_generator(rng)
        self.who = who
        self.cell = _check_cell(who, cell)
        self.vocab_size = _positive_int(who, "vocab_size", vocab_size)
        self.embedding = Embedding(self.vocab_size, _positive_int(who, "embedding_dim", embedding_dim),
                                   dtype=dtype, rng=rng)
        self.rnn = make_recurrent(cell, embedding_dim, hidden_size, num_layers=num_layers, dtype=dtype, rng=rng,
                                  init=init)
        self.head = Linear(self.rnn.hidden_size, self.vocab_size, dtype=dtype, rng=rng)

    def check_tokens(self, name: str, tokens, batch: int) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.dtype == object or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"{self.who}: {name} must be integer token ids of shape (batch, steps); got dtype "
                            f"{tokens.dtype}")
        if tokens.ndim != 2 or tokens.shape[0] != batch or tokens.shape[1] == 0:
            raise ValueError(f"{self.who}: {name} must have shape (batch={batch}, steps >= 1); got {tokens.shape}")
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ValueError(f"{self.who}: {name} must lie in 0..{self.vocab_size - 1}; got min {tokens.min()}, "
                             f"max {tokens.max()}")
        return tokens

    def forward(self, tokens, state):
        """tokens (B, U), state -> logits (B, U, V), final state."""
        h, state = self.rnn(self.embedding.lookup(tokens), state)  # (B, U, H): the rows, folded (lookup.py)
        return self.head(h), state

    def backward(self, dlogits):
        """dlogits (B, U, V) -> the gradient of the initial state (parameters accumulate)."""
        dtable, dstate0 = self.rnn.backward(self.head.backward(dlogits))
        self.embedding.weight.grad += dtable
        return dstate0

    def greedy(self, state, batch: int, steps: int, start: int, eos: int | None) -> np.ndarray:
        """Feed back the argmax one step at a time -> ids (B, steps). After a row's first `eos`
        the rest of it is eos; the loop ends early once every row has emitted one."""
        steps = _positive_int(self.who, "steps", steps)
        for name, value in (("start", start), ("eos", eos)):
            if value is not None and not (isinstance(value, (int, np.integer)) and 0 <= value < self.vocab_size):
                raise ValueError(f"{self.who}: {name} must be a token id in 0..{self.vocab_size - 1}; got {value!r}")
        out = np.full((batch, steps), -1 if eos is None else eos, dtype=np.int64)  # (B, steps)
        token = np.full((batch, 1), start, dtype=np.int64)  # (B, 1)
        done = np.zeros(batch, dtype=bool)
        for t in range(steps):
            logits, state = self.forward(token, state)  # (B, 1, V): one step from the carried state
            token = logits.argmax(axis=-1)  # (B, 1)
            out[~done, t] = token[~done, 0]
            if eos is not None:
                done |= token[:, 0] == eos
                if done.all():
                    break
        return out


class OneToMany(Fittable):
    """One input, a sequence out: the input sets the decoder's initial state, h_0 = tanh(W x + b)
    (one (B, H) block per layer; the LSTM's c_0 is 0), and the decoder emits tokens.

    Training, with teacher forcing: forward(x, tokens_in) -> logits (B, U, V), where tokens_in is
    the target shifted right behind a start token. Inference: generate(x, steps) feeds back its own
    argmax. x (B, D) float, or ids (B,) with input_vocab (e.g. a class label).
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, vocab_size: int, *,
                 input_vocab: int | None = None, embedding_dim: int = 16, num_layers: int = 1,
                 dtype=np.float32, rng=None, init: str = "orthogonal"):
        rng = as_generator(rng)
        self.init_args = dict(cell=cell, input_size=input_size, hidden_size=hidden_size, vocab_size=vocab_size,
                              input_vocab=input_vocab, embedding_dim=embedding_dim, num_layers=num_layers,
                              dtype=_dtype_name(dtype), init=init)
        self.cell = _check_cell("OneToMany", cell)
        self.dtype = np.dtype(dtype)
        self.num_layers = _positive_int("OneToMany", "num_layers", num_layers)
        self.hidden_size = _positive_int("OneToMany", "hidden_size", hidden_size)
        self.inputs = Inputs(input_size, input_vocab, self.dtype, rng, who="OneToMany")
        self.init_state = Linear(input_size, self.num_layers * self.hidden_size, dtype=self.dtype, rng=rng)
        self.decoder = Decoder(cell, vocab_size, embedding_dim, hidden_size, num_layers, self.dtype, rng, init,
                               who="OneToMany")
        self._h0 = None

    def _state(self, x):
        e = self.inputs(x, "x", ("batch",))  # (B, D)
        B, L, H = e.shape[0], self.num_layers, self.hidden_size
        h0 = np.ascontiguousarray(np.tanh(self.init_state(e)).reshape(B, L, H).transpose(1, 0, 2))  # (L, B, H)
        self._h0 = h0
        return _with_h(self.decoder.rnn, h0, np.zeros_like)

    def forward(self, x, tokens_in):
        """x (B, D) or ids (B,), tokens_in (B, U) -> logits (B, U, V)."""
        state = self._state(x)
        tokens_in = self.decoder.check_tokens("tokens_in", tokens_in, self._h0.shape[1])
        logits, _ = self.decoder(tokens_in, state)
        return logits

    def backward(self, dlogits):
        """dlogits (B, U, V) -> dx (B, D), or None for ids."""
        if self._h0 is None:
            raise RuntimeError("OneToMany.backward called before forward")
        dstate0 = self.decoder.backward(dlogits)
        dh0 = _top_layer_h(dstate0)  # (L, B, H); c_0 is a constant
        h0 = self._h0
        L, B, H = h0.shape
        da = (dh0 * (1 - h0 * h0)).transpose(1, 0, 2).reshape(B, L * H)  # tanh' from output
        return self.inputs.backward(self.init_state.backward(da))

    def generate(self, x, steps: int, start: int = 1, eos: int | None = 2) -> np.ndarray:
        """Greedy generation from each input: x (B, D) or ids (B,) -> ids (B, steps).

        start/eos default to rnnlab.data.tasks' GO = 1 and EOS = 2. Inference only: it replaces
        the cache a pending backward would need.
        """
        state = self._state(x)
        return self.decoder.greedy(state, self._h0.shape[1], steps, start, eos)


class Seq2Seq(Fittable):
    """Encoder-decoder (Sutskever, Vinyals & Le 2014): the encoder reads the source, its final
    state (each sequence's own last step, via src_lengths) starts the decoder.

    Training, with teacher forcing: forward(src, tgt_in, src_lengths) -> logits (B, U, V_tgt),
    src ids (B, S), tgt_in ids (B, U) = start token + target. Inference: greedy_decode.
    """

    def __init__(self, cell: str, src_vocab: int, tgt_vocab: int, hidden_size: int, *, embedding_dim: int = 32,
                 num_layers: int = 1, dtype=np.float32, rng=None, init: str = "orthogonal"):
        rng = as_generator(rng)
        self.init_args = dict(cell=cell, src_vocab=src_vocab, tgt_vocab=tgt_vocab, hidden_size=hidden_size,
                              embedding_dim=embedding_dim, num_layers=num_layers, dtype=_dtype_name(dtype), init=init)
        self.cell = _check_cell("Seq2Seq", cell)
        self.dtype = np.dtype(dtype)
        self.source = Inputs(embedding_dim, _positive_int("Seq2Seq", "src_vocab", src_vocab), self.dtype, rng,
                             who="Seq2Seq")
        self.encoder = make_recurrent(cell, embedding_dim, hidden_size, num_layers=num_layers, dtype=self.dtype,
                                      rng=rng, init=init)
        self.decoder = Decoder(cell, tgt_vocab, embedding_dim, hidden_size, num_layers, self.dtype, rng, init,
                               who="Seq2Seq")

    def encode(self, src, src_lengths=None):
        """src (B, S) ids, src_lengths (B,) -> the encoder's final state (L, B, H) [LSTM: (h, c)]."""
        _, state = self.encoder(self.source(src, "src", ("batch", "source_time")), None, src_lengths)
        return state

    def forward(self, src, tgt_in, src_lengths=None):
        """src (B, S), tgt_in (B, U), src_lengths (B,) -> logits (B, U, V_tgt)."""
        state = self.encode(src, src_lengths)
        tgt_in = self.decoder.check_tokens("tgt_in", tgt_in, np.shape(src)[0])
        logits, _ = self.decoder(tgt_in, state)
        return logits

    def backward(self, dlogits):
        """dlogits (B, U, V_tgt) -> None (the inputs are ids); parameters accumulate."""
        dstate = self.decoder.backward(dlogits)
        dx, _ = self.encoder.backward(None, dstate)
        return self.source.backward(dx)

    def greedy_decode(self, src, steps: int, src_lengths=None, start: int = 1, eos: int | None = 2) -> np.ndarray:
        """src (B, S) -> ids (B, steps), the decoder's argmax fed back at each step.

        start/eos default to rnnlab.data.tasks' GO = 1 and EOS = 2. Inference only.
        """
        state = self.encode(src, src_lengths)
        return self.decoder.greedy(state, np.shape(src)[0], steps, start, eos)


def task_model(problem, cell: str, hidden: int, num_layers: int = 1, init: str = "orthogonal",
               rng=None) -> "ManyToOne | ManyToMany":
    """The model for a task of `rnnlab.data.tasks.PROBLEMS`: ManyToMany if it is read at every
    step, else ManyToOne (its last state)."""
    kind = ManyToMany if problem.every_step else ManyToOne
    return kind(cell, problem.input_size, hidden, problem.output_size, num_layers=num_layers, init=init, rng=rng)
