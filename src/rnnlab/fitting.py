"""fit / predict / evaluate for the four kinds of RNN, as Keras and scikit-learn users expect.

    model = ManyToOne("lstm", input_size=D, hidden_size=32, output_size=n_classes)
    history = model.fit(X, y, validation_split=0.2, epochs=30, early_stopping=5)
    labels = model.predict(X_new)                  # class ids (classification) or values
    model.evaluate(X_val, y_val)                   # {"loss", "accuracy", "macro_f1"} or {"loss", "mse", ...}

X: an array (N, T, D); a list of (T_i, D) arrays (padded, with lengths); integer ids (N, T) or a
list of (T_i,) ids for a model built with input_vocab. OneToOne and OneToMany read one vector
(N, D) (or one id (N,)) per sample; Seq2Seq reads source ids. y: float values (regression: MSE) or
integer class ids (classification: cross-entropy). ManyToMany takes y per step, (N, T[, O]) or a
list; OneToMany and Seq2Seq take target id sequences (ids 0, 1, 2 are PAD, GO, EOS).

The batches go through `train.optimize`, the loop that trains character models: this module turns
arrays into batches (one adapter per kind: inputs, targets, forward) and the end of each epoch into
a hook (validation, history, early stopping, reduce-on-plateau). No model-specific line is in the loop.

Shapes: N = samples, B = batch, T = time, D = features, O = outputs, C = classes, U = target length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .data.tables import DataError, pad_sequences
from .metrics import confusion_matrix, macro_f1
from .nn.losses import cross_entropy, mse
from .nn.module import no_grad
from .optim import Optimizer

PAD, GO, EOS = 0, 1, 2  # as rnnlab.data.tasks: target sequences start after GO and end with EOS
LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse")


# -- the user's arrays -> aligned arrays (first axis N) ---------------------------------------------
def _finite(name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        where = np.argwhere(~np.isfinite(a))[0]
        raise DataError(f"{name} holds NaN or inf (first at index {tuple(int(i) for i in where)}); "
                        "fill or drop those values first")
    return a


def _array(name: str, value, dtype=None) -> np.ndarray:
    try:
        a = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be a numeric array or a list of arrays ({error})") from None
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold numbers; got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[0] == 0:
        raise DataError(f"{name} holds no samples (shape {a.shape})")
    return _finite(name, a)


def _is_ragged(value) -> bool:
    return isinstance(value, (list, tuple)) and not isinstance(value, np.ndarray)


def _sequences(name: str, X, ids: bool, dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """X -> (x (N, T, D) float or (N, T) ids, lengths (N,) or None where every sequence is full)."""
    if _is_ragged(X):
        if not X:
            raise DataError(f"{name} holds no samples (an empty list)")
        x, lengths = pad_sequences([_array(f"{name}[{i}]", s) for i, s in enumerate(X)])
    else:
        x, lengths = _array(name, X), None
    want = 2 if ids else 3
    if x.ndim != want:
        what = "integer ids (N, T) or a list of (T_i,) ids" if ids else "(N, T, D) or a list of (T_i, D) arrays"
        raise DataError(f"{name} must be {what}; got shape {x.shape}")
    if ids:
        if x.dtype.kind not in "iu":
            raise DataError(f"{name} must be integer ids (the model has input_vocab); got dtype {x.dtype}")
        return x.astype(np.int64), lengths
    return x.astype(dtype, copy=False), lengths


def _vectors(name: str, X, ids: bool, dtype) -> np.ndarray:
    x = _array(name, X)
    if ids:
        if x.ndim != 1 or x.dtype.kind not in "iu":
            raise DataError(f"{name} must be integer ids (N,) (the model has input_vocab); got {x.dtype} {x.shape}")
        return x.astype(np.int64)
    if x.ndim != 2:
        raise DataError(f"{name} must have shape (N, D), one vector per sample; got {x.shape}")
    return x.astype(dtype, copy=False)


def _reads_ids(model) -> bool:
    inputs = getattr(model, "inputs", None) or getattr(model, "source", None)
    return inputs is not None and inputs.embedding is not None


def _task_of(y: np.ndarray) -> str:
    return "classification" if y.dtype.kind in "biu" else "regression"


def _answers(name: str, y: np.ndarray, outputs: int, task: str, lead: tuple[int, ...], dtype) -> np.ndarray:
    """y of leading shape `lead`: class ids (*lead,) in 0..O-1, or values (*lead, O) ((*lead,) if O = 1)."""
    if y.shape[:len(lead)] != lead:
        raise DataError(f"{name} has shape {y.shape}; X gives {lead[0]} samples"
                        + (f" of {lead[1]} steps" if len(lead) > 1 else "") + f", so y must begin {lead}")
    if task == "classification":
        if y.ndim != len(lead):
            raise DataError(f"{name}: integer class ids must have shape {lead}; got {y.shape} (give float values "
                            "for regression)")
        if y.min() < 0 or y.max() >= outputs:
            raise DataError(f"{name}: class ids must lie in 0..{outputs - 1} (the model's output_size is "
                            f"{outputs}); got min {y.min()}, max {y.max()}")
        return y.astype(np.int64)
    if y.ndim == len(lead):
        y = y[..., None]
    if y.shape[len(lead):] != (outputs,):
        raise DataError(f"{name}: values must have shape {lead + (outputs,)} (output_size {outputs}); got {y.shape}")
    return y.astype(dtype)


def _token_targets(name: str, y, vocab: int, n: int) -> dict:
    """Target id sequences -> tokens_in = GO + y, tgt = y + EOS, mask, each (N, U + 1)."""
    seqs = [_array(f"{name}[{i}]", s) for i, s in enumerate(y)] if _is_ragged(y) else list(_array(name, y))
    if len(seqs) != n:
        raise DataError(f"{name} has {len(seqs)} target sequences for {n} inputs")
    for i, s in enumerate(seqs):
        if s.ndim != 1 or s.dtype.kind not in "iu":
            raise DataError(f"{name}[{i}] must be a 1-D sequence of integer token ids; got {s.dtype} {s.shape}")
        if s.size and (s.min() <= EOS or s.max() >= vocab):
            raise DataError(f"{name}[{i}]: token ids must lie in {EOS + 1}..{vocab - 1} (0, 1, 2 are PAD, GO, EOS); "
                            f"got min {s.min()}, max {s.max()}")
    tokens_in, _ = pad_sequences([np.concatenate([[GO], s]).astype(np.int64) for s in seqs])
    tgt, lengths = pad_sequences([np.concatenate([s, [EOS]]).astype(np.int64) for s in seqs])
    mask = np.arange(tgt.shape[1])[None, :] < lengths[:, None]  # (N, U + 1)
    return {"tokens_in": tokens_in, "y": tgt, "mask": mask, "tgt_lengths": lengths}


class _Kind:
    """How one kind of model reads a batch. inputs: X -> arrays; targets: y -> arrays (y, mask);
    forward: a batch -> outputs whose last axis is O or C. `trim` names arrays padded in time and
    the lengths that trim them to the batch's longest sequence."""

    trim: dict[str, str] = {}

    def inputs(self, model, X) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def targets(self, model, y, data: dict, task: str) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, model, batch: dict):  # pragma: no cover - interface
        raise NotImplementedError


