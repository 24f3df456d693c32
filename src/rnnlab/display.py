"""What rnnlab shows in a Jupyter notebook, with no magic: figures as PNG, progress as one bar.

    fig = rnnlab.figures.unrolled("ciao")   # the last expression of a cell: drawn inline
    bar = progress_bar(total=400, desc="training")

Figures are built without pyplot (nothing global, no GUI backend), so Jupyter's inline backend never
hears of them; `Figure._repr_png_` is what makes IPython draw them instead of `<Figure size ...>`.
"""
from __future__ import annotations

import io
import sys

import matplotlib.figure
from tqdm.std import tqdm as tqdm_std


class Figure(matplotlib.figure.Figure):
    """A matplotlib figure that displays itself in Jupyter as a PNG; everything else as matplotlib's."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi, facecolor=self.get_facecolor())
        return buffer.getvalue()


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not plain Python)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401  (tqdm's notebook bar is an ipywidgets progress bar)
    except ImportError:
        return False
    return True


def progress_bar(**kwargs):
    """tqdm.auto's bar: a widget in Jupyter with ipywidgets, the terminal's line elsewhere. In a
    kernel without ipywidgets, where tqdm.auto would warn and stream every refresh as a new chunk
    of stderr, one line of text redrawn in place (`LineBar`)."""
    if in_notebook() and not _has_widgets():
        return LineBar(**kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


class LineBar(tqdm_std):
    """tqdm drawn as one text output that each refresh replaces (IPython's update_display), so a
    notebook keeps one line: live while it runs, final once saved."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("file", io.StringIO())  # tqdm writes its "\r" and "\n" here, not to stderr
        kwargs.setdefault("ncols", 90)
        kwargs.pop("dynamic_ncols", None)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        from IPython.display import display

        bundle = {"text/plain": str(self) if msg is None else msg}
        handle = getattr(self, "_handle", None)
        if handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            handle.update(bundle, raw=True)
        return True
