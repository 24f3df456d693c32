"""Checkpoints and weight files: one safetensors file each, written atomically, read without pickle.

    >>> save_checkpoint("runs/lstm/ckpt.safetensors", model_config=cfg, model_state=model.state_dict(),
    ...                 optimizer_state=opt.state_dict(), step=step, vocab=vocab,
    ...                 rng_state=rng.bit_generator.state, train_config=train_cfg)
    >>> ckpt = load_checkpoint("runs/lstm/ckpt.safetensors", expect_model_config=cfg)
    >>> model.load_state_dict(ckpt.model_state); rng = restore_rng(ckpt.rng_state)

    >>> save_weights("lstm.safetensors", model.state_dict())   # PyTorch names, so in torch:
    >>> torch_lstm.load_state_dict(safetensors.torch.load_file("lstm.safetensors"))

A checkpoint file holds the tensors `model.<name>` and `optim.<name>`; its safetensors metadata has
one key, "rnnlab", whose value is a JSON document:
    {"format": "rnnlab-checkpoint", "version": 1, "model_config": {...}, "model_tensors": [name, ...],
     "optimizer": {"hyper": {...}, "tensors": [name, ...]} or null, "step": int,
     "vocab": [str, ...] or null, "rng_state": {...} or null, "train_config": {...} or null,
     "extra": {...} or null}
JSON keeps ints of any size (a PCG64 state is 128-bit) and floats exactly; tuples come back as lists.

Every file is written to a temp file beside the target, fsynced, then `os.replace`d onto it, so a
crash, Ctrl-C or SIGKILL mid-save leaves the previous file intact (a SIGKILL may leave a stray
`.<name>.*.tmp`, never a broken target). `atomic_write_bytes` does it for every file rnnlab writes
(checkpoints, exports, pages, plots, tables), and only over a regular file: a directory, device,
FIFO or symbolic link at the target is refused (OutputError); rundir.check_output adds what a
command must never overwrite.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import operator
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

FORMAT = "rnnlab-checkpoint"
VERSION = 1
_META_KEY = "rnnlab"
_MISSING = object()
_MODEL, _OPTIM = "model.", "optim."

# mkstemp creates files 0600; give ours the mode a plain open() would (read once: os.umask can only
# be read by setting it, which is not thread-safe later on).
_UMASK = os.umask(0)
os.umask(_UMASK)


class CheckpointError(ValueError):
    """A checkpoint or weight file that cannot be loaded; the message names the path and why."""


@dataclass
class Checkpoint:
    """Everything `save_checkpoint` stored, as NumPy arrays and plain JSON values."""

    model_config: dict
    model_state: dict[str, np.ndarray]
    optimizer_state: dict | None  # {"hyper": {...}, "tensors": {name: ndarray}}
    step: int
    vocab: list[str] | None
    rng_state: dict | None  # a bit_generator.state; restore_rng() turns it back into a Generator
    train_config: dict | None
    extra: dict | None = None


# -- writing ---------------------------------------------------------------------------------------
def save_checkpoint(path, *, model_config: dict, model_state: dict[str, np.ndarray],
                    optimizer_state: dict | None, step: int, vocab: list[str] | None,
                    rng_state: dict | None, train_config: dict | None,
                    extra: dict | None = None) -> Path:
    """Write a self-contained checkpoint to `path` atomically and return the path."""
    # Validate and encode everything before touching the disk, so bad input never creates a file.
    tensors = _tensors(model_state, _MODEL, "model_state")
    optimizer = None
    if optimizer_state is not None:
        if not isinstance(optimizer_state, dict) or set(optimizer_state) != {"hyper", "tensors"}:
            raise ValueError('optimizer_state must be {"hyper": {...}, "tensors": {name: ndarray}}')
        tensors.update(_tensors(optimizer_state["tensors"], _OPTIM, "optimizer_state['tensors']"))
        optimizer = {"hyper": _jsonable(optimizer_state["hyper"], "optimizer_state['hyper']"),
                     "tensors": list(optimizer_state["tensors"])}
    if isinstance(rng_state, np.random.Generator):
        rng_state = rng_state.bit_generator.state
    if rng_state is not None and not (isinstance(rng_state, dict) and "bit_generator" in rng_state):
        raise TypeError("rng_state must be a bit_generator.state dict (or a numpy Generator)")
    if vocab is not None and not all(isinstance(s, str) for s in vocab):
        raise TypeError("vocab must be a list of str")
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": _jsonable(model_config, "model_config"),
        "model_tensors": list(model_state),  # safetensors sorts names; this keeps the caller's order
        "optimizer": optimizer,
        "step": operator.index(step),
        "vocab": None if vocab is None else list(vocab),
        "rng_state": _jsonable(rng_state, "rng_state"),
        "train_config": _jsonable(train_config, "train_config"),
        "extra": _jsonable(extra, "extra"),
    }
    return _atomic_save_file(path, tensors, {_META_KEY: json.dumps(doc)})


def save_weights(path, state_dict: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Write a plain weight file (names unchanged) atomically; torch reads it with safetensors.torch.
    `metadata`: extra str -> str entries for the file's header."""
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map str to str")
    # "format": "pt" is the marker transformers and other PyTorch loaders look for.
    return _atomic_save_file(path, _tensors(state_dict, "", "state_dict"), {"format": "pt", **(metadata or {})})


