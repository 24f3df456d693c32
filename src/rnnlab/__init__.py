"""rnnlab: recurrent neural networks from first principles, in NumPy, exact to PyTorch.

rnnlab.nn is the engine, NumPy alone; rnnlab.fast, everything that exists only for speed, is loaded
here where Numba is installed and registers itself in `rnnlab.settings` (settings.py).
"""
import importlib.util as _util

from .settings import settings
from .nn import (GRU, LSTM, RNN, Cell, CellDefinition, Dropout, Embedding, GRUCell, Layer,
                 Linear, LSTMCell, Parameter, Recurrent, RNNCell, cell_names, cross_entropy, mse,
                 no_grad, register_cell)
from .models import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from .saving import load, save

if _util.find_spec("numba") is not None:  # else nothing of rnnlab.fast is imported
    try:
        from . import fast as _fast  # noqa: F401 - registers settings.fast
    except ImportError as _error:  # blocked or broken: the NumPy loop runs
        settings.fast_missing = f"rnnlab.fast could not be imported ({_error})"

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "RNNCell", "LSTMCell", "GRUCell", "Cell", "CellDefinition",
           "register_cell", "cell_names", "Linear", "Embedding", "Dropout",
           "cross_entropy", "mse", "Layer", "Parameter", "no_grad",
           "OneToOne", "OneToMany", "ManyToOne", "ManyToMany", "Seq2Seq", "save", "load", "explore", "settings"]


def __getattr__(name):
    if name == "explore":  # imported on first use; the package is callable: rnnlab.explore("runs/char")
        import importlib

        return importlib.import_module(".explore", __name__)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
