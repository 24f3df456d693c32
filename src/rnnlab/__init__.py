"""rnnlab: recurrent neural networks from first principles, in NumPy, exact to PyTorch."""
from .nn import (GRU, LSTM, RNN, CrossEntropyLoss, Dropout, Embedding, GRUCell, Layer, Linear, LSTMCell,
                 MSELoss, Parameter, RNNCell, cross_entropy, mse)

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "Embedding", "Dropout",
           "CrossEntropyLoss", "MSELoss", "cross_entropy", "mse", "Layer", "Parameter"]
