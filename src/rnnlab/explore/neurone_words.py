"""The neurone page's static part: the ten words, letter by letter, with both models' predictions.

Plain HTML written into the page (no script, no server), so the page reads the same from disk as
served. Each cell is the letter that really comes next, shaded by the probability the model gives
it; its title (hover) names the model's own first guess.
"""
from __future__ import annotations

import html

import numpy as np

from ..data import tasks
from ..nn.losses import log_softmax
from ..nn.module import no_grad

STYLE = """<style>
#neurone-words { padding: 8px 16px; background: #fff; border-bottom: 1px solid #ddd; font-size: 14px; }
#neurone-words h2 { font-size: 15px; margin: 4px 0; }
#neurone-words p { margin: 4px 0 8px 0; color: #444; }
#neurone-words table { border-collapse: collapse; }
#neurone-words th { text-align: right; font-weight: normal; color: #555; padding: 1px 8px 1px 0; white-space: nowrap; }
#neurone-words td { width: 2.4em; text-align: center; padding: 1px 0; font-family: ui-monospace, monospace; }
#neurone-words td small { display: block; font-size: 10px; color: #333; }
#neurone-words tr.word th { color: #000; font-weight: bold; padding-top: 6px; }
</style>"""


def _probabilities(model, data: tasks.NextCharData, lengths: bool) -> np.ndarray:
    """(n_words, T_max, V) float64 probabilities of the next character at every position."""
    with no_grad():
        logits = model(data.x, data.lengths) if lengths else model(data.x)
    return np.exp(log_softmax(np.asarray(logits, np.float64)))


def _cell(letter: str, p: float, guess: str) -> str:
    shade = f"rgba(46, 125, 50, {0.08 + 0.72 * p:.2f})"  # green, darker = surer
    ink = "#fff" if p > 0.6 else "#000"
    return (f'<td style="background: {shade}; color: {ink}" title="P({html.escape(letter)}) = {p:.2f}; '
            f'first guess {html.escape(guess)!s}">{html.escape(letter)}<small style="color: {ink}">{p:.2f}'
            f'</small></td>')


def words_table(ff, many_to_many, data: tasks.NextCharData | None = None) -> str:
    """The HTML block: per word, the letters to predict, then a row per model with P(right letter)."""
    data = data or tasks.neurone_data()
    rows = (("feed-forward (this letter only)", _probabilities(ff, data, lengths=False)),
            ("RNN (all letters so far)", _probabilities(many_to_many, data, lengths=True)))
    body = []
    for w, word in enumerate(data.words):
        n = len(word) + 1
        reads = "".join(f"<td>{html.escape(c)}</td>" for c in tasks.START + word)
        body.append(f'<tr class="word"><th>{html.escape(word)}: reads</th>{reads}</tr>')
        for name, p in rows:
            cells = "".join(_cell(data.vocab[data.y[w, t]], float(p[w, t, data.y[w, t]]),
                                  data.vocab[int(p[w, t].argmax())]) for t in range(n))
            body.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return (f'{STYLE}<section id="neurone-words"><h2>The ten words, one letter at a time: how sure each network '
            f'is of the letter that comes next</h2><p>Each cell is the letter that really comes next ($: the word '
            f'ends) with the probability the network gives it, darker when surer: the feed-forward net sees only '
            f'the current letter, the RNN remembers every letter so far.</p><table>{"".join(body)}</table></section>')


def with_words_table(page: str, block: str) -> str:
    """The page with the block right under its header (at the top of the body if it has none)."""
    anchor = "</header>" if "</header>" in page else "<body>"
    return page.replace(anchor, anchor + block, 1)
