"""Hostile input to the command line: every case exits 2 with one line naming the option (or file)
and what is allowed, no traceback, in well under 2 seconds and before any allocation; Ctrl-C exits
130 with its message on stderr in every command; a closed pipe ends quietly."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from rnnlab.cli import build_parser, main
from rnnlab.train import Trainer

from test_train import TEXT, make_trainer, tiny_config

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A text file, a trained run, and forged copies of its checkpoint."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    (root / "a_file").write_text("not a directory")
    make_trainer(tiny_config(root, steps=3, out=str(root / "run"))).fit()
    path = root / "run" / "checkpoint.safetensors"
    with safe_open(path, framework="np") as f:
        doc, tensors = json.loads(f.metadata()["rnnlab"]), {k: f.get_tensor(k) for k in f.keys()}
    forged = {"hidden": {"model_config": {**doc["model_config"], "hidden_size": 10**6}},
              "layers": {"model_config": {**doc["model_config"], "num_layers": 10**9}},
              "step": {"step": -5},
              "vocab": {"vocab": "abc"},
              "config": {"model_config": "string"}}
    for name, changes in forged.items():
        save_file(tensors, root / f"{name}.safetensors", metadata={"rnnlab": json.dumps({**doc, **changes})})
    big = {**tensors, "model.embedding.weight": np.zeros((10**5, 6), np.float32)}  # a tensor the config denies
    save_file(big, root / "shape.safetensors", metadata={"rnnlab": json.dumps(doc)})
    save_file(tensors, root / "nested.safetensors", metadata={"rnnlab": "[" * 100_000 + "]" * 100_000})
    (root / "planted").mkdir()
    (root / "planted" / ".lock").symlink_to(root / "a_file")  # a lock must never truncate what it points at
    return root


TRAIN = ["train", "--data", "{home}/text.txt", "--out", "{home}/new", "--steps", "2"]

CASES = {
    # option ranges: the option's flag and its allowed range
    "epochs inf": (["train", "--data", "{home}/text.txt", "--out", "{home}/new", "--epochs", "inf"],
                   "--epochs must be a finite number > 0; got inf"),
    "epochs nan": (["train", "--epochs", "nan"], "--epochs must be a finite number > 0; got nan"),
    "eval-batches -3": (TRAIN + ["--eval-batches", "-3"], "--eval-batches must be an integer >= 0 (0: the whole"),
    "sample-length -5": (TRAIN + ["--sample-length", "-5"], "--sample-length must be an integer >= 1; got -5"),
    "seed -1": (TRAIN + ["--seed", "-1"], "--seed must be an integer >= 0 (any integer from 0 up); got -1"),
    "lr nan": (TRAIN + ["--lr", "nan"], "--lr must be a finite number > 0; got nan"),
    "dropout 1": (TRAIN + ["--dropout", "1"], "--dropout must be a finite number in [0, 1); got 1.0"),
    "clip -1": (TRAIN + ["--clip", "-1"], "--clip must be a finite number >= 0 (0: no clipping); got -1.0"),
    "warmup -1": (TRAIN + ["--warmup", "-1"], "--warmup must be an integer >= 0; got -1"),
    "steps and epochs": (TRAIN + ["--epochs", "1"], "give --steps or --epochs, not both"),
    "out empty": (["train", "--out", ""], "--out must name a directory; got ''"),
    "out a file": (["train", "--out", "{home}/a_file"], "a_file: exists and is not a directory"),
    "out under a file": (["train", "--out", "{home}/a_file/run"], "which is a file"),
    "out in /proc": (["train", "--data", "{home}/text.txt", "--out", "/proc/rnnlab-x", "--steps", "2"],
                     "/proc/rnnlab-x"),
    "data empty": (["train", "--data", "", "--out", "{home}/new"], "--data must name a text"),
    # sizes that cannot fit: refused from the arithmetic, with bytes and the option to lower
    "hidden 10**6": (TRAIN + ["--hidden", "1000000"], "lower --hidden or --layers"),
    "layers 100000": (TRAIN + ["--layers", "100000"], "bytes) of memory"),
    "batch x seq-len": (TRAIN + ["--batch", "100000", "--seq-len", "100000"], "lower --batch or --seq-len"),
    "experiment T 10**9": (["experiment", "adding", "--T", "1000000000", "--out", "{home}/exp"],
                           "lower --T, --batch or --hidden"),
    "experiment T 0": (["experiment", "adding", "--T", "0"], "--T must be integers >= 1; got 0"),
    "experiment jobs 0": (["experiment", "adding", "--jobs", "0"], "--jobs must be an integer >= 1; got 0"),
    "experiment seed -1": (["experiment", "adding", "--seed", "-1"], "--seed must be an integer >= 0"),
    "diagnose seq-len 10**9": (["diagnose", "--seq-len", "1000000000", "--out", "{home}/diag"],
                               "lower --seq-len, --batch, --hidden or --layers"),
    "diagnose clip nan": (["diagnose", "--clip", "nan"], "--clip must be a finite number >= 0; got nan"),
    "diagnose run seq-len 10**9": (["diagnose", "{home}/run", "--seq-len", "1000000000", "--out", "{home}/diag"],
                                   "lower --seq-len or --batch"),
    "diagnose text": (["diagnose", "{home}/run", "--text", "XYZ", "--out", "{home}/diag"],
                      "--text has characters the model never saw: 'X', 'Y', 'Z'"),
    "demo hidden 10**6": (["demo", "vanishing", "--hidden", "1000000", "--out", "{home}/demo"], "bytes) of memory"),
    "demo gain inf": (["demo", "exploding", "--gain", "inf"], "--gain must be a finite number > 0; got inf"),
    "figures out a file": (["figures", "--out", "{home}/a_file"], "a_file: exists and is not a directory"),
    # generate and evaluate
    "temperature inf": (["generate", "{home}/run", "--temperature", "inf"], "--temperature must be a finite number > 0"),
    "temperature 0": (["generate", "{home}/run", "--temperature", "0"], "--temperature must be a finite number > 0"),
    "temperature nan": (["generate", "{home}/run", "--temperature", "nan"], "got nan"),
    "length -1": (["generate", "{home}/run", "--length", "-1"], "--length must be an integer >= 0; got -1"),
    "top-k 0": (["generate", "{home}/run", "--top-k", "0"], "--top-k must be an integer >= 1; got 0"),
    "generate seed -1": (["generate", "{home}/run", "--seed", "-1"], "--seed must be an integer >= 0"),
    "evaluate batch 0": (["evaluate", "{home}/run", "--batch", "0"], "--batch must be an integer >= 1; got 0"),
    # forged and damaged checkpoints: named, refused from the header before any allocation
    "forged hidden 10**6": (["generate", "{home}/hidden.safetensors"], "hidden.safetensors: its model config does "
                            "not match its tensors (model.rnn.weight_ih_l0: config says (4000000, 6), file has (48, 6)"),
    "forged layers 10**9": (["generate", "{home}/layers.safetensors"], "says 1000000000 layers but the file holds"),
    "forged step -5": (["generate", "{home}/step.safetensors"], "step.safetensors: corrupted rnnlab metadata (step "
                       "must be an integer >= 0; got -5)"),
    "damaged vocab": (["generate", "{home}/vocab.safetensors"], "vocab.safetensors: corrupted rnnlab metadata (vocab "
                      "is str)"),
    "damaged config": (["generate", "{home}/config.safetensors"], "config.safetensors: corrupted rnnlab metadata "
                       "(model_config is str)"),
    "tensor bigger than config": (["evaluate", "{home}/shape.safetensors"], "config says (25, 6), file has "
                                  "(100000, 6)"),
    "resume nowhere": (["train", "--resume", "{home}/nowhere"], "--resume {home}/nowhere: no such run directory"),
    # found by trying more than the issue listed
    "resume a file": (["train", "--resume", "{home}/a_file"], "not a run directory (a file)"),
    "data /dev/zero": (["train", "--data", "/dev/zero", "--out", "{home}/new"], "is not a regular file"),
    "epochs 1e308": (["train", "--data", "{home}/text.txt", "--out", "{home}/new", "--epochs", "1e308", "--batch",
                      "2", "--seq-len", "8"], "more steps than any run can take"),
    "nested metadata": (["generate", "{home}/nested.safetensors"], "nested.safetensors: corrupted rnnlab metadata "
                        "(JSON nested too deeply)"),
    "evaluate data empty": (["evaluate", "{home}/run", "--data", ""], "the data source is empty ('')"),
    "out name too long": (["train", "--data", "{home}/text.txt", "--out", "{home}/" + "a" * 300 + "/run"],
                          "/run: File name too long"),
    "data file:///dev/zero": (["train", "--data", "file:///dev/zero", "--out", "{home}/new"],
                              "/dev/zero is not a regular file"),
    "lock planted as a symlink": (["train", "--data", "{home}/text.txt", "--out", "{home}/planted"],
                                  "planted/.lock: cannot create the lock file (it is a symbolic link; remove it)"),
    "resume with other settings": (["train", "--resume", "{home}/run", "--hidden", "64", "--overwrite"],
                                   "only --steps and --data may be given (got --hidden, --overwrite)"),
    # issue 25: ports, seed ranges and explore's connectivity, refused before any work
    "explore port 99999": (["explore", "{home}/run", "--serve", "--port", "99999", "--out", "{home}/new/p.html"],
                           "--port must be an integer in [0, 65535] (0: a free one); got 99999"),
    "explore port -1": (["explore", "{home}/run", "--serve", "--port", "-1", "--out", "{home}/new/p.html"],
                        "--port must be an integer in [0, 65535] (0: a free one); got -1"),
    "explore window 0": (["explore", "{home}/run", "--window", "0", "--out", "{home}/new/p.html"],
                         "--window must be an integer >= 1; got 0"),
    "explore positions x window": (["explore", "{home}/run", "--text", "{home}/text.txt", "--chars", "100000",
                                    "--positions", "100000", "--window", "100000", "--out", "{home}/p.html"],
                                   "values, more than one page holds (5,000,000); lower --positions or --window"),
    "seeds 0-1000000000": (["experiment", "adding", "--seeds", "0-1000000000", "--out", "{home}/new"],
                           "seeds: at most 1000 seeds per sweep; '0-1000000000' lists 1,000,000,001"),
    "seeds backwards": (["experiment", "adding", "--seeds", "3-1"], "seeds: a range runs from a non-negative "
                        "seed up, e.g. 0-4; got '3-1'"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_gets_one_line_and_exit_2(home, capsys, name):
    argv, expected = CASES[name]
    argv = [a.format(home=home) for a in argv]
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and out == ""
    assert err.count("\n") == 1 and err.startswith(f"rnnlab {argv[0]}: error: "), err
    assert expected.format(home=home) in err, err
    assert seconds < 2, f"{name} took {seconds:.1f} s"
    assert not (home / "new").exists()  # nothing written before the refusal
    assert (home / "a_file").read_text() == "not a directory"


def test_help_texts_show_percent_signs_once():
    parser = build_parser()
    helps = {}
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit):
            import contextlib
            import io

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                parser.parse_args([command, "--help"])
        helps[command] = buffer.getvalue()
    assert "%%" not in helps["evaluate"] and "last 10%" in helps["evaluate"]
    assert "%%" not in helps["train"]


def test_figures_writes_each_file_once(tmp_path, monkeypatch, capsys):
    import rnnlab.figures

    asked = []
    monkeypatch.setattr(rnnlab.figures, "draw_all", lambda out, formats: asked.append(formats) or [])
    assert main(["figures", "--out", str(tmp_path / "f"), "--format", "png", "--format", "png"]) == 0
    assert asked == [("png",)]


def test_diagnose_with_a_bad_text_writes_no_plot(home, capsys):
    assert main(["diagnose", str(home / "run"), "--text", "XYZ", "--out", str(home / "diag")]) == 2
    assert not (home / "diag").exists()


def test_evaluate_fits_its_batch_to_a_short_split(home, capsys):
    assert main(["evaluate", str(home / "run"), "--data", str(home / "text.txt")]) == 0  # 32 x 128 > the split
    out, err = capsys.readouterr()
    assert "too few for --batch 32 x --seq-len 128; using 4 x 128" in err and "bits/char" in out


def test_evaluate_shows_progress_on_a_long_split(home, capsys):
    from rnnlab.models import load_char_model
    from rnnlab.train import evaluate

    model, vocab, _ = load_char_model(home / "run")
    evaluate(model, vocab.encode(TEXT), batch=2, seq_len=8, progress=True, progress_delay=0)
    assert "evaluating" in capsys.readouterr().err


def test_generate_streams_without_keeping_the_text(home, monkeypatch):
    """The command's loop holds nothing per character: 300,000 characters through it (from a stand-in
    sampler, so the test is fast) peak within 0.5 MB of 30,000; a list of them alone adds 2.2 MB."""
    import tracemalloc

    import rnnlab.sample

    class Sink:
        def write(self, text):
            return len(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Sink())

    def peak(length):
        monkeypatch.setattr(rnnlab.sample, "stream", lambda *args: ("a" for _ in range(length)))
        tracemalloc.start()
        try:
            assert main(["generate", str(home / "run")]) == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(10)  # first-call imports and caches
    short, long = peak(30_000), peak(300_000)
    assert long - short < 500_000, (short, long)


# -- real processes: pipes and signals ---------------------------------------------------------------------
def test_generate_into_a_closed_pipe_ends_quietly(home):
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "generate", str(home / "run"), "--length",
                             "1000000000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert len(proc.stdout.read(50)) == 50  # `| head -c 50`
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""


def test_generate_with_stdout_closed_does_not_crash(home):
    result = subprocess.run(f'"{sys.executable}" -m rnnlab generate "{home / "run"}" --length 5 >&-', shell=True,
                            stderr=subprocess.PIPE, text=True, env=ENV, timeout=60)
    assert result.returncode == 0 and result.stderr == ""


def test_generate_into_a_full_disk_names_it(home):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "rnnlab", "generate", str(home / "run"), "--length", "10000"],
                                stdout=full, stderr=subprocess.PIPE, text=True, env=ENV, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "rnnlab generate: error: standard output: cannot write the text (No space left on " \
                            "device)\n"


def interrupt(argv, ready, tmp_path, group=False, timeout=60, sig=signal.SIGINT):
    """Start `rnnlab ARGV`, wait until ready(stdout so far, stderr so far), send `sig` (to the whole
    process group, as a terminal's Ctrl-C does, if group), return (exit code, stdout, stderr)."""
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *argv], stdout=out, stderr=err, env=ENV,
                                start_new_session=group)
        deadline = time.monotonic() + timeout
        try:
            while not ready(out_path.read_text(errors="replace"), err_path.read_text(errors="replace")):
                assert proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, "the command never got going"
                time.sleep(0.05)
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, out_path.read_text(), err_path.read_text()


