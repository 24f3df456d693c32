"""A run directory loses nothing: a second run is refused, a second writer is locked out (and a killed
one's lock released), a corrupt log line costs no other row, no crash leaves the run without its
last good checkpoint, and a run resumes from anywhere its text can be found."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rnnlab.io
import rnnlab.train as train
from rnnlab.cli import main
from rnnlab.rundir import RunDirError, RunLock, claim
from rnnlab.train import Trainer

from test_train import TEXT, make_trainer, tiny_config

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "8", "--batch", "4", "--eval-every", "5",
        "--eval-batches", "2", "--sample-every", "100", "--sample-length", "10", "--save-every", "4", "--no-progress"]
QUIET = dict(progress=False, log=lambda *a: None)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def steps_in_log(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# -- 1. a new run into a directory that holds one ------------------------------------------------------
def test_a_second_run_into_a_run_directory_is_refused_and_changes_nothing(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(text_file), "--steps", "8", "--out", str(run), *TINY]) == 0
    before = {name: digest(run / name) for name in ("checkpoint.safetensors", "log.jsonl", "config.json",
                                                    "samples.txt")}
    capsys.readouterr()
    assert main(["train", "--data", str(text_file), "--steps", "3", "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err
    assert "already holds a run (checkpoint at step 8, 8 log rows)" in err
    assert f"--resume {run}" in err and "--overwrite" in err and "fresh --out" in err
    assert {name: digest(run / name) for name in before} == before
    assert main(["train", "--data", str(text_file), "--steps", "3", "--out", str(run), "--overwrite", *TINY]) == 0
    assert steps_in_log(run) == [1, 2, 3] and rnnlab.io.read_metadata(run / "checkpoint.safetensors")["step"] == 3
    assert (run / "samples.txt").read_text().count("--- step") == 1  # the old run's samples went with it


# -- 2. two writers at once ------------------------------------------------------------------------------
HOLDER = """
import sys, time
from rnnlab.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_and_a_killed_holders_lock_is_released(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"in use by another rnnlab process \\(PID {holder.pid}\\)"):
            claim(run)
        assert main(["train", "--data", str(text_file), "--steps", "2", "--out", str(run), *TINY]) == 2
        assert f"PID {holder.pid}" in capsys.readouterr().err
        assert main(["train", "--resume", str(run)]) == 2  # a resume is a writer too
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        claim(run).release()  # the kernel dropped the dead holder's lock
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--data", str(text_file), "--steps", "2", "--out", str(run), *TINY]) == 0


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    trainer = make_trainer(tiny_config(tmp_path, steps=3))
    with pytest.raises(RunDirError, match=f"PID {os.getpid()}"):
        RunLock(tmp_path / "run").acquire()  # another open file description: refused, even in-process
    trainer.fit()
    RunLock(tmp_path / "run").acquire().release()


# -- 3. a corrupt line in the middle of the log ----------------------------------------------------------
def test_a_corrupt_log_line_is_set_aside_and_no_other_row_is_lost(tmp_path, capsys):
    make_trainer(tiny_config(tmp_path, steps=12, save_every=4)).fit()
    run = tmp_path / "run"
    lines = (run / "log.jsonl").read_text().splitlines()
    lines[4] = '{"step": 5, "loss": 2.1'  # line 5 cut in half
    lines.append(json.dumps({"step": 13, "loss": 1.0}))  # a row past the checkpoint (a crash after step 12)
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    trainer = Trainer.resume(run, steps=15, progress=False, text=TEXT)
    out, err = capsys.readouterr()
    assert "resumed from step 12" in out
    assert "1 unreadable line(s) (line 5)" in err and "1 row(s) past the checkpoint (steps 13-13)" in err
    trainer.fit()
    assert steps_in_log(run) == [1, 2, 3, 4] + list(range(6, 16))
    aside = [json.loads(line) for line in (run / "log.aside.jsonl").read_text().splitlines()]
    assert [(a["line"], a["text"]) for a in aside] == [(5, '{"step": 5, "loss": 2.1'),
                                                       (13, json.dumps({"step": 13, "loss": 1.0}))]


