"""PyTorch weight files: an rnnlab model under torch.nn's names, and torch.nn state_dicts back into rnnlab.

Shapes: D = input features, E = embedding, H = hidden units, L = layers, K = directions,
V = vocabulary, G = gates.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..io import CheckpointError, load_weights_and_metadata, metadata_json, save_weights
from ..models import CharRNN, CharRNNConfig, make_recurrent
from .common import ALIASES, FORMAT_VERSION, META_KEY, ExportError, cell_name, layer_config, parts, vocab_list

TORCH_FORMAT = "rnnlab-torch"
TORCH_GATES = {4: "lstm", 3: "gru", 1: "rnn"}  # what a torch state_dict's G*H rows say about the cell
TORCH_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "rnn_relu": "RNN"}


def torch_constructors(model) -> dict:
    """Keyword arguments of the torch.nn modules that hold this model's weights under the same names."""
    rnn, char = parts(model)
    cell = cell_name(rnn)
    if cell not in TORCH_CLASSES:
        raise ExportError(f"the {cell!r} cell has no torch.nn module (torch has LSTM, GRU and RNN); "
                          "save its weights with rnnlab.io.save_weights instead")
    kwargs = {"input_size": rnn.input_size, "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
              "bias": rnn.bias, "batch_first": True, "bidirectional": rnn.bidirectional}
    if TORCH_CLASSES[cell] == "RNN":
        kwargs["nonlinearity"] = "relu" if cell == "rnn_relu" else "tanh"
    out = {"rnn_class": TORCH_CLASSES[cell], "rnn": kwargs}
    if char is not None:
        c = char.config
        out["embedding"] = {"num_embeddings": c.vocab_size, "embedding_dim": c.embedding_dim}
        out["head"] = {"in_features": c.hidden_size, "out_features": c.vocab_size}
    return out


def to_torch(model, path, *, vocab=None) -> Path:
    """Write the weights under torch.nn's names, with the configuration and vocabulary in the metadata
    (one of the four kinds: the torch.nn modules to build, by name; kinds.py)."""
    from .kinds import is_kind, kind_to_torch

    if is_kind(model):
        return kind_to_torch(model, path)
    rnn, char = parts(model)
    doc = {"format": TORCH_FORMAT, "version": FORMAT_VERSION, "model": "CharRNN" if char else type(rnn).__name__,
           "cell": cell_name(rnn), "model_config": char.config.to_dict() if char else layer_config(rnn),
           "torch": torch_constructors(model),
           "vocab": vocab_list(vocab, char.config.vocab_size if char else None)}
    return save_weights(path, model.state_dict(), metadata={META_KEY: json.dumps(doc)})


_RNN_NAME = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?")


def from_torch(path, *, cell: str | None = None, vocab=None):
    """(model, vocab) from a safetensors file of torch.nn weights: a bare LSTM/GRU/RNN state_dict, or a
    character model (an Embedding, the recurrent stack, a Linear) under any module names.

    The cell comes from the rows of weight_ih (4H: lstm, 3H: gru, H: rnn); a state_dict cannot tell
    torch's tanh RNN from its relu one, so give cell="rnn_relu" (or metadata {"cell": "rnn_relu"})
    for the latter. vocab (a Vocab or list of characters) is needed to sample text; without it the
    file's metadata is read ({"vocab": [...]}), else it is None.
    """
    from ..data.text import Vocab

    path = Path(path)
    state, metadata = load_weights_and_metadata(path)
    doc = _torch_doc(path, metadata)
    cell = cell or doc.get("cell")
    layout = _torch_layout(path, state, cell)
    cell, dtype = layout["cell"], layout["dtype"]
    if layout["embedding"] is None:  # a bare layer
        kwargs = dict(num_layers=layout["num_layers"], bidirectional=layout["bidirectional"], bias=layout["bias"],
                      dtype=dtype, rng=0)
        model = make_recurrent(cell, layout["input_size"], layout["hidden_size"], **kwargs)
        rename = {layout["rnn_prefix"] + k: k for k in layout["rnn_names"]}
    else:
        if layout["bidirectional"] or not layout["bias"]:
            raise CheckpointError(f"{path}: rnnlab's character model is unidirectional with biases; this one is "
                                  f"{'bidirectional' if layout['bidirectional'] else 'bias-free'}")
        config = CharRNNConfig(vocab_size=layout["vocab_size"], cell=cell,
                               hidden_size=layout["hidden_size"], num_layers=layout["num_layers"],
                               embedding_dim=layout["input_size"], dtype=np.dtype(dtype).name)
        model = CharRNN(config, rng=0)
        rename = {layout["rnn_prefix"] + k: "rnn." + k for k in layout["rnn_names"]}
        rename[layout["embedding"] + "weight"] = "embedding.weight"
        rename[layout["head"] + "weight"] = "head.weight"
        rename[layout["head"] + "bias"] = "head.bias"
    model.load_state_dict({ours: state[theirs].astype(dtype, copy=False) for theirs, ours in rename.items()})
    model.eval()
    chars = vocab if vocab is not None else doc.get("vocab")
    size = layout["vocab_size"]
    if chars is not None:
        chars = vocab_list(chars, size)
        if size is None:
            raise CheckpointError(f"{path}: a vocabulary was given, but the file holds a bare layer, not a char model")
    return model, None if chars is None else Vocab.from_list(chars)


_DOC_KEYS = {"format", "version", "model", "cell", "model_config", "torch", "vocab"}


