"""Checkpoints and weight files: exact round trips, atomic saves, clear errors, PyTorch interop."""
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import rnnlab.io as rio
from rnnlab.io import (Checkpoint, CheckpointError, load_checkpoint, load_weights, restore_rng,
                       save_checkpoint, save_weights)

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = {"cell": "lstm", "vocab_size": 65, "hidden_size": 256, "num_layers": 2, "dropout": 0.1}


def make_everything(seed=0):
    """Keyword arguments for save_checkpoint with every field filled and awkward values included."""
    rng = np.random.default_rng(seed)
    model_state = {
        "embedding.weight": rng.standard_normal((65, 16)).astype(np.float32),
        "rnn.weight_ih_l0": rng.standard_normal((1024, 16)),  # float64
        "rnn.bias_ih_l0": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45], np.float32),  # exact bits
        "head.weight": rng.standard_normal((65, 256)).astype(np.float32).T,  # a non-contiguous view
        "counts": rng.integers(-2**62, 2**62, size=(3, 4), dtype=np.int64),
        "mask": rng.random(7) < 0.5,
        "scalar": np.array(np.pi),  # 0-d stays 0-d
    }
    optimizer_state = {
        "hyper": {"name": "adam", "lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8, "t": np.int64(1234)},
        "tensors": {f"exp_avg.{k}": rng.standard_normal(v.shape).astype(np.float32)
                    for k, v in model_state.items() if v.dtype == np.float32}
                   | {"step": np.array(1234, np.int64)},
    }
    gen = np.random.default_rng(seed + 1)
    gen.standard_normal(17)  # move it off its seed so the stored state is a mid-stream one
    return dict(
        model_config=CONFIG, model_state=model_state, optimizer_state=optimizer_state,
        step=2**40 + 7, vocab=["\n", " ", "é", '"', "\\", "\x00", "日本"],
        rng_state=gen.bit_generator.state,
        train_config={"lr": 3e-4, "batch_size": 32, "seq_len": 100, "clip": None, "tags": ["a", "b"]},
        extra={"best_val_loss": 1.2345678901234567, "notes": {"nested": [1, 2.5, None, True]}},
    ), gen


def assert_same_arrays(ours: dict, theirs: dict):
    assert list(ours) == list(theirs), (list(ours), list(theirs))
    for k in ours:
        a, b = np.asarray(ours[k]), theirs[k]
        assert b.dtype == a.dtype and b.shape == a.shape, (k, a.dtype, a.shape, b.dtype, b.shape)
        assert np.ascontiguousarray(a).tobytes() == b.tobytes(), f"{k}: bits differ"


def entries(directory: Path) -> list[str]:
    """Every name in `directory`, so a stray temp file shows up."""
    return sorted(os.listdir(directory))


# -- round trips -------------------------------------------------------------------------------------
def test_round_trip_keeps_everything_exactly(tmp_path):
    kwargs, gen = make_everything()
    path = tmp_path / "ckpt.safetensors"
    assert save_checkpoint(path, **kwargs) == path
    ckpt = load_checkpoint(path, expect_model_config=CONFIG)

    assert isinstance(ckpt, Checkpoint)
    assert_same_arrays(kwargs["model_state"], ckpt.model_state)
    assert_same_arrays(kwargs["optimizer_state"]["tensors"], ckpt.optimizer_state["tensors"])
    assert ckpt.optimizer_state["hyper"] == {"name": "adam", "lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8, "t": 1234}
    assert ckpt.model_config == CONFIG
    assert ckpt.step == 2**40 + 7
    assert ckpt.vocab == kwargs["vocab"]
    assert ckpt.train_config == kwargs["train_config"]
    assert ckpt.extra == kwargs["extra"]
    assert ckpt.rng_state == kwargs["rng_state"]  # 128-bit ints survive JSON exactly
    restored = restore_rng(ckpt.rng_state)
    np.testing.assert_array_equal(restored.standard_normal(1000), gen.standard_normal(1000))
    np.testing.assert_array_equal(restored.integers(0, 2**63, 100), gen.integers(0, 2**63, 100))
    assert all(a.flags.writeable for a in ckpt.model_state.values())
    assert entries(tmp_path) == ["ckpt.safetensors"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~rio._UMASK  # not mkstemp's 0600


@pytest.mark.parametrize("bit_generator", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_rng_state_of_every_bit_generator_round_trips(tmp_path, bit_generator):
    gen = np.random.Generator(getattr(np.random, bit_generator)(42))
    gen.random(5)
    gen.integers(0, 10, dtype=np.uint32)  # leaves half of a 64-bit draw cached (has_uint32) in the state
    path = save_checkpoint(tmp_path / "c.safetensors", model_config={}, model_state={}, optimizer_state=None,
                           step=0, vocab=None, rng_state=gen.bit_generator.state, train_config=None)
    restored = restore_rng(load_checkpoint(path).rng_state)
    assert type(restored.bit_generator).__name__ == bit_generator
    np.testing.assert_array_equal(restored.random(100), gen.random(100))
    np.testing.assert_array_equal(restored.integers(0, 2**32, 100, dtype=np.uint32),
                                  gen.integers(0, 2**32, 100, dtype=np.uint32))


def test_optional_fields_may_be_none(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", model_config={"cell": "rnn"},
                           model_state={"w": np.zeros((2, 3), np.float32)}, optimizer_state=None,
                           step=0, vocab=None, rng_state=None, train_config=None)
    ckpt = load_checkpoint(path)
    assert (ckpt.optimizer_state, ckpt.vocab, ckpt.rng_state, ckpt.train_config, ckpt.extra) == (None,) * 5


def test_overwrite_replaces_previous_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    for step in (1, 2):
        save_checkpoint(path, model_config={}, model_state={"w": np.full(3, step)}, optimizer_state=None,
                        step=step, vocab=None, rng_state=None, train_config=None)
    ckpt = load_checkpoint(path)
    assert ckpt.step == 2 and ckpt.model_state["w"].tolist() == [2, 2, 2]
    assert entries(tmp_path) == ["c.safetensors"]


@pytest.mark.parametrize("bad, error, words", [
    (dict(model_state={"w": np.array(["a"])}), TypeError, "model_state['w'] has dtype"),
    (dict(model_state={"w": np.array([object()])}), TypeError, "model_state['w'] has dtype"),
    (dict(extra={"f": lambda: 0}), TypeError, "extra must be JSON-serializable"),
    (dict(optimizer_state={"lr": 0.1}), ValueError, '"hyper"'),
    (dict(vocab=["a", 1]), TypeError, "vocab"),
    (dict(rng_state={"state": 1}), TypeError, "rng_state"),
])
def test_bad_input_is_rejected_before_any_file_is_made(tmp_path, bad, error, words):
    kwargs = dict(model_config={}, model_state={}, optimizer_state=None, step=0, vocab=None,
                  rng_state=None, train_config=None) | bad
    with pytest.raises(error) as info:
        save_checkpoint(tmp_path / "c.safetensors", **kwargs)
    assert words in str(info.value)
    assert entries(tmp_path) == []


# -- atomicity -----------------------------------------------------------------------------------------
def save_step(path, step, **kwargs):
    return save_checkpoint(path, model_config=CONFIG, model_state={"w": np.full((64, 64), step, np.float32)},
                           optimizer_state=None, step=step, vocab=None, rng_state=None, train_config=None, **kwargs)


def assert_previous_survives(tmp_path, path):
    ckpt = load_checkpoint(path)
    assert ckpt.step == 1 and (ckpt.model_state["w"] == 1).all()
    assert entries(tmp_path) == [path.name], "temp file left behind"


@pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch, exception):
    path = tmp_path / "c.safetensors"
    save_step(path, 1)

    real_write, written = os.write, []

    def write_half_then_crash(fd, data):
        written.append(real_write(fd, data[: len(data) // 2]))
        raise exception

    monkeypatch.setattr(rio.os, "write", write_half_then_crash)
    with pytest.raises(type(exception)):
        save_step(path, 2)
    monkeypatch.undo()
    assert written and written[0] > 1000  # the crash came with a half-written temp file on disk
    assert_previous_survives(tmp_path, path)


def test_crash_between_write_and_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_step(path, 1)
    written = []

    def crash(src, dst):
        written.append(load_checkpoint(src).step)  # the temp file was complete: only the rename failed
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(rio.os, "replace", crash)
    with pytest.raises(OSError, match="before rename"):
        save_step(path, 2)
    assert written == [2]
    assert_previous_survives(tmp_path, path)


def test_failed_first_save_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(rio.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        save_step(tmp_path / "c.safetensors", 1)
    assert entries(tmp_path) == []


CHILD = """
import sys
import numpy as np
from rnnlab.io import save_checkpoint
big = np.empty(4_000_000, np.float32)  # 16 MB, so a save takes long enough to be killed inside
step = 0
while True:
    step += 1
    big.fill(step)
    print("saving", step, flush=True)
    save_checkpoint(sys.argv[1], model_config={"step": step}, model_state={"big": big, "small": np.full(3, step)},
                    optimizer_state=None, step=step, vocab=None, rng_state=None, train_config=None)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_save_loop_leaves_a_valid_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    killed_mid_write = 0
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for expected in ("saving 1", "saving 2"):  # so save 1 has finished and save 2 is under way
                line = proc.stdout.readline().strip()
                assert line == expected, proc.stderr.read()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(n.endswith(".tmp") for n in os.listdir(tmp_path)):
                pass  # kill as soon as save 2's temp file is being written
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        strays = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        killed_mid_write += bool(strays)
        ckpt = load_checkpoint(path)
        step = ckpt.step
        assert step >= 1 and ckpt.model_config == {"step": step}
        assert (ckpt.model_state["big"] == step).all() and (ckpt.model_state["small"] == step).all()
        for n in strays:  # SIGKILL cannot clean up; the stray temp file never touched the target
            os.unlink(tmp_path / n)
    assert killed_mid_write >= 1, "no kill landed during a write"


# -- clear errors ----------------------------------------------------------------------------------------
def write_bad_file(path: Path, kind: str):
    good = path.with_name("good.safetensors")
    save_step(good, 1)
    data = good.read_bytes()
    good.unlink()
    if kind == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif kind == "truncated header":
        path.write_bytes(data[:40])
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "text":
        path.write_text("step: 1000\nhidden: 256\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no metadata":
        save_file({"weight_ih_l0": np.zeros((4, 4), np.float32)}, path)
    elif kind == "other metadata":
        save_file({"w": np.zeros(2, np.float32)}, path, metadata={"format": "pt"})
    elif kind == "bad json":
        save_file({"w": np.zeros(2, np.float32)}, path, metadata={"rnnlab": "{not json"})
    elif kind == "wrong format":
        save_file({"w": np.zeros(2, np.float32)}, path, metadata={"rnnlab": json.dumps({"format": "other"})})
    elif kind == "newer version":
        doc = {"format": "rnnlab-checkpoint", "version": 2}
        save_file({"model.w": np.zeros(2, np.float32)}, path, metadata={"rnnlab": json.dumps(doc)})
    elif kind == "directory":
        path.mkdir()


@pytest.mark.parametrize("kind, words", [
    ("missing", "no such file"),
    ("directory", "not a regular file"),
    ("truncated", "not a valid safetensors file (truncated, corrupted"),
    ("truncated header", "not a valid safetensors file"),
    ("random bytes", "not a valid safetensors file"),
    ("text", "not a valid safetensors file"),
    ("empty", "not a valid safetensors file"),
    ("no metadata", "not an rnnlab checkpoint (no 'rnnlab' metadata)"),
    ("other metadata", "not an rnnlab checkpoint"),
    ("bad json", "corrupted rnnlab metadata (invalid JSON"),
    ("wrong format", "not an rnnlab checkpoint (format 'other'"),
    ("newer version", "format version 2; this rnnlab reads version 1"),
])
def test_unloadable_files_give_a_clear_checkpoint_error(tmp_path, kind, words):
    path = tmp_path / "ckpt.safetensors"
    write_bad_file(path, kind)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    print(message)
    assert isinstance(info.value, ValueError)
    assert str(path) in message and words in message, message
    if kind not in ("no metadata", "other metadata", "bad json", "wrong format", "newer version"):
        with pytest.raises(CheckpointError, match="ckpt.safetensors"):
            load_weights(path)


def test_config_mismatch_names_the_differing_keys(tmp_path):
    path = tmp_path / "c.safetensors"
    save_step(path, 1)  # an lstm with hidden 256
    this_model = dict(CONFIG, cell="gru", hidden_size=128, bias=False)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expect_model_config=this_model)
    message = str(info.value)
    print(message)
    assert str(path) in message
    assert "cell: checkpoint 'lstm', this model 'gru'" in message
    assert "hidden_size: checkpoint 256, this model 128" in message
    assert "bias: checkpoint (absent), this model False" in message
    assert "num_layers" not in message and "vocab_size" not in message


def test_config_match_ignores_json_normalisation(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model_config={"sizes": (4, 5), "hidden": np.int64(8)}, model_state={},
                    optimizer_state=None, step=0, vocab=None, rng_state=None, train_config=None)
    ckpt = load_checkpoint(path, expect_model_config={"sizes": [4, 5], "hidden": 8})  # no error
    assert ckpt.model_config == {"sizes": [4, 5], "hidden": 8}


def test_restore_rng_rejects_unknown_bit_generator():
    with pytest.raises(ValueError, match="no numpy bit generator"):
        restore_rng({"bit_generator": "Generator", "state": {}})
    with pytest.raises(ValueError, match="invalid PCG64 state"):
        restore_rng({"bit_generator": "PCG64", "state": {}})


# -- plain weight files and PyTorch ------------------------------------------------------------------------
def test_save_weights_loads_into_torch_lstm(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load_file

    lstm = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    ours = {name: rng.standard_normal(tuple(p.shape)).astype(np.float32) for name, p in lstm.state_dict().items()}
    assert "weight_ih_l1_reverse" in ours and ours["weight_ih_l1"].shape == (20, 10)

    path = save_weights(tmp_path / "lstm.safetensors", ours)
    lstm.load_state_dict(torch_load_file(path))  # strict: every name and shape must match
    for name, p in lstm.state_dict().items():
        np.testing.assert_array_equal(p.numpy(), ours[name], err_msg=name)
    theirs = load_weights(path)  # in safetensors' order, which sorts names
    assert_same_arrays(ours, {k: theirs[k] for k in ours} if set(theirs) == set(ours) else theirs)
    assert entries(tmp_path) == ["lstm.safetensors"]


def test_rnnlab_lstm_weights_move_to_torch_and_back(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load_file

    import rnnlab

    ours = rnnlab.LSTM(4, 5, num_layers=2, bidirectional=True, rng=0)
    path = save_weights(tmp_path / "lstm.safetensors", ours.state_dict())
    lstm = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True)
    lstm.load_state_dict(torch_load_file(path))
    for name, p in ours.named_parameters():
        np.testing.assert_array_equal(lstm.state_dict()[name].numpy(), p.data, err_msg=name)

    again = rnnlab.LSTM(4, 5, num_layers=2, bidirectional=True, rng=1)
    again.load_state_dict(load_weights(path))
    assert_same_arrays(ours.state_dict(), again.state_dict())


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink", "device"])
def test_atomic_write_refuses_anything_but_a_regular_file(tmp_path, kind):
    """The rename would replace a device node, FIFO or link (not its target) with a regular file."""
    from rnnlab.io import OutputError, atomic_write_bytes

    target = {"directory": tmp_path / "d", "fifo": tmp_path / "f", "symlink": tmp_path / "l",
              "device": Path("/dev/null")}[kind]
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real").write_text("kept")
        target.symlink_to(tmp_path / "real")
    words = {"directory": "is a directory", "fifo": "is a FIFO", "symlink": "is a symbolic link",
             "device": "is a device"}[kind]
    with pytest.raises(OutputError, match=words):
        atomic_write_bytes(target, b"data")
    assert Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "real").read_text() == "kept"


def test_a_failed_atomic_write_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    import rnnlab.io
    from rnnlab.io import atomic_write_bytes

    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rnnlab.io.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(path, b"new")
    assert caught.value.filename == str(path) and caught.value.filename2 is None
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
