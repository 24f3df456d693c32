"""Portable models: an rnnlab model as an ONNX graph or a PyTorch weight file, and PyTorch files back.

    rnnlab export runs/char --format onnx --out model.onnx          # runs in onnxruntime, no rnnlab
    rnnlab export runs/char --format torch --out model.safetensors  # loads into torch.nn modules

    >>> to_onnx(model, "model.onnx", vocab=vocab)      # a CharRNN, or a bare rnnlab LSTM / GRU / RNN
    >>> to_torch(model, "model.safetensors", vocab=vocab)
    >>> model, vocab = from_torch("trained_in_torch.safetensors")   # a CharRNN or a bare layer

The ONNX graph uses ONNX's own LSTM, GRU and RNN operators, one per layer (any other cell: a Scan
over its step, traced from the cell definition's forward), with the initial states as inputs and the
final states as outputs, so a runtime can stream one character at a time:

    CharRNN:  ids (B, T) int64, h0 (L, B, H) [, c0]  ->  logits (B, T, V), hn (L, B, H) [, cn]
    layer:    x (B, T, D) float, h0 (L*K, B, H) [, c0] ->  y (B, T, K*H), hn (L*K, B, H) [, cn]

A PyTorch weight file keeps rnnlab's names, which are the names torch.nn gives the same modules:
embedding.weight, rnn.weight_ih_l0, ..., head.weight, head.bias (a bare layer: weight_ih_l0, ...).
docs/interop.md shows the lines that rebuild the model in PyTorch.

Shapes: B = batch, T = time, D = input features, E = embedding, H = hidden units, L = layers,
K = directions, V = vocabulary, G = gates.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .io import CheckpointError, atomic_write_bytes, load_weights_and_metadata, save_weights
from .models import CharRNN, CharRNNConfig, make_recurrent

OPSET = 17  # ONNX 1.12 (2022): every runtime of the last years reads it; LSTM/GRU/RNN are unchanged since 14
ONNX_FORMAT = "rnnlab-onnx"
TORCH_FORMAT = "rnnlab-torch"
FORMAT_VERSION = 1
META_KEY = "rnnlab"  # the metadata entry (safetensors metadata, ONNX metadata_props) holding our JSON

# ONNX operator, the torch gate blocks in ONNX's order, attributes. PyTorch orders the LSTM gates
# i, f, g, o and ONNX i, o, f, c; the GRU r, z, n and ONNX z, r, h. PyTorch's GRU applies r after
# W_hn h + b_hn, which is ONNX's linear_before_reset=1.
ONNX_CELLS = {
    "lstm": ("LSTM", (0, 3, 1, 2), {}),
    "gru": ("GRU", (1, 0, 2), {"linear_before_reset": 1}),
    "rnn": ("RNN", (0,), {"activations": "Tanh"}),  # the registry's name of the tanh RNN
    "rnn_relu": ("RNN", (0,), {"activations": "Relu"}),
}
TORCH_GATES = {4: "lstm", 3: "gru", 1: "rnn"}  # what a torch state_dict's G*H rows say about the cell
TORCH_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "rnn_relu": "RNN"}
ALIASES = {"rnn_tanh": "rnn"}  # torch's mode name for the registry's


class ExportError(ValueError):
    """A model that cannot be written in the asked format; the message names the reason."""


def cell_name(layer) -> str:
    """The registered name of a recurrent layer's cell: lstm, gru, rnn (tanh), rnn_relu, or another."""
    for attr in ("cell", "kind"):
        value = getattr(layer, attr, None)
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if isinstance(name, str):
            return ALIASES.get(name, name)
    raise TypeError(f"{type(layer).__name__} is not an rnnlab recurrent layer (it has no cell)")


def _parts(model):
    """(recurrent stack, CharRNN or None) of what may be exported: a CharRNN or a bare layer."""
    if isinstance(model, CharRNN):
        return model.rnn, model
    if hasattr(model, "num_directions") and hasattr(model, "weight_ih_l0"):
        return model, None
    raise TypeError(f"export takes a CharRNN or an rnnlab LSTM/GRU/RNN layer; got {type(model).__name__}")


