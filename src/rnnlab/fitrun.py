"""A fit run: a table in, a model, its history and its validation metric beside the obvious
baseline out (`rnnlab fit`, `rnnlab predict`, `rnnlab evaluate RUN DATA`).

    run_fit(FitConfig(data="sensor.csv", task="forecast", target="temp", window=24, out="runs/temp"))
    run_fit(FitConfig(data="reviews.csv", task="classify", text_column="text", label_column="stars"))
    predict_run("runs/temp", "new.csv", out="preds.csv")
    evaluate_run("runs/temp", "new.csv")

A forecast is a ManyToOne regressor reading W standardised rows and answering the next H target
values; its baseline is persistence (the window's last target value, repeated). A classifier is a
ManyToOne reading token ids (or one number per step) and answering a class; its baseline is the
training part's majority class. Both on the same validation split (rnnlab.data.tables).

The run directory holds config.json, model.safetensors (rnnlab.load reads it, with the scalers or
the vocabulary and labels), history.json, metrics.json, learning_curves.png and, for a forecast,
forecast.png, and checkpoint.safetensors (weights, optimizer state, history, the best epoch's
weights) written after every epoch. It is claimed as `rnnlab train` claims its own (rundir.py):
locked while fitting, a directory that holds a run refused unless told to overwrite, and
`resume_fit` continues an interrupted run exactly (same batches, same optimizer moments).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data.tables import DataError, classify_data, forecast_data, preprocessing_from_state
from .fitting import History
from .metrics import classification_metrics, confusion_matrix, regression_metrics
from .optim import Adam
from .rundir import abandon, claim, write_atomic
from .train import NothingToDo
from .validate import POSITIVE_INT, POSITIVE_REAL, SEED, Rule, check_values

MODEL, HISTORY, METRICS, CONFIG = "model.safetensors", "history.json", "metrics.json", "config.json"
CHECKPOINT = "checkpoint.safetensors"  # weights, optimizer and history after the last epoch: --resume
TASKS = ("forecast", "classify")

FIT_RULES: dict[str, Rule] = {name: POSITIVE_INT for name in ("window", "horizon", "hidden", "layers",
                                                                "embedding", "epochs", "batch")} | {
    "lr": POSITIVE_REAL, "seed": SEED,
    "val_fraction": Rule("real", 0, low_open=True, high=1),
    "patience": Rule("int", 0, note="0: no early stopping"),
}


@dataclass
class FitConfig:
    """Every knob of a fit run; the `rnnlab fit` options map onto it one to one."""

    data: str
    task: str                       # forecast | classify
    out: str = "runs/fit"
    target: str | None = None       # forecast: the column to forecast
    features: list[str] | None = None  # forecast: input columns (default: the target alone)
    window: int = 24                # forecast: W rows read per forecast
    horizon: int = 1                # forecast: H target values answered
    fillna: str | None = None       # forecast: ffill | zero | drop | interpolate (default: refuse NaN)
    text_column: str | None = None  # classify: the text (without it: every other column is one step)
    label_column: str | None = None  # classify: the class of each row
    tokens: str = "chars"           # classify: chars | words
    model: str = "lstm"             # any registered cell
    hidden: int = 64
    layers: int = 1
    embedding: int = 32             # classify on text: size of the learned token vectors
    epochs: int = 30
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0                   # weights, split (classify) and batch order
    val_fraction: float = 0.2       # the last part of the series (forecast), stratified rows (classify)
    patience: int = 5               # early stopping on the validation loss (0: off); best epoch restored

    def problems(self) -> list[str]:
        """Every field outside its allowed range, named as its --flag."""
        from .models import CELLS

        problems = check_values(asdict(self), FIT_RULES, as_flags=True)
        if self.task not in TASKS:
            problems.append(f"--task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.model not in CELLS:
            problems.append(f"--model must be one of {', '.join(CELLS)}; got {self.model!r}")
        if self.task == "forecast" and not self.target:
            problems.append("--task forecast needs --target COLUMN (the column to forecast)")
        if self.task == "classify" and not self.label_column:
            problems.append("--task classify needs --label-column COLUMN (the class of each row)")
        if self.tokens not in ("chars", "words"):
            problems.append(f"--tokens must be chars or words; got {self.tokens!r}")
        return problems


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict
    history: dict


def _build(config: FitConfig):
    """(model, training pair, validation pair, baseline predictions, truth in its own units, data)."""
    from .models import ManyToOne

    rng = np.random.default_rng(config.seed)
    if config.task == "forecast":
        fd = forecast_data(config.data, config.target, features=config.features, window=config.window,
                           horizon=config.horizon, val_fraction=config.val_fraction, fillna=config.fillna)
        model = ManyToOne(config.model, fd.X_train.shape[2], config.hidden, config.horizon,
                          num_layers=config.layers, rng=rng)
        return model, (fd.X_train, fd.y_train), (fd.X_val, fd.y_val), fd
    cd = classify_data(config.data, text_column=config.text_column, label_column=config.label_column,
                       tokens=config.tokens, val_fraction=config.val_fraction, seed=config.seed)
    text = cd.preprocessing.text_column is not None
    size = config.embedding if text else cd.X_train.shape[2]
    model = ManyToOne(config.model, size, config.hidden, len(cd.labels), num_layers=config.layers,
                      input_vocab=len(cd.vocab) if text else None, rng=rng)
    return model, (_ragged(cd.X_train, cd.lengths_train), cd.y_train), \
        (_ragged(cd.X_val, cd.lengths_val), cd.y_val), cd


def _ragged(X: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """A padded (N, T[, D]) array and its lengths -> the list of sequences, as fit reads them."""
    return [x[:t] for x, t in zip(X, lengths)]


def _scores(config: FitConfig, model, data) -> dict:
    """The validation metric of the model and of the baseline, on the same split, in the data's units."""
    if config.task == "forecast":
        predicted = data.inverse_y(model.predict(data.X_val))  # (N_val, H) in the target's units
        return {"task": "forecast", "target": config.target, "validation_windows": len(data.y_val),
                "model": regression_metrics(predicted, data.y_val_raw),
                "baseline": {"name": "persistence (the window's last value)",
                             **regression_metrics(data.baseline_val, data.y_val_raw)},
                "_plot": (data.y_val_raw[:, 0], predicted[:, 0], data.baseline_val[:, 0])}
    predicted = model.predict(_ragged(data.X_val, data.lengths_val))
    C = len(data.labels)
    return {"task": "classify", "labels": data.labels, "validation_rows": len(data.y_val),
            "model": classification_metrics(predicted, data.y_val, C),
            "baseline": {"name": f"majority class ({data.labels[int(data.baseline_val[0])]!r})",
                         **classification_metrics(data.baseline_val, data.y_val, C)},
            "confusion": confusion_matrix(data.y_val, predicted, C).tolist()}


