"""A CharRNN or a bare recurrent layer as an ONNX graph: ONNX's own LSTM/GRU/RNN operators, or a Scan.

Shapes: B = batch, T = time, D = input features, H = hidden units, L = layers, K = directions,
V = vocabulary, G = gates.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes
from .common import FORMAT_VERSION, META_KEY, cell_name, layer_config, parts, vocab_list
from .graph import Graph, require_onnx
from .scan import check_scannable, scan_direction

OPSET = 17  # ONNX 1.12 (2022): every runtime of the last years reads it; LSTM/GRU/RNN are unchanged since 14
ONNX_FORMAT = "rnnlab-onnx"

# ONNX operator, the torch gate blocks in ONNX's order, attributes. PyTorch orders the LSTM gates
# i, f, g, o and ONNX i, o, f, c; the GRU r, z, n and ONNX z, r, h. PyTorch's GRU applies r after
# W_hn h + b_hn, which is ONNX's linear_before_reset=1.
ONNX_CELLS = {
    "lstm": ("LSTM", (0, 3, 1, 2), {}),
    "gru": ("GRU", (1, 0, 2), {"linear_before_reset": 1}),
    "rnn": ("RNN", (0,), {"activations": "Tanh"}),  # the registry's name of the tanh RNN
    "rnn_relu": ("RNN", (0,), {"activations": "Relu"}),
}


# -- the graph --------------------------------------------------------------------------------------------
def onnx_model(model, *, vocab=None, dtype: str = "float32", opset: int = OPSET, use_scan: bool = False):
    """The onnx.ModelProto of a CharRNN, a bare recurrent layer or one of the four kinds (kinds.py),
    checked by onnx.checker.

    lstm, gru, rnn and rnn_relu become ONNX's own LSTM/GRU/RNN operators; any other registered cell
    (lstm_noforget, indrnn, your own) becomes a Scan over its step, traced from the cell's forward
    into primitive ops (use_scan=True does that for the built-in cells too, to check one against the
    other). dtype "float32" (the default, whatever the model's) runs everywhere; "float64" is valid
    ONNX, but onnxruntime's CPU LSTM/GRU/RNN kernels (1.32) implement float only.
    """
    from .kinds import is_kind, kind_onnx_model

    onnx = require_onnx()
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not 13 <= opset <= newest:  # 13: Split takes its sizes as an input
        raise ValueError(f"opset must be an integer in 13..{newest} (this onnx's newest); got {opset!r}")
    if is_kind(model):  # OneToOne, OneToMany, ManyToOne, ManyToMany (kinds.py)
        return kind_onnx_model(model, dtype=dtype, opset=opset, use_scan=use_scan)
    rnn, char = parts(model)
    cell = cell_name(rnn)
    native = cell in ONNX_CELLS and not use_scan
    if not native:
        check_scannable(rnn, cell)
    chars = vocab_list(vocab, char.config.vocab_size if char else None)
    L, K, H = rnn.num_layers, rnn.num_directions, rnn.hidden_size
    states = tuple(rnn.kind.state_names)
    g = Graph(dtype)
    if char is not None:
        inputs = [g.value("ids", ["batch", "time"], onnx.TensorProto.INT64)]
        x = g.node("Gather", [g.const("embedding.weight", char.embedding.weight.data), "ids"], ["embedded"])  # (B, T, E)
    else:
        inputs = [g.value("x", ["batch", "time", rnn.input_size])]
        x = "x"
    inputs += [g.value(f"{s}0", [L * K, "batch", H]) for s in states]
    y = recurrent(g, rnn, native, x, "y" if char is None else "h_top")  # (B, T, K*H)
    if char is not None:  # the output layer: logits = h W^T + b
        z = g.node("MatMul", [y, g.const("head.weight_t", char.head.weight.data.T)], ["h_head"])
        g.node("Add", [z, g.const("head.bias", char.head.bias.data)], ["logits"])
        outputs = [g.value("logits", ["batch", "time", char.config.vocab_size])]
    else:
        outputs = [g.value("y", ["batch", "time", K * H])]
    outputs += [g.value(f"{s}n", [L * K, "batch", H]) for s in states]

    what = f"character-level {cell} model" if char else f"{cell} layer"
    graph = g.helper.make_graph(g.nodes, "rnnlab_" + ("char_rnn" if char else cell), inputs, outputs, g.weights)
    proto = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", opset)], producer_name="rnnlab",
                                doc_string=f"rnnlab export: {what}")
    doc = {"format": ONNX_FORMAT, "version": FORMAT_VERSION, "model": "CharRNN" if char else type(rnn).__name__,
           "model_config": char.config.to_dict() if char else layer_config(rnn), "vocab": chars,
           "states": list(states)}
    g.helper.set_model_props(proto, {META_KEY: json.dumps(doc)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def recurrent(g: Graph, rnn, native: bool, x: str, out: str) -> str:
    """The stack's nodes: x (B, T, D) -> `out` (B, T, K*H), from the initial states "{s}0"
    (L*K, B, H) (graph inputs or values made before) to the final states "{s}n" (L*K, B, H)."""
    L, K = rnn.num_layers, rnn.num_directions
    states = tuple(rnn.kind.state_names)
    cell = cell_name(rnn)
    x = g.node("Transpose", [x], ["x_time_major"], perm=[1, 0, 2])  # (T, B, D): ONNX's layout 0
    if L == 1:  # one (K, B, H) block of each initial state per layer
        initial = {s: [f"{s}0"] for s in states}
    else:
        initial = {s: [f"{s}0_l{l}" for l in range(L)] for s in states}
        for s in states:
            g.node("Split", [f"{s}0", g.const("split_per_layer", np.full(L, K, np.int64))], initial[s], axis=0)
    layer = _native_layer if native else _scan_layer
    for l in range(L):  # each layer: x (T, B, D) -> (T, B, K*H), final states "{s}n_l{l}" (K, B, H)
        x = layer(g, rnn, cell, l, x, {s: initial[s][l] for s in states})
    for s in states:
        g.node("Concat", [f"{s}n_l{l}" for l in range(L)], [f"{s}n"], axis=0)
    return g.node("Transpose", [x], [out], perm=[1, 0, 2])  # (B, T, K*H)


def _native_layer(g: Graph, rnn, cell: str, l: int, x: str, initial: dict) -> str:
    """Layer l as one ONNX LSTM/GRU/RNN operator (both directions in one)."""
    op, gate_order, attrs = ONNX_CELLS[cell]
    K, H = rnn.num_directions, rnn.hidden_size
    suffixes = [f"_l{l}", f"_l{l}_reverse"][:K]

    def gates(name, sfx):  # torch's gate blocks of rows reordered to ONNX's
        w = getattr(rnn, f"{name}{sfx}").data
        return np.concatenate([w[i * H:(i + 1) * H] for i in gate_order])

    W = g.const(f"W_l{l}", np.stack([gates("weight_ih", sfx) for sfx in suffixes]))  # (K, G*H, D)
    R = g.const(f"R_l{l}", np.stack([gates("weight_hh", sfx) for sfx in suffixes]))  # (K, G*H, H)
    B = ""
    if rnn.bias:  # ONNX's B is [W_b; R_b] per direction: (K, 2*G*H)
        B = g.const(f"B_l{l}", np.stack([np.concatenate([gates("bias_ih", sfx), gates("bias_hh", sfx)])
                                         for sfx in suffixes]))
    states = tuple(initial)
    kwargs = dict(attrs, hidden_size=H, direction="bidirectional" if K == 2 else "forward")
    if "activations" in kwargs:
        kwargs["activations"] = [kwargs["activations"]] * K
    g.node(op, [x, W, R, B, "", *(initial[s] for s in states)], [f"Y_l{l}"] + [f"{s}n_l{l}" for s in states],
           **kwargs)  # Y (T, K, B, H), Y_h and Y_c (K, B, H)
    # (T, K, B, H) -> (T, B, K, H) -> (T, B, K*H): [forward h_t, backward h_t] as torch concatenates
    y = g.node("Transpose", [f"Y_l{l}"], [f"Y_l{l}_tbkh"], perm=[0, 2, 1, 3])
    return g.node("Reshape", [y, g.const(f"shape_l{l}", np.array([0, 0, K * H], np.int64))], [f"y_l{l}"])


def _scan_layer(g: Graph, rnn, cell: str, l: int, x: str, initial: dict) -> str:
    """Layer l as one Scan per direction, concatenated as torch concatenates them."""
    K = rnn.num_directions
    ys, ends = [], {s: [] for s in initial}
    for k in range(K):
        tag = f"l{l}d{k}"
        start = {}
        for s, block in initial.items():  # this direction's (B, H) of the layer's (K, B, H) initial state
            if K == 2:
                block = g.node("Slice", [block, g.const(f"{tag}_{s}_from", np.array([k], np.int64)),
                                         g.const(f"{tag}_{s}_to", np.array([k + 1], np.int64))], [f"{tag}_{s}0_k"])
            start[s] = g.node("Squeeze", [block, g.const("axis_0", np.array([0], np.int64))], [f"{tag}_{s}0"])
        y, end = scan_direction(g, rnn, f"_l{l}" + ("_reverse" if k else ""), tag, x, start, reverse=k == 1)
        ys.append(y)
        for s in initial:
            ends[s].append(g.node("Unsqueeze", [end[s], g.const("axis_0", np.array([0], np.int64))], [f"{tag}_{s}n"]))
    for s in initial:
        g.node("Concat", ends[s], [f"{s}n_l{l}"], axis=0)  # (K, B, H)
    return g.node("Concat", ys, [f"y_l{l}"], axis=2)  # (T, B, K*H)


def to_onnx(model, path, *, vocab=None, dtype: str = "float32", opset: int = OPSET) -> Path:
    """Write `model` (a CharRNN or a bare layer) as an ONNX file, atomically; nothing is written on error.

    Give the vocabulary with a CharRNN so a sampler (rnnlab generate --onnx) can map characters.
    """
    proto = onnx_model(model, vocab=vocab, dtype=dtype, opset=opset)
    return atomic_write_bytes(path, proto.SerializeToString())
