"""The lecture's four kinds (OneToOne, OneToMany, ManyToOne, ManyToMany) as ONNX graphs and torch files.

    OneToOne    x (B, D) | ids (B,)                         -> y (B, O)
    ManyToOne   x (B, T, D) | ids (B, T), h0 [, c0]         -> y (B, O), hn [, cn]
    ManyToMany  x (B, T, D) | ids (B, T), h0 [, c0]         -> y (B, T, O), hn [, cn]
    OneToMany   x (B, D) | ids (B,), tokens_in (B, U) int64 -> logits (B, U, V), hn [, cn]

States are (L*K, B, H), as the layers' (zeros: what rnnlab starts from); feeding hn back as h0 with
the next piece of a series streams it, as `model(x, state=..., return_state=True)` does. The graphs
read whole sequences: a padded batch's outputs past a sequence's end are not rnnlab's (run ragged
sequences one at a time, or batch equal lengths). Seq2Seq is not exported.

Shapes: B = batch, T = time, U = target steps, D = input features, H = hidden units, L = layers,
K = directions, O = outputs, V = vocabulary.
"""
from __future__ import annotations

import json

import numpy as np

from ..io import save_weights
from ..models import Fittable, ManyToMany, ManyToOne, OneToMany, OneToOne
from ..nn import Embedding, Linear, Recurrent
from .common import FORMAT_VERSION, META_KEY, ExportError, cell_name
from .graph import Graph, require_onnx
from .scan import check_scannable

KINDS = (OneToOne, ManyToOne, ManyToMany, OneToMany)


def is_kind(model) -> bool:
    return isinstance(model, Fittable)


def _check_kind(model) -> None:
    if not isinstance(model, KINDS):
        raise ExportError(f"{type(model).__name__} cannot be exported yet (OneToOne, OneToMany, ManyToOne and "
                          "ManyToMany can); save it with rnnlab.save")