@pytest.mark.parametrize("sig,code_expected,label", [(signal.SIGINT, 130, ""), (signal.SIGTERM, 143, " (SIGTERM)")])
def test_ctrl_c_or_sigterm_in_train_saves_and_exits_128_plus_the_signal(home, tmp_path, sig, code_expected, label):
    run = tmp_path / "run"
    code, out, err = interrupt(
        ["train", "--data", str(home / "text.txt"), "--out", str(run), "--steps", "100000", "--hidden", "8",
         "--layers", "1", "--embedding", "4", "--batch", "2", "--seq-len", "8", "--no-progress"],
        lambda out, err: (run / "log.jsonl").exists() and (run / "log.jsonl").stat().st_size > 0, tmp_path, sig=sig)
    assert code == code_expected, err
    assert f"interrupted{label} at step" in err and "checkpoint saved" in err and f"--resume {run}" in err
    assert "Traceback" not in err and "interrupted" not in out
    from rnnlab.io import read_metadata

    step = read_metadata(run / "checkpoint.safetensors")["step"]
    assert step > 0 and f"interrupted{label} at step {step};" in err


@pytest.mark.parametrize("command", ["generate", "evaluate", "experiment", "diagnose"])
def test_ctrl_c_exits_130_with_the_message_on_stderr(home, tmp_path, command):
    argv, ready, group = {
        "generate": (["generate", str(home / "run"), "--length", "1000000000"], lambda out, err: len(out) > 20, False),
        "evaluate": (["evaluate", str(home / "run"), "--data", str(home / "big.txt"), "--split", "all", "--batch",
                      "1", "--seq-len", "2"], lambda out, err: "evaluating" in err, False),
        # two workers, Ctrl-C to the whole group as a terminal sends it: no worker prints a traceback
        "experiment": (["experiment", "adding", "--cells", "lstm,gru", "--T", "20", "--steps", "100000", "--jobs", "2",
                        "--out", str(tmp_path / "exp")], lambda out, err: "(local, 2 workers)" in err, True),
        # it prints nothing while it trains: interrupted after 5 s, well past the imports even on a loaded
        # machine (a signal before `python -m` reaches rnnlab's code is Python's own, see the issue 15 note)
        "diagnose": (["diagnose", "--steps", "1000000", "--hidden", "4", "--seq-len", "10", "--out",
                      str(tmp_path / "diag")], lambda out, err: time.monotonic() > started + 5, False),
    }[command]
    if command == "evaluate":
        (home / "big.txt").write_text(TEXT * 20, encoding="utf-8")
    started = time.monotonic()
    code, out, err = interrupt(argv, ready, tmp_path, group=group)
    # 130, as a shell reports it. The sweep's driver, with loky workers in its process group, ended once
    # in about ten CI runs killed by SIGINT itself (-2) after printing its line; a shell shows that as 130
    # too, and the checks below still demand the line and no traceback. The cause is not yet found.
    assert code == 130 or (command == "experiment" and code == -signal.SIGINT), err
    last = err.rstrip().splitlines()[-1]
    assert last == f"rnnlab {command}: interrupted" or (  # a sweep also says what it kept
        command == "experiment" and last.startswith("rnnlab experiment: interrupted: 0 of 2 runs had finished")), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