def _tensors(state, prefix: str, what: str) -> dict[str, np.ndarray]:
    """Prefixed, C-contiguous arrays of a dtype safetensors stores; TypeError naming any misfit."""
    if not hasattr(state, "items"):
        raise TypeError(f"{what} must be a mapping of name -> array; got {type(state).__name__}")
    out = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise TypeError(f"{what} keys must be str; got {name!r}")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{what}[{name!r}] has dtype {array.dtype}; "
                            "only bool, int and float arrays can be saved")
        if not array.flags.c_contiguous:
            # safetensors copies nbytes straight from the data pointer, so a strided view would be
            # saved scrambled (np.ascontiguousarray is skipped otherwise: it turns 0-d into 1-d).
            array = np.ascontiguousarray(array)
        out[prefix + name] = array
    return out


def _jsonable(value: Any, what: str) -> Any:
    """`value` as JSON will give it back (NumPy scalars and arrays become Python numbers and lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serializable: {e}") from None


def _json_default(obj):
    if isinstance(obj, np.ndarray):  # e.g. the key of an MT19937 or Philox state
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serializable")


def _atomic_save_file(path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """Write via a fsynced temp file in the same directory, then rename it onto `path`."""
    # Serialize in memory and write the bytes ourselves (not safetensors.numpy.save_file): one temp
    # file we name, chmod and fsync, whatever the safetensors version does inside save_file.
    return atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))


class OutputError(ValueError):
    """An output path rnnlab refuses to write (not a regular file, or something that must not be lost)."""


def path_kind(path, follow: bool = False) -> str | None:
    """What is at `path`: None (nothing), "a regular file", "a directory", "a symbolic link" (unless
    `follow`, which looks at what a link points to), "a FIFO", "a device", "a socket" or "a special file"."""
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # no permission to look, a name too long, ...: the write itself will say why
        return None
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def check_regular_target(path, what: str = "") -> Path:
    """OutputError unless `path` is free or a regular file: a rename would replace a device node, a FIFO
    or a symbolic link (not what it points to) with a regular file, and cannot replace a directory."""
    path = Path(path)
    kind = path_kind(path)
    if kind not in (None, "a regular file"):
        advice = ("give a file name inside it" if kind == "a directory" else
                  "remove the link or give the real path" if kind == "a symbolic link" else "choose a file path")
        raise OutputError(f"{what + ' ' if what else ''}{path} is {kind}; rnnlab writes its output only as a "
                          f"regular file ({advice})")
    return path


def atomic_write_bytes(path, data) -> Path:
    """Write `data` (bytes, or str as UTF-8) to `path` via a fsynced temp file beside it, renamed onto
    it: readers see the old file or the new one, never a part. `path` must be free or a regular file
    (OutputError otherwise); an OSError names `path`, never the temp file."""
    path = check_regular_target(path)
    data = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
    # Same directory, so os.replace is a rename within one filesystem, which POSIX makes atomic.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, f"cannot write ({e.strerror})", str(path)) from None
    try:
        try:
            while data:  # os.write may write less than asked; unbuffered, so nothing to flush
                data = data[os.write(fd, data[:1 << 30]):]
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~_UMASK)
            os.fsync(fd)  # the bytes reach the disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt included: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:  # name the target, not the temp file
            raise OSError(e.errno, f"cannot write ({e.strerror})", str(path)) from None
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` survive power loss (POSIX only; best effort)."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a directory
        return
    with contextlib.suppress(OSError):  # some filesystems refuse; the file itself is already safe
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading ---------------------------------------------------------------------------------------
def load_checkpoint(path, *, expect_model_config: dict | None = None, check_shapes=None) -> Checkpoint:
    """Read a checkpoint from `save_checkpoint`; CheckpointError if missing, broken or another model's.

    check_shapes(doc, {name: shape}) runs on the header alone, before any tensor is read, and may raise
    (so a forged config or a huge tensor is refused without allocating it)."""
    path = Path(path)
    with _open(path) as f:
        doc = _read_doc(path, f.metadata())
        if expect_model_config is not None:
            _check_config(path, doc["model_config"], _jsonable(expect_model_config, "expect_model_config"))
        if check_shapes is not None:
            check_shapes(doc, {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()})
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    model_state = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    optim = {k[len(_OPTIM):]: v for k, v in tensors.items() if k.startswith(_OPTIM)}
    stray = [k for k in tensors if not k.startswith((_MODEL, _OPTIM))]
    if stray:
        raise CheckpointError(f"{path}: unexpected tensors {stray} (expected 'model.*' and 'optim.*')")
    if set(model_state) != set(doc["model_tensors"]):
        raise CheckpointError(f"{path}: model tensors {sorted(model_state)} do not match the metadata's "
                              f"{sorted(doc['model_tensors'])}")
    model_state = {k: model_state[k] for k in doc["model_tensors"]}
    optimizer_state = None
    if doc["optimizer"] is not None:
        expected = doc["optimizer"]["tensors"]
        if set(expected) != set(optim):
            raise CheckpointError(f"{path}: optimizer tensors {sorted(optim)} do not match the metadata's "
                                  f"{sorted(expected)}")
        optimizer_state = {"hyper": doc["optimizer"]["hyper"], "tensors": {k: optim[k] for k in expected}}
    elif optim:
        raise CheckpointError(f"{path}: has optimizer tensors but no optimizer metadata")
    return Checkpoint(model_config=doc["model_config"], model_state=model_state,
                      optimizer_state=optimizer_state, step=doc["step"], vocab=doc["vocab"],
                      rng_state=doc["rng_state"], train_config=doc["train_config"], extra=doc["extra"])


def load_weights(path) -> dict[str, np.ndarray]:
    """Read a weight file (from `save_weights` or any safetensors file) as {name: ndarray}."""
    path = Path(path)
    with _open(path) as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def is_checkpoint(path) -> bool:
    """Whether `path` is meant as an rnnlab checkpoint: False for a weight file (no rnnlab metadata, or
    metadata of another rnnlab format); True for a missing or unreadable file, so that
    load_checkpoint names what is wrong."""
    try:
        with safe_open(Path(path), framework="np") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError):
        return True
    if _META_KEY not in metadata:
        return False
    try:
        doc = json.loads(metadata[_META_KEY])
    except (json.JSONDecodeError, RecursionError):  # damaged or forged: load_checkpoint says which
        return True
    return not isinstance(doc, dict) or doc.get("format") == FORMAT


def load_weights_and_metadata(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A weight file's tensors and its safetensors metadata ({} if none), e.g. one that
    `safetensors.torch.save_file(module.state_dict(), path, metadata=...)` wrote."""
    path = Path(path)
    with _open(path) as f:
        for name in f.keys():  # NumPy has no bfloat16 and safetensors' own error would not say which tensor
            dtype = f.get_slice(name).get_dtype()
            if dtype not in _NUMPY_DTYPES:
                raise CheckpointError(f"{path}: tensor {name!r} is {dtype}, which NumPy cannot hold; save it as "
                                      "float32 or float64 (in PyTorch: module.float() before save_file)")
        return {name: f.get_tensor(name) for name in f.keys()}, dict(f.metadata() or {})


