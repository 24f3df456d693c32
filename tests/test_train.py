"""Training: truncated-BPTT state carry, bit-identical resume, checkpoints that survive a failed
save, NaN detection, sampling."""
import json
import math

import numpy as np
import pytest

import rnnlab.io
from rnnlab.data.text import DataError, Vocab
from rnnlab.models import CharRNN, CharRNNConfig, load_char_model
from rnnlab.sample import generate, next_char_distribution
from rnnlab.train import TrainConfig, Trainer, TrainingDiverged, evaluate, optimize

TEXT = "".join(f"the {w} sat on the mat {i % 7}.\n" for i, w in enumerate(["cat", "dog", "bird", "frog"] * 60))


def tiny_config(tmp_path, **overrides):
    settings = dict(hidden=12, layers=2, embedding=6, seq_len=8, batch=4, steps=14, lr=1e-2, dropout=0.1,
                    eval_every=5, eval_batches=3, sample_every=7, sample_length=20, save_every=3,
                    warmup=3, out=str(tmp_path / "run"), seed=3)
    settings.update(overrides)
    return TrainConfig(**settings)


def make_trainer(config, **kwargs):
    return Trainer(config, progress=False, log=lambda *a: None, text=TEXT, description="tiny text", **kwargs)


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_carried_state_equals_one_long_sequence():
    model = CharRNN(CharRNNConfig(vocab_size=10, cell="lstm", hidden_size=8, num_layers=2, embedding_dim=4,
                                  dtype="float64"), rng=0)
    ids = np.random.default_rng(0).integers(0, 10, (3, 12))
    whole = model(ids)
    assert whole.shape == (3, 12, 10)  # logits only, like every model; the state is kept aside
    first, state = model(ids[:, :5]), model.final_state
    second = model(ids[:, 5:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12, atol=1e-12)


def test_training_lowers_the_loss_and_writes_the_run_directory(tmp_path):
    result = make_trainer(tiny_config(tmp_path, steps=120, batch=8, lr=3e-2, dropout=0.0)).fit()
    run = tmp_path / "run"
    rows = losses(run)
    assert len(rows) == 120
    assert np.mean(rows[-10:]) < 0.6 * rows[0]
    for name in ("config.json", "log.jsonl", "checkpoint.safetensors", "loss.png", "samples.txt"):
        assert (run / name).stat().st_size > 0
    assert result.val_loss is not None and math.isfinite(result.val_loss)
    assert result.val_bpc == pytest.approx(result.val_loss / math.log(2))
    model, vocab, ckpt = load_char_model(run)
    assert ckpt.step == 120 and vocab.to_list() == Vocab.from_text(TEXT).to_list()


@pytest.mark.parametrize("cell", ["lstm", "gru", "lstm_noforget"])  # lstm_noforget: a second two-state cell
def test_resume_is_bit_identical(tmp_path, cell):
    straight = tmp_path / "straight"
    make_trainer(tiny_config(tmp_path, model=cell, out=str(straight), steps=40)).fit()
    # 40 steps of 4 x 8 over ~7k training characters cross an epoch boundary with a random offset

    interrupted = tmp_path / "interrupted"
    stop_at_17 = lambda row: row["step"] == 17  # stops like Ctrl-C: checkpoint, then exit
    first = make_trainer(tiny_config(tmp_path, model=cell, out=str(interrupted), steps=40)).fit(callback=stop_at_17)
    assert first.interrupted and first.steps == 17
    resumed = Trainer.resume(interrupted, progress=False, log=lambda *a: None, text=TEXT)
    assert resumed.step == 17
    resumed.fit()
    assert losses(interrupted) == losses(straight)  # exact float equality, every step
    a, b = rnnlab.io.load_checkpoint(straight / "checkpoint.safetensors"), rnnlab.io.load_checkpoint(
        interrupted / "checkpoint.safetensors")
    assert all(np.array_equal(a.model_state[k], b.model_state[k]) for k in a.model_state)


def test_resume_after_a_crash_between_saves_drops_the_lost_steps(tmp_path):
    config = tiny_config(tmp_path, steps=12, save_every=4)
    trainer = make_trainer(config)
    crash = lambda row: (_ for _ in ()).throw(RuntimeError("power cut")) if row["step"] == 6 else None
    with pytest.raises(RuntimeError, match="power cut"):
        trainer.fit(callback=crash)
    resumed = Trainer.resume(tmp_path / "run", progress=False, log=lambda *a: None, text=TEXT)
    assert resumed.step == 4 and [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    resumed.fit()
    straight = tmp_path / "straight"
    make_trainer(tiny_config(tmp_path, steps=12, save_every=4, out=str(straight))).fit()
    assert losses(tmp_path / "run") == losses(straight)


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tiny_config(tmp_path, steps=9, save_every=3))
    real_replace = rnnlab.io.os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        calls["n"] += str(dst).endswith("checkpoint.safetensors")
        if calls["n"] == 3:  # the save at step 6 (after those at 0 and 3) dies between write and rename
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(rnnlab.io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    monkeypatch.undo()
    ckpt = rnnlab.io.load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert ckpt.step == 3
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert Trainer.resume(tmp_path / "run", progress=False, log=lambda *a: None, text=TEXT).step == 3


def test_nan_loss_stops_with_the_step_and_the_cure(tmp_path, monkeypatch):
    import rnnlab.train as train

    real = train.cross_entropy
    calls = {"n": 0}

    def poisoned(logits, targets, mask=None):
        calls["n"] += 1
        loss, grad = real(logits, targets, mask)
        return (float("nan"), grad) if calls["n"] == 8 else (loss, grad)

    monkeypatch.setattr(train, "cross_entropy", poisoned)
    trainer = make_trainer(tiny_config(tmp_path, steps=20, save_every=3, eval_every=100))
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit()
    message = str(info.value)
    assert "step 8" in message and "loss is nan" in message
    assert "--lr" in message and "(step 6)" in message  # the last good checkpoint is named
    assert rnnlab.io.load_checkpoint(tmp_path / "run" / "checkpoint.safetensors").step == 6


def test_optimize_reports_an_explosion(tmp_path):
    from rnnlab.nn import Parameter
    from rnnlab.optim import SGD

    w = Parameter(np.array([2.0]))

    def loss_and_backward(step):  # loss w^4 with a huge learning rate: blows up in a few steps
        w.grad += 4 * w.data ** 3
        return float(w.data[0] ** 4)

    with np.errstate(over="ignore", invalid="ignore"):
        rows = optimize([w], loss_and_backward, SGD([w], lr=1.0), steps=50, on_nonfinite="stop")
        assert not math.isfinite(rows[-1]["loss"]) and len(rows) < 50
        with pytest.raises(TrainingDiverged, match="diverged at step"):
            w.data[...] = 2.0
            optimize([w], loss_and_backward, SGD([w], lr=1.0), steps=50)
    w.data[...] = 2.0
    clipped = optimize([w], loss_and_backward, SGD([w], lr=0.01), steps=50, clip=1.0)
    assert all(math.isfinite(r["loss"]) for r in clipped) and clipped[-1]["loss"] < clipped[0]["loss"]


def test_evaluate_in_nats_per_char():
    model = CharRNN(CharRNNConfig(vocab_size=5, hidden_size=4, num_layers=1, embedding_dim=3), rng=0)
    for p in model.head.parameters():
        p.data[...] = 0  # uniform prediction: exactly ln 5 nats per character
    loss = evaluate(model, np.random.default_rng(0).integers(0, 5, 500), batch=4, seq_len=10)
    assert loss == pytest.approx(math.log(5), rel=1e-6)


def test_sampling():
    vocab = Vocab.from_text("abc\n")
    model = CharRNN(CharRNNConfig(vocab_size=4, hidden_size=8, num_layers=1, embedding_dim=3), rng=0)
    a = generate(model, vocab, prime="ab", length=30, temperature=0.7, rng=5)
    assert a.startswith("ab") and len(a) == 32 and set(a) <= set("abc\n")
    assert a == generate(model, vocab, prime="ab", length=30, temperature=0.7, rng=5)
    greedy = generate(model, vocab, prime="ab", length=10, top_k=1, rng=1)
    assert greedy == generate(model, vocab, prime="ab", length=10, top_k=1, rng=2)
    streamed = []
    generate(model, vocab, length=5, rng=0, on_text=streamed.append)
    assert len(streamed) == 5
    with pytest.raises(DataError, match="'z'"):
        generate(model, vocab, prime="az", length=3)
    for bad in (0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            generate(model, vocab, temperature=bad)


def test_priming_is_one_pass_and_equals_stepwise_reading():
    vocab = Vocab.from_text("abcd")
    model = CharRNN(CharRNNConfig(vocab_size=4, hidden_size=6, num_layers=2, embedding_dim=3,
                                  dtype="float64"), rng=1)
    ids = vocab.encode("abcdabca")[None, :]
    logits = model(ids)
    state = None
    for t in range(ids.shape[1]):
        step_logits, state = model(ids[:, t:t + 1], state), model.final_state
    np.testing.assert_allclose(logits[0, -1], step_logits[0, -1], rtol=1e-12)


def test_temperature_and_top_k_distribution():
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    p = next_char_distribution(logits, temperature=1.0, top_k=2)
    assert p[2] == 0 and p[3] == 0 and p.sum() == pytest.approx(1)
    cold = next_char_distribution(logits, temperature=0.1)
    assert cold[0] > 0.99


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="transformer")
    with pytest.raises(ValueError, match="give steps or epochs, not both"):
        TrainConfig(steps=3, epochs=1.0)
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"hiden": 3})


def test_trainer_runs_the_one_training_loop(tmp_path, monkeypatch):
    import rnnlab.train as train

    calls = []
    real = train.optimize
    monkeypatch.setattr(train, "optimize", lambda *a, **k: calls.append(k["start"]) or real(*a, **k))
    result = make_trainer(tiny_config(tmp_path, steps=3)).fit()
    assert calls == [0] and result.steps == 3
