"""The lecture's figures: every file is written and readable, and the layout stays clean."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread

from rnnlab import figures

NAMES = ("feedforward_vs_recurrent", "four_kinds", "unrolled_neurone", "lstm_cell")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Render every figure once for the whole module (the slow part)."""
    out = tmp_path_factory.mktemp("figs") / "nested"  # draw_all must create missing folders
    return out, figures.draw_all(out)


def test_draw_all_writes_every_file(drawn):
    out, written = drawn
    expected = {out / f"{name}.{fmt}" for name in NAMES for fmt in ("png", "svg")}
    assert set(written) == expected
    assert all(path.is_file() for path in expected)


@pytest.mark.parametrize("name", NAMES)
def test_png_is_a_real_picture(drawn, name):
    path = drawn[0] / f"{name}.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000, f"{path.name}: {path.stat().st_size} bytes"
    pixels = imread(path)                                  # (H, W, C) floats in [0, 1]
    flat = np.round(pixels * 255).astype(np.uint32).reshape(-1, pixels.shape[-1])
    packed = (flat << (8 * np.arange(flat.shape[1], dtype=np.uint32))).sum(axis=1)  # int a pixel
    assert len(np.unique(packed)) >= 2, f"{path.name} is a single flat colour"


@pytest.mark.parametrize("name", NAMES)
def test_svg_parses_with_svg_root(drawn, name):
    root = ET.parse(drawn[0] / f"{name}.svg").getroot()
    assert root.tag.rsplit("}", 1)[-1] == "svg"


def _cells(fig):
    """The hidden-state boxes of an unrolled figure (tagged with gid cell_h1 ... cell_hT)."""
    return [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("cell_h")]


@pytest.mark.parametrize("word", ["a", "ciao", "hello world!"])
def test_unrolled_has_one_cell_per_character(word):
    fig = figures.unrolled(word)
    assert [p.get_gid() for p in _cells(fig)] == [f"cell_h{t + 1}" for t in range(len(word))]


@pytest.mark.parametrize("bad", ["", None, 7, "x" * (figures.MAX_WORD + 1)])
def test_unrolled_rejects_bad_words(bad):
    with pytest.raises(ValueError):
        figures.unrolled(bad)


@pytest.mark.parametrize("build", [figures.feedforward_vs_recurrent, figures.four_kinds,
                                   figures.unrolled, lambda: figures.unrolled("hello world!"),
                                   figures.lstm_cell])
def test_layout_is_clean(build):
    """No label overlaps another, nothing is cut off, and no text is under 12 pt."""
    fig = build()
    renderer = FigureCanvasAgg(fig).get_renderer()
    frame = fig.bbox
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 12
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    extents += [(repr(p), p.get_window_extent(renderer)) for p in fig.axes[0].patches]
    for name, box in extents:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, f"{name} cut off: {box}"
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, f"{name} cut off: {box}"
    labels = extents[:len(texts)]
    for k, (a, box_a) in enumerate(labels):
        for b, box_b in labels[k + 1:]:
            assert not box_a.overlaps(box_b), f"labels overlap: {a!r} and {b!r}"


# -- the neurone chart and page: bars and lines measure the same thing --------------------------------
def test_neurone_chart_draws_bars_against_the_best_probability_of_the_same_letter():
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    from rnnlab import plots
    from rnnlab.data.tasks import neurone_data

    best = neurone_data().best_probability_per_position("neurone")
    rows = [{"model": "ff", "positions": [{"p_next": p} for p in best.current_char * 0.9]},
            {"model": "rnn", "positions": [{"p_next": p} for p in best.prefix * 0.8]}]
    fig = plots.plot_neurone(rows)
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches if isinstance(patch, Rectangle)]
    assert np.allclose(heights, np.concatenate([best.current_char * 0.9, best.prefix * 0.8]))
    lines = [[segment[0][1] for segment in c.get_segments()] for c in ax.collections if isinstance(c, LineCollection)]
    assert np.allclose(lines[0], best.current_char) and np.allclose(lines[1], best.prefix)
    # e -> u: only "neurone" has e then u among 11 e's; after "^ne" one word of four goes on with u
    assert best.current_char[2] == 1 / 11 and best.prefix[2] == 1 / 4
    caption = fig._supxlabel.get_text()
    assert caption == plots.NEURONE_CAPTION and caption.count(". ") == 0 and caption.endswith(".")
    assert [t.get_text() for t in ax.get_xticklabels()][2] == "e->u"


def test_static_neurone_page_shows_the_ten_words_and_both_models():
    import re

    from rnnlab.data.tasks import NEURONE_WORDS
    from rnnlab.explore import neurone_page

    html, _, _ = neurone_page(steps=30, live=False)
    start = html.index('<section id="neurone-words">')
    section = html[start:html.index("</section>", start)]
    assert start < html.index("<main>")  # above the interactive part, outside any script
    for word in NEURONE_WORDS:
        assert f"<th>{word}: reads</th>" in section
    assert section.count("<th>feed-forward (this letter only)</th>") == len(NEURONE_WORDS)
    assert section.count("<th>RNN (all letters so far)</th>") == len(NEURONE_WORDS)
    probabilities = re.findall(r"<small[^>]*>([01]\.\d\d)</small>", section)
    assert len(probabilities) == 2 * sum(len(w) + 1 for w in NEURONE_WORDS)
