"""The sunspot forecaster in PyTorch (the job of forecaster_rnnlab.py, written by hand).

    python benchmarks/forecaster_torch.py OUT.pt   (forecaster_compare.py runs all three)
"""
import copy
import json
import sys

import numpy as np
import statsmodels.api as sm
import torch
from torch import nn

out = sys.argv[1]
torch.manual_seed(0)
y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float32)
W, s = 24, len(y) - round(0.2 * len(y))              # window; the first validation year
mean, std = float(y[:s].mean()), float(y[:s].std())  # scaling from the training years only
z = (y - mean) / std
X = np.lib.stride_tricks.sliding_window_view(z[:-1], W)[..., None]  # window i: years i .. i+W-1
T = z[W:, None]                                                      # its target: year i+W
X_train, y_train = torch.tensor(X[: s - W]), torch.tensor(T[: s - W])
X_val, y_val = torch.tensor(X[s - W:]), torch.tensor(T[s - W:])


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


model = Forecaster()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
best, best_state, wait, epochs = float("inf"), None, 0, 0
for epoch in range(100):
    model.train()
    for idx in torch.randperm(len(X_train)).split(32):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X_train[idx]), y_train[idx])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = nn.functional.mse_loss(model(X_val), y_val).item()
    epochs += 1
    if val_loss < best:
        best, best_state, wait = val_loss, copy.deepcopy(model.state_dict()), 0
    else:
        wait += 1
        if wait == 10:
            break
model.load_state_dict(best_state)
torch.save({"model": model.state_dict(), "mean": mean, "std": std}, out)
saved = torch.load(out)
model = Forecaster()
model.load_state_dict(saved["model"])
model.eval()
with torch.no_grad():
    pred = model(X_val).numpy() * saved["std"] + saved["mean"]
truth = y[s:, None]
rmse = np.sqrt(np.mean((pred - truth) ** 2))
persistence = np.sqrt(np.mean((y[s - 1:-1, None] - truth) ** 2))
print(json.dumps({"val_rmse": float(rmse), "persistence_rmse": float(persistence), "epochs": epochs}))
