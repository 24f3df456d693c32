"""The demos and `rnnlab diagnose` run end to end at tiny sizes, print their numbers, write their plots."""
import math

import numpy as np
import pytest

from rnnlab import demos
from rnnlab.cli import build_parser
from rnnlab.data.tasks import PROBLEMS
from rnnlab.diagnose import diagnose_fresh
from rnnlab.models import CELLS, ManyToMany, ManyToOne, task_model
from rnnlab.train import TrainConfig, Trainer


def run(argv):
    args = build_parser().parse_args(argv)
    return args.run(args)


def names(paths):
    return sorted(p.name for p in paths)


def test_exploding_blows_up_without_clipping_and_trains_with_it(tmp_path):
    lines = []
    # gain 2.5: at the demo's 2.0 this short run sits on the edge, blowing up or not with the last bit of rounding
    result = demos.run_exploding(steps=150, seq_len=40, hidden=16, gain=2.5, out=tmp_path, formats=("png",),
                                 record_every=50, log=lines.append)
    last = result.unclipped[-1]
    assert not (math.isfinite(last["loss"]) and math.isfinite(last["grad_norm"]))
    assert len(result.unclipped) < 150
    assert all(math.isfinite(r["loss"]) for r in result.clipped) and len(result.clipped) == 150
    assert result.clipped[-1]["loss"] < result.clipped[0]["loss"]
    assert result.verdict_at_start.kind == "exploding" and result.verdict_at_start.rate > 1
    assert result.verdict_unclipped.kind == "exploding"
    assert names(result.paths) == ["exploding_clipping.png", "exploding_flow_heatmap.png"]
    text = "\n".join(lines)
    assert "Without clipping" in text and "With clipping" in text and "blew up" in text


def test_vanishing_rnn_dies_lstm_reaches_further(tmp_path):
    lines = []
    result = demos.run_vanishing(seq_len=40, hidden=32, batch=4, out=tmp_path, formats=("png", "svg"),
                                 log=lines.append)
    v = result.verdicts
    noforget = {"LSTM, no forget gate"} if "lstm_noforget" in CELLS else set()
    assert set(v) == {"RNN", "GRU", "LSTM", "LSTM, PyTorch init"} | noforget
    assert v["RNN"].kind == "vanishing"
    assert v["LSTM"].kind == "healthy"
    assert v["LSTM"].start_ratio > 1e3 * v["RNN"].start_ratio
    assert v["LSTM, PyTorch init"].kind == "vanishing"
    assert names(result.paths) == ["vanishing_rnn_gru_lstm.png", "vanishing_rnn_gru_lstm.svg"]
    assert any(line.startswith("- RNN : vanishing") for line in lines)
    if noforget:  # along c the gradient passes whole without f, shrinks by f per step with it
        reach = {k: result.flows[k].c[0][0] / result.flows[k].c[0][-1] for k in ("LSTM", "LSTM, no forget gate")}
        assert reach["LSTM, no forget gate"] > 1e3 * reach["LSTM"]
        assert any(line.startswith("- Without the forget gate") for line in lines)


@pytest.mark.parametrize("task", ["adding", "temporal_order", "copy_memory", "sine"])
def test_vanishing_runs_on_every_task(tmp_path, task):
    result = demos.run_vanishing(task=task, seq_len=30, hidden=8, batch=2, init="uniform", out=tmp_path,
                                 formats=("png",), log=lambda *a: None)
    noforget = {"LSTM, no forget gate"} if "lstm_noforget" in CELLS else set()
    assert set(result.verdicts) == {"RNN", "GRU", "LSTM"} | noforget  # no control: already PyTorch's init


