"""The lecture's missing figures, drawn with matplotlib alone.

    from rnnlab.figures import draw_all, unrolled
    draw_all("docs/figures")            # every figure as PNG and SVG
    unrolled("hello").savefig("h.png")  # one figure, any word

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot, so nothing here
needs a display or a GUI backend and no figure lingers in a global registry. Every axes spans its
whole figure with one data unit = one inch, so box sizes and font sizes (points) compare directly.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch

from .plots import write_figure
from .display import Figure  # a matplotlib Figure that Jupyter draws as a PNG

SLIDE_16_9 = (13.333, 7.5)  # inches: a PowerPoint/Keynote 16:9 slide, so 1 pt prints as 1 pt
MAX_WORD = 12               # past this the unrolled cells get too narrow to read on a slide

FONT = 15        # box labels
FONT_SMALL = 13  # notes and captions; never below 12 pt
FONT_TITLE = 18

# One palette for every figure: inputs red-ish, hidden states green, outputs blue (Karpathy's).
INPUT = ("#f8c9c4", "#b03a2e")   # (face, edge)
HIDDEN = ("#c8e6c9", "#2e7d32")
OUTPUT = ("#c6dbef", "#1f4e79")
SIGMOID = ("#ffe0a3", "#b7791f")  # LSTM gates
TANH = ("#e1d5f0", "#5e35b1")     # LSTM candidate and output squashing
CELL = ("#f4f6f4", "#7a8a7a")     # LSTM cell body
INK = "#263238"                   # forward arrows, text
BACKWARD = "#e65100"              # BPTT gradients: orange, dashed


# ---------------------------------------------------------------------------------------------
# drawing primitives

def _canvas(size: tuple[float, float] = SLIDE_16_9) -> tuple[Figure, Axes]:
    """A blank figure whose single axes uses inches as data units."""
    fig = Figure(figsize=size, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, size[0])
    ax.set_ylim(0, size[1])
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _box(ax: Axes, x: float, y: float, text: str, colors: tuple[str, str],
         w: float = 0.62, h: float = 0.62, fontsize: float = FONT, gid: str | None = None,
         **text_kw) -> FancyBboxPatch:
    """A rounded box centred on (x, y) with a label; returned so arrows can clip to it."""
    pad = min(w, h) * 0.12
    box = FancyBboxPatch((x - w / 2 + pad, y - h / 2 + pad), w - 2 * pad, h - 2 * pad,
                         boxstyle=f"round,pad={pad},rounding_size={pad * 1.6}",
                         facecolor=colors[0], edgecolor=colors[1], linewidth=2, zorder=3, gid=gid)
    ax.add_patch(box)
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK, zorder=4,
                **text_kw)
    return box


def _node(ax: Axes, x: float, y: float, symbol: str, r: float = 0.24) -> Circle:
    """A pointwise-operation circle (x or +) as in the usual LSTM diagrams."""
    node = Circle((x, y), r, facecolor="white", edgecolor=INK, linewidth=2, zorder=3)
    ax.add_patch(node)
    ax.text(x, y, symbol, ha="center", va="center", fontsize=FONT + 3, color=INK, zorder=4)
    return node


def _arrow(ax: Axes, a, b, color: str = INK, patch_a=None, patch_b=None, dashed: bool = False,
           connection: str = "arc3", lw: float = 2.0, head: float = 18) -> FancyArrowPatch:
    """An arrow from point a to point b, clipped to the patches it joins (head=0: a plain line)."""
    shrink = 2 if head else 0  # plain lines must meet exactly at junctions
    arrow = FancyArrowPatch(a, b, patchA=patch_a, patchB=patch_b, connectionstyle=connection,
                            arrowstyle="-|>" if head else "-", mutation_scale=head or 1,
                            color=color, linewidth=lw, linestyle=(0, (4, 3)) if dashed else "-",
                            shrinkA=shrink, shrinkB=shrink, zorder=2)
    ax.add_patch(arrow)
    return arrow


def _lines(ax: Axes, x: float, top: float, text: str, pitch: float = 0.27, **kw) -> None:
    """Multi-line centred text at a fixed line pitch (matplotlib's spacing varies per line)."""
    for k, line in enumerate(text.split("\n")):
        ax.text(x, top - k * pitch, line, ha="center", va="top", **kw)


def _legend(ax: Axes, **kw) -> None:
    """The input / hidden / output colour key shared by the RNN figures."""
    handles = [Patch(facecolor=f, edgecolor=e, linewidth=2, label=label)
               for (f, e), label in ((INPUT, "input $x_t$"), (HIDDEN, "hidden state $h_t$"),
                                     (OUTPUT, "output $y_t$"))]
    ax.legend(handles=handles, fontsize=FONT_SMALL, frameon=False, **kw)


# ---------------------------------------------------------------------------------------------
# 1. feed-forward vs recurrent

def _layer(ax: Axes, x: float, y: float, name: str, colors: tuple[str, str],
           neurons: int) -> FancyBboxPatch:
    """A layer drawn as a rounded box holding a row of neurons, named on its left."""
    w, h = 0.55 * neurons + 0.4, 0.8
    box = _box(ax, x, y, "", colors, w=w, h=h)
    for k in range(neurons):
        ax.add_patch(Circle((x + (k - (neurons - 1) / 2) * 0.55, y), 0.17, facecolor="white",
                            edgecolor=colors[1], linewidth=1.6, zorder=4))
    ax.text(x - w / 2 - 0.2, y, name, ha="right", va="center", fontsize=FONT, color=INK)
    return box


def _network(ax: Axes, x: float, recurrent: bool) -> None:
    """One panel: input -> hidden -> output, with the state loop when recurrent."""
    t = "_t" if recurrent else ""  # only the recurrent net has a time index
    inp = _layer(ax, x, 1.7, f"input $x{t}$", INPUT, 3)
    hid = _layer(ax, x, 3.6, f"hidden $h{t}$", HIDDEN, 4)
    out = _layer(ax, x, 5.5, f"output $y{t}$", OUTPUT, 2)
    _arrow(ax, (x, 1.7), (x, 3.6), patch_a=inp, patch_b=hid)
    _arrow(ax, (x, 3.6), (x, 5.5), patch_a=hid, patch_b=out)
    if recurrent:
        # The loop leaves the hidden layer's right edge and re-enters it: the state fed back.
        right = x + (0.55 * 4 + 0.4) / 2
        _arrow(ax, (right, 3.95), (right, 3.25), color=HIDDEN[1], lw=2.6,
               connection="arc3,rad=-1.6")
        ax.text(right + 0.75, 3.75, "$h_{t-1}$", ha="left", va="center", fontsize=FONT + 2,
                color=HIDDEN[1])
        ax.text(right + 0.75, 3.35, "the state is\nfed back", ha="left", va="top",
                fontsize=FONT_SMALL, color=HIDDEN[1], style="italic")


def feedforward_vs_recurrent() -> Figure:
    """Feed-forward (one direction, no memory) beside recurrent (the hidden state loops back)."""
    fig, ax = _canvas()
    for x, recurrent, title, note in (
            (3.6, False, "Feed-forward network",
             "information moves in one direction only:\nno memory of earlier inputs"),
            (9.5, True, "Recurrent network (RNN)",
             "the hidden state loops back: the current input\n"
             "plus what was learnt from past inputs")):
        ax.text(x, 6.9, title, ha="center", va="center", fontsize=FONT_TITLE, weight="bold",
                color=INK)
        _network(ax, x, recurrent)
        ax.text(x, 0.75, note, ha="center", va="center", fontsize=FONT_SMALL, color=INK)
    ax.plot([6.67, 6.67], [0.4, 7.1], color="#cfd8dc", linewidth=1.5)  # panel divider
    return fig


# ---------------------------------------------------------------------------------------------
# 2. the kinds of RNN

# (title, example task, inputs at steps, outputs at steps, number of steps)
_KINDS = (
    ("one-to-one", "classify one\nvector\n(no recurrence)", (0,), (0,), 1),
    ("one-to-many", "caption from one\nvector / generate\ntext", (0,), (0, 1, 2), 3),
    ("many-to-one", "sentiment /\nsequence\nclassification", (0, 1, 2), (2,), 3),
    ("many-to-many\n(aligned)", "tag each character /\nnext-char prediction", (0, 1, 2),
     (0, 1, 2), 3),
    ("many-to-many\n(encoder-decoder)", "translation /\nreverse a string", (0, 1, 2), (3, 4, 5), 6),
)
_STEP = 0.7       # inches between time steps
_CELL = (0.46, 0.56)  # box width, height: narrower than tall so the h -> h arrows show
_MIN_SLOT = 1.5   # a one-column group still needs room for its caption


def _kind(ax: Axes, x0: float, inputs, outputs, steps: int) -> None:
    """One Karpathy-style column group: inputs at the bottom, states, outputs on top."""
    y_in, y_h, y_out = 2.4, 3.65, 4.9
    hidden = []
    for t in range(steps):
        x = x0 + t * _STEP
        h = _box(ax, x, y_h, f"$h_{t + 1}$", HIDDEN, *_CELL)
        if t in inputs:
            xb = _box(ax, x, y_in, f"$x_{inputs.index(t) + 1}$", INPUT, *_CELL)
            _arrow(ax, (x, y_in), (x, y_h), patch_a=xb, patch_b=h)
        if t in outputs:
            yb = _box(ax, x, y_out, f"$y_{outputs.index(t) + 1}$", OUTPUT, *_CELL)
            _arrow(ax, (x, y_h), (x, y_out), patch_a=h, patch_b=yb)
        if hidden:
            _arrow(ax, (x - _STEP, y_h), (x, y_h), patch_a=hidden[-1], patch_b=h, head=12)
        hidden.append(h)


def four_kinds() -> Figure:
    """The kinds of RNN side by side (one-to-one ... many-to-many), each with an example task."""
    fig, ax = _canvas()
    margin = 0.25
    slots = [max((n - 1) * _STEP + _CELL[0], _MIN_SLOT) for *_, n in _KINDS]
    gap = (SLIDE_16_9[0] - 2 * margin - sum(slots)) / (len(_KINDS) - 1)
    left = margin
    for (title, task, inputs, outputs, steps), slot in zip(_KINDS, slots):
        mid = left + slot / 2
        _kind(ax, mid - (steps - 1) * _STEP / 2, inputs, outputs, steps)
        ax.text(mid, 5.55, title, ha="center", va="bottom", fontsize=FONT, weight="bold",
                color=INK)
        _lines(ax, mid, 1.8, task, fontsize=FONT_SMALL, color=INK)
        left += slot + gap
    ax.text(SLIDE_16_9[0] / 2, 7.05, "Kinds of recurrent networks", ha="center", va="center",
            fontsize=FONT_TITLE, weight="bold", color=INK)
    _legend(ax, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.01))
    return fig


