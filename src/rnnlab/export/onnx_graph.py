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
    """The onnx.ModelProto of a CharRNN or a bare recurrent layer, checked by onnx.checker.

    lstm, gru, rnn and rnn_relu become ONNX's own LSTM/GRU/RNN operators; any other registered cell
    (lstm_noforget, indrnn, your own) becomes a Scan over its step, traced from the cell's forward
    into primitive ops (use_scan=True does that for the built-in cells too, to check one against the
    other). dtype "float32" (the default, whatever the model's) runs everywhere; "float64" is valid
    ONNX, but onnxruntime's CPU LSTM/GRU/RNN kernels (1.32) implement float only.
    """
    onnx = _require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rnn, char = parts(model)
    cell = cell_name(rnn)
    native = cell in ONNX_CELLS and not use_scan
    if not native:
        check_scannable(rnn, cell)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not 13 <= opset <= newest:  # 13: Split takes its sizes as an input
        raise ValueError(f"opset must be an integer in 13..{newest} (this onnx's newest); got {opset!r}")
    np_dtype = np.dtype(dtype)
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    L, K, H = rnn.num_layers, rnn.num_directions, rnn.hidden_size
    state_names = tuple(rnn.kind.state_names) if hasattr(rnn, "kind") else ("h", "c") if cell == "lstm" else ("h",)
    nodes, weights = [], []

    def const(name, array):  # an initializer; the same name twice is the same constant
        if name not in {w.name for w in weights}:
            weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op_type, inputs, outputs, **kwargs):
        nodes.append(helper.make_node(op_type, inputs, outputs, name=f"{op_type}_{len(nodes)}", **kwargs))
        return outputs[0]

    def gates(w):  # torch's gate blocks of rows reordered to ONNX's
        return np.concatenate([w[g * H:(g + 1) * H] for g in ONNX_CELLS[cell][1]]).astype(np_dtype)

    batch, time = "batch", "time"
    if char is not None:
        V = char.config.vocab_size
        inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, time])]
        x = node("Gather", [const("embedding.weight", char.embedding.weight.data.astype(np_dtype)), "ids"],
                 ["embedded"])  # (B, T, E)
    else:
        inputs = [helper.make_tensor_value_info("x", elem, [batch, time, rnn.input_size])]
        x = "x"
    inputs += [helper.make_tensor_value_info(f"{s}0", elem, [L * K, batch, H]) for s in state_names]
    x = node("Transpose", [x], ["x_time_major"], perm=[1, 0, 2])  # (T, B, D): ONNX's layout 0
    # one (K, B, H) block of each initial state per layer
    if L == 1:
        initial = {s: [f"{s}0"] for s in state_names}
    else:
        split = const("split_per_layer", np.full(L, K, np.int64))
        initial = {s: [f"{s}0_l{l}" for l in range(L)] for s in state_names}
        for s in state_names:
            node("Split", [f"{s}0", split], initial[s], axis=0)
    finals = {s: [] for s in state_names}
    for l in range(L):
        suffixes = [f"_l{l}", f"_l{l}_reverse"][:K]
        param = lambda name, sfx: getattr(rnn, f"{name}{sfx}").data  # noqa: E731
        if native:
            op, _, attrs = ONNX_CELLS[cell]
            W = const(f"W_l{l}", np.stack([gates(param("weight_ih", sfx)) for sfx in suffixes]))  # (K, G*H, D)
            R = const(f"R_l{l}", np.stack([gates(param("weight_hh", sfx)) for sfx in suffixes]))  # (K, G*H, H)
            B = ""
            if rnn.bias:  # ONNX's B is [W_b; R_b] per direction: (K, 2*G*H)
                B = const(f"B_l{l}", np.stack([np.concatenate([gates(param("bias_ih", sfx)), gates(param("bias_hh", sfx))])
                                               for sfx in suffixes]))
            op_inputs = [x, W, R, B, "", initial["h"][l]] + ([initial["c"][l]] if cell == "lstm" else [])
            op_outputs = [f"Y_l{l}"] + [f"{s}n_l{l}" for s in state_names]
            kwargs = dict(attrs, hidden_size=H, direction="bidirectional" if K == 2 else "forward")
            if "activations" in kwargs:
                kwargs["activations"] = [kwargs["activations"]] * K
            node(op, op_inputs, op_outputs, **kwargs)  # Y (T, K, B, H), Y_h and Y_c (K, B, H)
            # (T, K, B, H) -> (T, B, K, H) -> (T, B, K*H): [forward h_t, backward h_t] as torch concatenates
            y = node("Transpose", [f"Y_l{l}"], [f"Y_l{l}_tbkh"], perm=[0, 2, 1, 3])
            x = node("Reshape", [y, const(f"shape_l{l}", np.array([0, 0, K * H], np.int64))], [f"y_l{l}"])
        else:
            ys, ends = [], {s: [] for s in state_names}
            for k, sfx in enumerate(suffixes):
                tag = f"l{l}d{k}"
                start = {}
                for s in state_names:  # this direction's (B, H) block of the layer's (K, B, H) initial state
                    block = initial[s][l]
                    if K == 2:
                        block = node("Slice", [block, const(f"{tag}_{s}_from", np.array([k], np.int64)),
                                               const(f"{tag}_{s}_to", np.array([k + 1], np.int64))], [f"{tag}_{s}0_k"])
                    start[s] = node("Squeeze", [block, const(f"{tag}_{s}_axis", np.array([0], np.int64))],
                                    [f"{tag}_{s}0"])
                y_k, end = scan_direction(helper, numpy_helper, node, const, rnn, sfx, tag, x, start, elem, np_dtype,
                                           reverse=k == 1)
                ys.append(y_k)
                for s in state_names:
                    ends[s].append(node("Unsqueeze", [end[s], const(f"{tag}_{s}_n_axis", np.array([0], np.int64))],
                                        [f"{tag}_{s}n"]))
            for s in state_names:
                node("Concat", ends[s], [f"{s}n_l{l}"], axis=0)  # (K, B, H)
            x = node("Concat", ys, [f"y_l{l}"], axis=2)  # (T, B, K*H)
        for s in state_names:
            finals[s].append(f"{s}n_l{l}")
    y = node("Transpose", [x], ["y" if char is None else "h_top"], perm=[1, 0, 2])  # (B, T, K*H)
    outputs = []
    if char is not None:  # the output layer: logits = h W^T + b
        z = node("MatMul", [y, const("head.weight_t", char.head.weight.data.T.astype(np_dtype))], ["h_head"])
        node("Add", [z, const("head.bias", char.head.bias.data.astype(np_dtype))], ["logits"])
        outputs.append(helper.make_tensor_value_info("logits", elem, [batch, time, V]))
    else:
        outputs.append(helper.make_tensor_value_info("y", elem, [batch, time, K * H]))
    for s in state_names:
        node("Concat", finals[s], [f"{s}n"], axis=0)
        outputs.append(helper.make_tensor_value_info(f"{s}n", elem, [L * K, batch, H]))

    graph = helper.make_graph(nodes, "rnnlab_" + ("char_rnn" if char is not None else cell), inputs, outputs, weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="rnnlab",
                              doc_string="rnnlab export: " + (f"character-level {cell} model" if char else
                                                              f"{cell} layer"))
    doc = {"format": ONNX_FORMAT, "version": FORMAT_VERSION, "model": "CharRNN" if char else type(rnn).__name__,
           "model_config": char.config.to_dict() if char else layer_config(rnn),
           "vocab": vocab_list(vocab, char.config.vocab_size if char else None),
           "states": list(state_names)}
    helper.set_model_props(proto, {META_KEY: json.dumps(doc)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path, *, vocab=None, dtype: str = "float32", opset: int = OPSET) -> Path:
    """Write `model` (a CharRNN or a bare layer) as an ONNX file, atomically; nothing is written on error.

    Give the vocabulary with a CharRNN so a sampler (rnnlab generate --onnx) can map characters.
    """
    proto = onnx_model(model, vocab=vocab, dtype=dtype, opset=opset)
    return atomic_write_bytes(path, proto.SerializeToString())


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"exporting to ONNX needs the {module!r} package: pip install 'rnnlab[export]'") from None
