"""Cells with no ONNX operator: a Scan over the step, traced from the cell definition's own forward.

The definition's forward(a_x, a_h, state) runs once on symbolic values (_Traced): each + - * / and
each NumPy ufunc it calls adds an ONNX node to the Scan body instead of computing. The input
projection of all steps is one MatMul outside the loop, as rnnlab's driver does it.

Shapes: B = batch, T = time, D = input features, H = hidden units, G = gates.
"""
from __future__ import annotations

import numpy as np

from .common import ExportError
from .graph import Graph

_STANDARD = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
_UFUNCS = {"tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "absolute": "Abs", "negative": "Neg",
           "add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "true_divide": "Div",
           "maximum": "Max", "minimum": "Min", "reciprocal": "Reciprocal", "power": "Pow", "positive": "Identity"}


def check_scannable(rnn, cell: str) -> None:
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


def scan_direction(g: Graph, rnn, sfx: str, tag: str, x: str, start: dict, reverse: bool):
    """One direction of one layer as a Scan: x (T, B, D) -> y (T, B, H), final state {name: (B, H)}.

    The input projection of all steps is one MatMul outside the loop (as rnnlab's driver does it);
    the body adds the recurrence (h W_hh^T, or u * h for a diagonal cell) and runs the cell's forward.
    """
    kind, H = rnn.kind, rnn.hidden_size
    G, states = kind.G, tuple(kind.state_names)
    get = lambda name: getattr(rnn, f"{name}{sfx}").data  # noqa: E731
    helper, const = g.helper, g.const
    ax = g.node("MatMul", [x, const(f"{tag}_W_ih_t", get("weight_ih").T)], [f"{tag}_xW"])  # (T, B, G*H)
    if rnn.bias:
        ax = g.node("Add", [ax, const(f"{tag}_b_ih", get("bias_ih"))], [f"{tag}_ax"])
    body = _Tracer(helper, g.numpy_helper, f"{tag}_body", g.dtype)
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
    graph = helper.make_graph(body.nodes, f"{tag}_step",
                              [g.value(prev[s], ["batch", H]) for s in states] + [g.value(f"{tag}_ax_t", ["batch", G * H])],
                              [g.value(n, ["batch", H]) for n in outs])
    finals = [f"{tag}_{s}_end" for s in states]
    g.node("Scan", [start[s] for s in states] + [ax], finals + [f"{tag}_y"], body=graph, num_scan_inputs=1,
         scan_input_directions=[int(reverse)], scan_output_directions=[int(reverse)])
    return f"{tag}_y", dict(zip(states, finals))
