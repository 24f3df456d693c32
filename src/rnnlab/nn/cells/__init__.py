"""Cell definitions, one file per cell, and the registry that makes them known by name (definition.py).

A new cell is one file with a CellDefinition and one `register_cell` call (here for built-ins).
"""
from .definition import (CellDefinition, Param, RegisteredNames, cell_names, get_cell, load_cell_files, register_cell,
                         standard_parameters)
from .gru import GRU
from .indrnn import INDRNN
from .lstm import LSTM
from .lstm_noforget import LSTM_NOFORGET
from .rnn import RNN_RELU, RNN_TANH

for _definition in (LSTM, GRU, RNN_TANH, RNN_RELU, LSTM_NOFORGET, INDRNN):
    register_cell(_definition)

__all__ = ["CellDefinition", "Param", "register_cell", "get_cell", "cell_names", "standard_parameters",
           "RegisteredNames", "load_cell_files"]
