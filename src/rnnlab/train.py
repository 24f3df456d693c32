"""Train a character-level model on a text with truncated BPTT: rnnlab's main job.

    from rnnlab.train import TrainConfig, Trainer
    result = Trainer(TrainConfig(data="tinyshakespeare", steps=2000, out="runs/shakespeare")).fit()
    result = Trainer.resume("runs/shakespeare", steps=4000).fit()    # continues bit-identically

One step: chunk (x, y) -> forward from the carried state -> cross-entropy -> BPTT -> clip -> step.
The state is carried from chunk to chunk (its gradient cut: BPTT is truncated at the chunk
boundary) and reset to zeros at each epoch start.

The run directory holds, written as training goes: config.json, log.jsonl (one line per step and
per evaluation, appended), checkpoint.safetensors (atomic, from step 0 on), loss.png and samples.txt.
It is one run's: a new run refuses it unless told to overwrite, a lock (rundir.py) keeps a second
writer out, and a resume sets aside log rows it cannot trust (log.aside.jsonl) instead of dropping
them. The text's absolute path and SHA-256 are recorded, so a run resumes from any directory.

Shapes: B = parallel streams (batch), T = chunk length (BPTT steps), V = vocabulary size.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .clip import clip_grad_norm, clip_grad_value
from .data.corpus import ERRORS, corpus_from_text, data_loading_bytes, open_corpus
from .data.text import _URL_RE, DataError, TBPTTBatches, split_text
from .io import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .models import CELLS, CharRNN, CharRNNConfig, check_char_checkpoint
from .rundir import LOG, RunDirError, abandon, claim, clear_run, reconcile_log, run_files, write_atomic
from .validate import (INT_GE0, POSITIVE_INT, POSITIVE_REAL, PROBABILITY, REAL_GE0, SEED, Rule, check_char_rnn_memory,
                       check_value, check_values)
from .nn.cells import get_cell
from .nn.losses import cross_entropy
from .nn.module import no_grad
from .settings import settings
from .optim import SGD, Adagrad, Adam, AdamW, CosineWarmup, RMSprop

OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad}
CHECKPOINT = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN/inf; the message says at which step and what to try."""


class NothingToDo(Exception):
    """A resume asked for no step beyond the checkpoint's; nothing was read or written."""


# The allowed range of every numeric option (the CLI names them as flags: eval_batches -> --eval-batches).
TRAIN_RULES: dict[str, Rule] = {name: POSITIVE_INT for name in (
    "hidden", "layers", "embedding", "seq_len", "batch", "eval_every", "sample_every", "save_every",
    "sample_length")} | {
    "steps": Rule("int", 1, optional=True),
    "epochs": Rule("real", 0, low_open=True, optional=True),
    "eval_batches": Rule("int", 0, optional=True, note="0: the whole validation split"),
    "warmup": INT_GE0, "seed": SEED, "lr": POSITIVE_REAL, "weight_decay": REAL_GE0, "dropout": PROBABILITY,
    "clip": Rule("real", 0, optional=True, note="0: no clipping"),
}


