"""Tiny float64 character models saved as checkpoints, for the explore tests."""
from __future__ import annotations

import numpy as np

from rnnlab.data.text import Vocab
from rnnlab.io import save_checkpoint
from rnnlab.models import CharRNN, CharRNNConfig

CODE = ('def f(x):\n    return "a(b)" + x\n\nclass A:\n    def g(self, y=[1, 2]):\n'
        "        s = 'it\\'s'\n        return (y, s)\n")


def tiny_checkpoint(path, cell: str = "lstm", text: str = CODE, hidden: int = 12, seed: int = 1,
                    dtype: str = "float64"):
    """A random 2-layer model over the characters of `text` plus a-z and space; returns (model, vocab)."""
    vocab = Vocab.from_text(text + "abcdefghijklmnopqrstuvwxyz ")
    config = CharRNNConfig(vocab_size=len(vocab), cell=cell, hidden_size=hidden, num_layers=2, embedding_dim=6,
                           dtype=dtype)
    model = CharRNN(config, rng=seed)
    rng = np.random.default_rng(seed)
    for p in model.parameters():  # larger weights than the init: saturated gates, long memories, sharp predictions
        p.data[...] = p.data * 1.5 + 0.05 * rng.standard_normal(p.data.shape)
    save_checkpoint(path, model_config=config.to_dict(), model_state=model.state_dict(), optimizer_state=None,
                    step=7, vocab=vocab.to_list(), rng_state=None, train_config=None)
    model.eval()
    return model, vocab