def test_a_last_line_without_its_newline_gets_one_before_the_next_row(tmp_path):
    make_trainer(tiny_config(tmp_path, steps=4, save_every=4)).fit()
    log = tmp_path / "run" / "log.jsonl"
    log.write_text(log.read_text().rstrip("\n"))  # a crash between the row and its newline
    Trainer.resume(tmp_path / "run", steps=6, text=TEXT, **QUIET).fit()
    assert steps_in_log(tmp_path / "run") == [1, 2, 3, 4, 5, 6]


# -- 4. crashes --------------------------------------------------------------------------------------------
def crash_in(monkeypatch, where: str, at_call: int):
    """Make `where` raise on its at_call-th call."""
    calls = {"n": 0}

    def wrap(real):
        def crashing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at_call:
                raise RuntimeError(f"crash in {where}")
            return real(*args, **kwargs)
        return crashing

    if where == "log":  # the log file's writes: one per step
        class Log:
            def __init__(self, f):
                self.f, self.write = f, wrap(f.write)

            def __getattr__(self, name):
                return getattr(self.f, name)

        monkeypatch.setattr(train, "open", lambda path, *a, **k: (Log if str(path).endswith("log.jsonl")
                                                                   else lambda f: f)(open(path, *a, **k)),
                            raising=False)
        return
    targets = {"forward": (train, "cross_entropy"), "evaluate": (train, "evaluate"),
               "sample": (train.Trainer, "_write_sample"), "checkpoint": (train, "save_checkpoint")}
    owner, name = targets[where]
    monkeypatch.setattr(owner, name, wrap(getattr(owner, name)))


@pytest.mark.parametrize("where,at_call,last_good", [
    ("forward", 1, 0),      # the first step: only the step-0 checkpoint exists
    ("evaluate", 1, 4),     # the first evaluation (step 5), the crash of issue 15's --eval-batches -3
    ("sample", 1, 4),       # sample_every 7
    ("checkpoint", 3, 4),   # the save at step 8 (after 0 and 4) fails
    ("log", 10, 8),         # writing step 10's log row
])
def test_no_crash_leaves_a_run_without_its_last_good_checkpoint(tmp_path, monkeypatch, where, at_call, last_good):
    trainer = make_trainer(tiny_config(tmp_path, steps=12, save_every=4, eval_every=5, sample_every=7))
    crash_in(monkeypatch, where, at_call)
    with pytest.raises(RuntimeError, match=f"crash in {where}"):
        trainer.fit()
    monkeypatch.undo()
    run = tmp_path / "run"
    assert rnnlab.io.load_checkpoint(run / "checkpoint.safetensors").step == last_good
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    resumed = Trainer.resume(run, text=TEXT, **QUIET)
    assert resumed.step == last_good and [r["step"] for r in resumed.history] == list(range(1, last_good + 1))
    resumed.fit()
    assert steps_in_log(run) == list(range(1, 13))


