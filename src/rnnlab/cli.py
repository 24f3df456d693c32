"""The `rnnlab` command: train, fit, predict, generate, evaluate, export, explore, experiment, diagnose, demo, figures,
lecture.

The only module that knows argparse: each subcommand's options map onto a function or a
configuration dataclass of the module that does the work.

Every option maps onto a field of a configuration dataclass; errors in the user's input print one
clear line and exit with status 2, never a traceback (set RNNLAB_DEBUG=1 to see one). Every option is
checked (its range, and the memory the sizes need) before any work starts. Ctrl-C exits with 130
(train saves a checkpoint first); a closed pipe (`rnnlab generate | head`) ends quietly with 0.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import fields
from pathlib import Path

from .data.text import DataError
from .io import CheckpointError
from .validate import (INT_GE0, POSITIVE_INT, POSITIVE_REAL, REAL_GE0, SEED, Rule, check_char_rnn_memory,
                       check_out_dir, check_values, require_memory, sequence_model_bytes)

EXIT_USAGE = 2

TRAIN_HELP = {
    "data": "text to train on: a file path, an http(s) URL, 'tinyshakespeare' (downloaded once and cached), "
            "or nothing for the built-in corpus (Python's own standard-library source)",
    "model": "recurrent cell, any registered one (rnn is tanh; RNNLAB_CELLS=my_cells.py adds your own)",
    "hidden": "hidden units per layer",
    "layers": "number of stacked recurrent layers",
    "embedding": "size of the learned vector for each character",
    "dropout": "dropout probability between layers and before the output layer",
    "seq_len": "BPTT steps per chunk (T): the gradient flows back at most this far",
    "batch": "parallel streams through the text (B)",
    "steps": "optimizer steps to train for",
    "epochs": "passes over the training split (instead of --steps)",
    "lr": "peak learning rate (linear warm-up, then cosine decay to lr/10)",
    "optimizer": "adam, adamw, sgd, rmsprop or adagrad",
    "weight_decay": "L2 penalty (decoupled for adamw)",
    "clip": "clip gradients: max global L2 norm, or max |g| with --clip-mode value; 0 turns clipping off",
    "clip_mode": "norm: rescale all gradients together; value: clip each element",
    "warmup": "steps of linear learning-rate warm-up",
    "seed": "seed for weights, dropout and epoch offsets (same seed, same run)",
    "random_offset": "start each epoch after the first at a random offset, so chunk boundaries move",
    "eval_every": "evaluate on the validation split (last 10%%) every N steps",
    "eval_batches": "validation chunks per evaluation (0: the whole validation split)",
    "sample_every": "append a generated sample to samples.txt every N steps",
    "sample_length": "characters per sample",
    "save_every": "write the checkpoint every N steps (atomically)",
    "out": "run directory: checkpoint, log, loss plot and samples go here",
    "init": "orthogonal (recurrent weights orthogonal, forget bias 1) or uniform (PyTorch's)",
    "dtype": "float32 (fast) or float64 (exact)",
    "keep_crlf": "keep Windows line endings (\\r\\n) as two characters (by default they are read as \\n, and "
                 "the log says how many)",
    "errors": "undecodable bytes in the text: strict refuses the file, naming their byte offsets; replace reads "
              "each bad sequence as U+FFFD and keeps the rest as it is",
}


def _add_train(sub) -> None:
    from .data.corpus import ERRORS
    from .models import CELLS
    from .train import OPTIMIZERS, PRESETS, TrainConfig

    p = sub.add_parser("train", help="train a character-level model on a text",
                       description="Train a character-level RNN/LSTM/GRU with truncated BPTT. With no "
                                   "options it trains on the built-in corpus for a few minutes.")
    choices = {"model": CELLS, "optimizer": tuple(OPTIMIZERS), "clip_mode": ("norm", "value"),
               "init": ("orthogonal", "uniform"), "dtype": ("float32", "float64"), "errors": ERRORS}
    for field in fields(TrainConfig):
        name = field.name
        flag = "--" + name.replace("_", "-")
        default = field.default
        help_text = f"{TRAIN_HELP[name]} (default: {default})"
        if name == "random_offset":
            p.add_argument("--no-random-offset", dest=name, action="store_false", default=argparse.SUPPRESS,
                           help="start every epoch at the beginning of the streams")
            continue
        if name == "keep_crlf":
            p.add_argument("--keep-crlf", dest=name, action="store_true", default=argparse.SUPPRESS,
                           help=TRAIN_HELP[name])
            continue
        kind = {"steps": int, "epochs": float, "clip": float, "eval_batches": int, "data": str}.get(name, type(default))
        p.add_argument(flag, dest=name, type=kind, default=argparse.SUPPRESS, choices=choices.get(name),
                       metavar=None if name in choices else name.upper(), help=help_text)
    p.add_argument("--preset", choices=tuple(PRESETS), help="a recipe's settings (options given beside it win); "
                   "shakespeare: 2 x 384 LSTM, dropout 0.25, 4000 steps on tinyshakespeare, about 1.45 nats/char "
                   "in under an hour on a laptop core")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint "
                   "(bit-identical to a run never interrupted); --steps may extend it, --data says where its "
                   "text is now (its checksum must match)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (by default a "
                   "directory that holds a run is refused)")
    p.add_argument("--force-text", action="store_true", help="train on --data as text even where its name says "
                   "it is a table (.csv, .parquet, .npy, ...: rnnlab fit reads those as columns)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train, check=_check_train)


def _train_settings(args) -> dict:
    """The options the user gave, over the preset's where one is named (--resume takes neither)."""
    from .train import PRESETS, TrainConfig

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.preset and args.resume is None:
        return {**PRESETS[args.preset], **given}
    return given


def _check_train(args) -> None:
    from .train import TRAIN_RULES, TrainConfig, config_problems

    settings = _train_settings(args)
    if args.resume is not None:
        problems = check_values(settings, TRAIN_RULES, as_flags=True)
        if problems:
            raise ValueError("; ".join(problems))
        extra = sorted(set(settings) - {"steps", "data"})
        if extra or args.overwrite or args.preset:
            given = [f"--{k.replace('_', '-')}" for k in extra] + (["--overwrite"] if args.overwrite else []) + \
                    (["--preset"] if args.preset else [])
            raise ValueError(f"--resume continues a run with its own settings; only --steps and --data may be "
                             f"given (got {', '.join(given)})")
        if not str(args.resume).strip():
            raise ValueError("--resume must name a run directory; got ''")
        return
    problems = config_problems(settings, as_flags=True)
    if problems:
        raise ValueError("; ".join(problems))
    _refuse_table(settings.get("data"), args.force_text)
    check_out_dir(settings.get("out", TrainConfig.out))