class _OneToOne(_Kind):
    def inputs(self, model, X):
        return {"x": _vectors("X", X, _reads_ids(model), model.dtype)}

    def targets(self, model, y, data, task):
        return {"y": _answers("y", y, model.head.out_features, task, (len(data["x"]),), model.dtype)}

    def forward(self, model, batch):
        return model(batch["x"])


class _ManyToOne(_Kind):
    trim = {"x": "lengths"}

    def inputs(self, model, X):
        x, lengths = _sequences("X", X, _reads_ids(model), model.dtype)
        return {"x": x, "lengths": lengths}

    def targets(self, model, y, data, task):
        return {"y": _answers("y", y, model.head.out_features, task, (len(data["x"]),), model.dtype)}

    def forward(self, model, batch):
        return model(batch["x"], batch.get("lengths"))


class _ManyToMany(_ManyToOne):
    trim = {"x": "lengths", "y": "lengths", "mask": "lengths"}

    def targets(self, model, y, data, task):
        x, lengths = data["x"], data.get("lengths")
        if _is_ragged(y):
            if len(y) != len(x):
                raise DataError(f"y has {len(y)} sequences for {len(x)} in X")
            y, y_lengths = pad_sequences([_array(f"y[{i}]", s) for i, s in enumerate(y)])
            if lengths is None or not np.array_equal(y_lengths, lengths):
                raise DataError("y's sequences must have the lengths of X's, step for step")
        y = _array("y", y)
        task = _task_of(y)
        out = {"y": _answers("y", y, model.head.out_features, task, x.shape[:2], model.dtype)}
        if lengths is not None:
            out["mask"] = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, T)
        return out