# -- resuming from anywhere ------------------------------------------------------------------------------
def test_resume_from_another_directory_with_the_data_moved_or_changed(tmp_path, monkeypatch, capsys):
    home, other = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), other.mkdir()
    (home / "text.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(home)
    assert main(["train", "--data", "text.txt", "--steps", "4", "--out", "run", *TINY]) == 0  # relative paths
    monkeypatch.chdir(other)
    capsys.readouterr()
    assert main(["train", "--resume", "../home/run", "--steps", "6", "--no-progress"]) == 0
    assert "resumed from step 4" in capsys.readouterr().out
    moved = other / "moved.txt"
    (home / "text.txt").rename(moved)
    assert main(["train", "--resume", "../home/run", "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert f"{home / 'text.txt'}, is gone" in err and "--data" in err
    assert main(["train", "--resume", "../home/run", "--steps", "8", "--data", "moved.txt", "--no-progress"]) == 0
    assert "resumed from step 6" in capsys.readouterr().out
    moved.write_text(TEXT.replace("cat", "cot"), encoding="utf-8")
    assert main(["train", "--resume", "../home/run", "--steps", "10", "--data", "moved.txt"]) == 2
    assert "is not the text this run trained on" in capsys.readouterr().err
    assert steps_in_log(home / "run") == list(range(1, 9))


def test_resume_with_nothing_to_do_says_so_and_writes_nothing(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(text_file), "--steps", "6", "--out", str(run), *TINY]) == 0
    before = {p.name: digest(p) for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 0
    out, err = capsys.readouterr()
    assert "at step 6; --steps 3 asks for no more: nothing to do" in err and "trained" not in out
    assert main(["train", "--resume", str(run)]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert {p.name: digest(p) for p in run.iterdir() if p.is_file()} == before


def test_the_final_sample_is_written_once(tmp_path):
    make_trainer(tiny_config(tmp_path, steps=14, sample_every=7)).fit()
    headers = [line for line in (tmp_path / "run" / "samples.txt").read_text().splitlines() if line.startswith("---")]
    assert headers == ["--- step 7 ---", "--- step 14 ---"]


def test_a_forged_or_damaged_training_state_is_named(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    make_trainer(tiny_config(tmp_path, steps=3)).fit()
    path = tmp_path / "run" / "checkpoint.safetensors"
    with safe_open(path, framework="np") as f:
        doc, tensors = json.loads(f.metadata()["rnnlab"]), {k: f.get_tensor(k) for k in f.keys()}

    def forge(**changes):
        save_file(tensors, path, metadata={"rnnlab": json.dumps({**doc, **changes})})

    forge(step=-5)
    with pytest.raises(rnnlab.io.CheckpointError, match="checkpoint.safetensors.*step must be an integer >= 0"):
        Trainer.resume(tmp_path / "run", text=TEXT, **QUIET)
    forge(extra={**doc["extra"], "position": "abc"})
    with pytest.raises(rnnlab.io.CheckpointError, match="checkpoint.safetensors: damaged training state"):
        Trainer.resume(tmp_path / "run", steps=5, text=TEXT, **QUIET)
    forge(train_config={**doc["train_config"], "hidden": "lots"})
    with pytest.raises(rnnlab.io.CheckpointError, match="checkpoint.safetensors: its training configuration"):
        Trainer.resume(tmp_path / "run", steps=5, text=TEXT, **QUIET)
    forge(model_config={**doc["model_config"], "hidden_size": 10**6})
    start = time.perf_counter()
    with pytest.raises(rnnlab.io.CheckpointError, match=r"does not match its tensors .*1000000"):
        Trainer.resume(tmp_path / "run", steps=5, text=TEXT, **QUIET)
    assert time.perf_counter() - start < 2


def test_overwrite_never_deletes_files_of_a_directory_that_holds_no_run(tmp_path, capsys):
    """--out . --overwrite in a project: its own config.json and samples.txt are not a run's, and stay."""
    from rnnlab.rundir import RunDirError, claim

    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"name": "my project"}')
    (project / "samples.txt").write_text("my samples")
    with pytest.raises(RunDirError, match="holds config.json, samples.txt but no rnnlab run"):
        claim(project, overwrite=True)
    assert (project / "config.json").read_text() == '{"name": "my project"}'
    assert (project / "samples.txt").read_text() == "my samples"


def test_check_output_knows_an_input_by_its_inode(tmp_path):
    """A hard link or another spelling of the file a command reads is still that file."""
    from rnnlab.io import OutputError
    from rnnlab.rundir import check_output

    (tmp_path / "text.txt").write_text("data")
    os.link(tmp_path / "text.txt", tmp_path / "alias.txt")
    for out in (tmp_path / "alias.txt", tmp_path / "sub" / ".." / "text.txt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is the --text file, which this command reads"):
            check_output(out, reads=[(tmp_path / "text.txt", "the --text file")], overwrite=True)
    assert check_output(tmp_path / "new.html", reads=[(tmp_path / "text.txt", "the --text file")]) \
        == tmp_path / "new.html"