@dataclass
class TrainConfig:
    """Every knob of a training run; the `rnnlab train` options map onto it one to one."""

    data: str | None = None         # a file path, a URL, "tinyshakespeare", or None: the built-in corpus
    model: str = "lstm"             # any registered cell (rnnlab.cell_names()): lstm | gru | rnn | rnn_relu | ...
    hidden: int = 128               # hidden units per layer
    layers: int = 2
    embedding: int = 64             # size of the learned character vectors
    dropout: float = 0.0            # between layers and before the output layer
    seq_len: int = 64               # T: BPTT steps per chunk
    batch: int = 32                 # B: parallel streams through the text
    steps: int | None = None        # optimizer steps; default: 1500 if epochs is not given
    epochs: float | None = None     # alternatively, passes over the training split
    lr: float = 3e-3
    optimizer: str = "adam"         # adam | adamw | sgd | rmsprop | adagrad
    weight_decay: float = 0.0
    clip: float | None = 5.0        # max global gradient norm (None or 0: no clipping)
    clip_mode: str = "norm"         # norm: rescale all gradients together | value: clip each element
    warmup: int = 50                # steps of linear learning-rate warm-up, then cosine decay to lr/10
    seed: int = 0                   # weights, dropout and epoch offsets all follow from it
    random_offset: bool = True      # start each epoch (after the first) at a random offset < T
    eval_every: int = 250
    eval_batches: int | None = 40   # validation chunks per evaluation (None or 0: the whole split)
    sample_every: int = 500
    sample_length: int = 300
    save_every: int = 250
    out: str = "runs/char"
    init: str = "orthogonal"        # orthogonal (Keras's defaults, forget bias 1) | uniform (PyTorch's)
    dtype: str = "float32"
    keep_crlf: bool = False         # keep Windows line endings (\r\n) as two characters; default: read as \n
    errors: str = "strict"          # undecodable bytes: strict (refuse, naming them) | replace (read as U+FFFD)

    def __post_init__(self):
        problems = config_problems(vars(self))
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**data)

    def model_config(self, vocab_size: int) -> CharRNNConfig:
        return CharRNNConfig(vocab_size=vocab_size, cell=self.model, hidden_size=self.hidden,
                             num_layers=self.layers, embedding_dim=self.embedding, dropout=self.dropout,
                             init=self.init, dtype=self.dtype)


# Recipes a user asks for by name (`rnnlab train --preset NAME`); options given beside one win.
# shakespeare: validation 1.446 nats/char after 50 minutes on one core of a 2-core laptop-class VM,
# chosen and checked over seeds as BENCHMARKS.md tells ("tinyshakespeare in under an hour").
PRESETS: dict[str, dict] = {
    "shakespeare": dict(data="tinyshakespeare", model="lstm", hidden=384, layers=2, embedding=64, dropout=0.25,
                        seq_len=100, batch=32, steps=4000, lr=3e-3, eval_every=500, eval_batches=0,
                        save_every=500, sample_every=2000, out="runs/shakespeare"),
}


def config_problems(values: dict, as_flags: bool = False) -> list[str]:
    """Every TrainConfig field in `values` outside its allowed range, one line each, named as a field
    or (as_flags) as its --flag."""
    name = (lambda n: "--" + n.replace("_", "-")) if as_flags else (lambda n: n)
    problems = check_values(values, TRAIN_RULES, as_flags=as_flags)
    for field, allowed in (("model", CELLS), ("optimizer", tuple(OPTIMIZERS)), ("clip_mode", ("norm", "value")),
                           ("init", ("orthogonal", "uniform")), ("dtype", ("float32", "float64")),
                           ("errors", ERRORS)):
        if field in values and values[field] not in allowed:
            problems.append(f"{name(field)} must be one of {', '.join(allowed)}; got {values[field]!r}")
    if not isinstance(values.get("keep_crlf", False), bool):
        problems.append(f"{name('keep_crlf')} must be True or False; got {values['keep_crlf']!r}")
    if values.get("steps") is not None and values.get("epochs") is not None:
        problems.append(f"give {name('steps')} or {name('epochs')}, not both")
    out = values.get("out", "runs/char")
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        problems.append(f"{name('out')} must name a directory; got {str(out)!r}")
    data = values.get("data")
    if data is not None and (not isinstance(data, (str, os.PathLike)) or not str(data).strip()):
        problems.append(f"{name('data')} must name a text (a path, a URL, tinyshakespeare or builtin); "
                        f"got {str(data)!r}")
    return problems


@dataclass
class TrainResult:
    steps: int
    train_loss: float               # mean over the last 50 steps, nats/char
    val_loss: float | None          # nats/char
    seconds: float
    run_dir: Path
    checkpoint: Path
    plot: Path | None
    sample: str
    interrupted: bool = False
    stopped_by: int | None = None   # the signal that interrupted it (SIGINT, SIGTERM), if one did

    @property
    def val_bpc(self) -> float | None:
        return None if self.val_loss is None else self.val_loss / math.log(2)