def _refuse_table(data, force_text: bool) -> None:
    """A table given to the character model would train it on digits and commas: point to rnnlab fit."""
    from .data.tables import TABLE_SUFFIXES

    suffix = Path(str(data)).suffix.lower() if data else ""
    if suffix in TABLE_SUFFIXES and suffix != ".txt" and not force_text:
        raise ValueError(f"--data {data} looks like a table ({suffix}); rnnlab train reads text one character at a "
                         f"time. Fit a model on its columns with: rnnlab fit {data} --task forecast --target COLUMN "
                         f"(or --task classify --label-column COLUMN); pass --force-text to train on it as text")


def _run_train(args) -> int:
    from .train import TrainConfig, Trainer

    settings = _train_settings(args)
    if args.resume:
        trainer = Trainer.resume(args.resume, steps=settings.get("steps"), data=settings.get("data"),
                                 progress=not args.no_progress)
    else:
        trainer = Trainer(TrainConfig(**settings), progress=not args.no_progress, overwrite=args.overwrite)
    result = trainer.fit()
    print(f"\n--- a sample from the model (step {result.steps}) ---\n{result.sample}\n---")
    val = f", validation {result.val_loss:.3f} nats/char = {result.val_bpc:.3f} bits/char" if result.val_loss else ""
    print(f"trained {result.steps} steps in {result.seconds:.0f} s: train loss {result.train_loss:.3f} nats/char{val}")
    print(f"checkpoint: {result.checkpoint}")
    if result.plot:
        print(f"loss curve: {result.plot}")
    print(f"more text:  rnnlab generate {result.run_dir} --length 500")
    if result.interrupted:  # 128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM
        return 128 + (result.stopped_by or 2)
    return 0


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a trained model",
                       description="Sample text from a checkpoint, streamed to the terminal.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a run directory, a checkpoint .safetensors file, or a torch weight file with a vocabulary")
    p.add_argument("--onnx", metavar="MODEL", default=None,
                   help="sample from an ONNX export with onnxruntime alone instead (rnnlab export --format onnx)")
    p.add_argument("--prime", default="", help="text to start from, read in one forward pass (default: a newline)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1: safer, more repetitive; above 1: more surprising (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    p.add_argument("--skip-unknown", action="store_true", help="leave out the characters of --prime that are not "
                   "in the model's vocabulary (saying how many) instead of refusing it")
    p.set_defaults(run=_run_generate, check=_check_generate)


def _check_generate(args) -> None:
    _check(args, {"length": INT_GE0, "temperature": POSITIVE_REAL, "top_k": Rule("int", 1, optional=True),
                  "seed": Rule("int", 0, optional=True, note="any integer from 0 up")})


def _run_generate(args) -> int:
    from .models import load_char_model
    from .sample import NonFiniteLogits, stream

    if (args.checkpoint is None) == (args.onnx is None):
        raise ValueError("give a checkpoint (or run directory) or --onnx MODEL, one of the two")
    if args.onnx is not None:
        return _run_generate_onnx(args)
    model, vocab, _ = load_char_model(args.checkpoint)
    if args.prime and args.skip_unknown:
        args.prime, skipped = vocab.known(args.prime)
        if skipped:
            print(f"rnnlab generate: skipped {skipped:,} character(s) of --prime not in the model's vocabulary",
                  file=sys.stderr)
    if args.prime:
        vocab.encode(args.prime, source="--prime")  # fail before printing anything
        cfg = model.config  # the prime is read in one pass: its cache grows with its length
        check_char_rnn_memory(vocab=cfg.vocab_size, cell=cfg.cell, hidden=cfg.hidden_size, layers=cfg.num_layers,
                              embedding=cfg.embedding_dim, batch=1, seq_len=len(args.prime), dtype=cfg.dtype,
                              what=f"reading a --prime of {len(args.prime):,} characters")
    chars = stream(model, vocab, args.prime, args.length, args.temperature, args.top_k, args.seed)
    try:  # each character goes out as it comes, and none is kept: memory stays flat
        sys.stdout.write(args.prime)
        written = bool(args.prime)
        try:
            for char in chars:
                sys.stdout.write(char)
                sys.stdout.flush()
                written = True
        except NonFiniteLogits:
            if written:  # the text so far ends its line; the error follows on stderr
                sys.stdout.write("\n")
            raise
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OSError(e.errno, f"cannot write the text ({e.strerror})", "standard output") from None
    return 0


