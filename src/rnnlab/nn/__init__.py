"""Neural-network building blocks: recurrent stacks and cells, linear, embedding, dropout, losses."""
from .cell import Cell, GRUCell, LSTMCell, RNNCell
from .cells import CellDefinition, cell_names, get_cell, register_cell
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .lookup import Lookup
from .losses import cross_entropy, log_softmax, mse, softmax
from .module import Layer, Parameter, is_grad_enabled, no_grad
from .stack import GRU, LSTM, RNN, Recurrent

__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "Cell", "RNNCell", "LSTMCell", "GRUCell",
           "CellDefinition", "register_cell", "get_cell", "cell_names", "Linear", "Embedding", "Lookup",
           "Dropout", "cross_entropy", "mse", "softmax", "log_softmax",
           "Layer", "Parameter", "no_grad", "is_grad_enabled"]
