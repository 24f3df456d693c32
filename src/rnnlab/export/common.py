"""What both export formats share: the error, cell names, what may be exported, the metadata key."""
from __future__ import annotations

from ..models import CharRNN

FORMAT_VERSION = 1
META_KEY = "rnnlab"  # the metadata entry (safetensors metadata, ONNX metadata_props) holding our JSON
ALIASES = {"rnn_tanh": "rnn"}  # torch's mode name for the registry's tanh RNN


class ExportError(ValueError):
    """A model that cannot be written in the asked format; the message names the reason."""


def cell_name(layer) -> str:
    """The registered name of a recurrent layer's cell: lstm, gru, rnn (tanh), rnn_relu, or another."""
    for attr in ("cell", "kind"):
        value = getattr(layer, attr, None)
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if isinstance(name, str):
            return ALIASES.get(name, name)
    raise TypeError(f"{type(layer).__name__} is not an rnnlab recurrent layer (it has no cell)")


def parts(model):
    """(recurrent stack, CharRNN or None) of what may be exported: a CharRNN or a bare layer."""
    if isinstance(model, CharRNN):
        return model.rnn, model
    if hasattr(model, "num_directions") and hasattr(model, "weight_ih_l0"):
        return model, None
    raise TypeError(f"export takes a CharRNN, an rnnlab LSTM/GRU/RNN layer or one of the four kinds (OneToOne, "
                    f"OneToMany, ManyToOne, ManyToMany); got {type(model).__name__}")


def vocab_list(vocab, size: int | None) -> list[str] | None:
    if vocab is None:
        return None
    chars = list(vocab.chars) if hasattr(vocab, "chars") else list(vocab)
    if not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise TypeError("vocab must be a Vocab or a list of single characters")
    if size is not None and len(chars) != size:
        raise ValueError(f"the vocabulary has {len(chars)} characters but the model expects {size}")
    return chars


def layer_config(rnn) -> dict:
    return {"cell": cell_name(rnn), "input_size": rnn.input_size, "hidden_size": rnn.hidden_size,
            "num_layers": rnn.num_layers, "bidirectional": rnn.bidirectional, "bias": rnn.bias,
            "dtype": rnn.dtype.name}
