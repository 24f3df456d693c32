"""The compiled sampler (fast/sample_compiled.py) against the model it packs: the same logits and state
after the same characters, the same text as the Python loop, and the fallback where Numba is absent."""
import numpy as np
import pytest

import rnnlab
from rnnlab.data.text import Vocab
from rnnlab.models import CELLS, CharRNN, CharRNNConfig
from rnnlab.sample import generate

pytestmark = pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba cannot import")
VOCAB = Vocab.from_list([chr(65 + i) for i in range(26)] + ["\n", " "])


def model_for(cell, dtype, layers=2):
    config = CharRNNConfig(vocab_size=len(VOCAB), cell=cell, hidden_size=12, num_layers=layers,
                           embedding_dim=5, dtype=dtype)
    return CharRNN(config, rng=7).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_steps_match_the_model(cell, dtype, tol):
    """After sampling n ids, the sampler's logits and state are the model's after reading prime + ids."""
    model = model_for(cell, dtype)
    prime = VOCAB.encode("HELLO ")[None, :]
    logits, state = model(prime), model.final_state
    sampler = rnnlab.settings.fast.sampler(model, state)
    ids = sampler.sample(logits[0, -1], np.random.default_rng(0).random(40), 1.3, None)
    expected = model(np.concatenate([prime, ids[None, :]], axis=1))
    expected_state = model.final_state
    np.testing.assert_allclose(sampler.logits, expected[0, -1], rtol=tol, atol=tol)
    parts = expected_state if isinstance(expected_state, tuple) else (expected_state,)
    for ours, theirs in zip(sampler.states, parts):  # h, and c for the LSTM: (L, H) each
        np.testing.assert_allclose(ours, theirs[:, 0], rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", list(CELLS))  # every registered cell a CharRNN takes
@pytest.mark.parametrize("top_k", [None, 3])
def test_same_seed_same_text_as_the_python_loop(cell, top_k):
    model = model_for(cell, "float64", layers=3)
    slow = generate(model, VOCAB, "AB", 300, temperature=0.8, top_k=top_k, rng=11, compiled=False)
    fast = generate(model, VOCAB, "AB", 300, temperature=0.8, top_k=top_k, rng=11)
    assert fast == slow


def test_greedy_top_1_and_streaming_over_chunks():
    model = model_for("lstm", "float32", layers=1)
    streamed = []
    text = generate(model, VOCAB, length=150, top_k=1, rng=0, on_text=streamed.append)  # > one CHUNK
    assert "".join(streamed) == text and len(text) == 150
    assert text == generate(model, VOCAB, length=150, top_k=1, rng=1)  # greedy: no randomness


def test_falls_back_to_the_python_loop(monkeypatch):
    model = model_for("gru", "float64", layers=1)
    fast = generate(model, VOCAB, "A", 50, rng=3)
    monkeypatch.setattr(rnnlab.settings, "fast", None)  # as where numba is not installed
    assert generate(model, VOCAB, "A", 50, rng=3) == fast
