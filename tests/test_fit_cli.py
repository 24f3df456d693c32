"""rnnlab fit / predict / evaluate RUN DATA on small tables, as a user runs them; the run directory's
safety (refuse, overwrite, exact resume); bad tables give one line and leave nothing behind."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def series(tmp_path):
    t = np.arange(240)
    value = np.sin(t / 6) + 0.05 * np.random.default_rng(0).normal(size=t.size)
    return _write(tmp_path / "series.csv", ["t", "value"], zip(t, np.round(value, 5)))


@pytest.fixture
def texts(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(120):
        label = int(rng.integers(0, 2))
        rows.append(["".join(rng.choice(list("abc" if label else "xyz"), size=rng.integers(3, 10))),
                     ["neg", "pos"][label]])
    return _write(tmp_path / "texts.csv", ["text", "label"], rows)


def test_fit_forecast_end_to_end_in_a_subprocess(tmp_path, series):
    """What CI runs: the console entry point, a CSV, every file written, predict and evaluate."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = tmp_path / "run"

    def rnnlab_cli(*args):
        return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=300)

    done = rnnlab_cli("fit", series, "--task", "forecast", "--target", "value", "--window", "12", "--horizon", "2",
                      "--epochs", "20", "--lr", "0.01", "--hidden", "16", "--out", run, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "validation rmse: model" in done.stdout and "baseline" in done.stdout
    for name in ("model.safetensors", "history.json", "metrics.json", "config.json", "learning_curves.png",
                 "forecast.png", "checkpoint.safetensors"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"]["rmse"] < metrics["baseline"]["rmse"]  # a sine is easier than persistence says
    assert len(json.loads((run / "history.json").read_text())["rows"]) >= 6
    done = rnnlab_cli("predict", run, series, "--out", tmp_path / "preds.csv")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "preds.csv").read_text().splitlines()
    assert lines[0] == "window_end_row,value_t+1,value_t+2" and len(lines) == 1 + 240 - 12 + 1
    done = rnnlab_cli("evaluate", run, series)
    assert done.returncode == 0 and "model:    mse" in done.stdout and "persistence" in done.stdout


def test_forecast_metrics_are_the_models_in_original_units(tmp_path, series):
    assert main(["fit", str(series), "--task", "forecast", "--target", "value", "--window", "8", "--epochs", "2",
                 "--hidden", "8", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    from rnnlab.data.tables import forecast_data

    model = rnnlab.load(tmp_path / "r")
    fd = forecast_data(str(series), "value", window=8)
    predicted = fd.inverse_y(model.predict(fd.X_val))
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["model"]["mse"] == pytest.approx(float(np.mean((predicted - fd.y_val_raw) ** 2)), rel=1e-6)
    assert metrics["baseline"]["mse"] == pytest.approx(float(np.mean((fd.baseline_val - fd.y_val_raw) ** 2)))


def test_fit_classify_predict_evaluate(tmp_path, texts, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(texts), "--task", "classify", "--text-column", "text", "--label-column", "label",
                 "--epochs", "8", "--hidden", "16", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "validation accuracy: model" in out and "majority class" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"]["accuracy"] > 0.9 and metrics["baseline"]["accuracy"] <= 0.6
    assert np.array(metrics["confusion"]).sum() == metrics["validation_rows"]
    assert main(["predict", str(run), str(texts), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["row", "label", "p_neg", "p_pos"] and len(rows) == 121
    capsys.readouterr()
    assert main(["evaluate", str(run), str(texts)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out
    model = rnnlab.load(run / "model.safetensors")
    assert model.preprocessing["labels"] == ["neg", "pos"] and model.preprocessing["vocab"][0] == ""


def test_the_run_directory_is_kept_safe(tmp_path, series, capsys):
    run = str(tmp_path / "run")
    args = ["fit", str(series), "--task", "forecast", "--target", "value", "--window", "8", "--epochs", "2",
            "--hidden", "4", "--out", run, "--no-progress"]
    assert main(args) == 0
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != before


def test_resume_is_exact(tmp_path, series, capsys):
    common = [str(series), "--task", "forecast", "--target", "value", "--window", "8", "--hidden", "8",
              "--patience", "0", "--no-progress"]
    assert main(["fit", *common, "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    assert main(["fit", "--resume", str(tmp_path / "a"), "--epochs", "4", "--no-progress"]) == 0
    assert main(["fit", *common, "--epochs", "4", "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / r / "history.json").read_text()) for r in "ab")
    assert a["rows"] == b["rows"] and len(a["rows"]) == 4
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["fit", "--resume", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert main(["fit", "--resume", str(tmp_path / "a"), "--hidden", "4"]) == 2


def test_an_interrupted_fit_resumes_to_the_same_numbers(tmp_path, series, capsys, monkeypatch):
    import rnnlab.fitting

    common = [str(series), "--task", "forecast", "--target", "value", "--window", "8", "--hidden", "8",
              "--patience", "0", "--epochs", "4", "--no-progress"]
    real, calls = rnnlab.fitting._measure, []

    def ctrl_c_in_epoch_3(*args, **kwargs):  # the validation pass of epoch 3 is cut short
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rnnlab.fitting, "_measure", ctrl_c_in_epoch_3)
    assert main(["fit", *common, "--out", str(tmp_path / "a")]) == 130
    err = capsys.readouterr().err
    assert "holds epoch 2" in err and f"rnnlab fit --resume {tmp_path / 'a'}" in err
    monkeypatch.setattr(rnnlab.fitting, "_measure", real)
    assert main(["fit", "--resume", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["fit", *common, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / r / "history.json").read_text()) for r in "ab")
    assert a["rows"] == b["rows"] and len(a["rows"]) == 4


def test_sizes_beyond_memory_are_refused_first(tmp_path, series, capsys):
    assert main(["fit", str(series), "--task", "forecast", "--target", "value", "--hidden", "2000000",
                 "--out", str(tmp_path / "r")]) == 2
    assert "memory" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("header, rows, options, words", [
    (["t", "value"], [[i, i] for i in range(50)], ["--target", "nope"], "no target column 'nope'"),
    (["t", "value"], [[i, "x"] for i in range(50)], ["--target", "value"], "value"),
    (["t", "value"], [[i, i] for i in range(10)], ["--target", "value", "--window", "24"], "fewer than one window"),
    (["t", "value"], [[i, "" if i == 7 else i] for i in range(60)], ["--target", "value"], "fillna"),
])
def test_bad_tables_for_forecast(tmp_path, capsys, header, rows, options, words):
    data = _write(tmp_path / "d.csv", header, rows)
    window = [] if "--window" in options else ["--window", "4"]
    code = main(["fit", str(data), "--task", "forecast", *window, *options, "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()  # nothing left behind


def test_evaluate_gives_persistence_when_the_target_is_not_an_input(tmp_path, capsys):
    t = np.arange(120)
    data = _write(tmp_path / "d.csv", ["a", "b"], zip(np.round(np.sin(t / 5), 4), np.round(np.cos(t / 5), 4)))
    run = str(tmp_path / "r")
    assert main(["fit", str(data), "--task", "forecast", "--target", "a", "--features", "b", "--window", "5",
                 "--epochs", "1", "--hidden", "4", "--out", run, "--no-progress"]) == 0
    fitted = json.loads((tmp_path / "r" / "metrics.json").read_text())["baseline"]["mse"]
    capsys.readouterr()
    assert main(["evaluate", run, str(data)]) == 0
    out = capsys.readouterr().out
    assert "persistence" in out
    a = np.round(np.sin(t / 5), 4)
    truth, last = a[5:], a[4:-1]  # window i reads rows i..i+4 and forecasts row i+5
    assert f"mse {np.mean((truth - last) ** 2):.4g}" in out
    assert fitted > 0


def test_fillna_lets_a_gap_through(tmp_path):
    data = _write(tmp_path / "d.csv", ["t", "value"], [[i, "" if i == 7 else np.sin(i / 5)] for i in range(80)])
    assert main(["fit", str(data), "--task", "forecast", "--target", "value", "--window", "6", "--fillna",
                 "interpolate", "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "r"), "--no-progress"]) == 0


@pytest.mark.parametrize("rows, words", [
    ([["abc", "x"] for _ in range(20)], "single class"),
    ([["", "x" if i % 2 else "y"] for i in range(20)], "is empty"),
])
def test_bad_tables_for_classify(tmp_path, capsys, rows, words):
    data = _write(tmp_path / "d.csv", ["text", "label"], rows)
    code = main(["fit", str(data), "--task", "classify", "--text-column", "text", "--label-column", "label",
                 "--out", str(tmp_path / "r"), "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_options_are_checked_before_reading(tmp_path, series, capsys):
    for extra, words in [(["--task", "forecast"], "--target"), (["--task", "classify"], "--label-column"),
                         (["--task", "forecast", "--target", "value", "--window", "0"], "--window"),
                         (["--task", "forecast", "--target", "value", "--val-fraction", "1"], "--val-fraction")]:
        assert main(["fit", str(series), *extra, "--out", str(tmp_path / "r")]) == 2
        assert words in capsys.readouterr().err
    assert main(["fit", "--out", str(tmp_path / "r")]) == 2
    assert "needs DATA" in capsys.readouterr().err


def test_train_refuses_a_table(tmp_path, series, capsys):
    assert main(["train", "--data", str(series), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "rnnlab fit" in err and "--force-text" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_evaluate_dispatches_on_what_the_run_holds(tmp_path, series, capsys):
    run = str(tmp_path / "r")
    assert main(["fit", str(series), "--task", "forecast", "--target", "value", "--window", "8", "--epochs", "1",
                 "--hidden", "4", "--out", run, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", run]) == 2
    assert "give the table" in capsys.readouterr().err


def test_predict_refuses_a_model_without_preprocessing(tmp_path, series, capsys):
    rnnlab.save(rnnlab.ManyToOne("lstm", 1, 4, 1), tmp_path / "m.safetensors")
    assert main(["predict", str(tmp_path / "m.safetensors"), str(series)]) == 2
    assert "not made by rnnlab fit" in capsys.readouterr().err