# ---------------------------------------------------------------------------------------------
# 3. the unrolled RNN and BPTT

_ROWS = {"in": 1.95, "h": 3.9, "out": 5.85}  # y of the input, hidden and output rows
_LABEL_W = 2.5  # inches left of the first cell: row names and h_0


def _char(c: str) -> str:
    """A character as safe, visible plain text (space shown, $ not read as mathtext)."""
    return {" ": "\u2423", "$": r"\$"}.get(c, c)


def _check_word(word: str) -> None:
    """Reject what cannot be drawn: not a string, empty, or too long for a slide."""
    if not isinstance(word, str) or not word:
        raise ValueError(f"word must be a non-empty string, got {word!r}")
    if len(word) > MAX_WORD:
        raise ValueError(f"word has {len(word)} characters; at most {MAX_WORD} fit on a slide")


def unrolled(word: str = "neurone") -> Figure:
    """The RNN unrolled over the characters of `word`: shared W_hh forward, BPTT backward."""
    _check_word(word)
    T = len(word)
    fig, ax = _canvas()
    step = min(1.45, 9.6 / max(T - 1, 1))  # one column per character
    size = min(0.78, step * 0.55)
    # Centre the whole drawing, row names included.
    x0 = (SLIDE_16_9[0] - _LABEL_W - (T - 1) * step - size) / 2 + _LABEL_W + size / 2
    for t in range(T):
        x = x0 + t * step
        nxt = _char(word[t + 1]) if t + 1 < T else "end"  # the target: the next character
        h = _box(ax, x, _ROWS["h"], f"$h_{{{t + 1}}}$", HIDDEN, size, size, gid=f"cell_h{t + 1}")
        xb = _box(ax, x, _ROWS["in"], _char(word[t]), INPUT, size, size, FONT + 2,
                  weight="bold")
        yb = _box(ax, x, _ROWS["out"], nxt, OUTPUT, size, size,
                  FONT + 2 if t + 1 < T else FONT_SMALL, weight="bold")
        _arrow(ax, (x, _ROWS["in"]), (x, _ROWS["h"]), patch_a=xb, patch_b=h)
        _arrow(ax, (x, _ROWS["h"]), (x, _ROWS["out"]), patch_a=h, patch_b=yb)
        ax.text(x, _ROWS["in"] - size / 2 - 0.1, f"$x_{{{t + 1}}}$", ha="center", va="top",
                fontsize=FONT_SMALL, color=INPUT[1])
        ax.text(x, _ROWS["out"] + size / 2 + 0.1, f"$y_{{{t + 1}}}$", ha="center",
                va="bottom", fontsize=FONT_SMALL, color=OUTPUT[1])
    _recurrence(ax, x0, step, size, T)
    _unrolled_notes(ax, x0, size)
    return fig


