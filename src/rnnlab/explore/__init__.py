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

import sys
import time
import types
from pathlib import Path

from threadpoolctl import threadpool_limits
from .neurone import neurone_page
from .page import connectivity_rows, page_data, read_data, render

DEFAULT_CHARS = 2000


def default_text(ckpt, vocab, chars: int) -> str:
    """`chars` characters of the model's validation split (the last 10% of its training text), from a line start."""
    from ..data.corpus import open_corpus

    trained = ckpt.train_config or {}
    corpus = open_corpus(trained.get("data"), keep_crlf=bool(trained.get("keep_crlf", False)),
                         errors=trained.get("errors", "strict"))  # the run's ids, from the cache
    first = int(len(corpus) * 0.9)
    val = corpus.text(first, first + chars + 1000)  # a window: the text is never read whole
    start = val.find("\n") + 1
    return val[start:start + chars]


def _text_for(model, vocab, ckpt, text_file, prime, chars: int, seed: int) -> str:
    if text_file is not None:
        from ..data.text import load_text

        text = load_text(text_file, max_chars=chars)[0]
    elif prime is not None:
        from ..sample import generate

        if not prime:
            raise ValueError("--prime needs at least one character")
        text = generate(model, vocab, prime, max(chars - len(prime), 0), temperature=0.8, rng=seed)[:max(chars, len(prime))]
    else:
        text = default_text(ckpt, vocab, chars)
    if not text:
        raise ValueError("the text to explore is empty")
    return text


def check_vocabularies(text: str, named) -> None:
    """DataError naming each run (name, vocab) whose vocabulary lacks characters of `text`, which ones,
    and the runs that know them: one clear error before any work."""
    from ..data.text import DataError

    chars = set(text)
    problems, readers = [], []
    for name, vocab in named:
        lacking = sorted(chars - set(vocab.chars))
        if not lacking:
            readers.append(str(name))
            continue
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in lacking[:10])
        more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
        problems.append(f"{name} lacks {len(lacking)} character(s) of it, not in its vocabulary of {len(vocab)}: "
                        f"{listed}{more}")
    if problems:
        known = f" ({' and '.join(readers)} knows them)" if readers else ""
        raise DataError(f"the text to explore: {'; '.join(problems)}{known}; give --text with characters every "
                        "run knows")


def _reads(run, compare_run, text_file) -> list:
    """What explore reads, as (path, what) pairs, which its --out must never replace."""
    reads = [(text_file, "the --text file")] if text_file is not None else []
    for path in (run, compare_run):
        if path is not None:
            path = Path(path)
            reads.append((path / "checkpoint.safetensors" if path.is_dir() else path, "a checkpoint being explored"))
    return reads


def explore_page(run, compare_run=None, *, text_file=None, prime=None, chars: int = DEFAULT_CHARS,
                 out=None, features: str = "auto", window: int = 200, max_positions: int = 250,
                 all_gates: bool = False, seed: int = 0, live: bool = False, overwrite: bool = False, log=print):
    """Build the page for a run (and a second run beside it): returns (html, data, models for --serve).

    `out` is written atomically, and refused before any work (rundir.check_output) if it is not a
    regular file's path, is a file this reads, or (unless `overwrite`) a run's file or a checkpoint."""
    from ..models import load_char_model
    from ..rundir import check_output, write_output
    from ..validate import check_explore_size
    from .server import LiveModel
    from .trace import default_positions

    if not isinstance(chars, int) or chars < 2:
        raise ValueError(f"--chars must be an integer >= 2; got {chars!r}")
    if out is not None:
        check_output(out, reads=_reads(run, compare_run, text_file), overwrite=overwrite)
    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):  # loading builds the model too (QR of every W_hh block)
        model, vocab, ckpt = load_char_model(run)
        text = _text_for(model, vocab, ckpt, text_file, prime, chars, seed)
        compare, live_models = [], [LiveModel(str(run), model, vocab)]
        if compare_run is not None:
            other, other_vocab, other_ckpt = load_char_model(compare_run)
            compare.append((other, other_vocab, str(compare_run), other_ckpt.step))
            live_models.append(LiveModel(str(compare_run), other, other_vocab))
        check_vocabularies(text, [(run, vocab)] + [(compare_run, v) for _, v, _, _ in compare])
        positions = default_positions(len(text), max_positions)
        check_explore_size(chars=len(text), positions=len(positions), window=min(window, len(text)),
                           vocab=len(vocab.chars), cell=model.rnn.kind.name, hidden=model.rnn.hidden_size,
                           layers=model.rnn.num_layers, embedding=model.embedding.embedding_dim,
                           models=1 + len(compare))
        data = page_data(model, vocab, text, str(run), step=ckpt.step, compare=compare, features=features,
                         positions=positions, window=window, all_gates=all_gates)
    html = render(data)  # the file works from disk: no live box
    if out is not None:
        write_output(out, html, reads=_reads(run, compare_run, text_file), overwrite=overwrite)
        log(f"rnnlab explore: {len(text)} characters, {len(data['connectivity']['positions'])} connectivity "
            f"positions, {len(html.encode()) / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s: {out}")
    if live:  # the served page has the box
        data["live"] = True
        html = render(data)
    return html, data, live_models


__all__ = ["explore_page", "neurone_page", "page_data", "read_data", "render", "connectivity_rows", "DEFAULT_CHARS"]


class _CallableModule(types.ModuleType):
    """`rnnlab.explore(...)` is both this package and its notebook function (notebook.explore)."""

    def __call__(self, *args, **kwargs):
        from .notebook import explore

        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