# safetensors dtype names that load as NumPy arrays (BF16 and the FP8 kinds do not)
_NUMPY_DTYPES = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64"}


@contextlib.contextmanager
def _open(path: Path):
    """safe_open(path) with every failure turned into a CheckpointError naming the path."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        f = safe_open(path, framework="np")
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a valid safetensors file "
                              f"(truncated, corrupted or another format): {e}") from e
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from e
    with f:
        try:
            yield f
        except SafetensorError as e:  # a tensor that fails to decode
            raise CheckpointError(f"{path}: corrupted tensor data: {e}") from e


def metadata_json(path: Path, metadata: dict[str, str], key: str):
    """The JSON under metadata[key], or a CheckpointError naming the file where it is damaged."""
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupted {key} metadata (invalid JSON: {e})") from None
    except RecursionError:  # a forged header nested thousands deep
        raise CheckpointError(f"{path}: corrupted {key} metadata (JSON nested too deeply)") from None


def _read_doc(path: Path, metadata: dict[str, str] | None) -> dict:
    """The rnnlab JSON document from the safetensors metadata, checked for format and version."""
    if not metadata or _META_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file but not an rnnlab checkpoint (no {_META_KEY!r} "
                              "metadata); plain weight files load with load_weights()")
    doc = metadata_json(path, metadata, _META_KEY)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: not an rnnlab checkpoint (format {got!r}, expected {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {doc.get('version')!r}; "
                              f"this rnnlab reads version {VERSION}")
    fields = ("model_config", "model_tensors", "optimizer", "step", "vocab", "rng_state", "train_config", "extra")
    missing = [k for k in fields if k not in doc]
    if missing:
        raise CheckpointError(f"{path}: corrupted rnnlab metadata (missing {missing})")
    optimizer = doc["optimizer"]
    optimizer_ok = optimizer is None or (isinstance(optimizer, dict) and "hyper" in optimizer
                                         and isinstance(optimizer.get("tensors"), list))
    if not (isinstance(doc["step"], int) and isinstance(doc["model_tensors"], list) and optimizer_ok):
        raise CheckpointError(f"{path}: corrupted rnnlab metadata (bad 'step', 'model_tensors' or 'optimizer')")
    if isinstance(doc["step"], bool) or doc["step"] < 0:
        raise CheckpointError(f"{path}: corrupted rnnlab metadata (step must be an integer >= 0; "
                              f"got {doc['step']!r})")
    kinds = {"model_config": dict, "train_config": (dict, type(None)), "extra": (dict, type(None)),
             "rng_state": (dict, type(None)), "vocab": (list, type(None))}
    wrong = [f"{k} is {type(doc[k]).__name__}" for k, kind in kinds.items() if not isinstance(doc[k], kind)]
    if doc["vocab"] is not None and not all(isinstance(c, str) for c in doc["vocab"]):
        wrong.append("vocab holds non-strings")
    if not all(isinstance(name, str) for name in doc["model_tensors"]):
        wrong.append("model_tensors holds non-strings")
    if wrong:
        raise CheckpointError(f"{path}: corrupted rnnlab metadata ({'; '.join(wrong)})")
    return doc


def read_metadata(path) -> dict:
    """The checkpoint's JSON document (config, step, vocabulary, ...) without reading any tensor."""
    path = Path(path)
    with _open(path) as f:
        return _read_doc(path, f.metadata())


