"""`rnnlab explore`: one HTML page that shows what a trained character model remembers as it reads.

    from rnnlab.explore import build_page, explore_page
    path = explore_page("runs/char", chars=2000, out="page.html")       # what the CLI does
    data = build_page(...)                                              # the dict the page embeds

Modules: trace (states, gates, predictions and connectivity from the model's own forward and
backward passes), units (text features and the correlation search), codec (packed arrays), page
(data and HTML), server (`--serve` and its live endpoint), neurone (the lecture's example, live).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .page import connectivity_rows, page_data, read_data, render

DEFAULT_CHARS = 2000


def one_blas_thread():
    """BLAS on one thread inside the block: explore's GEMMs are small (one time step of a few sequences),
    and a second BLAS thread fighting a busy machine for its cores slows them down several times."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - declared as a dependency; keep working without it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def default_text(ckpt, vocab, chars: int) -> str:
    """`chars` characters of the model's validation split (the last 10% of its training text), from a line start."""
    from ..data.text import load_text

    source = (ckpt.train_config or {}).get("data")
    text, _ = load_text(source)
    val = text[int(len(text) * 0.9):]
    start = val.find("\n") + 1
    return val[start:start + chars]


def _text_for(model, vocab, ckpt, text_file, prime, chars: int, seed: int) -> str:
    if text_file is not None:
        from ..data.text import load_text

        text = load_text(text_file)[0][:chars]
    elif prime is not None:
        from ..sample import generate

        if not prime:
            raise ValueError("--prime needs at least one character")
        text = generate(model, vocab, prime, max(chars - len(prime), 0), temperature=0.8, rng=seed)[:max(chars, len(prime))]
    else:
        text = default_text(ckpt, vocab, chars)
    if not text:
        raise ValueError("the text to explore is empty")
    vocab.encode(text, source="the text to explore")  # one clear error before any work
    return text


def explore_page(run, compare_run=None, *, text_file=None, prime=None, chars: int = DEFAULT_CHARS,
                 out=None, features: str = "auto", window: int = 200, max_positions: int = 250,
                 all_gates: bool = False, seed: int = 0, live: bool = False, log=print):
    """Build the page for a run (and a second run beside it): returns (html, data, models for --serve)."""
    from ..models import load_char_model
    from .server import LiveModel
    from .trace import default_positions

    if not isinstance(chars, int) or chars < 2:
        raise ValueError(f"--chars must be an integer >= 2; got {chars!r}")
    started = time.perf_counter()
    with one_blas_thread():  # loading builds the model too (QR of every W_hh block)
        model, vocab, ckpt = load_char_model(run)
        text = _text_for(model, vocab, ckpt, text_file, prime, chars, seed)
        compare, live_models = [], [LiveModel(str(run), model, vocab)]
        if compare_run is not None:
            other, other_vocab, other_ckpt = load_char_model(compare_run)
            other_vocab.encode(text, source=f"the text to explore (for {compare_run})")
            compare.append((other, other_vocab, str(compare_run), other_ckpt.step))
            live_models.append(LiveModel(str(compare_run), other, other_vocab))
        data = page_data(model, vocab, text, str(run), step=ckpt.step, compare=compare, features=features,
                         positions=default_positions(len(text), max_positions), window=window, all_gates=all_gates)
    data["live"] = live
    html = render(data)
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
        log(f"rnnlab explore: {len(text)} characters, {len(data['connectivity']['positions'])} connectivity "
            f"positions, {len(html.encode()) / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s: {out}")
    return html, data, live_models


def neurone_page(seed: int = 0, steps: int | None = None, live: bool = True):
    """The neurone example: the RNN reading "^neurone" with the feed-forward net beside it."""
    import numpy as np

    from ..nn.losses import log_softmax
    from . import codec
    from .neurone import WORD, train_neurone
    from .page import TOP_K
    from .server import LiveModel
    from .trace import top_k

    ff, rnn, vocab = train_neurone(seed, steps)
    text = "^" + WORD
    data = page_data(rnn, vocab, text, "RNN (rnnlab experiment neurone)", features="prose", window=len(text))
    ff_logp = log_softmax(np.asarray(ff(vocab.encode(text)[None, :])[0], np.float64))
    data["compare"].append({
        "model": {"name": "feed-forward (one character at a time)", "cell": "ff", "num_layers": 1,
                  "hidden_size": ff.hidden.weight.data.shape[0], "states": [], "gates": [], "step": None},
        "topk": top_k(ff_logp, vocab.chars, TOP_K, round_to=codec.round_sig),
        "connectivity": {"window": len(text), "positions": [], "lengths": [], "values": codec.pack(np.zeros(0))}})
    data["live"] = live
    models = [LiveModel("feed-forward", ff, vocab, prefix="^", states=False),
              LiveModel("RNN", rnn, vocab, prefix="^")]
    return render(data, "rnnlab explore: neurone"), data, models


__all__ = ["explore_page", "neurone_page", "page_data", "read_data", "render", "connectivity_rows", "DEFAULT_CHARS"]
