"""rnnlab: recurrent neural networks from first principles, in NumPy, exact to PyTorch."""
from .nn import (GRU, LSTM, RNN, Cell, CellDefinition, Dropout, Embedding, GRUCell, Layer,
                 Linear, LSTMCell, Parameter, Recurrent, RNNCell, cell_names, cross_entropy, mse,
                 no_grad, register_cell)
from .models import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from .saving import load, save

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "RNNCell", "LSTMCell", "GRUCell", "Cell", "CellDefinition",
           "register_cell", "cell_names", "Linear", "Embedding", "Dropout",
           "cross_entropy", "mse", "Layer", "Parameter", "no_grad",
           "OneToOne", "OneToMany", "ManyToOne", "ManyToMany", "Seq2Seq", "save", "load", "explore"]



def __getattr__(name):
    if name == "explore":  # imported on first use; the package is callable: rnnlab.explore("runs/char")
        import importlib

        return importlib.import_module(".explore", __name__)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