def _vocab_list(vocab, size: int | None) -> list[str] | None:
    if vocab is None:
        return None
    chars = list(vocab.chars) if hasattr(vocab, "chars") else list(vocab)
    if not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise TypeError("vocab must be a Vocab or a list of single characters")
    if size is not None and len(chars) != size:
        raise ValueError(f"the vocabulary has {len(chars)} characters but the model expects {size}")
    return chars


def _layer_config(rnn) -> dict:
    return {"cell": cell_name(rnn), "input_size": rnn.input_size, "hidden_size": rnn.hidden_size,
            "num_layers": rnn.num_layers, "bidirectional": rnn.bidirectional, "bias": rnn.bias,
            "dtype": rnn.dtype.name}


# -- ONNX --------------------------------------------------------------------------------------------
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

    rnn, char = _parts(model)
    cell = cell_name(rnn)
    native = cell in ONNX_CELLS and not use_scan
    if not native:
        _check_scannable(rnn, cell)
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
                y_k, end = _scan_direction(helper, numpy_helper, node, const, rnn, sfx, tag, x, start, elem, np_dtype,
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
           "model_config": char.config.to_dict() if char else _layer_config(rnn),
           "vocab": _vocab_list(vocab, char.config.vocab_size if char else None),
           "states": list(state_names)}
    helper.set_model_props(proto, {META_KEY: json.dumps(doc)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


# -- cells without an ONNX operator: a Scan over the step, traced from the cell's own forward ---------
_STANDARD = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
_UFUNCS = {"tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "absolute": "Abs", "negative": "Neg",
           "add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "true_divide": "Div",
           "maximum": "Max", "minimum": "Min", "reciprocal": "Reciprocal", "power": "Pow", "positive": "Identity"}


def _check_scannable(rnn, cell: str) -> None:
    """ExportError unless the cell is a definition a Scan can carry: the standard parameters, a dense or
    diagonal recurrence."""
    kind = getattr(rnn, "kind", None)
    params = {p.name for p in getattr(kind, "parameters", None) or ()}
    if not callable(getattr(kind, "forward", None)) or not params <= _STANDARD or \
            getattr(kind, "recurrence", None) not in ("dense", "diagonal"):
        raise ExportError(f"the {cell!r} cell has no ONNX operator, and its definition (parameters "
                          f"{sorted(params)}) is not one the ONNX export can trace into a Scan; "
                          "this model cannot be exported to ONNX")


class _Traced:
    """A value in the Scan body: arithmetic and NumPy ufuncs on it add ONNX nodes instead of computing.
    In-place operations (np.tanh(a, out=a), a *= 2) rename the value, as they would mutate an array."""

    __array_priority__ = 1000

    def __init__(self, tracer, name: str):
        self.tracer, self.name = tracer, name

    def _op(self, op_type, *args):
        return self.tracer.op(op_type, *args)

    __add__ = lambda a, b: a._op("Add", a, b)  # noqa: E731
    __radd__ = lambda a, b: a._op("Add", b, a)  # noqa: E731
    __sub__ = lambda a, b: a._op("Sub", a, b)  # noqa: E731
    __rsub__ = lambda a, b: a._op("Sub", b, a)  # noqa: E731
    __mul__ = lambda a, b: a._op("Mul", a, b)  # noqa: E731
    __rmul__ = lambda a, b: a._op("Mul", b, a)  # noqa: E731
    __truediv__ = lambda a, b: a._op("Div", a, b)  # noqa: E731
    __rtruediv__ = lambda a, b: a._op("Div", b, a)  # noqa: E731
    __pow__ = lambda a, b: a._op("Pow", a, b)  # noqa: E731
    __neg__ = lambda a: a._op("Neg", a)  # noqa: E731
    __pos__ = lambda a: a

    def _assign(self, other):
        self.name = other.name
        return self

    __iadd__ = lambda a, b: a._assign(a + b)  # noqa: E731
    __isub__ = lambda a, b: a._assign(a - b)  # noqa: E731
    __imul__ = lambda a, b: a._assign(a * b)  # noqa: E731
    __itruediv__ = lambda a, b: a._assign(a / b)  # noqa: E731

    def __bool__(self):
        raise TypeError("the step branches on a value (if/while on an array)")

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method != "__call__" or ufunc.__name__ not in _UFUNCS or kwargs:
            raise TypeError(f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} has no "
                            "translation to ONNX here")
        result = self.tracer.op(_UFUNCS[ufunc.__name__], *inputs)
        if out is not None:  # in place: the output array now holds the result
            return out[0]._assign(result) if isinstance(out[0], _Traced) else result
        return result

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} has no translation to ONNX here")


