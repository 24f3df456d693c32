"""The sunspot forecaster in rnnlab: 24 years of yearly sunspot numbers -> the next year.

    python benchmarks/forecaster_rnnlab.py OUT.safetensors   (forecaster_compare.py runs all three)

Each forecaster_*.py does the same job: time-ordered split (last 20% of the years), scaling
fitted on the training years, LSTM(32) + linear head, Adam lr 1e-2, batch 32, gradients clipped
to norm 5, up to 100 epochs with early stopping (patience 10, best weights restored), save,
load, predict the validation years; it prints one JSON line.
"""
import json
import sys

import numpy as np
import statsmodels.api as sm

import rnnlab
from rnnlab.data import forecast_data

out = sys.argv[1]
series = sm.datasets.sunspots.load_pandas().data
data = forecast_data(series, target="SUNACTIVITY", window=24, horizon=1, val_fraction=0.2)
model = rnnlab.ManyToOne("lstm", input_size=1, hidden_size=32, output_size=1, rng=0)
history = model.fit(data.X_train, data.y_train, validation_data=(data.X_val, data.y_val), epochs=100,
                    batch_size=32, lr=1e-2, clip=5.0, early_stopping=10, progress=False)
model.preprocessing = data.preprocessing.to_state()
rnnlab.save(model, out)
model = rnnlab.load(out)
pred = data.inverse_y(model.predict(data.X_val))
rmse = np.sqrt(np.mean((pred - data.y_val_raw) ** 2))
persistence = np.sqrt(np.mean((data.baseline_val - data.y_val_raw) ** 2))
print(json.dumps({"val_rmse": float(rmse), "persistence_rmse": float(persistence), "epochs": len(history.rows)}))
