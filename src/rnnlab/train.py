"""Train a character-level model on a text with truncated BPTT: rnnlab's main job.

    from rnnlab.train import TrainConfig, Trainer
    result = Trainer(TrainConfig(data="tinyshakespeare", steps=2000, out="runs/shakespeare")).fit()
    result = Trainer.resume("runs/shakespeare", steps=4000).fit()    # continues bit-identically

One step: chunk (x, y) -> forward from the carried state -> cross-entropy -> BPTT -> clip -> step.
The state is carried from chunk to chunk (its gradient cut: BPTT is truncated at the chunk
boundary) and reset to zeros at each epoch start.

The run directory holds, written as training goes: config.json, log.jsonl (one line per step and
per evaluation), checkpoint.safetensors (atomic), loss.png and samples.txt.

Shapes: B = parallel streams (batch), T = chunk length (BPTT steps), V = vocabulary size.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .clip import clip_grad_norm, clip_grad_value
from .data.text import DataError, TBPTTBatches, Vocab, load_text, split_text
from .io import load_checkpoint, save_checkpoint
from .models import CELLS, CharRNN, CharRNNConfig
from .nn.losses import cross_entropy
from .optim import SGD, Adagrad, Adam, AdamW, CosineWarmup, RMSprop

OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad}
CHECKPOINT = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN/inf; the message says at which step and what to try."""