class _Tracer:
    """Collects the nodes of one Scan body; numbers become constants of the graph's dtype."""

    def __init__(self, helper, numpy_helper, tag: str, np_dtype):
        self.helper, self.numpy_helper, self.tag, self.np_dtype = helper, numpy_helper, tag, np_dtype
        self.nodes = []

    def fresh(self, what: str) -> str:
        return f"{self.tag}_{what}{len(self.nodes)}"

    def name_of(self, value) -> str:
        if isinstance(value, _Traced):
            return value.name
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            name = self.fresh("const")
            self.nodes.append(self.helper.make_node("Constant", [], [name], name=name, value=self.numpy_helper.from_array(
                np.array(value, self.np_dtype), name)))
            return name
        raise TypeError(f"a {type(value).__name__} value has no translation to ONNX here")

    def op(self, op_type: str, *args) -> _Traced:
        names = [self.name_of(a) for a in args]
        out = self.fresh(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, names, [out], name=out))
        return _Traced(self, out)


def _scan_direction(helper, numpy_helper, node, const, rnn, sfx, tag, x, start, elem, np_dtype, reverse):
    """One direction of one layer as a Scan: x (T, B, D) -> y (T, B, H), final state {name: (B, H)}.

    The input projection of all steps is one MatMul outside the loop (as rnnlab's driver does it);
    the body adds the recurrence (h W_hh^T, or u * h for a diagonal cell) and runs the cell's forward.
    """
    kind, H = rnn.kind, rnn.hidden_size
    G, states = kind.G, tuple(kind.state_names)
    get = lambda name: getattr(rnn, f"{name}{sfx}").data.astype(np_dtype)  # noqa: E731
    ax = node("MatMul", [x, const(f"{tag}_W_ih_t", get("weight_ih").T)], [f"{tag}_xW"])  # (T, B, G*H)
    if rnn.bias:
        ax = node("Add", [ax, const(f"{tag}_b_ih", get("bias_ih"))], [f"{tag}_ax"])
    body = _Tracer(helper, numpy_helper, f"{tag}_body", np_dtype)
    prev = {s: f"{tag}_{s}_prev" for s in states}
    if kind.recurrence == "dense":
        ah = body.op("MatMul", _Traced(body, prev["h"]), _Traced(body, const(f"{tag}_W_hh_t", get("weight_hh").T)))
    else:  # diagonal: u (G*H,) times h repeated for every gate
        h_rep = body.fresh("h_rep")
        body.nodes.append(helper.make_node("Concat", [prev["h"]] * G, [h_rep], name=h_rep, axis=1))
        ah = body.op("Mul", _Traced(body, h_rep), _Traced(body, const(f"{tag}_u", get("weight_hh"))))
    if rnn.bias:
        ah = body.op("Add", ah, _Traced(body, const(f"{tag}_b_hh", get("bias_hh"))))

    def per_gate(value: str, what: str) -> tuple:  # (B, G*H) -> G blocks (B, H), in the rows' gate order
        if G == 1:
            return (_Traced(body, value),)
        names = [body.fresh(f"{what}_gate") + f"_{g}" for g in range(G)]
        body.nodes.append(helper.make_node("Split", [value, const(f"{tag}_gate_sizes", np.full(G, H, np.int64))],
                                           names, name=names[0], axis=1))
        return tuple(_Traced(body, n) for n in names)

    a_x, a_h = per_gate(f"{tag}_ax_t", "ax"), per_gate(ah.name, "ah")
    try:
        new_state, _ = kind.forward(a_x, a_h, tuple(_Traced(body, prev[s]) for s in states))
    except TypeError as error:
        raise ExportError(f"the {kind.name!r} cell has no ONNX operator, and its step cannot be traced into "
                          f"an ONNX Scan: {error}; this model cannot be exported to ONNX") from None
    outs = [f"{tag}_{s}_next" for s in states] + [f"{tag}_h_t"]
    for name, value in zip(outs, tuple(new_state) + (new_state[0],)):
        body.nodes.append(helper.make_node("Identity", [body.name_of(value)], [name], name=name))
    info = lambda name: helper.make_tensor_value_info(name, elem, ["batch", H])  # noqa: E731
    graph = helper.make_graph(body.nodes, f"{tag}_step",
                              [info(prev[s]) for s in states] + [helper.make_tensor_value_info(
                                  f"{tag}_ax_t", elem, ["batch", G * H])],
                              [info(n) for n in outs])
    finals = [f"{tag}_{s}_end" for s in states]
    node("Scan", [start[s] for s in states] + [ax], finals + [f"{tag}_y"], body=graph, num_scan_inputs=1,
         scan_input_directions=[int(reverse)], scan_output_directions=[int(reverse)])
    return f"{tag}_y", dict(zip(states, finals))


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


