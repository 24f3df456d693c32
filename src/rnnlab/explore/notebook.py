"""The explore page as a notebook object: `rnnlab.explore(...)` shows it inline, `.save(path)` writes it.

    page = rnnlab.explore("runs/char", chars=1000)    # a run directory or checkpoint
    page = rnnlab.explore(neurone=True)                # the lecture's example: feed-forward net vs RNN
    page = rnnlab.explore(trainer, text="to be or not")  # a model in memory (anything with .model, .vocab)
    page                                               # the last expression of a cell: the page, inline
    page.save("explore.html")

Inline, the page lives in an `<iframe srcdoc>`: its own document, so its styles and scripts never
reach the notebook's, and `sandbox="allow-scripts"` gives it no access to the notebook either.
"""
from __future__ import annotations

import html as html_lib
from dataclasses import dataclass
from pathlib import Path

IFRAME_HEIGHT = 720  # px: the text, the info panel and the unit list, without scrolling the notebook


@dataclass
class ExplorePage:
    """One self-contained explore page (html) and the data it embeds."""

    html: str
    data: dict
    height: int = IFRAME_HEIGHT

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" sandbox="allow-scripts" '
                f'style="width: 100%; height: {self.height}px; border: 1px solid #ddd;" '
                f'title="rnnlab explore"></iframe>')

    def save(self, path) -> Path:
        """Write the page (it opens from disk, no server) atomically; return the path."""
        from ..io import atomic_write_bytes

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, self.html.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<ExplorePage {self.data['model']['name']!r}: {len(self.html.encode()) / 1e6:.2f} MB of HTML>"


def explore(run=None, compare_run=None, *, neurone: bool = False, text: str | None = None, seed: int = 0,
            height: int = IFRAME_HEIGHT, **options) -> ExplorePage:
    """The explore page of a run (path), of a model in memory (an object with .model and .vocab, and
    text=), or of the lecture's neurone example (neurone=True); options go to `explore_page`."""
    from . import explore_page, neurone_page

    if neurone:
        if run is not None or compare_run is not None:
            raise ValueError("neurone=True trains its own two models; give no run with it")
        from ..display import in_notebook

        page, data, _ = neurone_page(seed=seed, live=False, progress=in_notebook())  # a bar while it trains
        return ExplorePage(page, data, height)
    if run is None:
        raise ValueError("give a run directory or checkpoint, a trained model (with .model and .vocab), "
                         "or neurone=True")
    if hasattr(run, "model") and hasattr(run, "vocab"):
        return _in_memory(run, text, height, **options)
    if text is not None:
        raise ValueError("text= is for a model in memory; for a run, pass text_file= or prime=")
    page, data, _ = explore_page(run, compare_run, seed=seed, log=lambda line: None, **options)
    return ExplorePage(page, data, height)


def _in_memory(trained, text, height, **options) -> ExplorePage:
    from threadpoolctl import threadpool_limits

    from .page import page_data, render
    from .trace import default_positions

    if not text:
        raise ValueError("text= is needed to explore a model in memory: the characters it should read")
    trained.vocab.encode(text, source="the text to explore")  # one clear error before any work
    name = options.pop("name", "model in memory")
    with threadpool_limits(1, user_api="blas"):  # small GEMMs: one BLAS thread
        data = page_data(trained.model, trained.vocab, text, name,
                         positions=default_positions(len(text), options.pop("max_positions", 250)), **options)
    return ExplorePage(render(data), data, height)