@dataclass
class TrainConfig:
    """Every knob of a training run; the `rnnlab train` options map onto it one to one."""

    data: str | None = None         # a file path, a URL, "tinyshakespeare", or None: the built-in corpus
    model: str = "lstm"             # lstm | gru | rnn | rnn_relu
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

    def __post_init__(self):
        problems = []
        if self.model not in CELLS:
            problems.append(f"model must be one of {', '.join(CELLS)}; got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.clip_mode not in ("norm", "value"):
            problems.append(f"clip_mode must be 'norm' or 'value'; got {self.clip_mode!r}")
        for name in ("hidden", "layers", "embedding", "seq_len", "batch", "eval_every", "sample_every",
                     "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer; got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            problems.append(f"steps must be a positive integer; got {self.steps!r}")
        if self.epochs is not None and not self.epochs > 0:
            problems.append(f"epochs must be > 0; got {self.epochs!r}")
        if self.steps is not None and self.epochs is not None:
            problems.append("give steps or epochs, not both")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1); got {self.dropout!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number; got {self.lr!r}")
        if self.clip is not None and not self.clip >= 0:
            problems.append(f"clip must be >= 0 (0: no clipping); got {self.clip!r}")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype must be float32 or float64; got {self.dtype!r}")
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

    @property
    def val_bpc(self) -> float | None:
        return None if self.val_loss is None else self.val_loss / math.log(2)


def evaluate(model: CharRNN, ids: np.ndarray, batch: int, seq_len: int, max_batches: int | None = None,
             source: str = "validation split") -> float:
    """Mean cross-entropy in nats/char over `ids`, reading B streams with the state carried."""
    batches = TBPTTBatches(ids, batch, seq_len, source=source)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for index, (x, y) in enumerate(batches.epoch()):
            if max_batches and index >= max_batches:  # None or 0: the whole split
                break
            logits, state = model(x, state)
            loss, _ = cross_entropy(logits, y)
            total, count = total + loss * y.size, count + y.size
    finally:
        model.train(was_training)
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
             clip_mode: str = "norm", on_nonfinite: str = "raise", callback=None) -> list[dict]:
    """The loop every task shares: zero grads, forward + loss + backward, clip, check, step.

    loss_and_backward(step) runs forward and backward on one batch (adding into .grad) and returns
    the loss. A NaN/inf loss or gradient norm raises TrainingDiverged (on_nonfinite="raise") or
    ends the loop with that row recorded (on_nonfinite="stop": for showing an explosion).
    callback(row) may return True to stop early. Returns one row per step: step, loss, grad_norm.
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop'; got {on_nonfinite!r}")
    history = []
    for step in range(1, steps + 1):
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
            raise TrainingDiverged(f"training diverged at step {step}: the {what} is {value}. Lower the "
                                   "learning rate or clip the gradients (clip=1.0).")
        optimizer.step()
        if callback is not None and callback(row):
            break
    return history


class _StopFlag:
    """Ctrl-C asks the loop to stop after the current step, so a checkpoint is never half a step."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Builds data, model and optimizer from a TrainConfig and runs the loop; see the module doc."""

    def __init__(self, config: TrainConfig, *, progress: bool = True, log=print, text: str | None = None,
                 description: str | None = None):
        self.config = config
        self.progress, self.log = progress, log
        if text is None:
            text, description = load_text(config.data)
        self.description = description or "text"
        self.vocab = Vocab.from_text(text)
        ids = self.vocab.encode(text)
        train_ids, val_ids = split_text(ids, 0.1)
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
        self.run_dir = Path(config.out)
        self.step = 0
        self.epoch, self.offset, self.chunk = 0, 0, 0  # where the next chunk comes from
        self.state = None  # the carried hidden state
        self.history: list[dict] = []
        self._clock = (0.0, 0.0)  # wall and CPU seconds of the run before this process

    def _total_steps(self) -> int:
        if self.config.steps is not None:
            return self.config.steps
        if self.config.epochs is not None:
            return max(1, round(self.config.epochs * self.batches.batches_per_epoch))
        return 1500

    # -- resume --------------------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir, *, steps: int | None = None, progress: bool = True, log=print,
               text: str | None = None) -> "Trainer":
        """Continue a run from its checkpoint exactly where it stopped (optionally to more steps)."""
        path = Path(run_dir) / CHECKPOINT
        ckpt = load_checkpoint(path)
        if ckpt.train_config is None or ckpt.extra is None or "position" not in ckpt.extra:
            raise ValueError(f"{path} is not a training checkpoint (no training state to resume from)")
        settings = dict(ckpt.train_config)
        settings["out"] = str(run_dir)
        if steps is not None:
            settings["steps"], settings["epochs"] = steps, None
        trainer = cls(TrainConfig.from_dict(settings), progress=progress, log=log, text=text)
        if trainer.vocab.to_list() != ckpt.vocab:
            raise DataError(f"the text now at {trainer.description!r} has a different vocabulary from the one "
                            f"the checkpoint {path} was trained on ({len(trainer.vocab)} vs {len(ckpt.vocab)} "
                            "characters): resume with the same --data")
        stored = CharRNNConfig.from_dict(ckpt.model_config)
        if stored != trainer.model.config:
            raise ValueError(f"checkpoint {path} holds a different model ({stored}) from the configuration "
                             f"({trainer.model.config})")
        trainer.model.load_state_dict(ckpt.model_state)
        trainer.optimizer.load_state_dict(ckpt.optimizer_state)
        trainer.model.set_rng_state(ckpt.rng_state)
        extra = ckpt.extra
        trainer.schedule.load_state_dict(extra["schedule"])
        if steps is not None:  # a longer run: the cosine continues over the new length
            trainer.schedule.total_steps = trainer.total_steps
        trainer.step = ckpt.step
        trainer.epoch, trainer.offset, trainer.chunk = extra["position"]
        dtype = np.dtype(trainer.config.dtype)
        carried = extra["state"]
        if carried is not None:
            parts = tuple(np.array(p, dtype=dtype) for p in carried)
            trainer.state = parts if len(parts) == 2 else parts[0]
        trainer.history = [row for row in _read_log(trainer.run_dir) if row["step"] <= trainer.step]
        if trainer.history:
            last = trainer.history[-1]
            trainer._clock = (last.get("wall_s", 0.0), last.get("cpu_s", 0.0))
        return trainer

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, callback=None) -> TrainResult:
        """Train to total_steps. callback(trainer, row) after each step may return True to stop there
        (saving a checkpoint, exactly like Ctrl-C)."""
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        _write_log(self.run_dir, self.history)  # drops lines past the checkpoint after a crash
        log_file = open(self.run_dir / "log.jsonl", "a")
        params = self.model.parameters()
        chars_per_step = cfg.batch * cfg.seq_len
        bar = _progress_bar(self.progress, self.step, self.total_steps)
        started, interrupted = time.perf_counter(), False
        wall0, cpu0 = self._clock  # continues across a resume
        cpu_started = time.process_time()
        val_loss = next((row["val_loss"] for row in reversed(self.history) if "val_loss" in row), None)
        self.log(f"rnnlab: training a {cfg.layers}-layer {cfg.model.upper()} ({cfg.hidden} units, "
                 f"{self.model.num_parameters():,} parameters) on {self.description}: "
                 f"{len(self.vocab)} characters in the vocabulary, {self.total_steps} steps of "
                 f"{cfg.batch} x {cfg.seq_len}; run directory {self.run_dir}")
        try:
            with _StopFlag() as stop:
                while self.step < self.total_steps:
                    tick = time.perf_counter()
                    x, y = self._next_chunk()
                    logits, new_state = self.model(x, self.state)
                    loss, dlogits = cross_entropy(logits, y)
                    if not math.isfinite(loss):
                        raise self._diverged("loss", loss)
                    self.model.zero_grad()
                    self.model.backward(dlogits)
                    grad_norm = clip_gradients(params, cfg.clip, cfg.clip_mode)
                    if not math.isfinite(grad_norm):
                        raise self._diverged("gradient norm", grad_norm)
                    self.optimizer.step()
                    self.schedule.step()
                    self.state = new_state  # carried; NumPy arrays hold no graph, so BPTT stops here
                    self.step += 1
                    row = {"step": self.step, "loss": loss, "grad_norm": grad_norm, "lr": self.optimizer.lr,
                           "chars_per_s": chars_per_step / (time.perf_counter() - tick),
                           "wall_s": wall0 + time.perf_counter() - started,
                           "cpu_s": cpu0 + time.process_time() - cpu_started}
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
                    if callback is not None and callback(self, row):
                        stop.requested = True
                    if stop.requested:
                        interrupted = True
                        log_file.flush()
                        self.save()
                        self.log(f"\nrnnlab: interrupted at step {self.step}; checkpoint saved. "
                                 f"Continue with: rnnlab train --resume {self.run_dir}")
                        break
        finally:
            log_file.close()
            if bar is not None:
                bar.close()
        plot = self._plot()
        sample = self._write_sample()
        recent = [row["loss"] for row in self.history[-50:]]
        return TrainResult(self.step, float(np.mean(recent)) if recent else float("nan"), val_loss,
                           time.perf_counter() - started, self.run_dir, self.run_dir / CHECKPOINT, plot,
                           sample, interrupted)

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
        kept = (f"the last good checkpoint is {last} (step {load_checkpoint(last).step})"
                if last.exists() else "no checkpoint had been saved yet")
        cure = (f"lower the learning rate (--lr {cfg.lr / 3:.2g} instead of {cfg.lr:g})"
                + (", and clip the gradients (--clip 1)" if not cfg.clip else f", or clip harder (--clip {min(cfg.clip, 1.0) / 2:g})"))
        return TrainingDiverged(f"training diverged at step {self.step + 1}: the {what} is {value}. "
                                f"{kept}. Try to {cure}.")

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
                   "state": None if state is None else [s.tolist() for s in state]})

    def _write_sample(self) -> str:
        from .sample import generate  # sampling is optional to training; import when used

        text = generate(self.model, self.vocab, length=self.config.sample_length, temperature=0.8,
                        rng=np.random.default_rng([self.config.seed, self.step]))
        with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as f:
            f.write(f"--- step {self.step} ---\n{text}\n")
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
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _postfix(row: dict, val_loss: float | None) -> str:
    text = f"loss {row['loss']:.3f} | {row['chars_per_s'] / 1000:.1f}k chars/s"
    if val_loss is not None:
        text += f" | val {val_loss / math.log(2):.3f} bits/char"
    return text


def _read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            break
    return rows


def _write_log(run_dir: Path, rows: list[dict]) -> None:
    tmp = run_dir / "log.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(run_dir / "log.jsonl")