class _OneToMany(_Kind):
    trim = {"tokens_in": "tgt_lengths", "y": "tgt_lengths", "mask": "tgt_lengths"}

    def inputs(self, model, X):
        return {"x": _vectors("X", X, _reads_ids(model), model.dtype)}

    def targets(self, model, y, data, task):
        return _token_targets("y", y, model.decoder.vocab_size, len(data["x"]))

    def forward(self, model, batch):
        return model(batch["x"], batch["tokens_in"])


class _Seq2Seq(_OneToMany):
    trim = {"x": "lengths", **_OneToMany.trim}

    def inputs(self, model, X):
        x, lengths = _sequences("X", X, True, model.dtype)
        return {"x": x, "lengths": lengths}

    def forward(self, model, batch):
        return model(batch["x"], batch["tokens_in"], batch.get("lengths"))


def _kind(model) -> _Kind:
    from . import models

    for cls, kind in ((models.OneToOne, _OneToOne), (models.ManyToOne, _ManyToOne),
                      (models.ManyToMany, _ManyToMany), (models.OneToMany, _OneToMany), (models.Seq2Seq, _Seq2Seq)):
        if isinstance(model, cls):
            return kind()
    raise TypeError(f"fit takes OneToOne, OneToMany, ManyToOne, ManyToMany or Seq2Seq; got {type(model).__name__}")


def _task(model, y) -> str:
    from . import models

    if isinstance(model, (models.OneToMany, models.Seq2Seq)):
        return "classification"  # the next token, at every step
    if _is_ragged(y):
        return _task_of(_array("y[0]", y[0])) if y else "regression"
    return _task_of(_array("y", y))


def _data(kind: _Kind, model, X, y, task: str) -> dict:
    data = kind.inputs(model, X)
    data = {k: v for k, v in data.items() if v is not None}
    y = y if _is_ragged(y) else _array("y", y)
    data.update(kind.targets(model, y, data, task))
    n = {len(v) for v in data.values()}
    if len(n) != 1:
        raise DataError(f"X and y hold different numbers of samples ({len(data['x'])} and {len(data['y'])})")
    return data


def _take(kind: _Kind, data: dict, index: np.ndarray) -> dict:
    """The rows `index` of every array, padded time axes cut to the batch's longest sequence."""
    batch = {k: v[index] for k, v in data.items()}
    for key, by in kind.trim.items():
        if key in batch and by in batch:
            batch[key] = batch[key][:, :int(batch[by].max())]
    return batch


# -- losses and running metrics ---------------------------------------------------------------------
def _loss(task: str, out, batch) -> tuple[float, np.ndarray]:
    return (cross_entropy if task == "classification" else mse)(out, batch["y"], batch.get("mask"))


class _Tally:
    """Loss and metrics summed over batches: regression sums of squared and absolute errors,
    classification a confusion matrix."""

    def __init__(self, task: str, classes: int):
        self.task, self.classes = task, classes
        self.loss, self.rows = 0.0, 0
        self.sse = self.sae = 0.0
        self.count = 0
        self.confusion = np.zeros((classes, classes), np.int64) if task == "classification" else None

    def add(self, loss: float, out, batch) -> None:
        rows = len(batch["y"])
        self.loss, self.rows = self.loss + loss * rows, self.rows + rows
        mask = batch.get("mask")
        if self.task == "classification":
            self.confusion += confusion_matrix(batch["y"], out.argmax(-1), self.classes, mask)
        else:
            diff = np.asarray(out, np.float64) - batch["y"]
            if mask is not None:
                diff = diff[mask]
            self.sse += float((diff * diff).sum())
            self.sae += float(np.abs(diff).sum())
            self.count += diff.size

    def result(self) -> dict[str, float]:
        out = {"loss": self.loss / max(self.rows, 1)}
        if self.task == "classification":
            total = self.confusion.sum()
            out |= {"accuracy": float(np.trace(self.confusion) / total) if total else float("nan"),
                    "macro_f1": macro_f1(self.confusion)}
        else:
            n = max(self.count, 1)
            out |= {"mse": self.sse / n, "mae": self.sae / n, "rmse": (self.sse / n) ** 0.5}
        return out