def tensor_shapes(path) -> dict[str, tuple[int, ...]]:
    """{name: shape} of every tensor in a safetensors file, read from its header (nothing allocated)."""
    path = Path(path)
    with _open(path) as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}


def _check_config(path: Path, stored: dict, expected: dict) -> None:
    """CheckpointError listing every top-level key where the stored and expected configs differ."""
    if not isinstance(stored, dict) or not isinstance(expected, dict):
        if stored != expected:
            raise CheckpointError(f"{path}: checkpoint model config {stored!r}, this model {expected!r}")
        return
    keys = list(stored) + [k for k in expected if k not in stored]
    diffs = []
    for k in keys:
        if stored.get(k, _MISSING) != expected.get(k, _MISSING):
            in_checkpoint, in_model = (repr(d[k]) if k in d else "(absent)" for d in (stored, expected))
            diffs.append(f"{k}: checkpoint {in_checkpoint}, this model {in_model}")
    if diffs:
        raise CheckpointError(f"{path}: checkpoint is for a different model config; " + "; ".join(diffs))


# -- randomness ------------------------------------------------------------------------------------
def restore_rng(state: dict) -> np.random.Generator:
    """A Generator whose bit generator (PCG64, MT19937, ...) is in exactly the stored state."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f"rng state names no numpy bit generator (bit_generator={name!r})")
    bit_generator = cls()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"invalid {name} state: {e}") from e
    return np.random.Generator(bit_generator)
