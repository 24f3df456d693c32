"""One ONNX graph under construction: its nodes and initializers, numbers in the graph's float type."""
from __future__ import annotations

import numpy as np


def require_onnx():
    """The onnx package, or an ImportError that says how to install it (rnnlab itself does not need it)."""
    try:
        import onnx
    except ImportError:
        raise ImportError("exporting to ONNX needs the 'onnx' package: pip install 'rnnlab[export]'") from None
    return onnx


class Graph:
    """node() and const() append to the graph; each returns the name of what it made."""

    def __init__(self, dtype):
        onnx = require_onnx()
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.dtype = np.dtype(dtype)
        self.elem = onnx.TensorProto.FLOAT if self.dtype == np.float32 else onnx.TensorProto.DOUBLE
        self.nodes, self.weights = [], []

    def const(self, name: str, array) -> str:
        """An initializer (float arrays in the graph's dtype); the same name twice is the same constant."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        if name not in {w.name for w in self.weights}:
            self.weights.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs) -> str:
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, name=f"{op_type}_{len(self.nodes)}", **attrs))
        return outputs[0]

    def value(self, name: str, shape, elem=None):
        """A typed graph input or output; elem defaults to the graph's float type."""
        return self.helper.make_tensor_value_info(name, self.elem if elem is None else elem, shape)