def _torch_doc(path: Path, metadata: dict[str, str]) -> dict:
    """The optional JSON under metadata["rnnlab"] (ours, or a user's {"cell": ..., "vocab": ...})."""
    if META_KEY not in metadata:
        return {}
    doc = metadata_json(path, metadata, META_KEY)
    if not isinstance(doc, dict) or set(doc) - _DOC_KEYS:
        extra = sorted(set(doc) - _DOC_KEYS) if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: the {META_KEY!r} metadata has unknown entries {extra}; "
                              f"known: {sorted(_DOC_KEYS)}")
    if doc.get("format", TORCH_FORMAT) != TORCH_FORMAT or doc.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(f"{path}: metadata format {doc.get('format')!r} version {doc.get('version')!r}; "
                              f"this rnnlab reads {TORCH_FORMAT!r} version {FORMAT_VERSION}")
    if isinstance(doc.get("vocab"), str):
        doc["vocab"] = list(doc["vocab"])
    if doc.get("vocab") is not None and not (isinstance(doc["vocab"], list)
                                            and all(isinstance(c, str) and len(c) == 1 for c in doc["vocab"])):
        raise CheckpointError(f"{path}: the {META_KEY!r} metadata's vocab is {type(doc['vocab']).__name__}; "
                              "expected a list of single characters (or a string of them)")
    return doc


def _torch_layout(path: Path, state: dict[str, np.ndarray], cell: str | None) -> dict:
    """What a torch state_dict holds, read from its names and shapes (CheckpointError if unclear)."""
    roots = [k[:-len("weight_ih_l0")] for k in state if k.endswith("weight_ih_l0")]
    if len(roots) != 1:
        raise CheckpointError(f"{path}: expected one torch.nn LSTM/GRU/RNN (a 'weight_ih_l0' tensor); found "
                              f"{len(roots)} among {sorted(state)[:12]}")
    prefix = roots[0]
    rnn_names = [k[len(prefix):] for k in state if k.startswith(prefix) and _RNN_NAME.fullmatch(k[len(prefix):])]
    w_ih, w_hh = state[prefix + "weight_ih_l0"], state.get(prefix + "weight_hh_l0")
    if w_hh is None or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise CheckpointError(f"{path}: a torch.nn LSTM/GRU/RNN needs {prefix}weight_ih_l0 and "
                              f"{prefix}weight_hh_l0, both 2-D")
    H = w_hh.shape[1]
    if H < 1 or w_ih.shape[1] < 1:
        raise CheckpointError(f"{path}: {prefix}weight_hh_l0 {tuple(w_hh.shape)} and weight_ih_l0 "
                              f"{tuple(w_ih.shape)} give hidden size {H} and input size {w_ih.shape[1]}; a "
                              "recurrent layer needs both >= 1")
    G, rest = divmod(w_ih.shape[0], H)
    if rest or G not in TORCH_GATES:
        raise CheckpointError(f"{path}: weight_ih_l0 has {w_ih.shape[0]} rows for hidden size {H}; torch's LSTM, "
                              "GRU and RNN have 4H, 3H and H")
    inferred = TORCH_GATES[G]
    cell = ALIASES.get(cell, cell) or inferred
    if cell not in TORCH_CLASSES or TORCH_GATES[G] != {"rnn_relu": "rnn"}.get(cell, cell):
        raise CheckpointError(f"{path}: the weights are a {inferred.split('_')[0]} ({G}H rows); cell {cell!r} "
                              "does not fit them")
    layers = sorted({int(_RNN_NAME.fullmatch(n).group(3)) for n in rnn_names})
    if layers != list(range(len(layers))):
        raise CheckpointError(f"{path}: recurrent layers {layers} are not numbered 0..L-1")
    dtype = w_ih.dtype
    if dtype.kind != "f":
        raise CheckpointError(f"{path}: weights have dtype {dtype}; expected float32 or float64")
    if dtype == np.float16:
        dtype = np.dtype(np.float32)  # rnnlab computes in float32 or float64
    K = 2 if "weight_ih_l0_reverse" in rnn_names else 1
    layout = {"cell": cell, "dtype": dtype, "rnn_prefix": prefix, "rnn_names": rnn_names, "input_size": w_ih.shape[1],
              "hidden_size": H, "num_layers": len(layers), "bidirectional": K == 2, "bias": "bias_ih_l0" in rnn_names,
              "embedding": None, "head": None, "vocab_size": None}
    others: dict[str, dict[str, np.ndarray]] = {}
    for k, v in state.items():
        if not (k.startswith(prefix) and k[len(prefix):] in rnn_names):
            module, _, name = k.rpartition(".")
            others.setdefault(module + "." if module else "", {})[name] = v
    if not others:
        return layout
    embeddings = [m for m, p in others.items() if set(p) == {"weight"} and p["weight"].ndim == 2
                  and p["weight"].shape[1] == w_ih.shape[1]]
    heads = [m for m, p in others.items() if set(p) == {"weight", "bias"} and p["weight"].ndim == 2
             and p["weight"].shape[1] == K * H and p["bias"].shape == p["weight"].shape[:1]]
    if len(embeddings) != 1 or len(heads) != 1 or len(others) != 2:
        raise CheckpointError(f"{path}: besides the recurrent layer, expected an Embedding (weight (V, {w_ih.shape[1]}))"
                              f" and a Linear output layer (weight (V, {K * H}), bias (V,)); found "
                              + ", ".join(f"{m}{n} {tuple(a.shape)}" for m, p in others.items() for n, a in p.items()))
    V = others[embeddings[0]]["weight"].shape[0]
    if others[heads[0]]["weight"].shape[0] != V:
        raise CheckpointError(f"{path}: the embedding has {V} rows but the output layer "
                              f"{others[heads[0]]['weight'].shape[0]}; a char model reads and writes one vocabulary")
    layout.update(embedding=embeddings[0], head=heads[0], vocab_size=V)
    return layout
