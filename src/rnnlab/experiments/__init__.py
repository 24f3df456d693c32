"""The lecture's claims as experiments anyone can rerun: `rnnlab experiment NAME`.

    rnnlab experiment neurone                       # feed-forward vs RNN, next char per position
    rnnlab experiment adding --T 100,200 --jobs 2   # tanh RNN vs LSTM vs GRU across long gaps
    rnnlab experiment temporal-order --seeds 0-4 --engine dask --jobs 2   # mean ± std over 5 seeds
    rnnlab experiment horizon --seeds 0-2           # success rate against T, one line per cell
    rnnlab experiment copy --cells lstm --T 100
    rnnlab experiment digits                        # 8x8 digits row by row (T=8), pixel by pixel (T=64)
    rnnlab experiment seq2seq                       # reverse strings, add numbers written as text

    from rnnlab.experiments import run_experiment
    result = run_experiment("adding", cells=["lstm"], Ts=[50], steps=300, out="runs/adding")
    print(result.table)                             # also in result.run_dir: results.json, table.md, adding.png

Each run of a sweep (one cell, one T) trains one model with Adam and gradient clipping through
`rnnlab.train.optimize`, on fresh batches from the seeded task generators in
`rnnlab.data.tasks` (digits: a fixed train/test split), then measures a metric on a held-out test
set next to the task's trivial baseline. Every configuration runs once per seed (`seeds`); the
table gives mean ± sample std and, where the task has a success threshold, how many seeds passed
it. Runs are independent, so an engine (joblib, Dask, Ray) spreads them over workers; the
numbers do not depend on the engine (each run seeds its own generators from its seed). Each
finished run is stored under `out`/runs/, keyed by its whole configuration: the same command
again reuses it, and Ctrl-C loses no finished run.

The package, by job: registry (experiments, defaults, validation: `plan`), runners (one run
each), engine (where runs execute), store (finished runs on disk), tables (Markdown), sweep
(`run_experiment`, files). The
command line is in `rnnlab.cli`, the plot in `rnnlab.plots`.
"""
from .engine import SweepInterrupted, run_spec
from .registry import EXPERIMENTS, Experiment, RunSpec, plan
from .runners import FF, N_TEST
from .sweep import ExperimentResult, run_experiment
from .tables import format_neurone, format_table

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "FF", "N_TEST", "RunSpec", "SweepInterrupted", "format_neurone",
           "format_table", "plan", "run_experiment", "run_spec"]
