"""`rnnlab explore`: one HTML page that shows what a trained character model remembers as it reads.

    from rnnlab.explore import explore_page, page_data, read_data
    html, data, _ = explore_page("runs/char", chars=2000, out="page.html")   # what the CLI does
    data = page_data(model, vocab, text)          # the dict a page embeds, for any model and text
    data = read_data(open("page.html").read())    # and back out of a written page

Modules: trace (states, gates, predictions and connectivity from the model's own forward and
backward passes), units (text features and the correlation search), codec (packed arrays), page
(data and HTML), server (`--serve` and its live endpoint), neurone (the lecture's example, live).
Small GEMMs run on one BLAS thread (threadpoolctl).
"""
from __future__ import annotations

import time
from pathlib import Path

from threadpoolctl import threadpool_limits
from .neurone import neurone_page
from .page import connectivity_rows, page_data, read_data, render

DEFAULT_CHARS = 2000


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
    with threadpool_limits(1, user_api="blas"):  # loading builds the model too (QR of every W_hh block)
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
    html = render(data)  # the file works from disk: no live box
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
        log(f"rnnlab explore: {len(text)} characters, {len(data['connectivity']['positions'])} connectivity "
            f"positions, {len(html.encode()) / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s: {out}")
    if live:  # the served page has the box
        data["live"] = True
        html = render(data)
    return html, data, live_models


__all__ = ["explore_page", "neurone_page", "page_data", "read_data", "render", "connectivity_rows", "DEFAULT_CHARS"]