def _run_generate_onnx(args) -> int:
    from .io import path_kind
    from .sample import check_sampling

    check_sampling(args.length, args.temperature, args.top_k)
    kind = path_kind(args.onnx, follow=True)
    if kind != "a regular file":
        raise ValueError(f"{args.onnx}: {'no such file' if kind is None else f'is {kind}, not an ONNX file'}")
    try:
        from . import onnx_generate
    except ImportError as error:
        raise ImportError(f"--onnx needs onnxruntime ({error}): pip install 'rnnlab[export]'") from None
    pending = [args.prime]  # printed with the first character, once the model has read the prime

    def stream(char: str) -> None:
        sys.stdout.write(pending.pop() + char if pending else char)
        sys.stdout.flush()

    try:
        onnx_generate.generate(args.onnx, args.prime, args.length, args.temperature, args.top_k, args.seed,
                               on_text=stream)
        if pending:  # --length 0
            sys.stdout.write(pending.pop())
    except Exception as error:  # onnxruntime's own exceptions (a file it cannot read) are plain Exceptions
        if type(error).__module__.startswith("onnxruntime"):
            raise ValueError(f"{args.onnx}: onnxruntime cannot run it: {error}") from None
        raise
    sys.stdout.write("\n")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a trained model as ONNX or as PyTorch weights",
                       description="Export a character model or a model of rnnlab fit: --format onnx writes a standard ONNX graph "
                                   "(ONNX's LSTM/GRU/RNN operators, a Scan for other cells, states in and out) "
                                   "that onnxruntime runs; "
                                   "--format torch writes safetensors weights under torch.nn's names, with the "
                                   "configuration and vocabulary in the metadata (see docs/interop.md).")
    p.add_argument("checkpoint", help="a run directory or a checkpoint .safetensors file")
    p.add_argument("--format", choices=("onnx", "torch"), required=True, help="onnx or torch (safetensors)")
    p.add_argument("--out", default=None,
                   help="output file (default: model.onnx or model.safetensors beside the checkpoint)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="ONNX only: the graph's float type (default: float32; onnxruntime's LSTM/GRU/RNN "
                        "kernels run float32 only)")
    p.add_argument("--overwrite", action="store_true", help="let --out replace a file of a run directory or an "
                   "rnnlab checkpoint (refused by default; the checkpoint being exported never)")
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .export import OPSET, to_onnx, to_torch
    from .models import load_char_model
    from .rundir import check_output

    if args.format == "torch" and args.dtype is not None:
        raise ValueError("--dtype applies to --format onnx; a torch file keeps the model's own dtype")
    source = Path(args.checkpoint)
    folder = source if source.is_dir() else source.parent
    fit_run = _is_fit_run(source)  # a model of rnnlab fit or rnnlab.save: model.safetensors is its own file
    checkpoint = (source / ("model.safetensors" if fit_run else "checkpoint.safetensors")) if source.is_dir() else source
    default = folder / f"model.{'onnx' if args.format == 'onnx' else 'torch.safetensors' if fit_run else 'safetensors'}"
    out = Path(args.out) if args.out is not None else default
    check = dict(reads=[(checkpoint, "the checkpoint being exported")], overwrite=args.overwrite)
    check_output(out, **check)  # before the model is read: a refusal costs nothing
    if fit_run:
        from .saving import load

        model, vocab = load(source), None
    else:
        model, vocab, _ = load_char_model(args.checkpoint)
    check_output(out, **check)  # again just before writing: the path may have changed meanwhile
    if args.format == "onnx":
        path = to_onnx(model, out, vocab=vocab, dtype=args.dtype or "float32")
        print(f"{path}: ONNX (opset {OPSET}); " + (f"sample it with: rnnlab generate --onnx {path}" if vocab else
                                                   "run it with onnxruntime (docs/interop.md)"))
    else:
        path = to_torch(model, out, vocab=vocab)
        print(f"{path}: torch.nn weights with the configuration in the metadata (docs/interop.md)")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model's loss on a text, or a fit model's metrics on a table",
                       description="Cross-entropy of a checkpoint on the validation split (last 10%) of a "
                                   "text, in nats and bits per character; for a run of rnnlab fit, "
                                   "`rnnlab evaluate RUN DATA` prints its metrics on the table DATA beside the "
                                   "baseline's.")
    p.add_argument("checkpoint", help="a run directory or a checkpoint .safetensors file")
    p.add_argument("table", nargs="?", default=None, help="a run of rnnlab fit: the table to evaluate on")
    p.add_argument("--data", default=None, help="the text (default: the one the model was trained on)")
    p.add_argument("--split", choices=("val", "all"), default="val", help="last 10%% (val) or the whole text")
    p.add_argument("--batch", type=int, default=32,
                   help="parallel streams (default: 32; fewer when the split is too short for them)")
    p.add_argument("--seq-len", type=int, default=128, help="steps per chunk (default: 128)")
    p.add_argument("--max-chars", type=int, default=EVALUATE_CHARS, metavar="N",
                   help=f"evaluate on the first N characters of the split, 0 for all of it (default: "
                        f"{EVALUATE_CHARS:,}, a few seconds)")
    p.add_argument("--keep-crlf", action="store_true", default=None,
                   help="keep Windows line endings as two characters (default: as the run was trained)")
    p.add_argument("--errors", choices=("strict", "replace"), default=None,
                   help="undecodable bytes: refuse the file (strict) or read them as U+FFFD (replace) "
                        "(default: as the run was trained)")
    p.add_argument("--skip-unknown", action="store_true", help="leave out the characters the model's vocabulary "
                   "lacks (saying how many) instead of refusing the text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown after a second otherwise)")
    p.set_defaults(run=_run_evaluate, check=_check_evaluate)


EVALUATE_CHARS = 200_000


def _check_evaluate(args) -> None:
    _check(args, {"batch": POSITIVE_INT, "seq_len": POSITIVE_INT, "max_chars": INT_GE0})


def _run_evaluate(args) -> int:
    from .data.corpus import open_corpus
    from .data.text import split_text
    from .models import load_char_model
    from .train import evaluate, fit_batch

    if _is_fit_run(args.checkpoint):
        if args.table is None:
            raise ValueError(f"{args.checkpoint} is a run of rnnlab fit: give the table to evaluate on, "
                             f"rnnlab evaluate {args.checkpoint} DATA")
        return _run_evaluate_table(args)
    if args.table is not None:
        raise ValueError(f"{args.checkpoint} holds a character model: give its text with --data {args.table}")

    model, vocab, ckpt = load_char_model(args.checkpoint)
    trained = ckpt.train_config or {}
    source = args.data if args.data is not None else trained.get("data")
    reading = {"keep_crlf": args.keep_crlf if args.keep_crlf is not None else bool(trained.get("keep_crlf", False)),
               "errors": args.errors or trained.get("errors", "strict")}
    corpus = open_corpus(source, **reading)  # the training run's own ids, from the cache, where they match
    if corpus.vocab != vocab:
        corpus = open_corpus(source, **reading, vocab=vocab, skip_unknown=args.skip_unknown)
    for note in corpus.notes:
        print(f"rnnlab evaluate: {corpus.description}: {note}", file=sys.stderr)
    description, ids = corpus.description, corpus.ids
    if args.split == "val":
        ids = split_text(ids, 0.1)[1]
    whole = len(ids)
    if args.max_chars and whole > args.max_chars:
        ids = ids[:args.max_chars]
    batch, seq_len = fit_batch(len(ids), args.batch, args.seq_len)
    if (batch, seq_len) != (args.batch, args.seq_len):
        print(f"rnnlab evaluate: the {args.split} split has {len(ids):,} characters, too few for --batch "
              f"{args.batch} x --seq-len {args.seq_len}; using {batch} x {seq_len}", file=sys.stderr)
    cfg = model.config
    check_char_rnn_memory(vocab=cfg.vocab_size, cell=cfg.cell, hidden=cfg.hidden_size, layers=cfg.num_layers,
                          embedding=cfg.embedding_dim, batch=batch, seq_len=seq_len, dtype=cfg.dtype,
                          what="evaluating")
    loss = evaluate(model, ids, batch, seq_len, source=f"{args.split} split of {description}",
                    progress=not args.no_progress)
    read = f"{len(ids):,} characters" if len(ids) == whole else \
        f"the first {len(ids):,} of {whole:,} characters; --max-chars 0 reads all"
    print(f"{description} ({args.split}, {read}): {loss:.4f} nats/char = {loss / math.log(2):.4f} bits/char")
    return 0