def _classes(model) -> int:
    head = getattr(model, "head", None) or model.decoder.head
    return head.out_features


def _measure(kind: _Kind, model, data: dict, task: str, batch_size: int) -> _Tally:
    """Loss and metrics of `data` in eval mode, no caches kept."""
    tally = _Tally(task, _classes(model))
    for batch, out in _evaluated(kind, model, data, len(data["y"]), batch_size):
        tally.add(_loss(task, out, batch)[0], out, batch)
    return tally


def _evaluated(kind: _Kind, model, data: dict, n: int, batch_size: int):
    """(batch, model output) over the n rows of `data` in order, in eval mode with no caches kept."""
    was = model.training
    model.eval()
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                batch = _take(kind, data, np.arange(start, min(start + batch_size, n)))
                yield batch, kind.forward(model, batch)
    finally:
        model.train(was)


# -- fit ---------------------------------------------------------------------------------------------
@dataclass
class History:
    """What fit returns: one row per epoch (epoch, loss, metrics, val_loss, val_ metrics, lr), the best
    epoch by the monitored value, and where early stopping ended it. `history["val_loss"]` gives a
    column, as Keras's History.history. Passed back to fit (history=), training continues after its
    last epoch with its early-stopping and plateau counts (a resumed run; best_weights in memory)."""

    rows: list[dict] = field(default_factory=list)
    monitor: str = "loss"
    best_epoch: int | None = None
    best_value: float | None = None
    wait: int = 0                      # epochs since the best one (early stopping)
    plateau_best: float | None = None
    plateau_wait: int = 0              # epochs since the learning rate last had a better epoch
    stopped_epoch: int | None = None   # the epoch early stopping ended on (None: ran all epochs)
    confusion: list | None = None      # validation confusion matrix after fit (classification)
    best_weights: dict | None = field(default=None, repr=False)  # the best epoch's state_dict (early stopping)

    @property
    def history(self) -> dict[str, list]:
        keys = [k for row in self.rows for k in row]
        return {k: [row.get(k) for row in self.rows] for k in dict.fromkeys(keys)}

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def to_dict(self) -> dict:
        """Everything but best_weights, as JSON values."""
        return {k: v for k, v in vars(self).items() if k != "best_weights"}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        known = {f for f in cls.__dataclass_fields__ if f != "best_weights"}
        if not isinstance(data, dict) or not set(data) <= known or not isinstance(data.get("rows"), list):
            raise ValueError("not a fit history (expected the keys of History.to_dict)")
        return cls(**data)


def _better(monitor: str, new: float, best: float | None) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(new)
    lower = monitor.removeprefix("val_") in LOWER_IS_BETTER
    return new < best if lower else new > best


def _split(data: dict, fraction: float) -> tuple[dict, dict]:
    """The last `fraction` of the samples for validation (as Keras: before any shuffling)."""
    n = len(data["y"])
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"validation_split={fraction} of {n} samples leaves {n - n_val} to train on and {n_val} "
                        "to validate on; both need at least one")
    return {k: v[: n - n_val] for k, v in data.items()}, {k: v[n - n_val:] for k, v in data.items()}


def _optimizer(model, optimizer, lr: float, weight_decay: float) -> Optimizer:
    from .train import OPTIMIZERS

    if isinstance(optimizer, Optimizer):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} or an rnnlab Optimizer; got {optimizer!r}")
    return OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)


def _positive(name: str, value, optional: bool = False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}; got {value!r}")
    return int(value)


