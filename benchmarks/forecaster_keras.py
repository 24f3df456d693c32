"""The sunspot forecaster in Keras 3 on its PyTorch backend (the job of forecaster_rnnlab.py).

    KERAS_BACKEND=torch python benchmarks/forecaster_keras.py OUT.keras   (forecaster_compare.py runs all three)
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")  # no TensorFlow needed
import keras  # noqa: E402
import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402

out = sys.argv[1]
keras.utils.set_random_seed(0)
y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float32)
W, s = 24, len(y) - round(0.2 * len(y))              # window; the first validation year
mean, std = float(y[:s].mean()), float(y[:s].std())  # scaling from the training years only
z = (y - mean) / std
X = np.lib.stride_tricks.sliding_window_view(z[:-1], W)[..., None]  # window i: years i .. i+W-1
T = z[W:, None]                                                      # its target: year i+W
X_train, y_train, X_val, y_val = X[: s - W], T[: s - W], X[s - W:], T[s - W:]
model = keras.Sequential([keras.Input((W, 1)), keras.layers.LSTM(32), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=5.0), loss="mse")
stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
history = model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=100, batch_size=32,
                    callbacks=[stop], verbose=0)
model.save(out)
with open(out + ".json", "w") as f:
    json.dump({"mean": mean, "std": std}, f)
model = keras.models.load_model(out)
with open(out + ".json") as f:
    scaling = json.load(f)
pred = model.predict(X_val, verbose=0) * scaling["std"] + scaling["mean"]
truth = y[s:, None]
rmse = np.sqrt(np.mean((pred - truth) ** 2))
persistence = np.sqrt(np.mean((y[s - 1:-1, None] - truth) ** 2))
print(json.dumps({"val_rmse": float(rmse), "persistence_rmse": float(persistence), "epochs": len(history.epoch)}))