# -- a user's own tables: fit, predict, evaluate RUN DATA ---------------------------------------------
FIT_HELP = {
    "task": "forecast (the next --horizon values of --target from --window rows) or classify (a class per "
            "row, from --text-column's text or from the row's numbers)",
    "out": "run directory: model.safetensors, history.json, metrics.json and the plots go here",
    "target": "forecast: the column to forecast",
    "features": "forecast: input columns, comma-separated (default: the target alone)",
    "window": "forecast: rows read per forecast (W)",
    "horizon": "forecast: target values forecast (H)",
    "fillna": "forecast: what to do with missing values: ffill, zero, drop or interpolate (default: refuse them)",
    "text_column": "classify: the column of text (without it every other column is one time step)",
    "label_column": "classify: the column of classes",
    "tokens": "classify: chars or (whitespace-separated) words",
    "model": "recurrent cell, any registered one",
    "hidden": "hidden units per layer",
    "layers": "stacked recurrent layers",
    "embedding": "classify on text: size of the learned token vectors",
    "epochs": "passes over the training part",
    "batch": "samples per step",
    "lr": "learning rate (Adam)",
    "seed": "seed for weights, the classify split and the batch order",
    "val_fraction": "fraction held out for validation: the end of the series (forecast), stratified rows (classify)",
    "patience": "stop after this many epochs without a better validation loss, keeping the best epoch (0: never)",
}


def _add_fit(sub) -> None:
    from .data.tables import FILLNA_MODES
    from .fitrun import TASKS, FitConfig
    from .models import CELLS

    p = sub.add_parser("fit", help="fit a forecaster or a classifier on your own table (CSV, Parquet, .npy/.npz)",
                       description="Fit a many-to-one RNN on a table and report its validation metric beside the "
                                   "obvious baseline's (persistence for a forecast, the majority class for a "
                                   "classifier). Example: rnnlab fit sensor.csv --task forecast --target temp "
                                   "--window 24 --out runs/temp")
    p.add_argument("data", nargs="?", default=None, help="a CSV, TSV, Parquet, .npy or .npz file")
    choices = {"task": TASKS, "model": CELLS, "tokens": ("chars", "words"), "fillna": FILLNA_MODES}
    for field in fields(FitConfig):
        if field.name == "data":
            continue
        default = field.default
        kind = {"window": int, "horizon": int, "hidden": int, "layers": int, "embedding": int, "epochs": int,
                "batch": int, "seed": int, "patience": int, "lr": float, "val_fraction": float,
                "features": _csv(str)}.get(field.name, str)
        p.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind, choices=choices.get(field.name),
                       default=argparse.SUPPRESS,
                       metavar=None if field.name in choices else field.name.upper(),
                       help=f"{FIT_HELP[field.name]} (default: {default})")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted fit from its last epoch, exactly "
                   "(--epochs may extend it; no other option)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_fit, check=_check_fit)


def _fit_config(args):
    from .fitrun import FitConfig

    return FitConfig(data=args.data, **{f.name: getattr(args, f.name) for f in fields(FitConfig)
                                        if f.name != "data" and hasattr(args, f.name)})


def _check_fit(args) -> None:
    from .fitrun import FitConfig

    if args.resume is not None:
        given = [f"--{f.name.replace('_', '-')}" for f in fields(FitConfig)
                 if f.name not in ("data", "epochs") and hasattr(args, f.name)]
        given += ["DATA"] * (args.data is not None) + ["--overwrite"] * args.overwrite
        if given:
            raise ValueError(f"--resume continues a fit with its own settings; only --epochs may be given (got "
                             f"{', '.join(given)})")
        return
    if args.data is None or not hasattr(args, "task"):
        raise ValueError("rnnlab fit needs DATA and --task forecast|classify (or --resume RUN_DIR)")
    config = _fit_config(args)
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    check_out_dir(config.out)
    steps = config.window if config.task == "forecast" else 1  # a text's length is not known before reading it
    need = sequence_model_bytes(batch=config.batch, seq_len=steps, hidden=config.hidden, layers=config.layers,
                                cell=config.model, features=max(config.embedding, 1))
    require_memory(need, f"fitting (--hidden {config.hidden}, --layers {config.layers}, --batch {config.batch})",
                   "--hidden, --layers or --batch")


def _run_fit(args) -> int:
    from .fitrun import resume_fit, run_fit

    if args.resume is not None:
        resume_fit(args.resume, epochs=getattr(args, "epochs", None), progress=not args.no_progress)
    else:
        run_fit(_fit_config(args), overwrite=args.overwrite, progress=not args.no_progress)
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict with a model made by rnnlab fit, on a new table",
                       description="One prediction per window (forecast: the row that ends the window and the "
                                   "next H values) or per row (classify: the label and each class's probability), "
                                   "as CSV.")
    p.add_argument("run_dir", metavar="run", help="a run directory of rnnlab fit (or its model.safetensors)")
    p.add_argument("data", help="a CSV, TSV, Parquet, .npy or .npz file with the columns the model was fit on")
    p.add_argument("--out", default=None, help="CSV file to write (default: standard output)")
    p.set_defaults(run=_run_predict)