def fit(model, X, y, *, epochs: int = 10, batch_size: int = 32, validation_split: float = 0.0,
        validation_data=None, shuffle: bool = True, optimizer="adam", lr: float = 1e-3, weight_decay: float = 0.0,
        clip: float | None = 5.0, clip_mode: str = "norm", early_stopping: int | None = None,
        monitor: str | None = None, reduce_on_plateau: int | None = None, lr_factor: float = 0.5,
        min_lr: float = 1e-6, seed: int = 0, progress: bool = True, callbacks=(),
        history: History | None = None) -> History:
    """Train `model` on (X, y) through train.optimize; see the module doc for X and y.

    validation_split takes the last fraction of the samples (before shuffling); validation_data is
    (X_val, y_val). early_stopping=P stops after P epochs without improvement of `monitor`
    (default val_loss, or loss without validation data) and restores the best epoch's weights.
    reduce_on_plateau=P multiplies the learning rate by lr_factor after P epochs without
    improvement. callbacks: functions of the epoch's row, called after the early-stopping
    bookkeeping; one returning True stops training. history: a History from an earlier fit of this
    model to continue (give the optimizer it trained with, as an Optimizer, for an exact resume).
    """
    from .train import optimize

    epochs, batch_size = _positive("epochs", epochs), _positive("batch_size", batch_size)
    early_stopping = _positive("early_stopping", early_stopping, optional=True)
    reduce_on_plateau = _positive("reduce_on_plateau", reduce_on_plateau, optional=True)
    if not (isinstance(validation_split, (int, float)) and 0 <= validation_split < 1):
        raise ValueError(f"validation_split must be in [0, 1); got {validation_split!r}")
    kind, task = _kind(model), _task(model, y)
    data = _data(kind, model, X, y, task)
    val = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        val = _data(kind, model, *validation_data, task)
    elif validation_split:
        data, val = _split(data, validation_split)
    monitor = monitor or (history.monitor if history is not None else
                          "val_loss" if val is not None else "loss")
    if monitor.startswith("val_") and val is None:
        raise ValueError(f"monitor={monitor!r} needs validation data (validation_split or validation_data)")
    history = history if history is not None else History(monitor=monitor)
    if history.monitor != monitor:
        raise ValueError(f"the history to continue monitored {history.monitor!r}, not {monitor!r}")
    opt = _optimizer(model, optimizer, lr, weight_decay)
    n = len(data["y"])
    per_epoch = math.ceil(n / batch_size)
    model.fit_info = _fit_info(task, data, np.ndim(y[0]) + 1 if _is_ragged(y) else np.ndim(y))
    tally = _Tally(task, _classes(model))
    order = np.arange(n)
    start = len(history.rows) * per_epoch  # a continued history: its epochs are done
    if history.stopped_epoch is not None or start >= epochs * per_epoch:
        return history

    bar = None
    if progress:
        from .display import progress_bar  # one widget or one line in a notebook, as training's

        bar = progress_bar(total=epochs * per_epoch, initial=start, unit="step", dynamic_ncols=True, desc="fit")

    def loss_and_backward(step):
        nonlocal order, tally
        epoch, position = divmod(step - 1, per_epoch)
        if position == 0 or step == start + 1:
            order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
            tally = _Tally(task, _classes(model))
        batch = _take(kind, data, order[position * batch_size:(position + 1) * batch_size])
        out = kind.forward(model, batch)
        loss, dout = _loss(task, out, batch)
        if math.isfinite(loss):
            model.backward(dout)
            tally.add(loss, out, batch)
        return loss

    def end_of_step(row):
        if bar is not None:
            bar.update(1)
        epoch, position = divmod(row["step"] - 1, per_epoch)
        if position != per_epoch - 1:
            return False
        result = {"epoch": epoch + 1, **tally.result(), "lr": opt.lr}
        if val is not None:
            result |= {f"val_{k}": v for k, v in _measure(kind, model, val, task, batch_size).result().items()}
        history.rows.append(result)
        if bar is not None:
            bar.set_postfix_str(" ".join(f"{k} {v:.4g}" for k, v in result.items() if k in ("loss", "val_loss")))
        value = result.get(monitor)
        if value is None:
            raise ValueError(f"monitor={monitor!r} is not among the history's keys {sorted(result)}")
        if _better(monitor, value, history.best_value):
            history.best_value, history.best_epoch, history.wait = value, epoch + 1, 0
            if early_stopping:
                history.best_weights = model.state_dict()
        else:
            history.wait += 1
        if reduce_on_plateau:
            if _better(monitor, value, history.plateau_best):
                history.plateau_best, history.plateau_wait = value, 0
            else:
                history.plateau_wait += 1
                if history.plateau_wait >= reduce_on_plateau:
                    opt.lr, history.plateau_wait = max(opt.lr * lr_factor, min_lr), 0
        stop = early_stopping is not None and history.wait >= early_stopping
        if stop:
            history.stopped_epoch = epoch + 1
        return any([bool(callback(result)) for callback in callbacks]) or stop  # every callback sees the epoch

    try:
        model.train()
        optimize(model.parameters(), loss_and_backward, opt, epochs * per_epoch, clip=clip, clip_mode=clip_mode,
                 callback=end_of_step, start=start)
    finally:
        if bar is not None:
            bar.close()
    if early_stopping and history.best_weights is not None:
        model.load_state_dict(history.best_weights)
    if task == "classification" and val is not None:
        history.confusion = _measure(kind, model, val, task, batch_size).confusion.tolist()
    return history