# -- PyTorch files -----------------------------------------------------------------------------------
def torch_constructors(model) -> dict:
    """Keyword arguments of the torch.nn modules that hold this model's weights under the same names."""
    rnn, char = _parts(model)
    cell = cell_name(rnn)
    if cell not in TORCH_CLASSES:
        raise ExportError(f"the {cell!r} cell has no torch.nn module (torch has LSTM, GRU and RNN); "
                          "save its weights with rnnlab.io.save_weights instead")
    kwargs = {"input_size": rnn.input_size, "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
              "bias": rnn.bias, "batch_first": True, "bidirectional": rnn.bidirectional}
    if TORCH_CLASSES[cell] == "RNN":
        kwargs["nonlinearity"] = "relu" if cell == "rnn_relu" else "tanh"
    out = {"rnn_class": TORCH_CLASSES[cell], "rnn": kwargs}
    if char is not None:
        c = char.config
        out["embedding"] = {"num_embeddings": c.vocab_size, "embedding_dim": c.embedding_dim}
        out["head"] = {"in_features": c.hidden_size, "out_features": c.vocab_size}
    return out


def to_torch(model, path, *, vocab=None) -> Path:
    """Write the weights under torch.nn's names, with the configuration and vocabulary in the metadata."""
    rnn, char = _parts(model)
    doc = {"format": TORCH_FORMAT, "version": FORMAT_VERSION, "model": "CharRNN" if char else type(rnn).__name__,
           "cell": cell_name(rnn), "model_config": char.config.to_dict() if char else _layer_config(rnn),
           "torch": torch_constructors(model),
           "vocab": _vocab_list(vocab, char.config.vocab_size if char else None)}
    return save_weights(path, model.state_dict(), metadata={META_KEY: json.dumps(doc)})


_RNN_NAME = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?")


