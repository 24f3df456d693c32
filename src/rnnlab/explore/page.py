"""The page's data, built once from a model and a text, and the self-contained HTML file around it.

    data = page_data(model, vocab, text, name="runs/char")        # a JSON-ready dict (keys below)
    html = render(data)                                           # one file: inline JS and CSS, no network

Keys of the data (embedded once as <script type="application/json" id="rnnlab-data">):
    text          the text read, a string of T characters
    model         {"name", "cell", "num_layers", "hidden_size", "states", "gates", "step"}
    layers        one per layer: {"h": T x H, "c": T x H (LSTM), "gates": {"units": [...], name: T x n}}
    topk          per position t, the k likeliest characters after text[t]: [[char, p], ...]
    units         [{"feature", "layer", "unit", "state", "correlation"}, ...], best first per feature
    features      which feature set was used ("code" or "prose")
    connectivity  {"window": W, "positions": [t, ...], "lengths": [n, ...], "values": packed}: for each
                  position t, ||d log p(text[t+1]) / d e_t'|| for t' = t-n+1 .. t (n = min(W, t+1)),
                  the rows concatenated (`connectivity_rows` splits them)
    compare       [] or, per further model, {"model": {...}, "topk": [...], "connectivity": {...}}
    live          false; true when served with a live box (`rnnlab explore --serve`)
Arrays of states and gates are packed (`codec.pack`: 4 significant digits, deflated, base85;
`codec.unpack` reads them back, "shape" is [T, H]); every other number is rounded to 4 significant digits.
h[t] is the state after reading text[t] from a zero state; topk[t] predicts text[t+1].
"""
from __future__ import annotations

import json
from importlib import resources

import numpy as np

from . import codec
from .trace import Trace, connectivity, default_positions, gate_names, read, state_names, top_k
from .units import find_units, looks_like_code, text_features

FORMAT = "rnnlab-explore"
TOP_K = 5


def model_info(model, name: str, step: int | None = None) -> dict:
    rnn = model.rnn
    return {"name": name, "cell": rnn.kind.name, "num_layers": rnn.num_layers, "hidden_size": rnn.hidden_size,
            "states": list(state_names(rnn)), "gates": gate_names(rnn), "step": step}


def _round(values) -> list:
    return codec.round_sig(np.asarray(values, np.float64)).tolist()


def _topk(trace: Trace, chars: list[str]) -> list[list]:
    return top_k(trace.logp, chars, TOP_K, round_to=codec.round_sig)


def _connectivity(model, trace: Trace, positions, window: int) -> dict:
    rows = connectivity(model, trace, positions, window) if positions else []
    flat = np.concatenate(rows) if rows else np.zeros(0)
    return {"window": window, "positions": list(positions), "lengths": [len(r) for r in rows],
            "values": codec.pack(flat)}


def connectivity_rows(conn: dict) -> list[np.ndarray]:
    """The page's connectivity as one array per position: t' = t - len + 1 .. t (see `page_data`)."""
    flat = codec.unpack(conn["values"])
    ends = np.cumsum(conn["lengths"])
    return [flat[end - n:end] for n, end in zip(conn["lengths"], ends)]


def page_data(model, vocab, text: str, name: str = "model", *, step: int | None = None, compare=(),
              features: str = "auto", positions=None, window: int = 200, per_feature: int = 5,
              all_gates: bool = False) -> dict:
    """Everything the page draws (see the module docstring). compare: [(model, vocab, name, step), ...].

    positions: where connectivity is computed (default: `default_positions`, at most 250 evenly
    spaced); window: how many characters back it reaches. Gates are embedded for the units the
    search lists (all units with all_gates=True), which keeps the file small.
    """
    trace = read(model, vocab, text)
    feats = text_features(text, features)
    units = find_units(trace, feats, per_feature)
    if positions is None:
        positions = default_positions(len(text))
    listed = {}
    for u in units:
        listed.setdefault(u["layer"], set()).add(u["unit"])
    layers = []
    for layer in range(trace.h.shape[0]):
        entry = {name_: codec.pack(trace.state(name_)[layer]) for name_ in state_names(model.rnn)}
        show = np.arange(trace.h.shape[2]) if all_gates else np.array(sorted(listed.get(layer, ())), int)
        entry["gates"] = {"units": show.tolist()}
        for gate, values in trace.gates.items():
            entry["gates"][gate] = codec.pack(values[layer][:, show])  # (T, n)
        layers.append(entry)
    data = {
        "format": FORMAT, "version": 1,
        "text": text,
        "model": model_info(model, name, step),
        "layers": layers,
        "topk": _topk(trace, vocab.chars),
        "units": units,
        "features": "code" if "indentation" in feats else "prose",
        "connectivity": _connectivity(model, trace, positions, window),
        "compare": [],
        "live": False,
    }
    for other, other_vocab, other_name, other_step in compare:
        other_trace = read(other, other_vocab, text)
        data["compare"].append({"model": model_info(other, other_name, other_step),
                                "topk": _topk(other_trace, other_vocab.chars),
                                "connectivity": _connectivity(other, other_trace, positions, window)})
    return data


def render(data: dict, title: str | None = None) -> str:
    """The HTML page: the template with its CSS, JS and the data inlined."""
    files = resources.files(__package__)
    template = files.joinpath("page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # "</script>" or "<!--" inside the <script> would end it early: "<" only occurs in JSON strings,
    # where \u003c is the same character.
    payload = payload.replace("<", "\\u003c")
    title = title or f"rnnlab explore: {data['model']['name']}"
    return (template.replace("/*CSS*/", files.joinpath("page.css").read_text(encoding="utf-8"))
            .replace("/*JS*/", files.joinpath("page.js").read_text(encoding="utf-8"))
            .replace("{{TITLE}}", _escape(title))
            .replace("{{DATA}}", payload))


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def read_data(html: str) -> dict:
    """The data embedded in a page written by `render` (for tests and other tools)."""
    start = html.index('<script type="application/json" id="rnnlab-data">')
    start = html.index(">", start) + 1
    end = html.index("</script>", start)
    return json.loads(html[start:end])


__all__ = ["page_data", "render", "read_data", "connectivity_rows", "looks_like_code"]
