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

from .common import ExportError, cell_name
from .onnx_graph import OPSET, onnx_model, to_onnx
from .torch_files import from_torch, to_torch, torch_constructors

__all__ = ["ExportError", "OPSET", "cell_name", "from_torch", "onnx_model", "to_onnx", "to_torch",
           "torch_constructors"]