def test_diagnose_a_fresh_model_trained_while_recording(tmp_path):
    lines = []
    result = diagnose_fresh("gru", "adding", seq_len=30, hidden=8, layers=2, batch=4, steps=6, record_every=2,
                                  out=tmp_path, formats=("png",), log=lines.append)
    assert len(result.history) == 6
    assert set(result.verdicts) == {"l0", "l1"} and result.jacobian.h.shape == (2, 30)
    assert result.jacobian.h[0, -1] == pytest.approx(1.0, rel=1e-5)
    assert names(result.paths) == ["gradient_flow.png", "gradient_flow_heatmap.png", "training.png"]
    assert any(line.startswith("verdict: ") for line in lines)


def test_diagnose_a_checkpoint_from_rnnlab_train(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 200)
    config = TrainConfig(data=str(corpus), model="lstm", hidden=8, layers=2, embedding=4, seq_len=16, batch=4,
                         steps=2, warmup=1, eval_every=2, eval_batches=1, sample_every=100, sample_length=5,
                         save_every=2, out=str(tmp_path / "run"))
    Trainer(config, progress=False, log=lambda *a: None).fit()
    out = tmp_path / "diag"
    assert run(["diagnose", str(tmp_path / "run"), "--out", str(out), "--batch", "2", "--text", "the lazy dog"]) == 0
    printed = capsys.readouterr().out
    assert "2-layer LSTM" in printed and "spectral radius" in printed and "reading 12 characters" in printed
    assert sorted(p.name for p in out.iterdir()) == ["gradient_flow.png", "gradient_flow.svg", "lstm_gates.png",
                                                     "lstm_gates.svg"]


def test_cli_demos_parse_and_run(tmp_path, capsys):
    assert run(["demo", "exploding", "--steps", "30", "--seq-len", "30", "--hidden", "8", "--out", str(tmp_path),
                "--format", "png"]) == 0
    assert run(["demo", "vanishing", "--task", "adding", "--seq-len", "30", "--hidden", "8", "--batch", "2",
                "--out", str(tmp_path), "--format", "svg"]) == 0
    assert run(["diagnose", "--model", "rnn", "--task", "text", "--seq-len", "20", "--hidden", "8", "--batch", "2",
                "--steps", "2", "--record-every", "1", "--out", str(tmp_path / "d"), "--format", "png"]) == 0
    printed = capsys.readouterr().out
    assert "rnnlab demo exploding" in printed and "rnnlab demo vanishing" in printed and "rnnlab diagnose" in printed
    assert {p.name for p in tmp_path.iterdir()} >= {"exploding_clipping.png", "vanishing_rnn_gru_lstm.svg"}


@pytest.mark.parametrize("argv, message", [
    (["diagnose", "runs/x", "--model", "rnn"], "fresh model"),
    (["diagnose", "--seq-len", "0"], "seq-len"),
    (["diagnose", "runs/x", "--batch", "0"], "batch"),
    (["diagnose", "--task", "copy_memory", "--seq-len", "15"], "copy_memory"),
    (["demo", "exploding", "--lr", "-1"], "lr"),
    (["demo", "vanishing", "--hidden", "0"], "hidden"),
])
def test_cli_user_errors_are_value_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        run(argv)


def test_cli_rejects_unknown_choices():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "imploding"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diagnose", "--task", "chess"])


def test_task_model_reads_last_step_or_every_step():
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    last = task_model(PROBLEMS["adding"], "lstm", 4, rng=0)
    out = last(x)
    assert isinstance(last, ManyToOne) and out.shape == (3, 1)
    last.backward(np.ones_like(out), record_flow=True)
    assert last.rnn.grad_flow["h"].shape == (1, 5, 3, 4)
    every = task_model(PROBLEMS["sine"], "gru", 4, rng=0)
    assert isinstance(every, ManyToMany) and every(x[..., :1]).shape == (3, 5, 1)