def from_torch(path, *, cell: str | None = None, vocab=None):
    """(model, vocab) from a safetensors file of torch.nn weights: a bare LSTM/GRU/RNN state_dict, or a
    character model (an Embedding, the recurrent stack, a Linear) under any module names.

    The cell comes from the rows of weight_ih (4H: lstm, 3H: gru, H: rnn); a state_dict cannot tell
    torch's tanh RNN from its relu one, so give cell="rnn_relu" (or metadata {"cell": "rnn_relu"})
    for the latter. vocab (a Vocab or list of characters) is needed to sample text; without it the
    file's metadata is read ({"vocab": [...]}), else it is None.
    """
    from .data.text import Vocab

    path = Path(path)
    state, metadata = load_weights_and_metadata(path)
    doc = _torch_doc(path, metadata)
    cell = cell or doc.get("cell")
    layout = _torch_layout(path, state, cell)
    cell, dtype = layout["cell"], layout["dtype"]
    if layout["embedding"] is None:  # a bare layer
        kwargs = dict(num_layers=layout["num_layers"], bidirectional=layout["bidirectional"], bias=layout["bias"],
                      dtype=dtype, rng=0)
        model = make_recurrent(cell, layout["input_size"], layout["hidden_size"], **kwargs)
        rename = {layout["rnn_prefix"] + k: k for k in layout["rnn_names"]}
    else:
        if layout["bidirectional"] or not layout["bias"]:
            raise CheckpointError(f"{path}: rnnlab's character model is unidirectional with biases; this one is "
                                  f"{'bidirectional' if layout['bidirectional'] else 'bias-free'}")
        config = CharRNNConfig(vocab_size=layout["vocab_size"], cell=cell,
                               hidden_size=layout["hidden_size"], num_layers=layout["num_layers"],
                               embedding_dim=layout["input_size"], dtype=np.dtype(dtype).name)
        model = CharRNN(config, rng=0)
        rename = {layout["rnn_prefix"] + k: "rnn." + k for k in layout["rnn_names"]}
        rename[layout["embedding"] + "weight"] = "embedding.weight"
        rename[layout["head"] + "weight"] = "head.weight"
        rename[layout["head"] + "bias"] = "head.bias"
    model.load_state_dict({ours: state[theirs].astype(dtype, copy=False) for theirs, ours in rename.items()})
    model.eval()
    chars = vocab if vocab is not None else doc.get("vocab")
    size = layout["vocab_size"]
    if chars is not None:
        chars = _vocab_list(chars, size)
        if size is None:
            raise CheckpointError(f"{path}: a vocabulary was given, but the file holds a bare layer, not a char model")
    return model, None if chars is None else Vocab.from_list(chars)


_DOC_KEYS = {"format", "version", "model", "cell", "model_config", "torch", "vocab"}


def _torch_doc(path: Path, metadata: dict[str, str]) -> dict:
    """The optional JSON under metadata["rnnlab"] (ours, or a user's {"cell": ..., "vocab": ...})."""
    if META_KEY not in metadata:
        return {}
    try:
        doc = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: the {META_KEY!r} metadata is not valid JSON ({error})") from None
    if not isinstance(doc, dict) or set(doc) - _DOC_KEYS:
        extra = sorted(set(doc) - _DOC_KEYS) if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: the {META_KEY!r} metadata has unknown entries {extra}; "
                              f"known: {sorted(_DOC_KEYS)}")
    if doc.get("format", TORCH_FORMAT) != TORCH_FORMAT or doc.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(f"{path}: metadata format {doc.get('format')!r} version {doc.get('version')!r}; "
                              f"this rnnlab reads {TORCH_FORMAT!r} version {FORMAT_VERSION}")
    if isinstance(doc.get("vocab"), str):
        doc["vocab"] = list(doc["vocab"])
    return doc