def _fit_info(task: str, data: dict, y_ndim: int) -> dict:
    """What predict needs to answer in the shape fit was given (kept in saved models): squeeze where
    y came without its output axis."""
    info = {"task": task, "squeeze": bool(task == "regression" and y_ndim < data["y"].ndim)}
    if "tgt_lengths" in data:
        info["steps"] = int(data["tgt_lengths"].max())  # the longest target and its EOS
    return info


# -- predict / evaluate ------------------------------------------------------------------------------
def forward_all(model, X, batch_size: int = 256):
    """The model's raw outputs for X, in eval mode, batch by batch: (N, O) or (N, T, O) (ragged X:
    a list of (T_i, O))."""
    from . import models

    kind = _kind(model)
    if isinstance(model, (models.OneToMany, models.Seq2Seq)):
        raise TypeError(f"{type(model).__name__} generates sequences; use predict")
    data = {k: v for k, v in kind.inputs(model, X).items() if v is not None}
    outs = []
    for _, out in _evaluated(kind, model, data, len(data["x"]), batch_size):
        if out.ndim == 3 and out.shape[1] < data["x"].shape[1]:  # a trimmed batch: pad back to T
            out = np.concatenate([out, np.zeros((out.shape[0], data["x"].shape[1] - out.shape[1],
                                                 out.shape[2]), out.dtype)], axis=1)
        outs.append(out)
    out = np.concatenate(outs)
    if isinstance(model, models.ManyToMany) and "lengths" in data:
        return [out[i, :t] for i, t in enumerate(data["lengths"])]
    return out


def predict(model, X, batch_size: int = 256, steps: int | None = None):
    """Class ids for a classifier, values for a regressor (shaped as fit's y), generated ids (N, steps)
    for OneToMany and Seq2Seq (steps default: the longest target fit saw, plus EOS)."""
    from . import models

    info = getattr(model, "fit_info", None) or {}
    if isinstance(model, (models.OneToMany, models.Seq2Seq)):
        kind = _kind(model)
        data = kind.inputs(model, X)
        steps = _positive("steps", steps or info.get("steps") or 0) if (steps or info.get("steps")) else None
        if steps is None:
            raise ValueError(f"{type(model).__name__}.predict needs steps= (the model was not fit)")
        was = model.training
        model.eval()
        try:
            with no_grad():
                if isinstance(model, models.Seq2Seq):
                    return model.greedy_decode(data["x"], steps, data.get("lengths"), start=GO, eos=EOS)
                return model.generate(data["x"], steps, start=GO, eos=EOS)
        finally:
            model.train(was)
    out = forward_all(model, X, batch_size)

    def answer(o):
        if info.get("task") == "classification":
            return o.argmax(-1)
        return o[..., 0] if info.get("squeeze") else o
    return [answer(o) for o in out] if isinstance(out, list) else answer(out)


def predict_proba(model, X, batch_size: int = 256):
    """Class probabilities (softmax of the outputs): (N, C), or per step for ManyToMany."""
    from .nn.losses import softmax

    out = forward_all(model, X, batch_size)
    return [softmax(o) for o in out] if isinstance(out, list) else softmax(out)


def evaluate(model, X, y, batch_size: int = 256) -> dict[str, float]:
    """Loss and metrics on (X, y): {"loss", "mse", "mae", "rmse"} or {"loss", "accuracy", "macro_f1"}."""
    kind, task = _kind(model), _task(model, y)
    data = _data(kind, model, X, y, task)
    return _measure(kind, model, data, task, batch_size).result()