def _recurrence(ax: Axes, x0: float, step: float, size: float, T: int) -> None:
    """Forward W_hh arrows above the cell centres, dashed BPTT arrows back below them."""
    y, off = _ROWS["h"], size * 0.2
    ax.text(x0 - size / 2 - 0.75, y + off, "$h_0$", ha="right", va="center", fontsize=FONT,
            color=INK)
    _arrow(ax, (x0 - size / 2 - 0.7, y + off), (x0 - size / 2, y + off))
    fontsize = FONT_SMALL if step - size > 0.5 else 12  # long words: narrower gaps
    for t in range(1, T):
        a, b = x0 + (t - 1) * step + size / 2, x0 + t * step - size / 2
        _arrow(ax, (a, y + off), (b, y + off), head=14)
        _arrow(ax, (b, y - off), (a, y - off), color=BACKWARD, dashed=True, head=14)
        ax.text((a + b) / 2, y + off + 0.08, "$W_{hh}$", ha="center", va="bottom",
                fontsize=fontsize, color=INK)
    # The input and output weights, named once on the first column.
    ax.text(x0 + 0.08, (_ROWS["in"] + y) / 2, "$W_{xh}$", ha="left", va="center",
            fontsize=FONT_SMALL, color=INK)
    ax.text(x0 + 0.08, (_ROWS["out"] + y) / 2, "$W_{hy}$", ha="left", va="center",
            fontsize=FONT_SMALL, color=INK)