def _json(value) -> str:
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def kind_onnx_model(model, *, dtype: str, opset: int, use_scan: bool = False):
    """The checked onnx.ModelProto of one of the four kinds (see the module doc)."""
    from .onnx_graph import ONNX_CELLS, ONNX_FORMAT, recurrent

    onnx = require_onnx()
    _check_kind(model)
    g = Graph(dtype)
    inputs, outputs = [], []
    int64 = onnx.TensorProto.INT64

    def read(layer, lead: list) -> str:
        """The model's Inputs: float features as given, or ids looked up in its embedding."""
        if layer.embedding is not None:
            inputs.append(g.value("ids", lead, int64))
            return g.node("Gather", [g.const("inputs.embedding.weight", layer.embedding.weight.data), "ids"],
                          ["embedded"])
        inputs.append(g.value("x", lead + [layer.input_size]))
        return "x"

    def linear(x: str, layer: Linear, name: str, out: str) -> str:
        z = g.node("MatMul", [x, g.const(f"{name}.weight_t", layer.weight.data.T)], [f"{name}_product"])
        return g.node("Add", [z, g.const(f"{name}.bias", layer.bias.data)], [out])

    def stack(rnn: Recurrent, x: str) -> str:
        cell = cell_name(rnn)
        native = cell in ONNX_CELLS and not use_scan
        if not native:
            check_scannable(rnn, cell)
        h = recurrent(g, rnn, native, x, "h_all")  # (B, T, K*H)
        shape = [rnn.num_layers * rnn.num_directions, "batch", rnn.hidden_size]
        outputs.extend(g.value(f"{s}n", shape) for s in rnn.kind.state_names)
        return h

    if isinstance(model, OneToOne):
        a = g.node("Tanh", [linear(read(model.inputs, ["batch"]), model.hidden, "hidden", "hidden_pre")], ["a"])
        outputs.append(g.value(linear(a, model.head, "head", "y"), ["batch", model.head.out_features]))
    elif isinstance(model, (ManyToOne, ManyToMany)):
        rnn = model.rnn
        L, K, H = rnn.num_layers, rnn.num_directions, rnn.hidden_size
        x = read(model.inputs, ["batch", "time"])
        inputs.extend(g.value(f"{s}0", [L * K, "batch", H]) for s in rnn.kind.state_names)
        h = stack(rnn, x)
        if isinstance(model, ManyToMany):
            y = linear(h, model.head, "head", "y")
            outputs.insert(0, g.value(y, ["batch", "time", model.head.out_features]))
        else:  # the top layer's final h of each direction, [forward, backward] as rnnlab concatenates them
            top = g.node("Slice", ["hn", g.const("top_from", np.array([L * K - K], np.int64)),
                                   g.const("top_to", np.array([L * K], np.int64))], ["h_top"])  # (K, B, H)
            top = g.node("Transpose", [top], ["h_top_bkh"], perm=[1, 0, 2])  # (B, K, H)
            top = g.node("Reshape", [top, g.const("shape_top", np.array([0, K * H], np.int64))], ["h_last"])
            outputs.insert(0, g.value(linear(top, model.head, "head", "y"), ["batch", model.head.out_features]))
    else:  # OneToMany: h_0 = tanh(W x + b) per layer (c_0 = 0), then the decoder on tokens_in
        rnn = model.decoder.rnn
        L, H = model.num_layers, model.hidden_size
        a = linear(read(model.inputs, ["batch"]), model.init_state, "init_state", "init_pre")  # (B, L*H)
        a = g.node("Tanh", [a], ["init_tanh"])
        a = g.node("Reshape", [a, g.const("shape_blh", np.array([0, L, H], np.int64))], ["init_blh"])
        g.node("Transpose", [a], ["h0"], perm=[1, 0, 2])  # (L, B, H)
        for s in rnn.kind.state_names[1:]:
            g.node("Mul", ["h0", g.const("zero", np.zeros((), np.float32))], [f"{s}0"])
        inputs.append(g.value("tokens_in", ["batch", "steps"], int64))
        e = g.node("Gather", [g.const("decoder.embedding.weight", model.decoder.embedding.weight.data), "tokens_in"],
                   ["tokens_embedded"])
        h = stack(rnn, e)
        logits = linear(h, model.decoder.head, "decoder.head", "logits")
        outputs.insert(0, g.value(logits, ["batch", "steps", model.decoder.vocab_size]))

    kind = type(model).__name__
    graph = g.helper.make_graph(g.nodes, f"rnnlab_{kind}", inputs, outputs, g.weights)
    proto = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", opset)], producer_name="rnnlab",
                                doc_string=f"rnnlab export: {kind}")
    doc = {"format": ONNX_FORMAT, "version": FORMAT_VERSION, "model": kind, "model_config": model.init_args,
           "fit_info": model.fit_info, "preprocessing": model.preprocessing}
    g.helper.set_model_props(proto, {META_KEY: _json(doc)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _constructor(layer) -> dict:
    """The torch.nn module (class and keyword arguments) that holds this layer's weights by the same names."""
    if isinstance(layer, Linear):
        return {"class": "Linear", "in_features": layer.in_features, "out_features": layer.out_features}
    if isinstance(layer, Embedding):
        V, E = layer.weight.data.shape
        return {"class": "Embedding", "num_embeddings": V, "embedding_dim": E}
    from .torch_files import TORCH_CLASSES

    cell = cell_name(layer)
    if cell not in TORCH_CLASSES:
        raise ExportError(f"the {cell!r} cell has no torch.nn module (torch has LSTM, GRU and RNN); "
                          "save the model with rnnlab.save instead")
    out = {"class": TORCH_CLASSES[cell], "input_size": layer.input_size, "hidden_size": layer.hidden_size,
           "num_layers": layer.num_layers, "bias": layer.bias, "batch_first": True,
           "bidirectional": layer.bidirectional}
    if TORCH_CLASSES[cell] == "RNN":
        out["nonlinearity"] = "relu" if cell == "rnn_relu" else "tanh"
    return out


def kind_torch_modules(model) -> dict:
    """{dotted module name: torch.nn class and arguments} for every module that holds weights."""
    modules = {}

    def walk(layer, prefix):
        if isinstance(layer, (Linear, Embedding, Recurrent)):
            modules[prefix.rstrip(".")] = _constructor(layer)
            return
        for name, child in layer.children():
            walk(child, prefix + name + ".")

    walk(model, "")
    return modules


def kind_to_torch(model, path):
    """The weights under torch.nn's names; the modules to build them in, in the metadata."""
    from .torch_files import TORCH_FORMAT

    _check_kind(model)
    doc = {"format": TORCH_FORMAT, "version": FORMAT_VERSION, "model": type(model).__name__,
           "model_config": model.init_args, "torch": kind_torch_modules(model)}
    return save_weights(path, model.state_dict(), metadata={META_KEY: _json(doc)})
