"""`rnnlab experiment`: every experiment runs end to end at a tiny size, the command writes its
table, JSON and plot, sweeps are the same in parallel, and bad arguments get clear errors."""
import json

import numpy as np
import pytest

from rnnlab.cli import build_parser
from rnnlab.experiments import EXPERIMENTS, plan, run_experiment

TINY = dict(steps=4, hidden=4, batch=8)
TINY_T = {"adding": [6], "copy": [3], "temporal-order": [10], "digits": [8], "sine": [5], "reverse": [3],
          "addition": [3]}


def parser():
    return build_parser()


def run_cli(argv):
    args = parser().parse_args(["experiment", *argv])
    return args.run(args)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if not EXPERIMENTS[n].tasks])  # umbrellas: own tests
def test_every_experiment_runs_tiny(name):
    result = run_experiment(name, Ts=TINY_T.get(name), **TINY)
    exp = EXPERIMENTS[name]
    assert len(result.rows) == len(exp.cells)
    for row in result.rows:
        assert row["task"] == name and row["metric"] == exp.metric
        assert np.isfinite(row["value"]) and np.isfinite(row["baseline"])
        assert len(row["losses"]) == 4 and row["seconds"] >= 0
    assert exp.metric in result.table and "baseline" in result.table
    assert result.files == [] and result.run_dir is None


def test_command_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "adding"
    code = run_cli(["adding", "--cells", "rnn,lstm", "--T", "6,8", "--steps", "5", "--hidden", "4", "--seed", "3",
                    "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for column in ("model", "hidden", "T", "metric", "baseline", "time"):
        assert column in printed
    assert "0.1667 (predict 1)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["command"] == ("rnnlab experiment adding --cells rnn,lstm --T 6,8 --steps 5 --hidden 4 --seed 3 "
                                  f"--out {out}")
    assert [(r["model"], r["T"]) for r in results["rows"]] == [("rnn", 6), ("lstm", 6), ("rnn", 8), ("lstm", 8)]
    assert all(r["seed"] == 3 and r["hidden"] == 4 for r in results["rows"])
    assert "| adding | lstm" in (out / "table.md").read_text()
    assert (out / "adding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_neurone_shows_ff_and_rnn_per_position(tmp_path, capsys):
    assert run_cli(["neurone", "--steps", "150", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "best P(next): this letter" in printed and "best P(next): whole prefix" in printed
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    ff, rnn = rows
    assert (ff["model"], rnn["model"]) == ("ff", "rnn")
    assert [p["reads"] + p["next"] for p in ff["positions"]] == ["^n", "ne", "eu", "ur", "ro", "on", "ne", "e$"]
    # the reference lines measure what the bars do: P(right next letter), at its best (e -> u: 1 of 11, 1 of 4)
    assert [p["best_current_char"] for p in ff["positions"]][2:4] == [1 / 11, 1 / 5]
    assert [p["best_prefix"] for p in rnn["positions"]][2:4] == [1 / 4, 1.0]
    assert ff["value"] <= ff["baseline"] + 1e-9  # one character cannot tell more than its Bayes limit
    assert rnn["value"] > ff["value"]            # the history does
    assert (tmp_path / "neurone.png").is_file()


def test_parallel_sweep_gives_the_same_numbers():
    kwargs = dict(cells=["rnn", "gru"], Ts=[5], steps=3, hidden=4, batch=4)
    serial = run_experiment("sine", jobs=1, **kwargs)
    parallel = run_experiment("sine", jobs=2, **kwargs)
    for a, b in zip(serial.rows, parallel.rows):
        assert (a["model"], a["losses"], a["value"]) == (b["model"], b["losses"], b["value"])


def test_seq2seq_runs_both_tasks():
    specs = plan("seq2seq", steps=2)
    assert [(s.experiment, s.T) for s in specs] == [("reverse", 8), ("addition", 7)]


def test_digits_T_selects_rows_or_pixels():
    assert [s.T for s in plan("digits")] == [8, 8, 64, 64]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(name="bogus"), ValueError, "unknown experiment 'bogus'; choose from neurone"),
    (dict(name="adding", cells=["lstm", "tanh"]), ValueError, "unknown cell 'tanh'"),
    (dict(name="adding", cells=["ff"]), ValueError, "unknown cell 'ff'"),
    (dict(name="adding", cells=["lstm", "lstm"]), ValueError, "listed twice"),
    (dict(name="digits", Ts=[16]), ValueError, "T must be 8 .* or 64"),
    (dict(name="addition", Ts=[8]), ValueError, "odd and >= 3"),
    (dict(name="temporal-order", Ts=[5]), ValueError, "T must be >= 10"),
    (dict(name="neurone", Ts=[10]), ValueError, "--T does not apply"),
    (dict(name="seq2seq", Ts=[10]), ValueError, "--T does not apply"),
    (dict(name="adding", steps=0), ValueError, "steps must be a positive integer"),
    (dict(name="adding", lr=-1.0), ValueError, "lr must be a positive number"),
    (dict(name="adding", seed=-1), ValueError, "seed must be a non-negative integer"),
    (dict(name="adding", Ts=[2.5]), TypeError, "T must be an integer"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        plan(**kwargs)


def test_bad_jobs():
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        run_experiment("neurone", steps=1, jobs=0)


def test_cli_parses_lists_and_rejects_junk(capsys):
    args = parser().parse_args(["experiment", "adding", "--cells", "lstm, gru", "--T", "50,100"])
    assert args.cells == ["lstm", "gru"] and args.Ts == [50, 100] and args.run.__name__ == "_run_experiment"
    with pytest.raises(SystemExit):
        parser().parse_args(["experiment", "adding", "--T", "50,abc"])
    assert "comma-separated list of int" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["experiment", "nope"])