def evaluate(model: CharRNN, ids: np.ndarray, batch: int, seq_len: int, max_batches: int | None = None,
             source: str = "validation split", progress: bool = False, progress_delay: float = 1.0) -> float:
    """Mean cross-entropy in nats/char over `ids`, reading B streams with the state carried.

    progress: a bar on stderr, shown once the evaluation has taken `progress_delay` seconds."""
    batches = TBPTTBatches(ids, batch, seq_len, source=source)
    epoch = batches.epoch()
    total_chunks = min(len(epoch), max_batches) if max_batches else len(epoch)  # None or 0: the whole split
    bar = None
    if progress:
        from .display import progress_bar

        bar = progress_bar(total=total_chunks, unit="chunk", desc="evaluating", delay=progress_delay, dynamic_ncols=True)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        with no_grad():  # forwards only: no activations kept for a backward
            for index, (x, y) in enumerate(epoch):
                if index >= total_chunks:
                    break
                logits = model(x, state)
                state = model.final_state
                loss, _ = cross_entropy(logits, y)
                total, count = total + loss * y.size, count + y.size
                if bar is not None:
                    bar.update(1)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return total / count


def clip_gradients(params, clip: float | None, mode: str = "norm") -> float:
    """Clip in place (global norm or per value; None/0: not at all); return the norm before clipping."""
    if clip and mode == "norm":
        return clip_grad_norm(params, clip)
    norm = clip_grad_norm(params, float("inf"))  # measured for the log and the NaN check
    if clip and mode == "value":
        clip_grad_value(params, clip)
    return norm