def _torch_layout(path: Path, state: dict[str, np.ndarray], cell: str | None) -> dict:
    """What a torch state_dict holds, read from its names and shapes (CheckpointError if unclear)."""
    roots = [k[:-len("weight_ih_l0")] for k in state if k.endswith("weight_ih_l0")]
    if len(roots) != 1:
        raise CheckpointError(f"{path}: expected one torch.nn LSTM/GRU/RNN (a 'weight_ih_l0' tensor); found "
                              f"{len(roots)} among {sorted(state)[:12]}")
    prefix = roots[0]
    rnn_names = [k[len(prefix):] for k in state if k.startswith(prefix) and _RNN_NAME.fullmatch(k[len(prefix):])]
    w_ih, w_hh = state[prefix + "weight_ih_l0"], state.get(prefix + "weight_hh_l0")
    if w_hh is None or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise CheckpointError(f"{path}: a torch.nn LSTM/GRU/RNN needs {prefix}weight_ih_l0 and "
                              f"{prefix}weight_hh_l0, both 2-D")
    H = w_hh.shape[1]
    G, rest = divmod(w_ih.shape[0], H)
    if rest or G not in TORCH_GATES:
        raise CheckpointError(f"{path}: weight_ih_l0 has {w_ih.shape[0]} rows for hidden size {H}; torch's LSTM, "
                              "GRU and RNN have 4H, 3H and H")
    inferred = TORCH_GATES[G]
    cell = ALIASES.get(cell, cell) or inferred
    if cell not in TORCH_CLASSES or TORCH_GATES[G] != {"rnn_relu": "rnn"}.get(cell, cell):
        raise CheckpointError(f"{path}: the weights are a {inferred.split('_')[0]} ({G}H rows); cell {cell!r} "
                              "does not fit them")
    layers = sorted({int(_RNN_NAME.fullmatch(n).group(3)) for n in rnn_names})
    if layers != list(range(len(layers))):
        raise CheckpointError(f"{path}: recurrent layers {layers} are not numbered 0..L-1")
    dtype = w_ih.dtype
    if dtype.kind != "f":
        raise CheckpointError(f"{path}: weights have dtype {dtype}; expected float32 or float64")
    if dtype == np.float16:
        dtype = np.dtype(np.float32)  # rnnlab computes in float32 or float64
    K = 2 if "weight_ih_l0_reverse" in rnn_names else 1
    layout = {"cell": cell, "dtype": dtype, "rnn_prefix": prefix, "rnn_names": rnn_names, "input_size": w_ih.shape[1],
              "hidden_size": H, "num_layers": len(layers), "bidirectional": K == 2, "bias": "bias_ih_l0" in rnn_names,
              "embedding": None, "head": None, "vocab_size": None}
    others: dict[str, dict[str, np.ndarray]] = {}
    for k, v in state.items():
        if not (k.startswith(prefix) and k[len(prefix):] in rnn_names):
            module, _, name = k.rpartition(".")
            others.setdefault(module + "." if module else "", {})[name] = v
    if not others:
        return layout
    embeddings = [m for m, p in others.items() if set(p) == {"weight"} and p["weight"].ndim == 2
                  and p["weight"].shape[1] == w_ih.shape[1]]
    heads = [m for m, p in others.items() if set(p) == {"weight", "bias"} and p["weight"].ndim == 2
             and p["weight"].shape[1] == K * H and p["bias"].shape == p["weight"].shape[:1]]
    if len(embeddings) != 1 or len(heads) != 1 or len(others) != 2:
        raise CheckpointError(f"{path}: besides the recurrent layer, expected an Embedding (weight (V, {w_ih.shape[1]}))"
                              f" and a Linear output layer (weight (V, {K * H}), bias (V,)); found "
                              + ", ".join(f"{m}{n} {tuple(a.shape)}" for m, p in others.items() for n, a in p.items()))
    V = others[embeddings[0]]["weight"].shape[0]
    if others[heads[0]]["weight"].shape[0] != V:
        raise CheckpointError(f"{path}: the embedding has {V} rows but the output layer "
                              f"{others[heads[0]]['weight'].shape[0]}; a char model reads and writes one vocabulary")
    layout.update(embedding=embeddings[0], head=heads[0], vocab_size=V)
    return layout


__all__ = ["ExportError", "OPSET", "cell_name", "from_torch", "onnx_model", "to_onnx", "to_torch",
           "torch_constructors"]
