"""The rnnlab command: every bad input prints one clear line and exits non-zero, never a traceback."""
import subprocess
import sys

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.io import save_checkpoint, save_weights

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(200))
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "8", "--batch", "4",
        "--eval-every", "5", "--eval-batches", "2", "--sample-every", "100", "--sample-length", "10",
        "--no-progress"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, text_file):
    out = tmp_path / "run"
    assert main(["train", "--data", str(text_file), "--steps", "6", "--out", str(out), *TINY]) == 0
    return out


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_train_generate_evaluate(trained, capsys, text_file):
    code, out, _ = run_cli(capsys, "generate", str(trained), "--prime", "line", "--length", "40", "--seed", "1")
    assert code == 0 and out.startswith("line") and len(out.rstrip("\n")) >= 40
    code, out, _ = run_cli(capsys, "evaluate", str(trained), "--batch", "2", "--seq-len", "16")
    assert code == 0 and "bits/char" in out


@pytest.mark.parametrize("content,expected", [
    (None, "not found"),
    (b"", "empty"),
    (b"caf\xe9 au lait\n" * 100, "utf-8"),
    (b"short text\n", "needs at least 33"),
])
def test_bad_training_text(tmp_path, capsys, content, expected):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--data", str(path), "--steps", "2", "--out", str(tmp_path / "o"), *TINY)
    assert code == 2
    assert expected in err.lower()
    assert str(path) in err or "data.txt" in err


def test_unknown_character_in_prime(trained, capsys):
    code, out, err = run_cli(capsys, "generate", str(trained), "--prime", "Zürich")
    assert code == 2 and "'Z'" in err and "--prime" in err and out == ""


def test_corrupted_checkpoint(trained, capsys):
    ckpt = trained / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    code, _, err = run_cli(capsys, "generate", str(trained))
    assert code == 2 and "checkpoint.safetensors" in err


def test_checkpoint_of_another_model(tmp_path, capsys):
    path = tmp_path / "other.safetensors"
    save_checkpoint(path, model_config={"kind": "seq2seq", "hidden": 3}, model_state={"w": np.zeros(2)},
                    optimizer_state=None, step=1, vocab=None, rng_state=None, train_config=None)
    code, _, err = run_cli(capsys, "generate", str(path))
    assert code == 2 and "does not hold a character-level model" in err
    weights = tmp_path / "weights.safetensors"
    save_weights(weights, {"weight_ih_l0": np.zeros((4, 2), np.float32)})
    code, _, err = run_cli(capsys, "generate", str(weights))
    assert code == 2 and "rnnlab generate: error:" in err and "not an rnnlab checkpoint" in err


def test_resume_rejects_other_settings(trained, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", str(trained), "--hidden", "64")
    assert code == 2 and "--hidden" in err


def test_a_preset_fills_the_options_not_given(tmp_path, capsys, text_file):
    from rnnlab.cli import _train_settings, build_parser
    from rnnlab.train import PRESETS, TrainConfig

    args = build_parser().parse_args(["train", "--preset", "shakespeare", "--hidden", "8", "--data", str(text_file)])
    settings = _train_settings(args)
    assert settings["hidden"] == 8 and settings["data"] == str(text_file)  # given beside it: they win
    assert settings["dropout"] == PRESETS["shakespeare"]["dropout"] == 0.25 and settings["steps"] == 4000
    assert TrainConfig(**settings).layers == 2
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path), "--preset", "shakespeare")
    assert code == 2 and "--preset" in err


def test_bad_option_values(tmp_path, capsys, text_file):
    code, _, err = run_cli(capsys, "train", "--data", str(text_file), "--lr", "-1", "--out", str(tmp_path / "o"))
    assert code == 2 and "--lr must be a finite number > 0; got -1.0" in err
    with pytest.raises(SystemExit) as info:  # argparse's own errors: exit 2 with usage
        main(["train", "--model", "transformer"])
    assert info.value.code == 2


def test_console_entry_point_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rnnlab", "generate", str(tmp_path / "missing")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr
    help_text = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--help"], capture_output=True,
                               text=True, timeout=120).stdout
    for option in ("--data", "--model", "--hidden", "--layers", "--dropout", "--seq-len", "--batch", "--steps",
                   "--epochs", "--lr", "--optimizer", "--clip", "--out", "--resume", "--seed"):
        assert option in help_text


def test_text_hygiene_options(tmp_path, capsys):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(TEXT.replace("\n", "\r\n").encode())
    code, out, _ = run_cli(capsys, "train", "--data", str(crlf), "--steps", "2", "--out", str(tmp_path / "a"), *TINY)
    assert code == 0 and "200 Windows line endings (\\r\\n) read as \\n (--keep-crlf keeps them)" in out
    code, out, _ = run_cli(capsys, "train", "--data", str(crlf), "--steps", "2", "--out", str(tmp_path / "b"),
                           "--keep-crlf", *TINY)
    assert code == 0 and "Windows line endings" not in out
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(TEXT.replace("fox", "café").encode() + b"one bad \xe9 byte\n")
    code, _, err = run_cli(capsys, "train", "--data", str(mixed), "--steps", "2", "--out", str(tmp_path / "c"), *TINY)
    assert code == 2 and err.count("\n") == 1 and "--errors replace" in err and "byte offset" in err
    assert "iconv" not in err
    code, out, _ = run_cli(capsys, "train", "--data", str(mixed), "--steps", "2", "--out", str(tmp_path / "c"),
                           "--errors", "replace", *TINY)
    assert code == 0 and "1 undecodable byte sequence(s) read as U+FFFD" in out


def test_evaluate_max_chars_and_skip_unknown(trained, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "evaluate", str(trained), "--batch", "2", "--seq-len", "8", "--max-chars", "100",
                           "--split", "all")
    assert code == 0 and f"the first 100 of {len(TEXT):,} characters; --max-chars 0 reads all" in out
    code, out, _ = run_cli(capsys, "evaluate", str(trained), "--batch", "2", "--seq-len", "8", "--max-chars", "0")
    assert code == 0 and "the first" not in out
    other = tmp_path / "other.txt"
    other.write_text("line 1: the quick brown fox, Zürich\n" * 40, encoding="utf-8")
    code, _, err = run_cli(capsys, "evaluate", str(trained), "--data", str(other), "--batch", "2", "--seq-len", "8")
    assert code == 2 and "--skip-unknown" in err and "'Z'" in err
    code, out, err = run_cli(capsys, "evaluate", str(trained), "--data", str(other), "--batch", "2", "--seq-len", "8",
                             "--skip-unknown", "--split", "all")
    assert code == 0 and "skipped 120 character(s)" in err and "bits/char" in out
    code, _, err = run_cli(capsys, "evaluate", str(trained), "--max-chars", "-1")
    assert code == 2 and "--max-chars must be an integer >= 0" in err


def test_prime_with_unknown_characters_can_skip_them(trained, capsys):
    code, out, err = run_cli(capsys, "generate", str(trained), "--prime", "Zürich line", "--length", "5",
                             "--skip-unknown", "--seed", "0")
    assert code == 0 and "skipped 2 character(s) of --prime" in err and out.startswith("rich line")


@pytest.mark.parametrize("content, expected", [(bytes(range(256)) * 40, "does not look like text"),
                                               (b" \r\n\t\n", "only whitespace")])
def test_not_text_is_one_line(tmp_path, capsys, content, expected):
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--data", str(path), "--steps", "2", "--out", str(tmp_path / "o"), *TINY)
    assert code == 2 and err.count("\n") == 1 and expected in err
