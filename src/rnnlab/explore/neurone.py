"""The lecture's "neurone" example, live: the feed-forward net beside the RNN of `rnnlab experiment neurone`.

Both are trained here as that experiment trains them (its defaults, its seeds, the same loss and
optimizer loop), in a few seconds, then read whatever word the user types. The feed-forward net
answers from the current character alone; the RNN from the whole prefix.
"""
from __future__ import annotations

import numpy as np

from ..data import tasks
from ..data.text import Vocab
from ..experiments import EXPERIMENTS, FF, RunSpec
from ..experiments.runners import fit_neurone
from ..models import ManyToMany
from ..nn.losses import log_softmax
from . import codec
from .neurone_words import with_words_table, words_table
from .page import TOP_K, page_data, render
from .server import LiveModel
from .trace import top_k

WORD = "neurone"


class SequenceView:
    """A ManyToMany over ids seen as a character model: .embedding, .rnn, .head, model(ids) -> logits."""

    final_state = None  # a word is read whole, never carried on

    def __init__(self, model: ManyToMany):
        self.model, self.rnn, self.embedding, self.head = model, model.rnn, model.inputs.embedding, model.head

    def __call__(self, ids):
        return self.model(ids)

    def eval(self):
        self.model.eval()
        return self

    def parameters(self):
        return self.model.parameters()


def train_neurone(seed: int = 0, steps: int | None = None, progress: bool = False):
    """(feed-forward OneToOne, RNN as a SequenceView, vocab), trained by the experiment's own runner code."""
    experiment = EXPERIMENTS["neurone"]
    data = tasks.neurone_data()
    models = []
    for cell in (FF, "rnn"):
        spec = RunSpec("neurone", cell, None, experiment.hidden, steps or experiment.steps, experiment.batch,
                       experiment.lr, seed)
        model, _, _ = fit_neurone(spec, data, progress)
        models.append(model.eval())
    return models[0], SequenceView(models[1]), Vocab.from_list(data.vocab)


def neurone_page(seed: int = 0, steps: int | None = None, live: bool = True, progress: bool = False):
    """(html, data, live models): the RNN reading "^neurone", the feed-forward net's top 5 beside it,
    and, above, the ten words with both models' predictions (static HTML, readable without a server)."""
    ff, rnn, vocab = train_neurone(seed, steps, progress)
    text = "^" + WORD
    data = page_data(rnn, vocab, text, "RNN (rnnlab experiment neurone)", features="prose", window=len(text))
    ff_logp = log_softmax(np.asarray(ff(vocab.encode(text)[None, :])[0], np.float64))  # (T, V)
    data["compare"].append({
        "model": {"name": "feed-forward (one character at a time)", "cell": "ff", "num_layers": 1,
                  "hidden_size": ff.hidden.weight.data.shape[0], "states": [], "gates": [], "step": None},
        "topk": top_k(ff_logp, vocab.chars, TOP_K, round_to=codec.round_sig),
        "connectivity": {"window": len(text), "positions": [], "lengths": [], "values": codec.pack(np.zeros(0))}})
    data["live"] = live
    models = [LiveModel("feed-forward", ff, vocab, prefix="^", states=False), LiveModel("RNN", rnn, vocab, prefix="^")]
    page = with_words_table(render(data, "rnnlab explore: neurone"), words_table(ff, rnn.model))
    return page, data, models