# -- issue 25: outputs that never destroy, forged exports, non-finite models, user cells ------------------------
def _forge_onnx(source, target, metadata=None):
    """A copy of the ONNX file `source` whose "rnnlab" metadata entry is `metadata` (a string)."""
    import onnx

    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == "rnnlab" and metadata is not None:
            prop.value = metadata
    onnx.save(model, str(target))


def _torch_file(path, hidden, vocab):
    """A torch-style LSTM char model (vocabulary 5, embedding 3) with `hidden` units and metadata vocab."""
    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    G = 4 * hidden
    save_file({"embedding.weight": z(5, 3), "rnn.weight_ih_l0": z(G, 3), "rnn.weight_hh_l0": z(G, hidden),
               "rnn.bias_ih_l0": z(G), "rnn.bias_hh_l0": z(G), "head.weight": z(5, hidden), "head.bias": z(5)},
              path, metadata={"rnnlab": json.dumps({"vocab": vocab})})


def _snapshot(root):
    """{relative path: bytes} of every regular file under root (what must survive a refusal)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.suffix != ".html"}


@pytest.fixture(scope="module")
def outputs_home(tmp_path_factory):
    """Two runs (b on fewer characters), a text, forged ONNX / torch / checkpoint files, a FIFO, a link."""
    from rnnlab.export import to_onnx
    from rnnlab.models import load_char_model

    root = tmp_path_factory.mktemp("outputs")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    (root / "latin1.txt").write_bytes(TEXT.replace("cat", "caf\xe9").encode("latin-1"))
    make_trainer(tiny_config(root, steps=3, out=str(root / "run"))).fit()
    narrow = TEXT.replace("bird", "cat").replace("frog", "cat").replace("dog", "cat")  # no b, d, f, g, i, r
    Trainer(tiny_config(root, steps=3, out=str(root / "narrow")), progress=False, log=lambda *a: None,
            text=narrow).fit()
    model, vocab, _ = load_char_model(root / "run")
    to_onnx(model, root / "model.onnx", vocab=vocab)
    _forge_onnx(root / "model.onnx", root / "meta_list.onnx", "[1, 2]")
    _forge_onnx(root / "model.onnx", root / "vocab_str.onnx", json.dumps({"vocab": "abc"}))
    _forge_onnx(root / "model.onnx", root / "short_vocab.onnx", json.dumps({"vocab": list("abc")}))
    _torch_file(root / "hidden0.safetensors", 0, list("abcde"))
    _torch_file(root / "vocab_int.safetensors", 2, 5)
    path = root / "run" / "checkpoint.safetensors"
    with safe_open(path, framework="np") as f:
        doc, tensors = json.loads(f.metadata()["rnnlab"]), {k: f.get_tensor(k) for k in f.keys()}
    unregistered = {**doc, "model_config": {**doc["model_config"], "cell": "my_secret_cell"}}
    save_file(tensors, root / "unregistered.safetensors", metadata={"rnnlab": json.dumps(unregistered)})
    nan = {**tensors, "model.head.bias": np.full_like(tensors["model.head.bias"], np.nan)}
    save_file(nan, root / "nan.safetensors", metadata={"rnnlab": json.dumps(doc)})
    (root / "a_dir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "link.onnx").symlink_to(root / "run" / "config.json")
    return root


OUTPUT_CASES = {
    # defect 1: --overwrite checks the new run first; the old one is kept whole on any refusal
    "overwrite, data missing": (["train", "--data", "{home}/nonexistent.txt", "--out", "{home}/run", "--overwrite"],
                                "nonexistent.txt' not found"),
    "overwrite, data not UTF-8": (["train", "--data", "{home}/latin1.txt", "--out", "{home}/run", "--overwrite"],
                                  "latin1.txt"),
    "overwrite, data is the run's": (["train", "--data", "{home}/run/samples.txt", "--out", "{home}/run",
                                      "--overwrite"], "is samples.txt of the run in"),
    # defect 2: export writes only regular files, never onto a checkpoint
    "export to /dev/null": (["export", "{home}/run", "--format", "onnx", "--out", "/dev/null"],
                            "--out /dev/null is a device; rnnlab writes its output only as a regular file"),
    "export onto another run's checkpoint": (["export", "{home}/run", "--format", "torch", "--out",
                                              "{home}/narrow/checkpoint.safetensors"],
                                             "is a file of the run in {home}/narrow (checkpoint at step 3"),
    "export onto its own checkpoint": (["export", "{home}/run", "--format", "torch", "--out",
                                        "{home}/run/checkpoint.safetensors", "--overwrite"],
                                       "is the checkpoint being exported, which this command reads"),
    "export onto a checkpoint file": (["export", "{home}/run", "--format", "torch", "--out",
                                       "{home}/nan.safetensors"], "is an rnnlab checkpoint (step 3)"),
    "export to a FIFO": (["export", "{home}/run", "--format", "onnx", "--out", "{home}/fifo"], "is a FIFO"),
    "export to a symlink": (["export", "{home}/run", "--format", "onnx", "--out", "{home}/link.onnx"],
                            "is a symbolic link"),
    # defect 17: a directory is named as such, never through a temporary file
    "export to a directory": (["export", "{home}/run", "--format", "onnx", "--out", "{home}/a_dir"],
                              "--out {home}/a_dir is a directory"),
    # defect 3: explore never writes onto what it reads or a run's files
    "explore onto the checkpoint": (["explore", "{home}/run", "--out", "{home}/run/checkpoint.safetensors"],
                                    "is a checkpoint being explored, which this command reads"),
    "explore onto its --text": (["explore", "{home}/run", "--text", "{home}/text.txt", "--out", "{home}/text.txt"],
                                "is the --text file, which this command reads"),
    "explore onto a run's log": (["explore", "{home}/run", "--out", "{home}/narrow/log.jsonl"],
                                 "is a file of the run in {home}/narrow"),
    "explore to a directory": (["explore", "{home}/run", "--out", "{home}/a_dir"], "is a directory"),
    "explore --neurone to a FIFO": (["explore", "--neurone", "--out", "{home}/fifo"], "is a FIFO"),
    # defect 17: a compare says which run lacks which characters
    "compare, vocabularies differ": (["explore", "{home}/run", "{home}/narrow", "--text", "{home}/text.txt", "--out",
                                      "{home}/page.html"], "the text to explore: {home}/narrow lacks 6 character(s) "
                                     "of it, not in its vocabulary of 19: 'b' (U+0062), 'd' (U+0064)"),
    # defect 8: non-finite logits stop generation with one line
    "generate from NaN logits": (["generate", "{home}/nan.safetensors"], "the model's logits are not finite"),
    # defect 11: forged ONNX files and paths that are not files
    "onnx metadata a list": (["generate", "--onnx", "{home}/meta_list.onnx"], "'rnnlab' metadata is list, not a JSON"),
    "onnx vocabulary a string": (["generate", "--onnx", "{home}/vocab_str.onnx"], "its vocabulary is not a list"),
    "onnx logits of another shape": (["generate", "--onnx", "{home}/short_vocab.onnx"],
                                     "its logits have shape (1, 1, 25), expected (1, 1, 3)"),
    "onnx a directory": (["generate", "--onnx", "{home}/a_dir"], "a_dir: is a directory, not an ONNX file"),
    "onnx a FIFO": (["generate", "--onnx", "{home}/fifo"], "fifo: is a FIFO, not an ONNX file"),
    # defect 12: forged torch weight files
    "torch hidden size 0": (["generate", "{home}/hidden0.safetensors"], "hidden size 0 and input size 3"),
    "torch vocabulary an int": (["generate", "{home}/vocab_int.safetensors"], "metadata's vocab is int"),
    # defect 17: a user cell that is not registered
    "unregistered cell": (["generate", "{home}/unregistered.safetensors"],
                          "uses the cell 'my_secret_cell', which is not registered in this process"),
}


@pytest.mark.parametrize("name", list(OUTPUT_CASES))
def test_outputs_and_forgeries_get_one_line_and_lose_nothing(outputs_home, capsys, name):
    argv, expected = OUTPUT_CASES[name]
    argv = [a.format(home=outputs_home) for a in argv]
    before = _snapshot(outputs_home)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and out == ""
    assert err.count("\n") == 1 and err.startswith(f"rnnlab {argv[0]}: error: "), err
    assert expected.format(home=outputs_home) in err, err
    assert ".tmp" not in err  # a temporary file is never what a message names
    assert _snapshot(outputs_home) == before  # nothing lost, nothing half-written
    assert (outputs_home / "fifo").is_fifo() and (outputs_home / "link.onnx").is_symlink()
    assert not (outputs_home / "page.html").exists()
    if name == "unregistered cell":
        assert "RNNLAB_CELLS" in err


def test_overwrite_replaces_the_old_run_once_the_new_one_starts(outputs_home, tmp_path, capsys):
    """Defect 1, the other side: a valid --overwrite run does replace the old run."""
    run = tmp_path / "run"
    tiny = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--batch", "2", "--seq-len", "8", "--no-progress"]
    assert main(["train", "--data", str(outputs_home / "text.txt"), "--out", str(run), "--steps", "3", *tiny]) == 0
    (run / "log.aside.jsonl").write_text("{}\n")
    assert main(["train", "--data", str(outputs_home / "text.txt"), "--out", str(run), "--steps", "2", "--overwrite",
                 *tiny]) == 0
    from rnnlab.io import read_metadata

    assert read_metadata(run / "checkpoint.safetensors")["step"] == 2 and not (run / "log.aside.jsonl").exists()


def test_a_failed_page_write_keeps_the_old_page(outputs_home, tmp_path, capsys, monkeypatch):
    """Defect 3: the page is written atomically; a full disk leaves the old page whole and names --out."""
    import errno

    import rnnlab.io

    page = tmp_path / "page.html"
    page.write_text("the old page")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rnnlab.io.os, "fsync", full)
    code = main(["explore", str(outputs_home / "run"), "--text", str(outputs_home / "text.txt"), "--chars", "40",
                 "--positions", "3", "--window", "5", "--out", str(page)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"rnnlab explore: error: {page}: cannot write (No space left on device)\n"
    assert page.read_text() == "the old page" and [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_explore_overwrite_lets_the_page_replace_a_run_file(outputs_home, tmp_path, capsys):
    import shutil

    shutil.copytree(outputs_home / "narrow", tmp_path / "narrow")
    target = tmp_path / "narrow" / "samples.txt"
    assert main(["explore", str(outputs_home / "run"), "--text", str(outputs_home / "text.txt"), "--chars", "40",
                 "--positions", "3", "--window", "5", "--out", str(target), "--overwrite"]) == 0
    assert target.read_text().startswith("<!DOCTYPE html>") or "<html" in target.read_text()


def test_sampler_raises_on_non_finite_logits(outputs_home):
    """Defect 8 in Python: both samplers raise NonFiniteLogits (a ValueError) instead of repeating a character."""
    from rnnlab.models import load_char_model
    from rnnlab.sample import NonFiniteLogits, generate, next_char_distribution

    model, vocab, _ = load_char_model(outputs_home / "nan.safetensors")
    for compiled in (True, False):
        with pytest.raises(NonFiniteLogits, match="not finite"):
            generate(model, vocab, "", 20, compiled=compiled)
    with pytest.raises(NonFiniteLogits):
        next_char_distribution(np.array([0.0, np.inf, 1.0]))
    # a temperature so low that logits / temperature overflows keeps only the likeliest: no NaN, no repeat
    model, vocab, _ = load_char_model(outputs_home / "run")
    assert generate(model, vocab, "", 30, temperature=1e-300, rng=0, compiled=True) == \
        generate(model, vocab, "", 30, temperature=1e-300, rng=0, compiled=False)


def test_write_figure_is_atomic_and_refuses_a_fifo(outputs_home, tmp_path):
    """Every plot (train's loss curve, figures, demos, diagnose, experiments) goes through write_figure."""
    from rnnlab.io import OutputError
    from rnnlab.plots import new_figure, write_figure

    fig = new_figure()
    fig.add_subplot().plot([0, 1])
    with pytest.raises(OutputError, match="is a FIFO"):
        write_figure(fig, outputs_home / "fifo")
    path = write_figure(fig, tmp_path / "a.svg")
    assert path.read_text().lstrip().startswith("<?xml") and [p.name for p in tmp_path.iterdir()] == ["a.svg"]


REPLACED_LSTM = (Path(__file__).parent / "external_cells" / "mgu.py").read_text().replace(
    'CellDefinition(\n    "mgu"', 'CellDefinition(\n    "lstm"').rstrip()[:-2] + "), replace=True)\n"


def test_a_cell_file_replacing_lstm_says_what_differs(outputs_home, tmp_path):
    """Defect 17: a valid LSTM checkpoint read while a cell file replaces `lstm` is not "corrupted or forged"."""
    cells = tmp_path / "my_lstm.py"
    cells.write_text(REPLACED_LSTM)
    result = subprocess.run([sys.executable, "-m", "rnnlab", "generate", str(outputs_home / "run")],
                            capture_output=True, text=True, env={**ENV, "RNNLAB_CELLS": str(cells)}, timeout=120)
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "corrupted or forged" not in result.stderr and "Traceback" not in result.stderr
    assert f"the cell 'lstm' is defined here by {cells} (RNNLAB_CELLS)" in result.stderr
    assert "weight_ih_l0: config says (24, 6), file has (48, 6)" in result.stderr


def test_ctrl_c_while_cell_files_import_exits_130(tmp_path):
    """Defect 13: Ctrl-C while RNNLAB_CELLS files import gives one line and 130, no traceback."""
    cells = tmp_path / "slow_cells.py"
    marker = tmp_path / "importing"
    cells.write_text(f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(60)\n")
    console_script = "import sys; from rnnlab.cli import main; sys.exit(main())"  # what `rnnlab` runs
    proc = subprocess.Popen([sys.executable, "-c", console_script, "generate", "x"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**ENV, "RNNLAB_CELLS": str(cells)})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert code == 130, err
    assert err.strip() == "rnnlab generate: interrupted while importing the RNNLAB_CELLS files"


# -- issue 25 (explore's server, sweeps): one line, no traceback, nothing lost ---------------------
def test_explore_on_a_taken_port_names_it_before_any_work(home, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["explore", str(home / "run"), "--serve", "--port", str(port),
                     "--out", str(home / "new" / "p.html")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"rnnlab explore: error: cannot serve on 127.0.0.1:{port}: Address already in use" in err
    assert not (home / "new").exists()


def test_a_damaged_sweep_run_file_is_named_and_kept(tmp_path, capsys):
    argv = ["experiment", "temporal-order", "--cells", "rnn", "--T", "10", "--steps", "3", "--hidden", "4",
            "--batch", "4", "--out", str(tmp_path / "sweep"), "--no-progress"]
    assert main(argv) == 0
    (stored,) = (tmp_path / "sweep" / "runs").glob("*.json")
    damaged = json.loads(stored.read_text())
    del damaged["row"]["value"]  # once a KeyError traceback
    stored.write_text(json.dumps(damaged))
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "set aside" in line]
    assert lines == [f"rnnlab experiment: set aside: {stored}: its row's 'value' is None, not a number; moved to "
                     f"{stored.parent / 'set-aside' / stored.name}; the run is trained again"]
    assert json.loads((stored.parent / "set-aside" / stored.name).read_text()) == damaged  # kept, not deleted
    assert "value" in json.loads(stored.read_text())["row"]  # and the run trained again


def test_a_sweep_whose_runs_kill_their_workers_ends_in_one_line(tmp_path, capsys, monkeypatch):
    import rnnlab.experiments
    from rnnlab.experiments.engine import SweepFailed

    def failing(*args, **kwargs):
        raise SweepFailed("run adding lstm T=100 seed 3: the worker died 3 times (killed for memory, or a crash "
                          "outside Python?); 5 of 6 runs had finished and are kept; run the same command again "
                          "to retry")

    monkeypatch.setattr(rnnlab.experiments, "run_experiment", failing)
    code = main(["experiment", "adding", "--out", str(tmp_path / "sweep")])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("rnnlab experiment: error: run adding lstm T=100 seed 3: the worker died 3 times")


def test_an_output_in_a_missing_folder_is_refused_before_the_work(outputs_home, capsys):
    """Where the issue is silent: explore would compute the page and only then fail to write it."""
    code = main(["explore", str(outputs_home / "run"), "--out", str(outputs_home / "nowhere" / "page.html")])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"rnnlab explore: error: --out {outputs_home / 'nowhere' / 'page.html'}: its folder "
                                 f"{outputs_home / 'nowhere'} does not exist\n")


def test_overwrite_keeps_the_old_checkpoint_until_the_new_one_is_written(outputs_home, tmp_path, capsys, monkeypatch):
    """Where the issue is silent: a full disk at the new run's first save leaves the old checkpoint."""
    import errno
    import shutil

    import rnnlab.train
    from rnnlab.io import read_metadata

    run = tmp_path / "run"
    shutil.copytree(outputs_home / "run", run)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "cannot write (No space left on device)", str(run / "checkpoint.safetensors"))

    monkeypatch.setattr(rnnlab.train, "save_checkpoint", full)
    code = main(["train", "--data", str(outputs_home / "text.txt"), "--out", str(run), "--overwrite", "--steps", "2",
                 "--hidden", "8", "--layers", "1", "--batch", "2", "--seq-len", "8", "--no-progress"])
    assert code == 2 and "No space left on device" in capsys.readouterr().err
    assert read_metadata(run / "checkpoint.safetensors")["step"] == 3  # the old run's, resumable
