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


GRU_WITH_LITERALS = '''
from rnnlab.nn.functional import sigmoid, tanh


def forward(a_x, a_h, state):
    (x_r, x_z, x_n), (h_r, h_z, h_n), (h,) = a_x, a_h, state
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return ((1 - z) * n + z * h,), (r, z, n, h_n)
'''


def test_a_cells_literals_keep_float32_in_the_sampler(tmp_path):
    """The sampler inlines the cell's typed copy, as the time loops do: `1 - z` in a float32 model is
    float32 arithmetic (Numba alone would compute it in float64), and the text still follows the model."""
    import importlib.util

    path = tmp_path / "gru_literal.py"
    path.write_text(GRU_WITH_LITERALS)
    spec = importlib.util.spec_from_file_location("gru_literal_for_the_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from rnnlab.nn.cells.gru import GRU

    cell = rnnlab.register_cell(rnnlab.CellDefinition(
        "gru_literal", gates=GRU.gates, state_names=GRU.state_names, saved=GRU.saved, forward=module.forward,
        backward=GRU.backward, h_side_apart=True), replace=True)
    try:
        _literals_stay_float32(module.forward, model_for(cell.name, "float32", layers=1))
    finally:
        rnnlab.settings.cells.unregister(cell.name)  # the other tests see the built-in cells only


def _literals_stay_float32(forward, model):
    import numba

    logits, state = model(VOCAB.encode("AB")[None, :]), model.final_state
    sampler = rnnlab.settings.fast.sampler(model, state)
    ids = sampler.sample(logits[0, -1], np.random.default_rng(0).random(20), 1.0, None)
    expected = model(np.concatenate([VOCAB.encode("AB")[None, :], ids[None, :]], axis=1))
    np.testing.assert_allclose(sampler.logits, expected[0, -1], rtol=1e-5, atol=1e-5)
    step = sampler.run.py_func.__globals__["step"].py_func  # the cell's forward the sampler inlined
    checked = numba.njit(step)
    one = np.float32(0.3)
    checked((one,) * 3, (one,) * 3, (one,))
    assert "float64" not in str(checked.nopython_signatures[0].return_type)
    plain = numba.njit(forward)
    plain((one,) * 3, (one,) * 3, (one,))
    assert "float64" in str(plain.nopython_signatures[0].return_type)  # what the typed copy mends
