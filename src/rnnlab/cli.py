"""The `rnnlab` command: train, generate, evaluate (and the lecture's demos and figures).

Every option maps onto a field of a configuration dataclass; errors in the user's input print one
clear line and exit with status 2, never a traceback (set RNNLAB_DEBUG=1 to see one).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import fields

from .data.text import DataError
from .io import CheckpointError

EXIT_USAGE = 2

TRAIN_HELP = {
    "data": "text to train on: a file path, an http(s) URL, 'tinyshakespeare' (downloaded once and cached), "
            "or nothing for the built-in corpus (Python's own standard-library source)",
    "model": "recurrent cell: lstm, gru, rnn (tanh) or rnn_relu",
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
}


def _add_train(sub) -> None:
    from .train import OPTIMIZERS, TrainConfig
    from .models import CELLS

    p = sub.add_parser("train", help="train a character-level model on a text",
                       description="Train a character-level RNN/LSTM/GRU with truncated BPTT. With no "
                                   "options it trains on the built-in corpus for a few minutes.")
    choices = {"model": CELLS, "optimizer": tuple(OPTIMIZERS), "clip_mode": ("norm", "value"),
               "init": ("orthogonal", "uniform"), "dtype": ("float32", "float64")}
    for field in fields(TrainConfig):
        name = field.name
        flag = "--" + name.replace("_", "-")
        default = field.default
        help_text = f"{TRAIN_HELP[name]} (default: {default})"
        if name == "random_offset":
            p.add_argument("--no-random-offset", dest=name, action="store_false", default=argparse.SUPPRESS,
                           help="start every epoch at the beginning of the streams")
            continue
        kind = {"steps": int, "epochs": float, "clip": float, "eval_batches": int, "data": str}.get(name, type(default))
        p.add_argument(flag, dest=name, type=kind, default=argparse.SUPPRESS, choices=choices.get(name),
                       metavar=None if name in choices else name.upper(), help=help_text)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint "
                   "(bit-identical to a run never interrupted); --steps may extend it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from .train import TrainConfig, Trainer

    settings = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        extra = sorted(set(settings) - {"steps"})
        if extra:
            raise ValueError(f"--resume continues a run with its own settings; only --steps may be given "
                             f"(got {', '.join('--' + k.replace('_', '-') for k in extra)})")
        trainer = Trainer.resume(args.resume, steps=settings.get("steps"), progress=not args.no_progress)
    else:
        trainer = Trainer(TrainConfig(**settings), progress=not args.no_progress)
    result = trainer.fit()
    print(f"\n--- a sample from the model (step {result.steps}) ---\n{result.sample}\n---")
    val = f", validation {result.val_loss:.3f} nats/char = {result.val_bpc:.3f} bits/char" if result.val_loss else ""
    print(f"trained {result.steps} steps in {result.seconds:.0f} s: train loss {result.train_loss:.3f} nats/char{val}")
    print(f"checkpoint: {result.checkpoint}")
    if result.plot:
        print(f"loss curve: {result.plot}")
    print(f"more text:  rnnlab generate {result.run_dir} --length 500")
    return 0


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a trained model",
                       description="Sample text from a checkpoint, streamed to the terminal.")
    p.add_argument("checkpoint", help="a run directory or a checkpoint .safetensors file")
    p.add_argument("--prime", default="", help="text to start from, read in one forward pass (default: a newline)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1: safer, more repetitive; above 1: more surprising (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    p.set_defaults(run=_run_generate)


def _run_generate(args) -> int:
    from .models import load_char_model
    from .sample import generate

    model, vocab, _ = load_char_model(args.checkpoint)
    if args.prime:
        vocab.encode(args.prime, source="--prime")  # fail before printing anything
        sys.stdout.write(args.prime)
    generate(model, vocab, args.prime, args.length, args.temperature, args.top_k, args.seed,
             on_text=lambda c: (sys.stdout.write(c), sys.stdout.flush()))
    sys.stdout.write("\n")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model's loss on a text",
                       description="Cross-entropy of a checkpoint on the validation split (last 10%%) of a "
                                   "text, in nats and bits per character.")
    p.add_argument("checkpoint", help="a run directory or a checkpoint .safetensors file")
    p.add_argument("--data", default=None, help="the text (default: the one the model was trained on)")
    p.add_argument("--split", choices=("val", "all"), default="val", help="last 10%% (val) or the whole text")
    p.add_argument("--batch", type=int, default=32, help="parallel streams (default: 32)")
    p.add_argument("--seq-len", type=int, default=128, help="steps per chunk (default: 128)")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from .data.text import load_text, split_text
    from .models import load_char_model
    from .train import evaluate

    model, vocab, ckpt = load_char_model(args.checkpoint)
    source = args.data if args.data is not None else (ckpt.train_config or {}).get("data")
    text, description = load_text(source)
    ids = vocab.encode(text, source=description)
    if args.split == "val":
        ids = split_text(ids, 0.1)[1]
    loss = evaluate(model, ids, args.batch, args.seq_len, source=f"{args.split} split of {description}")
    print(f"{description} ({args.split}, {len(ids):,} characters): {loss:.4f} nats/char = "
          f"{loss / math.log(2):.4f} bits/char")
    return 0


def _add_figures(sub) -> None:
    p = sub.add_parser("figures", help="draw the lecture's figures (feed-forward vs recurrent, the four "
                                       "kinds, the unrolled net, the LSTM cell)")
    p.add_argument("--out", default="figures", help="output directory (default: figures)")
    p.add_argument("--format", dest="formats", action="append", choices=("png", "svg", "pdf"),
                   help="file format; repeat for several (default: png and svg)")
    p.set_defaults(run=_run_figures)


def _run_figures(args) -> int:
    from .figures import draw_all

    for path in draw_all(args.out, formats=tuple(args.formats or ("png", "svg"))):
        print(path)
    return 0


def _add_diagnose(sub) -> None:
    from .demos import add_diagnose_command

    add_diagnose_command(sub)


def _add_demo(sub) -> None:
    from .demos import add_demo_command

    add_demo_command(sub)


def _add_experiment(sub) -> None:
    from .experiments import add_experiment_command

    add_experiment_command(sub)


COMMANDS = [_add_train, _add_generate, _add_evaluate, _add_experiment, _add_diagnose, _add_demo, _add_figures]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent neural networks from first "
                                     "principles: train, sample, and see memory and BPTT at work.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    from .train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataError, CheckpointError, TrainingDiverged, ValueError, TypeError, OSError, ImportError) as error:
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        print(f"rnnlab {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nrnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