def optimize(params, loss_and_backward, optimizer, steps: int, clip: float | None = None,
             clip_mode: str = "norm", on_nonfinite: str = "raise", callback=None, start: int = 0,
             diverged=None) -> list[dict]:
    """The one training loop (Trainer, experiments, demos): zero grads, forward + loss + backward,
    clip, check, step; then callback(row).

    loss_and_backward(step) runs forward and backward on one batch (adding into .grad) and returns
    the loss (it may skip the backward when the loss is not finite). Steps run from start + 1 to
    `steps`. A NaN/inf loss or gradient norm raises diverged(step, what, value) (default: a
    TrainingDiverged that says what to try) with on_nonfinite="raise", or ends the loop with that
    row recorded with on_nonfinite="stop" (for showing an explosion). callback(row) runs after
    each update and may add keys to the row or return True to stop. Returns one row per step:
    step, loss, grad_norm (plus what the callback added).
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop'; got {on_nonfinite!r}")
    history = []
    for step in range(start + 1, steps + 1):
        for p in params:
            p.grad.fill(0)
        loss = float(loss_and_backward(step))
        grad_norm = clip_gradients(params, clip, clip_mode) if math.isfinite(loss) else float("nan")
        row = {"step": step, "loss": loss, "grad_norm": grad_norm}
        history.append(row)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            if on_nonfinite == "stop":
                break
            what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", grad_norm)
            raise (diverged or _diverged)(step, what, value)
        optimizer.step()
        if callback is not None and callback(row):
            break
    return history


def _diverged(step: int, what: str, value: float) -> TrainingDiverged:
    return TrainingDiverged(f"training diverged at step {step}: the {what} is {value}. Lower the "
                            "learning rate or clip the gradients (clip=1.0).")


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM (a scheduler's "stop now") asks the loop to stop after the current
    step, so a checkpoint is never half a step; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum: int | None = None  # the signal that asked (None: the callback did)
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)


class Trainer:
    """Builds data, model and optimizer from a TrainConfig and runs the loop; see the module doc.

    The run directory is claimed (locked, and refused if it already holds a run, unless `overwrite`)
    before any data is read; the lock is held until `fit` returns (or `close`)."""

    def __init__(self, config: TrainConfig, *, progress: bool = True, log=print, text: str | None = None,
                 description: str | None = None, overwrite: bool = False, _lock=None):
        config = _with_absolute_data(config)
        self.config = config
        self.progress, self.log = progress, log
        # the sizes alone say whether the model and the reading of the text can fit: refuse before
        # reading a byte (V >= 1)
        check_char_rnn_memory(vocab=1, **_sizes(config), dtype=config.dtype,
                              data=data_loading_bytes(config.data, text))
        self.run_dir = Path(config.out)
        created = not self.run_dir.exists()
        self._fresh = _lock is None  # a new run (not a resume): fit() clears the directory first
        if overwrite:
            _refuse_data_in_run(config.data, self.run_dir)
        self._lock = _lock if _lock is not None else claim(self.run_dir, overwrite=overwrite)
        try:
            self._build(text, description)
        except BaseException:
            if created:  # still under the lock, so no other writer can have started in it
                abandon(self.run_dir)
            self.close()
            raise

    def _build(self, text, description) -> None:
        config = self.config
        if text is None:  # ids on disk, read in windows: memory does not grow with the text
            corpus = open_corpus(config.data, keep_crlf=config.keep_crlf, errors=config.errors)
        else:
            corpus = corpus_from_text(text, description or "text", keep_crlf=config.keep_crlf)
        self.description = corpus.description
        for note in corpus.notes:
            self.log(f"rnnlab: {self.description}: {note}")
        self.data_record = {"path": _local_path(config.data), "sha256": corpus.sha256, "characters": len(corpus)}
        self.vocab = corpus.vocab
        check_char_rnn_memory(vocab=len(self.vocab), **_sizes(config), dtype=config.dtype)
        train_ids, val_ids = split_text(corpus.ids, 0.1)
        self.batches = TBPTTBatches(train_ids, config.batch, config.seq_len,
                                    source=f"training split (first 90%) of {self.description}")
        self.val_ids = val_ids
        if len(val_ids) < config.batch * config.seq_len + 1:
            raise DataError(f"{self.description}: the validation split (last 10%, {len(val_ids)} characters) "
                            f"is shorter than one batch ({config.batch} x {config.seq_len} + 1 = "
                            f"{config.batch * config.seq_len + 1}); use a longer text or a smaller "
                            "--batch / --seq-len")
        self.total_steps = self._total_steps()
        self.model = CharRNN(config.model_config(len(self.vocab)), rng=np.random.default_rng(config.seed))
        params = self.model.parameters()
        opt_class = OPTIMIZERS[config.optimizer]
        self.optimizer = opt_class(params, lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = CosineWarmup(self.optimizer, warmup_steps=min(config.warmup, self.total_steps),
                                     total_steps=self.total_steps, min_lr=config.lr / 10)
        self.step = 0
        self.epoch, self.offset, self.chunk = 0, 0, 0  # where the next chunk comes from
        self.state = None  # the carried hidden state
        self.history: list[dict] = []
        self._clock = (0.0, 0.0)  # wall and CPU seconds of the run before this process
        self._sampled_at = None  # the step of the last sample written to samples.txt

    def close(self) -> None:
        """Release the run directory's lock (fit does it when it returns)."""
        if getattr(self, "_lock", None) is not None:
            self._lock.release()

    def _total_steps(self) -> int:
        if self.config.steps is not None:
            return self.config.steps
        if self.config.epochs is not None:
            steps = self.config.epochs * self.batches.batches_per_epoch
            if not steps < 2**62:  # 1e308 epochs: more steps than a float can count
                raise ValueError(f"epochs {self.config.epochs:g} x {self.batches.batches_per_epoch} chunks per epoch "
                                 f"is more steps than any run can take; give fewer --epochs")
            return max(1, round(steps))
        return 1500

    # -- resume --------------------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir, *, steps: int | None = None, data: str | None = None, progress: bool = True,
               log=print, text: str | None = None) -> "Trainer":
        """Continue a run from its checkpoint exactly where it stopped (optionally to more steps).

        `data` points at the run's text where it is now (its checksum must match the one recorded);
        by default the recorded absolute path is read. NothingToDo if `steps` is not beyond the
        checkpoint's step (nothing is written then)."""
        run_dir = Path(run_dir)
        if steps is not None and check_value(steps, POSITIVE_INT):
            raise ValueError(f"steps {check_value(steps, POSITIVE_INT)}")
        if not run_dir.is_dir():
            raise DataError(f"--resume {run_dir}: " + ("not a run directory (a file)" if run_dir.exists()
                                                       else "no such run directory"))
        lock = claim(run_dir, resume=True)
        try:
            return cls._resume_locked(run_dir, lock, steps, data, progress, log, text)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _resume_locked(cls, run_dir: Path, lock, steps, data, progress, log, text) -> "Trainer":
        path = run_dir / CHECKPOINT
        ckpt = load_checkpoint(path, check_shapes=lambda doc, shapes: check_char_checkpoint(path, doc, shapes))
        extra = ckpt.extra
        if ckpt.train_config is None or extra is None or "position" not in extra:
            raise CheckpointError(f"{path} is not a training checkpoint (no training state to resume from)")
        settings = dict(ckpt.train_config)
        settings["out"] = str(run_dir)
        settings.setdefault("keep_crlf", True)  # a run from before the option read \r\n as two characters
        try:
            stored = TrainConfig.from_dict(settings)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: its training configuration is damaged ({error})") from None
        target = steps if steps is not None else extra.get("total_steps", stored.steps)
        if isinstance(target, int) and ckpt.step >= target:
            asked = f"--steps {steps} asks for no more" if steps is not None else f"it has run all its {target} steps"
            raise NothingToDo(f"{run_dir} is at step {ckpt.step}; {asked}: nothing to do (give --steps above "
                              f"{ckpt.step} to train further)")
        if steps is not None:
            settings["steps"], settings["epochs"] = steps, None
        record = extra.get("data") if isinstance(extra.get("data"), dict) else {}
        recorded_path = record.get("path")
        if data is not None:
            settings["data"] = data
        elif text is None and isinstance(recorded_path, str) and not Path(recorded_path).exists():
            raise DataError(f"the text this run trained on, {recorded_path}, is gone (moved or deleted); "
                            f"resume with --resume {run_dir} --data NEW_PATH (its checksum is checked)")
        trainer = cls(TrainConfig.from_dict(settings), progress=progress, log=log, text=text, _lock=lock)
        recorded_sha = record.get("sha256")
        if recorded_sha and trainer.data_record["sha256"] != recorded_sha:
            now, was = trainer.data_record["sha256"][:12], str(recorded_sha)[:12]
            if data is not None:
                raise DataError(f"{data} is not the text this run trained on: its SHA-256 begins {now}, the run "
                                f"recorded {was} (from {recorded_path}); pass the original file with --data")
            raise DataError(f"{trainer.description} has changed since this run trained on it (SHA-256 now "
                            f"begins {now}, recorded {was}); restore it, or pass the original with --data")
        if trainer.vocab.to_list() != ckpt.vocab:
            raise DataError(f"the text now at {trainer.description!r} has a different vocabulary from the one "
                            f"the checkpoint {path} was trained on ({len(trainer.vocab)} vs {len(ckpt.vocab)} "
                            "characters): resume with the same --data")
        stored_model = CharRNNConfig.from_dict(ckpt.model_config)
        if stored_model != trainer.model.config:
            raise CheckpointError(f"checkpoint {path} holds a different model ({stored_model}) from its training "
                                  f"configuration ({trainer.model.config})")
        try:
            trainer._restore(ckpt, steps)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{path}: damaged training state ({type(error).__name__}: {error})") from None
        trainer.history, report = reconcile_log(run_dir, ckpt.step)
        if report:
            print(f"rnnlab: {report}", file=sys.stderr)
        if trainer.history:
            last = trainer.history[-1]
            trainer._clock = (float(last.get("wall_s", 0.0)), float(last.get("cpu_s", 0.0)))
        trainer.log(f"rnnlab: resumed from step {ckpt.step} of {run_dir} (to step {trainer.total_steps})")
        return trainer

    def _restore(self, ckpt, steps) -> None:
        """Model, optimizer, dropout generator, schedule, stream position and carried state."""
        extra = ckpt.extra
        self.model.load_state_dict(ckpt.model_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.model.set_rng_state(ckpt.rng_state)
        self.schedule.load_state_dict(extra["schedule"])
        if steps is not None:  # a longer run: the cosine continues over the new length
            self.schedule.total_steps = self.total_steps
        epoch, offset, chunk = extra["position"]
        if not all(isinstance(v, int) and v >= 0 for v in (epoch, offset, chunk)) \
                or offset > self.batches.max_offset or chunk > self.batches.num_batches(offset):
            raise ValueError(f"position (epoch, offset, chunk) {extra['position']} is outside this text's batches")
        self.step = ckpt.step
        self.epoch, self.offset, self.chunk = epoch, offset, chunk
        carried = extra["state"]
        if carried is not None:
            cfg = self.config
            parts = tuple(np.array(p, dtype=np.dtype(cfg.dtype)) for p in carried)
            want = (cfg.layers, cfg.batch, cfg.hidden)
            names = get_cell(cfg.model).state_names  # (h,) or (h, c, ...)
            if len(parts) != len(names) or any(p.shape != want for p in parts):
                raise ValueError(f"the carried state has shapes {[p.shape for p in parts]}, expected {want}")
            self.state = parts if len(names) > 1 else parts[0]

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, callback=None) -> TrainResult:
        """Train to total_steps through `optimize`. callback(row) after each step may return True to
        stop there (saving a checkpoint, exactly like Ctrl-C)."""
        try:
            return self._fit(callback)
        except OSError as error:
            if error.filename or error.errno is None:
                raise
            # a buffered write (the log, a sample) that failed names no file: name the run directory
            raise OSError(error.errno, f"cannot write the run ({error.strerror})", str(self.run_dir)) from None
        finally:
            self.close()

    def _fit(self, callback) -> TrainResult:
        cfg = self.config
        self._lock.acquire()  # a no-op unless this trainer already ran fit once
        if self.step >= self.total_steps:
            raise NothingToDo(f"{self.run_dir} is at step {self.step} of {self.total_steps}: nothing to do")
        if self._fresh:  # --overwrite: the old run goes only now, when the new one is sure to start; its
            clear_run(self.run_dir, keep=(CHECKPOINT,))  # checkpoint until the new one replaces it atomically
        write_atomic(self.run_dir / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
        if self._fresh:
            self.save()  # step 0: from here on no crash leaves the run without a checkpoint
            self._fresh = False
        log_file = open(self.run_dir / LOG, "a")
        params = self.model.parameters()
        chars_per_step = cfg.batch * cfg.seq_len
        bar = None
        started, interrupted, stopped_by = time.perf_counter(), False, None
        wall0, cpu0 = self._clock  # continues across a resume
        cpu_started = time.process_time()
        val_loss = next((row["val_loss"] for row in reversed(self.history) if "val_loss" in row), None)
        new_state, tick = None, 0.0

        def loss_and_backward(step):
            nonlocal new_state, tick
            tick = time.perf_counter()
            x, y = self._next_chunk()
            logits = self.model(x, self.state)
            new_state = self.model.final_state
            loss, dlogits = cross_entropy(logits, y)
            if math.isfinite(loss):  # a NaN loss ends the run: no backward needed
                self.model.backward(dlogits)
            return loss

        def after_step(row):
            nonlocal val_loss
            self.schedule.step()
            self.state = new_state  # carried; NumPy arrays hold no graph, so BPTT stops here
            self.step = row["step"]
            row.update({"lr": self.optimizer.lr, "chars_per_s": chars_per_step / (time.perf_counter() - tick),
                        "wall_s": wall0 + time.perf_counter() - started,
                        "cpu_s": cpu0 + time.process_time() - cpu_started})
            if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                val_loss = evaluate(self.model, self.val_ids, cfg.batch, cfg.seq_len, cfg.eval_batches)
                row["val_loss"] = val_loss
                row["val_bpc"] = val_loss / math.log(2)
            self.history.append(row)
            log_file.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix_str(_postfix(row, val_loss))
                bar.update(1)
            if self.step % cfg.sample_every == 0:
                self._write_sample()
            if self.step % cfg.save_every == 0 or self.step == self.total_steps:
                log_file.flush()
                self.save()
            if callback is not None and callback(row):
                stop.requested = True
            return stop.requested

        try:
            with _StopFlag() as stop:
                self.log(f"rnnlab: training a {cfg.layers}-layer {cfg.model.upper()} ({cfg.hidden} units, "
                         f"{self.model.num_parameters():,} parameters) on {self.description}: "
                         f"{len(self.vocab)} characters in the vocabulary, {self.total_steps} steps of "
                         f"{cfg.batch} x {cfg.seq_len}; run directory {self.run_dir}; {settings.describe()}")
                bar = _progress_bar(self.progress, self.step, self.total_steps)
                optimize(params, loss_and_backward, self.optimizer, self.total_steps, clip=cfg.clip,
                         clip_mode=cfg.clip_mode, callback=after_step, start=self.step,
                         diverged=lambda step, what, value: self._diverged(what, value))
                if stop.requested:
                    interrupted, stopped_by = True, stop.signum
                    log_file.flush()
                    self.save()
                    why = "" if stop.signum in (None, signal.SIGINT) else f" ({signal.Signals(stop.signum).name})"
                    print(f"\nrnnlab: interrupted{why} at step {self.step}; checkpoint saved in {self.run_dir}. "
                          f"Continue with: rnnlab train --resume {self.run_dir}", file=sys.stderr)
        finally:
            log_file.close()
            if bar is not None:
                bar.close()
        plot = self._plot()
        sample = self._last_sample if self._sampled_at == self.step else self._write_sample()
        recent = [row["loss"] for row in self.history[-50:]]
        return TrainResult(self.step, float(np.mean(recent)) if recent else float("nan"), val_loss,
                           time.perf_counter() - started, self.run_dir, self.run_dir / CHECKPOINT, plot,
                           sample, interrupted, stopped_by)

    def _next_chunk(self):
        """The next (x, y) chunk; a new epoch resets the carried state and may shift the offset."""
        if self.chunk >= self.batches.num_batches(self.offset):
            self.epoch, self.chunk = self.epoch + 1, 0
            rng = np.random.default_rng([self.config.seed, self.epoch])  # same offsets on resume
            self.offset = int(rng.integers(0, self.batches.max_offset + 1)) if self.config.random_offset else 0
        if self.chunk == 0:
            self.state = None
        x, y = self.batches.batch_at(self.chunk, self.offset)
        self.chunk += 1
        return x, y

    def _diverged(self, what: str, value: float) -> TrainingDiverged:
        cfg = self.config
        last = self.run_dir / CHECKPOINT
        kept = (f"The last good checkpoint is {last} (step {read_metadata(last)['step']})"
                if last.exists() else "No checkpoint had been saved yet")
        cure = (f"lower the learning rate (--lr {cfg.lr / 3:.2g} instead of {cfg.lr:g})"
                + (", and clip the gradients (--clip 1)" if not cfg.clip else f", or clip harder (--clip {min(cfg.clip, 1.0) / 2:g})"))
        return TrainingDiverged(f"training diverged at step {self.step + 1}: the {what} is {value}. "
                                f"{kept}. Try to {cure}, in a new run (--overwrite, or a fresh --out).")

    # -- outputs -------------------------------------------------------------------------------
    def save(self) -> Path:
        cfg = self.config
        state = self.state if self.state is None or isinstance(self.state, tuple) else (self.state,)
        return save_checkpoint(
            self.run_dir / CHECKPOINT, model_config=self.model.config.to_dict(),
            model_state=self.model.state_dict(), optimizer_state=self.optimizer.state_dict(),
            step=self.step, vocab=self.vocab.to_list(), rng_state=self.model.rng_state(),
            train_config=asdict(cfg),
            extra={"position": [self.epoch, self.offset, self.chunk], "schedule": self.schedule.state_dict(),
                   "state": None if state is None else [s.tolist() for s in state],
                   "total_steps": self.total_steps, "data": self.data_record,
                   "cell_origin": self.model.rnn.kind.origin})

    def _write_sample(self) -> str:
        from .sample import generate  # sampling is optional to training; import when used

        text = generate(self.model, self.vocab, length=self.config.sample_length, temperature=0.8,
                        rng=np.random.default_rng([self.config.seed, self.step]))
        with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as f:
            f.write(f"--- step {self.step} ---\n{text}\n")
        self._sampled_at, self._last_sample = self.step, text  # the final sample is not written twice
        return text

    def _plot(self) -> Path | None:
        if not self.history:
            return None
        from .plots import plot_loss_curve

        return plot_loss_curve(self.history, self.run_dir / "loss.png",
                               title=f"{self.config.model.upper()} on {self.description}")


def _progress_bar(enabled: bool, initial: int, total: int):
    if not enabled:
        return None
    from .display import progress_bar

    return progress_bar(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _postfix(row: dict, val_loss: float | None) -> str:
    text = f"loss {row['loss']:.3f} | {row['chars_per_s'] / 1000:.1f}k chars/s"
    if val_loss is not None:
        text += f" | val {val_loss / math.log(2):.3f} bits/char"
    return text


def text_sha256(text: str) -> str:
    """The checksum that recognizes a run's text wherever it lies (of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _local_path(data) -> str | None:
    """The absolute path of a local text file, None for the built-in corpus, tinyshakespeare or a URL."""
    if data is None or data in ("builtin", "tinyshakespeare") or _URL_RE.match(str(data)):
        return None
    return str(Path(data).expanduser().absolute())


def _refuse_data_in_run(data, run_dir: Path) -> None:
    """RunDirError if --data is one of the run files --overwrite is about to delete."""
    path = _local_path(data)
    if path is None or not os.path.exists(path):
        return
    for name in run_files(run_dir):
        if os.path.samefile(path, run_dir / name):
            raise RunDirError(f"--data {data} is {name} of the run in {run_dir}, which --overwrite would delete; "
                              "copy it out of the run directory first, or choose a fresh --out")


def _with_absolute_data(config: TrainConfig) -> TrainConfig:
    """`config` with a local --data path made absolute, so the run resumes from any directory."""
    path = _local_path(config.data)
    return config if path is None or path == config.data else dataclasses.replace(config, data=path)


def _sizes(config: TrainConfig) -> dict:
    return dict(cell=config.model, hidden=config.hidden, layers=config.layers, embedding=config.embedding,
                batch=config.batch, seq_len=config.seq_len)


def fit_batch(length: int, batch: int, seq_len: int) -> tuple[int, int]:
    """(B, T) no larger than asked whose one chunk fits `length` ids (B*T + 1 <= length), keeping T
    while some B >= 1 fits."""
    if length < 2:
        raise DataError(f"{length} characters are too few to evaluate on (at least 2 are needed)")
    seq_len = min(seq_len, length - 1)
    return max(1, min(batch, (length - 1) // seq_len)), seq_len