HEADLINE = {"forecast": "rmse", "classify": "accuracy"}


def run_fit(config: FitConfig, *, overwrite: bool = False, progress: bool = True, log=print) -> FitResult:
    """Fit, write the run directory, print the validation metric beside the baseline's."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    run_dir = Path(config.out)
    created = not run_dir.exists()
    lock = claim(run_dir, overwrite=overwrite)
    try:
        try:
            model, train, val, data = _build(config)
        except BaseException:
            if created:  # nothing but the lock written: leave no empty run behind
                abandon(run_dir)
            raise
        model.preprocessing = data.preprocessing.to_state()
        write_atomic(run_dir / CONFIG, json.dumps(asdict(config), indent=2) + "\n")
        opt = Adam(model.parameters(), lr=config.lr)
        return _fit(config, run_dir, model, train, val, data, opt, History(monitor="val_loss"), progress, log)
    finally:
        lock.release()


def resume_fit(run_dir, *, epochs: int | None = None, progress: bool = True, log=print) -> FitResult:
    """Continue an interrupted fit (or a finished one to more --epochs) from its last epoch, exactly:
    the same weights, optimizer moments, batch order and early-stopping counts."""
    from .io import CheckpointError, load_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"--resume {run_dir}: no such run directory")
    lock = claim(run_dir, resume=True)
    try:
        path = run_dir / CHECKPOINT
        ckpt = load_checkpoint(path)
        extra = ckpt.extra or {}
        try:
            config = FitConfig(**(ckpt.train_config or {}))
            history = History.from_dict(extra.get("history"))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path} is not a checkpoint of rnnlab fit ({error})") from None
        if epochs is not None:
            config.epochs = epochs
        config.out = str(run_dir)
        problems = config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        done = len(history.rows)
        if history.stopped_epoch is not None or done >= config.epochs:
            why = (f"early stopping ended it at epoch {history.stopped_epoch}" if history.stopped_epoch is not None
                   else f"it has run all its {done} epochs")
            raise NothingToDo(f"{run_dir}: {why}; nothing to do" + ("" if history.stopped_epoch is not None else
                                                                    f" (give --epochs above {done} to go on)"))
        if _sha256(config.data) != extra.get("data_sha256"):
            raise DataError(f"{config.data} is not the table this run was fit on (its SHA-256 differs, or it is "
                            "gone); restore it to resume")
        model, train, val, data = _build(config)
        weights = {k: v for k, v in ckpt.model_state.items() if not k.startswith("best.")}
        best = {k[len("best."):]: v for k, v in ckpt.model_state.items() if k.startswith("best.")}
        opt = Adam(model.parameters(), lr=config.lr)
        try:
            model.load_state_dict(weights)
            opt.load_state_dict(ckpt.optimizer_state)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{path}: does not fit the model its configuration builds ({error})") from None
        history.best_weights = best or None
        model.preprocessing = data.preprocessing.to_state()
        write_atomic(run_dir / CONFIG, json.dumps(asdict(config), indent=2) + "\n")
        log(f"rnnlab fit: resumed {run_dir} after epoch {done} (to epoch {config.epochs})")
        return _fit(config, run_dir, model, train, val, data, opt, history, progress, log)
    finally:
        lock.release()


def _sha256(path) -> str | None:
    import hashlib

    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else \
                hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _fit(config, run_dir: Path, model, train, val, data, opt, history, progress, log) -> FitResult:
    """The epochs (through model.fit), the checkpoint after each, then the metrics, files and plots."""
    from .io import save_checkpoint
    from .plots import plot_forecast, plot_learning_curves
    from .saving import save

    data_sha256 = _sha256(config.data)

    def after_epoch(row):  # everything needed to resume after every epoch: Ctrl-C loses at most one
        best = {"best." + k: v for k, v in (history.best_weights or {}).items()}
        save_checkpoint(run_dir / CHECKPOINT, model_config={"kind": type(model).__name__},
                        model_state=model.state_dict() | best, optimizer_state=opt.state_dict(),
                        step=len(history.rows), vocab=None, rng_state=None, train_config=asdict(config),
                        extra={"history": history.to_dict(), "data_sha256": data_sha256})
        save(model, run_dir / MODEL)
        write_atomic(run_dir / HISTORY, json.dumps(history.to_dict(), indent=1) + "\n")

    kind = "forecaster" if config.task == "forecast" else "classifier"
    log(f"rnnlab fit: a {config.layers}-layer {config.model.upper()} {kind} ({config.hidden} units, "
        f"{model.num_parameters():,} parameters) on {len(train[1])} training and {len(val[1])} validation "
        f"samples; run directory {run_dir}")
    try:
        history = model.fit(*train, validation_data=val, epochs=config.epochs, batch_size=config.batch,
                            optimizer=opt, seed=config.seed, early_stopping=config.patience or None,
                            progress=progress, callbacks=[after_epoch], history=history)
    except KeyboardInterrupt:
        if not history.rows:
            raise KeyboardInterrupt(f"interrupted before the first epoch ended; nothing to resume in {run_dir}") \
                from None
        raise KeyboardInterrupt(f"interrupted; {run_dir} holds epoch {len(history.rows)}. Continue with: "
                                f"rnnlab fit --resume {run_dir}") from None
    if config.task == "classify":  # evaluate_run's baseline on new data: the training part's majority
        model.fit_info["majority"] = int(data.baseline_val[0])
    save(model, run_dir / MODEL)  # the best epoch's weights (early stopping restored them)
    write_atomic(run_dir / HISTORY, json.dumps(history.to_dict(), indent=1) + "\n")
    scores = _scores(config, model, data)
    plot = scores.pop("_plot", None)
    scores["best_epoch"], scores["epochs_run"] = history.best_epoch, len(history.rows)
    write_atomic(run_dir / METRICS, json.dumps(scores, indent=2) + "\n")
    plot_learning_curves(history.rows, run_dir / "learning_curves.png", title=f"{config.model.upper()} {kind}")
    if plot is not None:
        plot_forecast(*plot, run_dir / "forecast.png", title=f"{config.target}: validation part, first forecast step")
    metric = HEADLINE[config.task]
    log(f"validation {metric}: model {scores['model'][metric]:.4g}, baseline {scores['baseline'][metric]:.4g} "
        f"({scores['baseline']['name']}); best epoch {history.best_epoch} of {len(history.rows)}")
    log(f"model: {run_dir / MODEL}; predict with: rnnlab predict {run_dir} DATA --out preds.csv")
    return FitResult(run_dir, scores, history.to_dict())


# -- predict / evaluate on new data ---------------------------------------------------------------------
def _load(run):
    from .saving import load

    model = load(run)
    if not isinstance(model.preprocessing, dict) or "kind" not in model.preprocessing:
        raise DataError(f"{run}: the model holds no table preprocessing (it was not made by rnnlab fit); "
                        "use it from Python: rnnlab.load(path).predict(X)")
    return model, preprocessing_from_state(model.preprocessing)


def predictions(run, data) -> tuple[list[str], list[list]]:
    """(header, rows): one row per window (forecast: the row that ends it and H values) or per table
    row (classify: the label and each class's probability)."""
    model, prep = _load(run)
    if prep.__class__.__name__ == "ForecastWindows":
        X = prep.windows(data)
        values = prep.scaler_y.inverse_transform(np.asarray(model.predict(X), np.float64))  # (N, H)
        header = ["window_end_row"] + [f"{prep.target}_t+{h + 1}" for h in range(prep.horizon)]
        return header, [[i + prep.window - 1, *map(float, v)] for i, v in enumerate(values)]
    X, lengths = prep.encode(data)
    probabilities = model.predict_proba(_ragged(X, lengths))  # (N, C)
    header = ["row", prep.label_column] + [f"p_{label}" for label in prep.labels]
    return header, [[i, prep.labels[int(p.argmax())], *map(float, p)] for i, p in enumerate(probabilities)]


def predict_run(run, data, out=None) -> str | None:
    """Write the predictions as CSV to `out` (atomically), or return the CSV text when out is None."""
    header, rows = predictions(run, data)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if out is None:
        return buffer.getvalue()
    write_atomic(Path(out), buffer.getvalue())
    return None


def evaluate_run(run, data) -> dict:
    """The model's metrics on a new table and the baseline's beside them (as metrics.json has them)."""
    model, prep = _load(run)
    if prep.__class__.__name__ == "ForecastWindows":
        X, truth = prep.windows(data, targets=True)  # truth (N, H) in the target's units
        predicted = prep.scaler_y.inverse_transform(np.asarray(model.predict(X), np.float64))
        # persistence: the target's value in each window's last row, read as a window of the target alone
        target_only = dataclasses.replace(prep, features=[prep.target], scaler_x=prep.scaler_y)
        X_target, _ = target_only.windows(data, targets=True)  # (N, W, 1) standardised
        base = None
        if len(X_target) == len(truth):  # (fillna="drop" may drop other rows for the target alone)
            last = prep.scaler_y.inverse_transform(X_target[:, -1, 0].astype(np.float64))  # (N,)
            baseline = np.repeat(last[:, None], prep.horizon, axis=1)
            base = {"name": "persistence (the window's last value)", **regression_metrics(baseline, truth)}
        return {"task": "forecast", "windows": len(truth), "model": regression_metrics(predicted, truth),
                "baseline": base}
    X, lengths = prep.encode(data)
    truth = prep.targets(data)
    predicted = model.predict(_ragged(X, lengths))
    C = len(prep.labels)
    majority = (model.fit_info or {}).get("majority")
    if not isinstance(majority, int) or not 0 <= majority < C:
        majority = int(np.bincount(truth, minlength=C).argmax())  # a model fit elsewhere: this table's own
    return {"task": "classify", "rows": len(truth), "model": classification_metrics(predicted, truth, C),
            "baseline": {"name": f"majority class ({prep.labels[majority]!r})",
                         **classification_metrics(np.full_like(truth, majority), truth, C)},
            "confusion": confusion_matrix(truth, predicted, C).tolist()}


def print_metrics(scores: dict, file=None) -> None:
    file = file or sys.stdout
    metric = HEADLINE[scores["task"]]
    shown = ", ".join(f"{k} {v:.4g}" for k, v in scores["model"].items())
    print(f"model:    {shown}", file=file)
    if scores.get("baseline"):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in scores["baseline"].items() if k != "name")
        print(f"baseline: {shown} ({scores['baseline']['name']})", file=file)
    if scores.get("confusion") is not None:
        print(f"confusion matrix (rows: true, columns: predicted; {metric} above):", file=file)
        for row in scores["confusion"]:
            print("  " + " ".join(f"{v:5d}" for v in row), file=file)