def _run_predict(args) -> int:
    from .fitrun import predict_run

    text = predict_run(args.run_dir, args.data, out=args.out)
    if text is None:
        print(f"predictions: {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _is_fit_run(path) -> bool:
    """Whether `path` is a run of rnnlab fit (or a file rnnlab.save wrote), not a character model's."""
    from .io import read_metadata

    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        return False
    try:
        config = read_metadata(file).get("model_config")
    except CheckpointError:
        return False
    return isinstance(config, dict) and "kind" in config


def _run_evaluate_table(args) -> int:
    from .fitrun import evaluate_run, print_metrics

    print_metrics(evaluate_run(args.checkpoint, args.table))
    return 0


def _add_figures(sub) -> None:
    p = sub.add_parser("figures", help="draw the lecture's figures (feed-forward vs recurrent, the four "
                                       "kinds, the unrolled net, the LSTM cell)")
    p.add_argument("--out", default="figures", help="output directory (default: figures)")
    p.add_argument("--format", dest="formats", action="append", choices=("png", "svg", "pdf"),
                   help="file format; repeat for several (default: png and svg)")
    p.set_defaults(run=_run_figures, check=_check_figures)


def _check_figures(args) -> None:
    check_out_dir(args.out)


def _run_figures(args) -> int:
    from .figures import draw_all

    formats = tuple(dict.fromkeys(args.formats or ("png", "svg")))  # --format png --format png: once
    for path in draw_all(args.out, formats=formats):
        print(path)
    return 0


def _add_explore(sub) -> None:
    p = sub.add_parser("explore", help="write an HTML page that shows what a trained model remembers as it reads",
                       description="One self-contained HTML file (no network): the text coloured by any unit, "
                                   "the top-5 next characters and the gates under the mouse, units found to "
                                   "track features of the text, and the connectivity ||d log p / d x_t'|| of "
                                   "a clicked character. --serve adds a live box backed by rnnlab's forward pass.")
    p.add_argument("run_a", metavar="RUN", nargs="?", help="a run directory or checkpoint (not with --neurone)")
    p.add_argument("run_b", nargs="?", metavar="RUN_B", help="a second run, shown beside the first (e.g. a GRU "
                   "beside an LSTM)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="FILE", help="the text to read (default: the start of the model's "
                        "validation split, the last 10%% of its training text)")
    source.add_argument("--prime", metavar="TEXT", help="let the model write: TEXT, then its own continuation "
                        "(temperature 0.8) up to --chars")
    p.add_argument("--chars", type=int, default=2000, help="characters to read (default: 2000)")
    p.add_argument("--out", default="explore.html", help="the HTML file to write (default: explore.html), "
                   "atomically; never a file it reads")
    p.add_argument("--overwrite", action="store_true", help="let --out replace a file of a run directory or an "
                   "rnnlab checkpoint (refused by default)")
    p.add_argument("--serve", action="store_true", help="also serve the page on 127.0.0.1 (a free port) with a "
                   "live box; Ctrl-C stops")
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: 0, a free one)")
    p.add_argument("--neurone", action="store_true", help="the lecture's example: train the feed-forward net and "
                   "the RNN of `rnnlab experiment neurone` (seconds) and show them side by side")
    p.add_argument("--features", choices=("auto", "code", "prose"), default="auto",
                   help="text features for the unit search (default: auto, code if it looks like code)")
    p.add_argument("--window", type=int, default=200, help="connectivity: characters back (default: 200)")
    p.add_argument("--positions", type=int, default=250, help="connectivity: at most this many positions, "
                   "evenly spaced (default: 250)")
    p.add_argument("--all-gates", action="store_true", help="embed the gates of every unit (default: of the "
                   "units the search lists; a bigger file)")
    p.add_argument("--seed", type=int, default=0, help="seed for --prime's continuation and --neurone's training")
    p.set_defaults(run=_run_explore)


def _run_explore(args) -> int:
    if not args.serve:
        _explore_page(args)
        return 0
    from .explore.server import App, LocalServer, serve

    server = LocalServer(args.port)  # bound first: a taken port is refused before the page is built
    try:
        html, models = _explore_page(args)
    except BaseException:
        server.server_close()
        raise
    return serve(App(html, models), server=server, announce=lambda line: print(line, flush=True))


def _explore_page(args):
    """The page (with a live box under --serve) and the models its live box asks."""
    from .explore import explore_page, neurone_page
    from .rundir import check_output, write_output

    run = args.run_a
    if args.neurone:
        if run is not None:
            raise ValueError("--neurone trains its own two models; give no RUN with it")
        if not args.serve:
            check_output(args.out, overwrite=args.overwrite)
        html, _, models = neurone_page(seed=args.seed, live=args.serve)
        if not args.serve:
            write_output(args.out, html, overwrite=args.overwrite)
            print(f"rnnlab explore: the neurone page: {args.out}")
    else:
        if run is None:
            raise ValueError("give a run directory or checkpoint (or --neurone)")
        html, _, models = explore_page(run, args.run_b, text_file=args.text, prime=args.prime, chars=args.chars,
                                       out=args.out, features=args.features, window=args.window,
                                       max_positions=args.positions, all_gates=args.all_gates, seed=args.seed,
                                       live=args.serve, overwrite=args.overwrite)
    return html, models


def _add_lecture(sub) -> None:
    p = sub.add_parser("lecture", help="copy the lecture's notebook (Italian or English) for a class",
                       description="Write the lecture as a Jupyter notebook (figures, demos, the explore page and "
                                   "small trainings, with exercises) into --out, and a static HTML rendering where "
                                   "nbconvert is installed. Open it with `jupyter lab lezione.ipynb`.")
    p.add_argument("--lang", choices=("it", "en"), default="it", help="it: lezione.ipynb (default); en: lecture.ipynb")
    p.add_argument("--out", default=".", help="folder to write into (default: the current one)")
    p.add_argument("--overwrite", action="store_true", help="replace files of the same name in --out")
    p.add_argument("--execute", action="store_true", help="run the notebook first (a minute or two; needs "
                   "rnnlab[lecture]), so the copy and its HTML carry every figure and output")
    p.add_argument("--no-html", dest="html", action="store_false", help="write the notebook only")
    p.set_defaults(run=_run_lecture)


def _run_lecture(args) -> int:
    from .lecture import copy_lecture

    for path in copy_lecture(args.lang, args.out, overwrite=args.overwrite, html=args.html,
                             execute_first=args.execute, log=lambda line: print(line, file=sys.stderr)):
        print(path)
    return 0


# -- rnnlab experiment ---------------------------------------------------------------------------
def _csv(kind):
    def parse(text: str):
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}; got {text!r}")
    return parse


def _describe(experiments: dict) -> str:
    lines = []
    for e in experiments.values():
        T = "" if e.Ts is None else f", T={','.join(map(str, e.Ts))}"
        cells = ",".join(e.cells)
        defaults = f" [{cells}{T}, {e.steps} steps, hidden {e.hidden}]" if not e.tasks else ""
        lines.append(f"  {e.name:15s}{e.kind}: {e.summary}{defaults}")
    return "experiments:\n" + "\n".join(lines) + "\n"