def _unrolled_notes(ax: Axes, x0: float, size: float) -> None:
    """Row names on the left, the weight-sharing and direction key along the bottom."""
    right = x0 - size / 2 - 1.45
    for row, name, color in (("out", "predicted\nnext char", OUTPUT[1]),
                             ("h", "hidden\nstate", HIDDEN[1]), ("in", "input\nchar", INPUT[1])):
        ax.text(right, _ROWS[row], name, ha="right", va="center", fontsize=FONT_SMALL,
                color=color, weight="bold")
    mid = SLIDE_16_9[0] / 2
    ax.text(mid, 7.05, "An RNN unrolled in time", ha="center", va="center",
            fontsize=FONT_TITLE, weight="bold", color=INK)
    ax.text(mid, 0.95, "the same weights $W_{xh}$, $W_{hh}$, $W_{hy}$ are shared by every "
            "time step", ha="center", va="center", fontsize=FONT_SMALL, color=INK)
    # A key drawn with the same arrows the figure uses.
    _arrow(ax, (mid - 3.9, 0.4), (mid - 3.2, 0.4), head=14)
    ax.text(mid - 3.05, 0.4, "forward pass: left to right", ha="left", va="center",
            fontsize=FONT_SMALL, color=INK)
    _arrow(ax, (mid + 1.1, 0.4), (mid + 0.4, 0.4), color=BACKWARD, dashed=True, head=14)
    ax.text(mid + 1.25, 0.4, "BPTT gradients: right to left", ha="left", va="center",
            fontsize=FONT_SMALL, color=BACKWARD)


# ---------------------------------------------------------------------------------------------
# 4. the LSTM cell