# -- one-to-many and the cost of BPTT ---------------------------------------------------------------
def test_one_to_many_writes_every_word_from_its_first_letter(tmp_path):
    from rnnlab.display import Figure

    lines = []
    result = demos.one_to_many(out=tmp_path, formats=("png",), log=lines.append)
    assert result.correct == len(result.words) == len(demos.WORDS_BY_LETTER)
    assert all(result.written[w[0]] == w for w in result.words)
    assert result.p_letter.shape == (len(result.words), max(map(len, result.words)) + 1)
    assert result.losses[-1] < 0.05 * result.losses[0]
    right = {step: sum(written[w[0]] == w for w in result.words) for step, written in result.snapshots.items()}
    assert list(right) == [5, 10, 20, 100] and right[5] < right[100] and result.snapshots[100] == result.written
    assert isinstance(result.figure, Figure) and names(result.paths) == ["one_to_many.png"]
    assert result.summary == "\n".join(lines) and f"{len(result.words)} of {len(result.words)} words" in lines[1]


def test_one_to_many_needs_one_word_per_first_letter():
    with pytest.raises(ValueError, match="start with a different letter"):
        demos.one_to_many(words=("neve", "nero"), log=None)


def test_bptt_cost_full_grows_with_T_truncated_stays_flat(tmp_path):
    lengths = (10, 20, 40, 160)  # at T = 160 full BPTT's activations dwarf truncation's fixed ~0.15 MB
    result = demos.bptt_cost(lengths=lengths, window=10, hidden=16, batch=4, repeats=1, out=tmp_path,
                             formats=("png",), log=None)
    rows = {r["T"]: r for r in result.rows}
    full = [rows[T]["full_mb"] for T in lengths]
    truncated = [rows[T]["truncated_mb"] for T in lengths]
    assert all(b > a for a, b in zip(full, full[1:])) and full[-1] > 4 * full[0]  # activations kept per step
    assert max(truncated) < 1.2 * min(truncated) and truncated[-1] < full[-1] / 4   # one chunk's at a time
    assert rows[10]["missed"] < 1e-6 < rows[20]["missed"]   # T = k: the same gradient; beyond: cut terms
    assert all(r[key] > 0 for r in result.rows for key in ("full_ms", "truncated_ms", "truncated_total_ms"))
    assert names(result.paths) == ["bptt_cost.png"] and "T = 160" in result.summary


def test_cli_new_demos_run_and_refuse_bad_lengths(tmp_path, capsys):
    from rnnlab.cli import main

    assert run(["demo", "one-to-many", "--steps", "5", "--hidden", "8", "--out", str(tmp_path), "--format", "png"]) == 0
    assert run(["demo", "bptt-cost", "--seq-len", "8", "--seq-len", "16", "--window", "8", "--hidden", "8",
                "--batch", "2", "--out", str(tmp_path), "--format", "png"]) == 0
    printed = capsys.readouterr().out
    assert "rnnlab demo one-to-many" in printed and "rnnlab demo bptt-cost" in printed
    assert {"one_to_many.png", "bptt_cost.png"} <= {p.name for p in tmp_path.iterdir()}
    assert main(["demo", "bptt-cost", "--seq-len", "0"]) != 0
    assert "--seq-len must be an integer >= 1" in capsys.readouterr().err