def _add_experiment(subparsers) -> argparse.ArgumentParser:
    """`experiment NAME [options]`: a sweep of one of the lecture's experiments."""
    from .experiments import EXPERIMENTS
    from .experiments.engine import ENGINES
    from .models import CELLS

    p = subparsers.add_parser(
        "experiment", help="run one of the lecture's experiments and print its table",
        description="Train the models of one experiment (a sweep over --cells and --T), print a table of the "
                    "held-out metric beside the task's trivial baseline, and write results.json, table.md and a "
                    "plot to --out.",
        epilog=_describe(EXPERIMENTS), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help="one of: " + ", ".join(EXPERIMENTS))
    p.add_argument("--cells", type=_csv(str), default=None,
                   help=f"comma-separated cells: {', '.join(CELLS)} (neurone also: ff) (default: the experiment's)")
    p.add_argument("--T", dest="Ts", type=_csv(int), default=None, metavar="T",
                   help="comma-separated sequence lengths, e.g. 50,100,200 (digits: 8 = rows, 64 = pixels)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    p.add_argument("--hidden", type=int, default=None, help="hidden units")
    p.add_argument("--batch", type=int, default=None, help="examples per step")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    seeds.add_argument("--seeds", default=None, metavar="SEEDS",  # parsed by _check_experiment: one line
                       help="run every configuration once per seed: a range 0-4, a list 0,3,7, or both; the "
                            "table gives mean ± std and how many seeds succeeded")
    p.add_argument("--out", default=None, help="run directory (default: runs/NAME); finished runs are kept in "
                                               "OUT/runs/ and reused when the same command runs again")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where runs execute: local (this process, or joblib workers with --jobs), dask "
                        "(dask.distributed) or ray (optional extra) (default: local)")
    p.add_argument("--address", default=None,
                   help="join a running Dask scheduler (tcp://host:8786) or Ray cluster instead of starting "
                        "one on this machine")
    p.add_argument("--jobs", type=int, default=1, help="workers on this machine (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_experiment)
    return p


def _experiment_command_line(args) -> str:
    """The `rnnlab experiment ...` line that reproduces these arguments (for the records)."""
    parts = ["rnnlab experiment", args.name]
    for flag, value in (("--cells", args.cells), ("--T", args.Ts)):
        if value:
            parts.append(f"{flag} {','.join(map(str, value))}")
    for flag in ("steps", "hidden", "batch", "lr"):
        if getattr(args, flag) is not None:
            parts.append(f"--{flag} {getattr(args, flag)}")
    if args.seeds is not None:
        from .experiments.tables import seed_list

        parts.append(f"--seeds {seed_list(args.seeds)}")
    else:
        parts.append(f"--seed {args.seed}")
    if args.engine != "local":
        parts.append(f"--engine {args.engine}")
    if args.address is not None:
        parts.append(f"--address {args.address}")
    if args.jobs != 1:
        parts.append(f"--jobs {args.jobs}")
    if args.out is not None:
        parts.append(f"--out {args.out}")
    return " ".join(parts)


def _parse_seeds(args) -> None:
    """--seeds as a list, parsed here rather than by argparse, so a bad one gets one line."""
    from .experiments.registry import parse_seeds

    if isinstance(args.seeds, str):
        args.seeds = parse_seeds(args.seeds)


def _run_experiment(args) -> int:
    from .experiments import run_experiment
    from .experiments.engine import SweepFailed

    _parse_seeds(args)
    command = _experiment_command_line(args)
    out = args.out if args.out is not None else str(Path("runs") / args.name)
    try:
        result = run_experiment(args.name, cells=args.cells, Ts=args.Ts, steps=args.steps, hidden=args.hidden,
                                seed=args.seed, seeds=args.seeds, batch=args.batch, lr=args.lr, out=out,
                                jobs=args.jobs, engine=args.engine, address=args.address,
                                progress=not args.no_progress, command=command,
                                warn=lambda line: print(f"rnnlab experiment: set aside: {line}", file=sys.stderr,
                                                        flush=True))
    except SweepFailed as failure:  # runs that kept killing their workers, named; the finished ones are kept
        print(f"rnnlab experiment: error: {' '.join(str(failure).split())}", file=sys.stderr)
        return 1
    print(result.table)
    reused = (f"reused {result.reused} finished run(s) from {result.run_dir / 'runs'}, trained {result.trained}; "
              if result.reused else "")
    print(f"\n{len(result.rows)} run(s), {reused}{result.seconds:.0f} s; results, table and plot in "
          f"{result.run_dir}/")
    return 0


# -- rnnlab demo and rnnlab diagnose --------------------------------------------------------------
def _cells() -> tuple[str, ...]:
    from .models import CELLS

    return CELLS


def _tasks() -> tuple[str, ...]:
    from .data.tasks import PROBLEMS

    return tuple(PROBLEMS) + ("text",)


def _add_output_options(p, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help=f"folder for the plots (default: {default_out})")
    p.add_argument("--format", dest="formats", action="append", choices=("png", "svg", "pdf"),
                   help="plot file format; repeat for several (default: png and svg)")


def _add_demo(subparsers) -> None:
    """`rnnlab demo exploding|vanishing|one-to-many|bptt-cost`: the lecture's stories, with numbers and plots."""
    p = subparsers.add_parser("demo", help="run the lecture's stories: exploding and vanishing gradients, "
                                           "one-to-many, the cost of BPTT",
                              description="Run one of the lecture's stories end to end (well under a minute): "
                                          "it prints what it shows, with the numbers, and writes its plots.")
    demos = p.add_subparsers(dest="demo", required=True, metavar="DEMO")
    e = demos.add_parser("exploding", help="a tanh RNN with large W_hh: nan without clipping, trains with it",
                         description="A tanh RNN whose recurrent matrix is GAIN x an orthogonal matrix learns to "
                                     "forecast sine waves by SGD, once without and once with gradient clipping.")
    e.add_argument("--steps", type=int, default=2000, help="SGD steps per run (default: 2000)")
    e.add_argument("--seq-len", type=int, default=50, help="time steps T per sequence (default: 50)")
    e.add_argument("--hidden", type=int, default=32, help="hidden units (default: 32)")
    e.add_argument("--gain", type=float, default=2.0, help="W_hh = GAIN x orthogonal, its spectral radius (default: 2)")
    e.add_argument("--lr", type=float, default=0.2, help="SGD learning rate (default: 0.2)")
    e.add_argument("--clip", type=float, default=1.0, help="max global gradient norm of the clipped run (default: 1)")
    e.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    _add_output_options(e, "demos")
    e.set_defaults(run=_run_exploding)
    v = demos.add_parser("vanishing", help="RNN vs GRU vs LSTM: how far back the gradient reaches",
                         description="Fresh RNN, GRU and LSTM read the same batch; the gradient of the last "
                                     "step's loss is measured at every earlier step, from the BPTT sweep.")
    v.add_argument("--task", choices=_tasks(), default="text",
                   help="what they read: text (default; the built-in corpus or --data) or a synthetic task")
    v.add_argument("--data", default=None, help="text to read with --task text (default: the built-in corpus)")
    v.add_argument("--seq-len", type=int, default=100, help="time steps T (default: 100)")
    v.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    v.add_argument("--batch", type=int, default=32, help="sequences in the batch (default: 32)")
    v.add_argument("--init", choices=("orthogonal", "uniform"), default="orthogonal",
                   help="orthogonal (W_hh orthogonal, LSTM forget bias 1; default) or uniform (PyTorch's)")
    v.add_argument("--seed", type=int, default=0, help="seed for weights and data (default: 0)")
    _add_output_options(v, "demos")
    v.set_defaults(run=_run_vanishing)
    o = demos.add_parser("one-to-many", help="one input, a sequence out: a word written from its first letter",
                         description="A OneToMany GRU reads one letter and writes the whole word that starts with "
                                     "it, feeding back each letter it writes; trained in seconds on 18 words.")
    o.add_argument("--steps", type=int, default=100, help="Adam steps (default: 100)")
    o.add_argument("--hidden", type=int, default=48, help="hidden units (default: 48)")
    o.add_argument("--seed", type=int, default=0, help="seed for the weights (default: 0)")
    _add_output_options(o, "demos")
    o.set_defaults(run=_run_one_to_many)
    b = demos.add_parser("bptt-cost", help="time and memory of full BPTT against T; truncated BPTT's flat cost",
                         description="Measure one weight update of an LSTM reading text by full BPTT over T steps "
                                     "and by truncated BPTT in chunks of --window steps: time, peak memory, and "
                                     "how much of the full gradient truncation misses.")
    b.add_argument("--seq-len", type=int, action="append", dest="lengths",
                   help="a sequence length T to measure; repeat for several (default: 25 50 100 200 400)")
    b.add_argument("--window", type=int, default=25, help="truncated BPTT's chunk length k (default: 25)")
    b.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    b.add_argument("--batch", type=int, default=16, help="sequences in the batch (default: 16)")
    b.add_argument("--data", default=None, help="text to read (default: the built-in corpus)")
    b.add_argument("--seed", type=int, default=0, help="seed for the weights (default: 0)")
    _add_output_options(b, "demos")
    b.set_defaults(run=_run_bptt_cost)


def _formats(args) -> tuple[str, ...]:
    return tuple(dict.fromkeys(args.formats or ("png", "svg")))


def _run_exploding(args) -> int:
    from .demos import run_exploding

    run_exploding(steps=args.steps, seq_len=args.seq_len, hidden=args.hidden, gain=args.gain, lr=args.lr,
                  clip=args.clip, seed=args.seed, out=args.out, formats=_formats(args))
    return 0


def _run_vanishing(args) -> int:
    from .demos import run_vanishing

    run_vanishing(task=args.task, seq_len=args.seq_len, hidden=args.hidden, batch=args.batch, init=args.init,
                  seed=args.seed, data=args.data, out=args.out, formats=_formats(args))
    return 0


def _run_one_to_many(args) -> int:
    from .demos import one_to_many

    one_to_many(steps=args.steps, hidden=args.hidden, seed=args.seed, out=args.out, formats=_formats(args))
    return 0


def _run_bptt_cost(args) -> int:
    from .demos import bptt_cost

    lengths = args.lengths or (25, 50, 100, 200, 400)
    bptt_cost(lengths=lengths, window=args.window, hidden=args.hidden, batch=args.batch, data=args.data,
              seed=args.seed, out=args.out, formats=_formats(args))
    return 0


def _add_diagnose(subparsers) -> None:
    """`rnnlab diagnose [CHECKPOINT]`: gradient flow, Jacobians, weight spectra and a verdict, with plots."""
    p = subparsers.add_parser("diagnose", help="measure gradient flow through time: exploding, vanishing or healthy",
                              description="Measure how much gradient reaches every time step, the Jacobians "
                                          "dh_T/dh_t and the spectra of the recurrent weights, and say whether "
                                          "the gradients explode, vanish or are healthy. On a checkpoint from "
                                          "`rnnlab train`, or on a fresh model and task (optionally trained "
                                          "for --steps while recording).")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a run directory or checkpoint file (omit it to build a fresh model with --model/--task)")
    p.add_argument("--data", default=None, help="text to measure on (default: the checkpoint's training text; "
                                                "with --task text, the built-in corpus)")
    p.add_argument("--text", default=None,
                   help="text the cell reads for the gate plot (default: a line of the data)")
    p.add_argument("--model", choices=_cells(), default=None,
                   help=f"fresh model: {', '.join(_cells())} (default: lstm)")
    p.add_argument("--task", choices=_tasks(), default=None, help="fresh model's task (default: adding)")
    p.add_argument("--seq-len", type=int, default=None, help="time steps T (default: the checkpoint's, or 100)")
    p.add_argument("--hidden", type=int, default=64, help="fresh model: hidden units (default: 64)")
    p.add_argument("--layers", type=int, default=1, help="fresh model: layers (default: 1)")
    p.add_argument("--batch", type=int, default=None,
                   help="sequences measured (default: 16 for a checkpoint, 32 for a fresh model)")
    p.add_argument("--init", choices=("orthogonal", "uniform"), default="orthogonal", help="fresh model's init")
    p.add_argument("--steps", type=int, default=0, help="fresh model: train this many Adam steps first (default: 0)")
    p.add_argument("--record-every", type=int, default=10, help="record the gradient flow every N steps (default: 10)")
    p.add_argument("--lr", type=float, default=3e-3, help="fresh model: Adam learning rate (default: 0.003)")
    p.add_argument("--clip", type=float, default=1.0, help="fresh model: max gradient norm, 0 for none (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="fresh model: seed (default: 0)")
    _add_output_options(p, "diagnose")
    p.set_defaults(run=_run_diagnose)


def _default(value, default):
    return default if value is None else value


def _run_diagnose(args) -> int:
    from .diagnose import diagnose_checkpoint, diagnose_fresh

    if args.checkpoint is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("model", "task") if getattr(args, n) is not None]
        if given or args.steps:
            raise ValueError(f"{', '.join(given + (['--steps'] if args.steps else []))} build a fresh model; "
                             "leave out the checkpoint, or these options")
        diagnose_checkpoint(args.checkpoint, data=args.data, batch=_default(args.batch, 16), seq_len=args.seq_len,
                            text=args.text, out=args.out, formats=_formats(args))
        return 0
    diagnose_fresh(args.model or "lstm", args.task or "adding", seq_len=_default(args.seq_len, 100),
                   hidden=args.hidden, layers=args.layers, batch=_default(args.batch, 32), init=args.init,
                   steps=args.steps, record_every=args.record_every, lr=args.lr, clip=args.clip or None, seed=args.seed,
                   data=args.data, text=args.text, out=args.out, formats=_formats(args))
    return 0


COMMANDS = [_add_train, _add_fit, _add_predict, _add_generate, _add_evaluate, _add_explore, _add_export,
            _add_experiment, _add_diagnose, _add_demo, _add_figures, _add_lecture]


# -- checks that run before any work ---------------------------------------------------------------
def _check(args, rules: dict[str, Rule]) -> None:
    """ValueError naming every option (as its flag) outside its range; options not set are skipped."""
    problems = check_values({k: getattr(args, k) for k in rules if hasattr(args, k)}, rules, as_flags=True)
    if problems:
        raise ValueError("; ".join(problems))


OPTIONAL_INT = Rule("int", 1, optional=True)


def _check_experiment(args) -> None:
    from .experiments import N_TEST, plan
    from .models import CELLS

    _parse_seeds(args)
    _check(args, {"steps": OPTIONAL_INT, "hidden": OPTIONAL_INT, "batch": OPTIONAL_INT,
                  "lr": Rule("real", 0, low_open=True, optional=True), "seed": SEED, "jobs": POSITIVE_INT})
    for T in args.Ts or ():
        if T < 1:
            raise ValueError(f"--T must be integers >= 1; got {T}")
    if args.out is not None:
        check_out_dir(args.out)
    for spec in plan(args.name, args.cells, args.Ts, args.steps, args.hidden, args.seed, args.batch, args.lr,
                     args.seeds):
        if spec.T is None:
            continue
        need = sequence_model_bytes(batch=spec.batch, seq_len=spec.T + 20, hidden=spec.hidden,
                                    cell=spec.cell if spec.cell in CELLS else "lstm", examples=N_TEST)
        require_memory(need, f"experiment {spec.experiment} at T={spec.T} ({spec.cell}, hidden {spec.hidden}, "
                             f"batch {spec.batch}, {N_TEST} test sequences)", "--T, --batch or --hidden")


def _check_explore(args) -> None:
    _check(args, {"port": Rule("int", 0, high=65535, high_open=False, note="0: a free one"),
                  "window": POSITIVE_INT, "positions": INT_GE0})


def _check_diagnose(args) -> None:
    _check(args, {"seq_len": OPTIONAL_INT, "hidden": POSITIVE_INT, "layers": POSITIVE_INT, "batch": OPTIONAL_INT,
                  "steps": INT_GE0, "record_every": POSITIVE_INT, "lr": POSITIVE_REAL, "clip": REAL_GE0,
                  "seed": SEED})
    check_out_dir(args.out)
    if args.checkpoint is None:
        need = sequence_model_bytes(batch=args.batch or 32, seq_len=args.seq_len or 100, hidden=args.hidden,
                                    layers=args.layers, cell=args.model or "lstm", features=128)
        require_memory(need, f"diagnosing a {args.layers}-layer model of {args.hidden} units on batch "
                             f"{args.batch or 32} x seq-len {args.seq_len or 100}",
                       "--seq-len, --batch, --hidden or --layers")
        return
    from pathlib import Path

    from .io import read_metadata

    path = Path(args.checkpoint)
    doc = read_metadata(path / "checkpoint.safetensors" if path.is_dir() else path)
    config, train = doc.get("model_config") or {}, doc.get("train_config") or {}
    try:
        hidden, layers = int(config.get("hidden_size", 1)), int(config.get("num_layers", 1))
        seq_len = args.seq_len or int(train.get("seq_len", 100))
    except (TypeError, ValueError):
        return  # a damaged config: diagnose's loader names it
    need = sequence_model_bytes(batch=args.batch or 16, seq_len=seq_len, hidden=hidden, layers=layers,
                                cell=str(config.get("cell", "lstm")), features=len(doc.get("vocab") or ()) + 64)
    require_memory(need, f"diagnosing {path} on batch {args.batch or 16} x seq-len {seq_len}",
                   "--seq-len or --batch")
    vocab = doc.get("vocab")
    if args.text and isinstance(vocab, list):
        unknown = sorted(set(args.text) - set(vocab))
        if unknown:
            raise ValueError(f"--text has characters the model never saw: {', '.join(map(repr, unknown[:10]))}; "
                             f"use characters from its vocabulary of {len(vocab)}")


def _check_demo(args) -> None:
    _check(args, {"steps": POSITIVE_INT, "seq_len": POSITIVE_INT, "hidden": POSITIVE_INT, "batch": POSITIVE_INT,
                  "gain": POSITIVE_REAL, "lr": POSITIVE_REAL, "clip": POSITIVE_REAL, "seed": SEED,
                  "window": POSITIVE_INT})
    check_out_dir(args.out)
    for T in getattr(args, "lengths", None) or []:  # bptt-cost: --seq-len repeated
        _check(argparse.Namespace(seq_len=T), {"seq_len": POSITIVE_INT})
    seq_len = max(args.lengths or [400]) if args.demo == "bptt-cost" else getattr(args, "seq_len", 10)
    need = sequence_model_bytes(batch=getattr(args, "batch", 32), seq_len=seq_len, hidden=args.hidden,
                                layers=1, features=128)
    require_memory(need, f"demo {args.demo} (hidden {args.hidden}, seq-len {seq_len})",
                   "--seq-len, --hidden or --batch")


CHECKS = {"experiment": _check_experiment, "diagnose": _check_diagnose, "demo": _check_demo,
          "explore": _check_explore}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent neural networks from first "
                                     "principles: train, sample, and see memory and BPTT at work.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # every command does BLAS work: each takes the ceiling
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="use at most N BLAS threads (default: OPENBLAS_NUM_THREADS, else every "
                                  "core); the per-step GEMMs use one either way")
    return parser