# PyTorch's gate order (i, f, g, o), in the letters of torch.nn.LSTM's documentation.
_LSTM_EQUATIONS = (
    r"$i = \sigma(W_{ii}\,x + b_{ii} + W_{hi}\,h + b_{hi})$",
    r"$f = \sigma(W_{if}\,x + b_{if} + W_{hf}\,h + b_{hf})$",
    r"$g = \tanh(W_{ig}\,x + b_{ig} + W_{hg}\,h + b_{hg})$",
    r"$o = \sigma(W_{io}\,x + b_{io} + W_{ho}\,h + b_{ho})$",
    r"$c' = f \odot c + i \odot g$",
    r"$h' = o \odot \tanh(c')$",
)
# Diagram coordinates (inches): the c line, gate row, [h, x] bus, i*g product, h_t row.
_Y = {"c": 6.0, "gate": 3.0, "bus": 1.85, "mix": 4.25, "h": 3.6}
_X_OUT = 6.55  # the column where tanh(c) meets o
_X_END = 7.75  # where c_t and h_t leave the drawing


def _lstm_gates(ax: Axes) -> dict[str, FancyBboxPatch]:
    """The four gate boxes in data-flow order f, i, g, o, each named under the bus."""
    gates, y = {}, _Y["gate"]
    for name, x, colors, fn, role in (("f", 2.0, SIGMOID, r"$\sigma$", "forget gate"),
                                      ("i", 3.15, SIGMOID, r"$\sigma$", "input gate"),
                                      ("g", 4.3, TANH, "tanh", "candidate"),
                                      ("o", 5.45, SIGMOID, r"$\sigma$", "output gate")):
        gates[name] = _box(ax, x, y, fn, colors, w=0.9, h=0.62, fontsize=FONT + 1)
        side = -1 if name == "o" else 1  # o's line turns right, so its name goes left
        ax.text(x + 0.17 * side, y + 0.55, f"${name}$", ha="left" if side > 0 else "right",
                va="center", fontsize=FONT + 2, color=colors[1], weight="bold")
        # Under the bus, where no line crosses the name.
        ax.text(x, _Y["bus"] - 0.12, role, ha="center", va="top", fontsize=12,
                color=colors[1])
    return gates


def _lstm_diagram(ax: Axes) -> None:
    """The cell: c line on top with x and +, gates over the [h_{t-1}, x_t] bus below."""
    y_c, y_mix, y_h = _Y["c"], _Y["mix"], _Y["h"]
    ax.add_patch(FancyBboxPatch((1.05, 1.15), 6.15, 5.45,
                                boxstyle="round,pad=0,rounding_size=0.35", facecolor=CELL[0],
                                edgecolor=CELL[1], linewidth=2, zorder=1))
    gates = _lstm_gates(ax)
    forget, add = _node(ax, 2.0, y_c, "\u00d7"), _node(ax, 3.72, y_c, "+")
    mix, out = _node(ax, 3.72, y_mix, "\u00d7"), _node(ax, _X_OUT, y_h, "\u00d7")
    squash = _box(ax, _X_OUT, 4.85, "tanh", TANH, w=0.9, h=0.55, fontsize=FONT)
    # Cell state: a straight line that meets only x and +, so its gradient passes nearly intact.
    _label(ax, 0.2, y_c, "$c_{t-1}$")
    _arrow(ax, (0.95, y_c), (2.0, y_c), patch_b=forget, lw=3)
    _arrow(ax, (2.0, y_c), (3.72, y_c), patch_a=forget, patch_b=add, lw=3)
    _arrow(ax, (3.72, y_c), (_X_END, y_c), patch_a=add, lw=3)
    _label(ax, _X_END + 0.1, y_c, "$c_t$")
    ax.text(4.65, y_c + 0.18, "cell state", ha="center", va="bottom", fontsize=FONT_SMALL,
            color=INK, style="italic")
    _arrow(ax, (_X_OUT, y_c), (_X_OUT, 4.85), patch_b=squash)
    _arrow(ax, (_X_OUT, 4.85), (_X_OUT, y_h), patch_a=squash, patch_b=out)
    # Gate outputs into the pointwise products.
    _arrow(ax, (2.0, _Y["gate"]), (2.0, y_c), patch_a=gates["f"], patch_b=forget)
    _arrow(ax, (3.15, _Y["gate"]), (3.72, y_mix), patch_a=gates["i"], patch_b=mix,
           connection="angle,angleA=90,angleB=180,rad=0")
    _arrow(ax, (4.3, _Y["gate"]), (3.72, y_mix), patch_a=gates["g"], patch_b=mix,
           connection="angle,angleA=90,angleB=0,rad=0")
    _arrow(ax, (3.72, y_mix), (3.72, y_c), patch_a=mix, patch_b=add)
    _arrow(ax, (5.45, _Y["gate"]), (_X_OUT, y_h), patch_a=gates["o"], patch_b=out,
           connection="angle,angleA=90,angleB=180,rad=0")
    _arrow(ax, (_X_OUT, y_h), (_X_END, y_h), patch_a=out)
    _label(ax, _X_END + 0.1, y_h, "$h_t$")
    _lstm_inputs(ax, gates)