# -- what the README says about the demos is what the seeded demos produce -------------------------------
def _readme_lecture() -> str:
    """The README's "The lecture, made runnable" section, its line breaks folded into spaces."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("## The lecture, made runnable")
    return " ".join(text[start:text.index("\n## ", start + 1)].split())


def _says(pattern: str) -> tuple[str, ...]:
    import re

    found = re.search(pattern, _readme_lecture())
    assert found, f"the README no longer says anything matching {pattern!r}: update this test with it"
    return found.groups()


def _close(stated: str, measured: float, rel: float = 0.02) -> bool:
    return math.isclose(float(stated), measured, rel_tol=rel)


def test_readme_exploding_gradient_numbers_are_the_demos():
    start, million, blowup, what, mse, baseline = _says(
        r"grows from (\d+) at step 1 past 1e6 at step (\d+), and at step (\d+) the gradient is (nan|inf)"
        r".*? held-out MSE of ([\d.]+), against ([\d.]+) for")
    result = demos.run_exploding(out=None, log=None)  # the command's defaults, seed 0
    assert round(result.unclipped[0]["grad_norm"]) == int(start)
    assert result.first_step_above(1e6) == int(million)
    assert result.blowup_step == int(blowup) and f"{result.unclipped[-1]['grad_norm']}" == what
    assert _close(mse, result.test_loss) and _close(baseline, result.baseline, 0.03)
    assert f"at step {blowup} the loss is" in result.summary


def test_readme_vanishing_gradient_numbers_are_the_demos():
    fraction, steps, rate, lstm_first = _says(r"falls below (\S+) of its final value within (\d+) steps "
                                              r"\(x([\d.]+) per step\).*? still carries (\S+) to the first step")
    result = demos.run_vanishing(out=None, log=None)
    rnn, lstm = result.verdicts["RNN"], result.verdicts["LSTM"]
    assert float(fraction) == 1e-3 and rnn.steps_to_fraction == int(steps) and abs(rnn.rate - float(rate)) <= 0.006
    assert 0.5 < lstm.start_ratio / float(lstm_first) < 1.5  # stated to one significant digit
    assert result.verdicts["LSTM, PyTorch init"].kind == "vanishing"  # "the same LSTM vanishes too"


def test_readme_neurone_numbers_are_the_experiments(tmp_path):
    from rnnlab.experiments import run_experiment

    p_ff, p_rnn, acc_ff, acc_rnn = _says(r"After \"u\" the feed-forward net gives the right next letter a "
                                         r"probability of ([\d.]+),.*?gives it ([\d.]+)\. Over all positions they "
                                         r"guess the right letter with accuracy ([\d.]+) and ([\d.]+)")
    ff, rnn = run_experiment("neurone", out=tmp_path, progress=False).rows
    after_u = [p["reads"] for p in ff["positions"]].index("u")
    assert f"{ff['positions'][after_u]['p_next']:.2f}" == p_ff == f"{ff['positions'][after_u]['best_current_char']:.2f}"
    assert f"{rnn['positions'][after_u]['p_next']:.2f}" == p_rnn
    assert (f"{ff['value']:.3f}", f"{rnn['value']:.3f}") == (acc_ff, acc_rnn)
    assert (f"{ff['baseline']:.3f}", f"{rnn['baseline']:.3f}") == (acc_ff, acc_rnn)  # "each exactly its Bayes limit"
    # EXPERIMENTS.md prints the same run's table, position by position
    from pathlib import Path

    from rnnlab.experiments import format_neurone

    table = [line for line in format_neurone([ff, rnn]).splitlines() if line.startswith("|")]
    assert "\n".join(table) in (Path(__file__).resolve().parents[1] / "EXPERIMENTS.md").read_text(encoding="utf-8")


def test_readme_bptt_cost_and_one_to_many_numbers_are_the_demos():
    full_first, first_T, full_last, last_T, window, truncated, missed_T, missed = _says(
        r"peak memory grows from ([\d.]+) MB at T = (\d+) to ([\d.]+) MB at T = (\d+).*? chunks of (\d+) steps "
        r"stays at ([\d.]+) MB per update.*? at T = (\d+) its gradient differs from the full one by (\d+)%")
    result = demos.bptt_cost(log=None)
    rows = {r["T"]: r for r in result.rows}
    assert result.window == int(window) and int(missed_T) == int(last_T) == max(rows)
    assert _close(full_first, rows[int(first_T)]["full_mb"], 0.1) and _close(full_last, rows[int(last_T)]["full_mb"], 0.1)
    assert all(_close(truncated, r["truncated_mb"], 0.1) for r in result.rows)
    assert abs(100 * rows[int(missed_T)]["missed"] - int(missed)) < 1.5
    right, total = _says(r"write a word from its first letter alone, feeding back each letter it writes: "
                         r"(\d+) words of (\d+)")
    words = demos.one_to_many(log=None)
    assert (words.correct, len(words.words)) == (int(right), int(total))