def _os_error_line(error: OSError) -> str:
    """'PATH: cause' (or 'PATH -> PATH2: cause'); the cause without Python's [Errno N] prefix."""
    cause = error.strerror or str(error)
    where = error.filename
    if where is None:
        return cause
    return f"{where}{f' -> {error.filename2}' if error.filename2 else ''}: {cause}"


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    for stream in ("stdout", "stderr"):  # started with >&- : write into nothing rather than crash
        if getattr(sys, stream) is None:
            setattr(sys, stream, open(os.devnull, "w"))
    importing_cells = False
    try:  # the user's cells first: the parser lists them among the choices
        from .nn.cells import load_cell_files
        from .train import NothingToDo, TrainingDiverged

        importing_cells = bool(os.environ.get("RNNLAB_CELLS"))
        load_cell_files()
    except ValueError as error:
        print(f"rnnlab: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # while modules or cell files import: as anywhere else, one line and 130
        command = next((a for a in (sys.argv[1:] if argv is None else list(argv))[:1] if not a.startswith("-")), "")
        during = " while importing the RNNLAB_CELLS files" if importing_cells else ""
        print(f"\nrnnlab{' ' + command if command else ''}: interrupted{during}", file=sys.stderr)
        return 130
    args = build_parser().parse_args(argv)
    name = f"rnnlab {args.command}"
    try:
        check = getattr(args, "check", None) or CHECKS.get(args.command)
        if check is not None:
            check(args)
        if args.threads is not None:
            from .settings import settings

            settings.threads = args.threads
        return args.run(args)
    except BrokenPipeError:  # `rnnlab generate | head`: the reader has all it wanted
        _quiet_stdout()
        return 0
    except KeyboardInterrupt as interrupt:  # a sweep's says how many runs it kept
        print(f"\n{name}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    except NothingToDo as done:
        print(f"{name}: {done}", file=sys.stderr)
        return 0
    except (DataError, CheckpointError, TrainingDiverged, ValueError, TypeError, OSError, ImportError,
            MemoryError) as error:
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        if isinstance(error, OSError):
            message = _os_error_line(error)
        elif isinstance(error, MemoryError):
            message = f"out of memory ({error or 'an allocation failed'}); use smaller sizes"
        else:
            message = str(error)
        print(f"{name}: error: {' '.join(message.split())}", file=sys.stderr)  # one line, always
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