def _label(ax: Axes, x: float, y: float, text: str) -> None:
    """A state name where a line enters or leaves the cell."""
    ax.text(x, y, text, ha="left", va="center", fontsize=FONT + 3, color=INK)


def _lstm_inputs(ax: Axes, gates: dict[str, FancyBboxPatch]) -> None:
    """h_{t-1} from the left and x_t from below join one bus that feeds every gate."""
    y, x_in = _Y["bus"], 1.45
    _label(ax, 0.2, y, "$h_{t-1}$")
    ax.text(x_in, 0.3, "$x_t$", ha="center", va="center", fontsize=FONT + 3, color=INK)
    _arrow(ax, (0.95, y), (x_in, y), head=0)
    _arrow(ax, (x_in, 0.55), (x_in, y), head=0)
    last = gates["o"].get_x() + gates["o"].get_width() / 2
    _arrow(ax, (x_in, y), (last, y), head=0)
    for box in gates.values():
        x = box.get_x() + box.get_width() / 2
        _arrow(ax, (x, y), (x, _Y["gate"]), patch_b=box)


def _lstm_equations(ax: Axes, x: float) -> None:
    """The equations in PyTorch's gate order, in the diagram's letters."""
    ax.text(x, 6.0, "PyTorch's gate order: i, f, g, o", ha="left", va="center",
            fontsize=FONT_SMALL, color=INK, style="italic")
    for k, eq in enumerate(_LSTM_EQUATIONS):
        y = 5.3 - 0.6 * k - (0.2 if k >= 4 else 0)  # a little air before the state updates
        ax.text(x, y, eq, ha="left", va="center", fontsize=FONT, color=INK)
    ax.text(x, 1.3, "$x = x_t,\\ h = h_{t-1},\\ c = c_{t-1},\\ c' = c_t,\\ h' = h_t$\n"
            "$\\sigma$: sigmoid, output in (0, 1)\n$\\odot$: elementwise product",
            ha="left", va="center", fontsize=FONT_SMALL, color=INK, linespacing=1.6)


def lstm_cell() -> Figure:
    """The LSTM cell (input, forget, output gates; candidate g) with PyTorch's equations."""
    fig, ax = _canvas()
    ax.text(SLIDE_16_9[0] / 2, 7.05, "The LSTM cell", ha="center", va="center",
            fontsize=FONT_TITLE, weight="bold", color=INK)
    _lstm_diagram(ax)
    _lstm_equations(ax, _X_END + 0.95)
    return fig


# ---------------------------------------------------------------------------------------------

def draw_all(out_dir: str | Path, formats: tuple[str, ...] = ("png", "svg"),
             dpi: int = 150) -> list[Path]:
    """Render every figure into out_dir (created) in each format; return the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builders = {"feedforward_vs_recurrent": feedforward_vs_recurrent, "four_kinds": four_kinds,
                "unrolled_neurone": lambda: unrolled("neurone"), "lstm_cell": lstm_cell}
    written = []
    for name, build in builders.items():
        fig = build()
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            write_figure(fig, path, format=fmt, dpi=dpi, facecolor="white")
            written.append(path)
        fig.clear()  # pyplot-free figures hold no global reference; clearing frees the artists
    return written
