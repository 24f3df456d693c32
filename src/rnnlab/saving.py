"""rnnlab.save / rnnlab.load: any model in one safetensors file, rebuilt with nothing else.

    rnnlab.save(model, "model.safetensors")    # OneToOne, OneToMany, ManyToOne, ManyToMany, Seq2Seq, CharRNN
    model = rnnlab.load("model.safetensors")   # the same class, weights bit for bit, fit_info, preprocessing

The file is an io.py checkpoint (written atomically, read without pickle): model_config holds
{"kind", "args" (the constructor's), "fit_info"}; the tensors are the weights and the numeric arrays
of `model.preprocessing` (scalers, ...), whose other values (vocabularies, label names, feature names)
go in the JSON beside. The config is checked against the tensor shapes in the header before
anything is built, so a forged config (hidden_size 10**6 beside small tensors) costs nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import CheckpointError, load_checkpoint, save_checkpoint
from .nn.cells import get_cell

PREP = "preprocessing."  # tensor names of preprocessing arrays: preprocessing.<key>.<key>...
_ARRAY = "__tensor__"    # in the JSON: {"__tensor__": name} stands for a stored array


def _kinds() -> dict:
    from . import models

    return {cls.__name__: cls for cls in (models.OneToOne, models.OneToMany, models.ManyToOne, models.ManyToMany,
                                          models.Seq2Seq, models.CharRNN)}


# -- preprocessing: JSON with arrays as tensors ------------------------------------------------------
def _split_arrays(value, path: str, tensors: dict):
    """`value` with every numeric ndarray replaced by a marker and put in `tensors` (exact bits)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        name = PREP + path
        tensors[name] = value
        return {_ARRAY: name}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or "." in key:
                raise TypeError(f"preprocessing keys must be str without '.'; got {key!r} in {path or 'the top'}")
        return {k: _split_arrays(v, f"{path}.{k}" if path else k, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    return value


def _join_arrays(value, tensors: dict, path):
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            name = value[_ARRAY]
            if name not in tensors:
                raise CheckpointError(f"{path}: preprocessing refers to a tensor {name!r} the file does not hold")
            return tensors[name]
        return {k: _join_arrays(v, tensors, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, tensors, path) for v in value]
    return value


def save(model, path) -> Path:
    """Write `model` (architecture, weights, fit_info, preprocessing) to one safetensors file, atomically."""
    kind = type(model).__name__
    if kind not in _kinds():
        raise TypeError(f"rnnlab.save takes {', '.join(_kinds())}; got {kind}")
    args = model.config.to_dict() if kind == "CharRNN" else dict(model.init_args)
    tensors: dict[str, np.ndarray] = {}
    preprocessing = _split_arrays(getattr(model, "preprocessing", None), "", tensors)
    state = model.state_dict() | tensors
    config = {"kind": kind, "args": args, "fit_info": getattr(model, "fit_info", None)}
    return save_checkpoint(path, model_config=config, model_state=state, optimizer_state=None, step=0, vocab=None,
                           rng_state=None, train_config=None, extra={"preprocessing": preprocessing})


# -- load --------------------------------------------------------------------------------------------
def _recurrent_shapes(prefix: str, cell: str, D: int, H: int, L: int, K: int = 1) -> dict:
    definition = get_cell(cell)
    shapes = {}
    for layer in range(L):
        for suffix in [f"_l{layer}", f"_l{layer}_reverse"][:K]:
            for name, shape in definition.shapes(D if layer == 0 else K * H, H).items():
                shapes[f"{prefix}{name}{suffix}"] = shape
    return shapes


def _linear(prefix: str, i: int, o: int) -> dict:
    return {f"{prefix}.weight": (o, i), f"{prefix}.bias": (o,)}


def expected_shapes(kind: str, a: dict) -> dict[str, tuple[int, ...]]:
    """{state_dict name: shape} of a model of `kind` built from args `a`, computed without building it."""
    if kind == "CharRNN":
        from .models import CharRNNConfig, char_rnn_shapes

        return char_rnn_shapes(CharRNNConfig.from_dict(a))
    vocab = a.get("input_vocab")
    inputs = {"inputs.embedding.weight": (vocab, a["input_size"])} if vocab else {}
    if kind == "OneToOne":
        return inputs | _linear("hidden", a["input_size"], a["hidden_size"]) | _linear(
            "head", a["hidden_size"], a["output_size"])
    if kind in ("ManyToOne", "ManyToMany"):
        K = 2 if a["bidirectional"] else 1
        return inputs | _recurrent_shapes("rnn.", a["cell"], a["input_size"], a["hidden_size"], a["num_layers"], K) \
            | _linear("head", K * a["hidden_size"], a["output_size"])
    E, H, L = a["embedding_dim"], a["hidden_size"], a["num_layers"]
    if kind == "OneToMany":
        V = a["vocab_size"]
        head = inputs | _linear("init_state", a["input_size"], L * H)
    else:  # Seq2Seq
        V = a["tgt_vocab"]
        head = {"source.embedding.weight": (a["src_vocab"], E)} | _recurrent_shapes("encoder.", a["cell"], E, H, L)
    return head | {"decoder.embedding.weight": (V, E)} | _recurrent_shapes("decoder.rnn.", a["cell"], E, H, L) \
        | _linear("decoder.head", H, V)


def _check(path, doc: dict, shapes: dict) -> None:
    """load_checkpoint's check_shapes hook: the config must name a known kind whose tensors are these."""
    config = doc.get("model_config")
    kinds = _kinds()
    if not isinstance(config, dict) or config.get("kind") not in kinds or not isinstance(config.get("args"), dict):
        raise CheckpointError(f"{path}: not a model saved by rnnlab.save (its config names no model kind of "
                              f"{', '.join(kinds)}); a training checkpoint loads with rnnlab.models.load_char_model")
    layers = config["args"].get("num_layers", 1)
    if not isinstance(layers, int) or layers > len(shapes):  # checked first: 10**9 layers is no loop
        raise CheckpointError(f"{path}: its config says num_layers={layers!r} but the file holds {len(shapes)} "
                              "tensors; the file is corrupted or forged")
    try:
        expected = expected_shapes(config["kind"], config["args"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its {config['kind']} config is damaged ({type(error).__name__}: {error})") \
            from None
    got = {k[len("model."):]: v for k, v in shapes.items() if not k.startswith("model." + PREP)}
    if got != expected:
        diffs = [f"{k}: config says {expected.get(k, 'absent')}, file has {got.get(k, 'absent')}"
                 for k in list(expected) + [k for k in got if k not in expected] if expected.get(k) != got.get(k)]
        raise CheckpointError(f"{path}: its model config does not match its tensors ({'; '.join(diffs[:3])}"
                              f"{'; ...' if len(diffs) > 3 else ''}); the file is corrupted or forged")


def load(path):
    """The model rnnlab.save wrote to `path` (or to `path`/model.safetensors for a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    ckpt = load_checkpoint(path, check_shapes=lambda doc, shapes: _check(path, doc, shapes))
    config = ckpt.model_config
    cls = _kinds()[config["kind"]]
    weights = {k: v for k, v in ckpt.model_state.items() if not k.startswith(PREP)}
    arrays = {k: v for k, v in ckpt.model_state.items() if k.startswith(PREP)}
    try:
        if cls.__name__ == "CharRNN":
            from .models import CharRNNConfig

            model = cls(CharRNNConfig.from_dict(config["args"]), rng=0)
        else:
            model = cls(**config["args"], rng=0)
        model.load_state_dict(weights)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot rebuild its {config['kind']} ({error})") from None
    info = config.get("fit_info")
    if info is not None and not isinstance(info, dict):
        raise CheckpointError(f"{path}: corrupted fit_info (a {type(info).__name__})")
    model.fit_info = info
    model.preprocessing = _join_arrays((ckpt.extra or {}).get("preprocessing"), arrays, path)
    return model
