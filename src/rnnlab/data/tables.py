"""A user's own sequences: tables and arrays -> padded batches, forecasting windows, labelled sequences.

Shapes (batch first):  N = sequences (or windows), T = time steps, D = features per step,
                       R = rows of a table, W = window (input steps), H = horizon (steps forecast).

    X, lengths = pad_sequences([a0, a1, a2])          # (N, T_max, D) zero-padded, lengths (N,)
    frame = read_table("sensor.csv")                  # CSV / Parquet / .npy / .npz -> DataFrame
    fd = forecast_data("sensor.csv", target="temp", window=24, horizon=6)
    fd.X_train, fd.y_train                            # (N, 24, 1) float32, (N, 6) standardised
    cd = classify_data("reviews.csv", text_column="text", label_column="stars")
    cd.X_train, cd.lengths_train, cd.y_train          # (N, T) int64 ids, (N,), (N,) class ids

Rows are counted from 0 after the header, as pandas counts them; every error is a `DataError`
(a ValueError) with one line naming the file (or "the DataFrame" / "the array") and the column.
pandas and pyarrow are an optional extra (`pip install 'rnnlab[tables]'`), imported only to read
CSV / Parquet files or to return a DataFrame; NumPy arrays and .npy / .npz files need neither.

The forecasting split is by time: rows before the split point make the training windows, inputs
and targets alike; every validation target lies at or after it. A validation window may start
before the split point (its first W rows are context the forecaster would have seen), so the
first validation target is the split row itself, not W rows later. Scalers are fitted on the rows
before the split only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import DataError  # one error type for all user data (a ValueError)

__all__ = [
    "DataError", "pad_sequences", "read_table", "Standardizer", "FILLNA_MODES",
    "ForecastWindows", "ForecastData", "forecast_data",
    "SequenceEncoder", "ClassifyData", "classify_data", "preprocessing_from_state",
]

FILLNA_MODES = ("ffill", "zero", "drop", "interpolate")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".npy", ".npz")


# -- padding -----------------------------------------------------------------------------------
def pad_sequences(seqs, dtype=None, value=0) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length sequences into one array padded at the end with `value`.

    seqs: a list of (T_i, D) arrays (or (T_i,) arrays, e.g. token ids), every D the same.
    Returns X (N, T_max, D) or (N, T_max), and lengths (N,) int64. `dtype` defaults to the
    common dtype of the sequences.
    """
    if isinstance(seqs, np.ndarray) and seqs.dtype != object:
        seqs = list(seqs)  # a regular (N, T, ...) array: every row has the full length
    try:
        arrays = [np.asarray(s) for s in seqs]
    except (TypeError, ValueError) as e:
        raise DataError(f"pad_sequences: expected a list of arrays ({e})") from None
    if not arrays:
        raise DataError("pad_sequences: no sequences given (an empty list)")
    ndim = arrays[0].ndim
    if ndim not in (1, 2):
        raise DataError(f"pad_sequences: sequence 0 has shape {arrays[0].shape}; "
                        f"expected (T,) or (T, D)")
    tail = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim != ndim or a.shape[1:] != tail:
            raise DataError(f"pad_sequences: sequence {i} has shape {a.shape}, sequence 0 has "
                            f"{arrays[0].shape}; every sequence must be (T_i,{' D' if tail else ''}) "
                            f"with the same {'D' if tail else 'rank'}")
        if a.shape[0] == 0:
            raise DataError(f"pad_sequences: sequence {i} is empty (length 0)")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)  # (N,)
    if dtype is None:
        dtype = np.result_type(*{a.dtype for a in arrays})  # distinct dtypes: few arguments
    X = np.full((len(arrays), int(lengths.max()), *tail), value, dtype=dtype)  # (N, T_max[, D])
    for i, a in enumerate(arrays):
        X[i, : a.shape[0]] = a
    return X, lengths


# -- reading -----------------------------------------------------------------------------------
def _pandas(why: str):
    try:
        import pandas as pd
    except ImportError:
        raise DataError(f"{why} needs pandas and pyarrow: pip install 'rnnlab[tables]'") from None
    return pd


class _Columns:
    """A table as named 1-D columns (NumPy, any dtype), with the label that errors cite."""

    def __init__(self, label: str, columns: dict[str, np.ndarray], index=None):
        self.label = label
        self.columns = columns
        self.names = list(columns)
        self.nrows = len(next(iter(columns.values()))) if columns else 0
        self.index = index  # a DataFrame's own row labels (dates, ...), or None for 0, 1, 2, ...

    def row(self, r: int) -> str:
        """'row r', with the DataFrame's own label beside it where it has one."""
        if self.index is None:
            return f"row {r}"
        text = str(self.index[r]).removesuffix(" 00:00:00")
        return f"row {r} ({text})"

    def require(self, name: str, role: str) -> np.ndarray:
        if name not in self.columns:
            shown = ", ".join(map(repr, self.names[:12])) + (", ..." if len(self.names) > 12 else "")
            raise DataError(f"{self.label}: no {role} column {name!r}; the columns are {shown}")
        return self.columns[name]

    def numeric(self, name: str, role: str) -> np.ndarray:
        """Column `name` as float64 (R,); NaN where a value is missing. Refuses text, dates."""
        col = self.require(name, role)
        if col.dtype.kind in "biuf":
            return col.astype(np.float64)
        if col.dtype.kind in "OUS":
            values = np.empty(len(col), dtype=np.float64)
            for i, v in enumerate(col):
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    values[i] = np.nan
                    continue
                try:
                    values[i] = float(v)
                except (TypeError, ValueError):
                    shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
                    raise DataError(f"{self.label}: {role} column {name!r} is not numeric "
                                    f"({self.row(i)}: {shown})") from None
            return values
        raise DataError(f"{self.label}: {role} column {name!r} is not numeric "
                        f"(its type is {col.dtype})")


def _columns_from_arrays(label: str, arrays: dict[str, np.ndarray]) -> _Columns:
    """.npy / .npz / in-memory arrays: 1-D -> one column, 2-D (R, k) -> columns c0 .. c{k-1}."""
    columns: dict[str, np.ndarray] = {}
    for key, a in arrays.items():
        if a.ndim == 0 or a.ndim > 2:
            raise DataError(f"{label}: array {key!r} has shape {a.shape}; expected (rows,) or "
                            f"(rows, columns)")
        if a.ndim == 1:
            columns[key] = a
        else:
            prefix = "c" if len(arrays) == 1 else f"{key}_c"
            for j in range(a.shape[1]):
                columns[f"{prefix}{j}"] = a[:, j]
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{label}: arrays of different lengths ({lengths}); every array is one "
                        f"or more columns of the same rows")
    if not columns or next(iter(lengths.values())) == 0:
        raise DataError(f"{label}: the table is empty (no rows)")
    return _Columns(label, columns)


def _read_arrays(path: Path, label: str) -> _Columns:
    try:
        loaded = np.load(path, allow_pickle=False)  # no pickle: an .npz is a zip of .npy files
        if isinstance(loaded, np.ndarray):          # .npy: the array itself
            arrays = {"c0": loaded} if loaded.ndim == 1 else {"c": loaded}
        else:
            with loaded:
                arrays = {k: np.asarray(loaded[k]) for k in loaded.files}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{label}: cannot read it as {path.suffix} ({_one_line(e)})") from None
    if not arrays:
        raise DataError(f"{label}: the .npz file holds no arrays")
    return _columns_from_arrays(label, arrays)


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _read_frame(path: Path, label: str):
    """CSV / TSV / Parquet through pandas; every failure becomes one DataError line."""
    pd = _pandas(f"reading {path.suffix} files")
    try:
        if path.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{label}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except Exception as e:  # noqa: BLE001  pandas/pyarrow raise many types for a damaged file
        raise DataError(f"{label}: cannot read it as {path.suffix} ({type(e).__name__}: "
                        f"{_one_line(e)})") from None
    if len(frame) == 0:
        raise DataError(f"{label}: the table is empty (a header but no rows)")
    return frame


def _open_path(path) -> tuple[Path, str]:
    p = Path(path)
    label = str(path)
    if not p.exists():
        raise DataError(f"{label}: no such file")
    if p.is_dir():
        raise DataError(f"{label}: is a directory, not a table file")
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{label}: unknown table format {p.suffix or '(no suffix)'!r}; "
                        f"expected one of {', '.join(TABLE_SUFFIXES)}")
    if p.stat().st_size == 0:
        raise DataError(f"{label}: the file is empty")
    return p, label


def read_table(path):
    """CSV (.csv, .tsv, .txt), Parquet (.parquet, .pq), .npy or .npz -> a pandas DataFrame.

    Arrays: a 1-D .npy is one column c0; a 2-D one gives columns c0, c1, ...; an .npz gives one
    column per 1-D array (named by its key) and KEY_c0, KEY_c1, ... per 2-D array. Loaded without
    pickle. A missing, empty or unreadable file raises DataError.
    """
    p, label = _open_path(path)
    pd = _pandas("read_table")
    if p.suffix.lower() in (".npy", ".npz"):
        return pd.DataFrame(_read_arrays(p, label).columns)
    return _read_frame(p, label)


def _as_columns(source) -> _Columns:
    """A path, a DataFrame or an array (1-D, or 2-D with columns c0, c1, ...) -> _Columns."""
    if isinstance(source, (str, Path)):
        p, label = _open_path(source)
        if p.suffix.lower() in (".npy", ".npz"):
            return _read_arrays(p, label)
        source = _read_frame(p, label)
        return _Columns(label, _frame_columns(source))
    if hasattr(source, "to_frame") and not hasattr(source, "columns"):  # a pandas Series
        source = source.to_frame(name=str(source.name) if source.name is not None else "c0")
    if isinstance(source, np.ndarray):
        a = source
        return _columns_from_arrays("the array", {"c0": a} if a.ndim == 1 else {"c": a})
    if hasattr(source, "columns") and hasattr(source, "__getitem__"):  # a pandas DataFrame
        if len(source) == 0:
            raise DataError("the DataFrame: the table is empty (no rows)")
        pd = _pandas("reading a DataFrame")
        default = isinstance(source.index, pd.RangeIndex) and source.index.start == 0 \
            and source.index.step == 1
        return _Columns("the DataFrame", _frame_columns(source), None if default else source.index)
    raise DataError(f"expected a file path, a pandas DataFrame or a NumPy array; got "
                    f"{type(source).__name__}")


def _frame_columns(frame) -> dict[str, np.ndarray]:
    pd = _pandas("reading a DataFrame")
    columns = {}
    for name in frame.columns:
        s = frame[name]
        if isinstance(s, pd.DataFrame):
            raise DataError(f"the table has two columns named {name!r}")
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            columns[str(name)] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_datetime64_any_dtype(s):
            columns[str(name)] = s.to_numpy()
        else:
            columns[str(name)] = s.to_numpy(dtype=object, na_value=None)
    return columns


# -- scaling -----------------------------------------------------------------------------------
class Standardizer:
    """(a - mean) / std per column (the last axis; a 1-D array is one column).

    Fit it on the training part only, so nothing about the validation part leaks into training.
    A constant column has std 0; it is divided by 1 instead (it becomes all zeros).
    """

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)  # (D,) or ()
        self.std = None if std is None else np.asarray(std, dtype=np.float64)     # (D,) or ()

    def fit(self, a) -> "Standardizer":
        a = np.asarray(a, dtype=np.float64)
        if a.size == 0:
            raise DataError("Standardizer.fit: no values to fit on (an empty array)")
        if not np.all(np.isfinite(a)):
            raise DataError("Standardizer.fit: the values contain NaN or inf")
        flat = a.reshape(-1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])
        self.mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _check(self, a):
        if self.mean is None:
            raise RuntimeError("Standardizer: call fit() (or from_state) first")
        a = np.asarray(a)
        if self.mean.ndim == 1 and (a.ndim == 0 or a.shape[-1] != self.mean.shape[0]):
            raise DataError(f"Standardizer: expected {self.mean.shape[0]} columns (last axis), "
                            f"got shape {a.shape}")
        return a, (a.dtype if a.dtype.kind == "f" else np.float64)

    def transform(self, a) -> np.ndarray:
        a, dtype = self._check(a)
        return ((a - self.mean) / self.std).astype(dtype, copy=False)

    def inverse_transform(self, a) -> np.ndarray:
        a, dtype = self._check(a)
        return (a * self.std + self.mean).astype(dtype, copy=False)

    def to_state(self) -> dict[str, np.ndarray]:
        return {"mean": np.array(self.mean), "std": np.array(self.std)}

    @classmethod
    def from_state(cls, d) -> "Standardizer":
        return cls(d["mean"], d["std"])

    def __repr__(self):
        return f"Standardizer(mean={self.mean!r}, std={self.std!r})"


# -- missing values ----------------------------------------------------------------------------
def _fill_missing(values: np.ndarray, names: list[str], table: _Columns, fillna) -> tuple[np.ndarray, np.ndarray]:
    """values (R, C) float64 with NaN/inf -> (filled values (R', C), kept row numbers (R',)).

    fillna None refuses any NaN/inf naming the first one's column and row. "ffill" carries the
    last valid value forward (rows before a column's first valid value are dropped); "zero"
    writes 0; "drop" drops every row with a missing value in any used column; "interpolate" is
    linear between the valid neighbours (it looks ahead inside a gap), held flat at the ends.
    """
    rows = np.arange(values.shape[0])
    bad = ~np.isfinite(values)                                            # (R, C)
    if not bad.any():
        return values, rows
    if fillna is None:
        r, c = np.argwhere(bad)[0]
        what = "NaN (a missing value)" if np.isnan(values[r, c]) else str(values[r, c])
        raise DataError(f"{table.label}: column {names[c]!r} has {what} at {table.row(r)} ({int(bad.sum())} "
                        f"such values); clean it or pass fillna= one of {', '.join(FILLNA_MODES)}")
    values = np.where(bad, np.nan, values)
    if fillna == "zero":
        return np.where(bad, 0.0, values), rows
    if fillna == "drop":
        keep = ~bad.any(axis=1)
        return values[keep], rows[keep]
    if fillna == "ffill":
        last = np.where(~bad, rows[:, None], -1)                           # (R, C) own row if valid
        last = np.maximum.accumulate(last, axis=0)                         # last valid row so far
        keep = (last >= 0).all(axis=1)                                     # drop leading gaps
        filled = values[np.maximum(last, 0), np.arange(values.shape[1])]
        return filled[keep], rows[keep]
    if fillna == "interpolate":
        filled = values.copy()
        for c in range(values.shape[1]):
            ok = ~bad[:, c]
            if not ok.any():
                raise DataError(f"{table.label}: column {names[c]!r} has no valid value to interpolate from")
            filled[bad[:, c], c] = np.interp(rows[bad[:, c]], rows[ok], values[ok, c])
        return filled, rows
    raise DataError(f"fillna: expected None or one of {', '.join(FILLNA_MODES)}; got {fillna!r}")


def _numeric_inputs(table: _Columns, features: list[str], target: str | None, fillna):
    """-> inputs (R, D), target (R,) (or None), kept row numbers (R,): numeric, finite or filled."""
    names = list(dict.fromkeys(features + ([target] if target is not None else [])))  # each once
    values = np.stack([table.numeric(n, "target" if n == target else "feature") for n in names],
                      axis=1)                                              # (R, C)
    values, rows = _fill_missing(values, names, table, fillna)
    x = values[:, [names.index(f) for f in features]]                      # (R, D)
    y = values[:, names.index(target)] if target is not None else None     # (R,)
    return x, y, rows


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _check_fraction(value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise DataError(f"val_fraction: expected a number in [0, 1), got {value!r}")
    return float(value)


# -- forecasting -------------------------------------------------------------------------------
@dataclass
class ForecastWindows:
    """What turns a table into forecasting windows: columns, sizes and the fitted scalers.

    Everything `predict` needs on new data; `to_state()` is JSON-able so a model file can carry it.
    """
    target: str
    features: list[str]
    window: int
    horizon: int
    scaler_x: Standardizer
    scaler_y: Standardizer
    fillna: str | None = None

    def _values(self, source) -> tuple[_Columns, np.ndarray, np.ndarray]:
        """-> table, inputs (R, D) raw, target (R,) raw (NaN when the table has no target column)."""
        table = _as_columns(source)
        has_target = self.target in table.columns
        x, y, _ = _numeric_inputs(table, self.features, self.target if has_target else None,
                                  self.fillna)
        return table, x, (y if has_target else np.full(len(x), np.nan))

    def windows(self, source, targets: bool = False):
        """Every window of W rows of new data -> X (N, W, D) float32, standardised like training.

        N = R - W + 1: the last window ends at the last row, ready to forecast past the end.
        With targets=True, only windows with H rows after them: -> (X, y_raw (N, H) in the
        target's own units); the table must then hold the target column.
        """
        table, x, y = self._values(source)
        need = self.window + (self.horizon if targets else 0)
        if len(x) < need:
            raise DataError(f"{table.label}: {len(x)} usable rows, fewer than one window "
                            f"({self.window}{f' + horizon {self.horizon}' if targets else ''})")
        xs = self.scaler_x.transform(x).astype(np.float32)
        X = np.lib.stride_tricks.sliding_window_view(xs, self.window, axis=0)  # (R-W+1, D, W)
        X = np.ascontiguousarray(X.transpose(0, 2, 1))                         # (R-W+1, W, D)
        if not targets:
            return X
        if self.target not in table.columns:
            table.require(self.target, "target")
        Y = np.lib.stride_tricks.sliding_window_view(y[self.window:], self.horizon)  # (R-W-H+1, H)
        return X[: len(Y)], np.ascontiguousarray(Y, dtype=np.float32)

    def to_state(self) -> dict:
        return {"kind": "forecast", "target": self.target, "features": list(self.features), "window": self.window,
                "horizon": self.horizon, "fillna": self.fillna,
                "scaler_x": {k: v.tolist() for k, v in self.scaler_x.to_state().items()},
                "scaler_y": {k: v.tolist() for k, v in self.scaler_y.to_state().items()}}

    @classmethod
    def from_state(cls, d: dict) -> "ForecastWindows":
        return cls(target=d["target"], features=list(d["features"]), window=int(d["window"]),
                   horizon=int(d["horizon"]), fillna=d.get("fillna"),
                   scaler_x=Standardizer.from_state(d["scaler_x"]),
                   scaler_y=Standardizer.from_state(d["scaler_y"]))


@dataclass
class ForecastData:
    """Windows for a many-to-one forecaster, split by time. See `forecast_data`.

    X_* (N, W, D) float32 standardised inputs; y_* (N, H) float32 standardised targets;
    y_val_raw and baseline_val (N_val, H) in the target's own units.
    """
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    y_val_raw: np.ndarray
    baseline_val: np.ndarray
    split_row: int              # first row of the validation part (in the table's own numbering)
    preprocessing: ForecastWindows

    scaler_x = property(lambda self: self.preprocessing.scaler_x)
    scaler_y = property(lambda self: self.preprocessing.scaler_y)
    feature_names = property(lambda self: list(self.preprocessing.features))
    target = property(lambda self: self.preprocessing.target)
    window = property(lambda self: self.preprocessing.window)
    horizon = property(lambda self: self.preprocessing.horizon)

    def windows(self, source, targets: bool = False):
        """New data -> X (N, W, D) with the fitted scalers (see ForecastWindows.windows)."""
        return self.preprocessing.windows(source, targets=targets)

    def inverse_y(self, y) -> np.ndarray:
        """Standardised predictions (N, H) -> the target's own units."""
        return self.scaler_y.inverse_transform(np.asarray(y, dtype=np.float64))


def forecast_data(source, target: str, features=None, window: int = 24, horizon: int = 1,
                  val_fraction: float = 0.2, fillna: str | None = None) -> ForecastData:
    """A time series table -> standardised (window -> horizon) pairs, split by time.

    source: a file path (CSV, Parquet, .npy, .npz), a DataFrame or an array (columns c0, c1, ...).
    target: the column to forecast. features: the input columns (default: the target alone; list
    the target among them to give the model its past next to other columns). window W rows in,
    horizon H target values out: window i reads rows [i, i+W) and forecasts rows [i+W, i+W+H).

    The split row s = R - round(val_fraction * R): training windows use only rows < s, inputs and
    targets; validation windows forecast rows >= s and may read up to W rows before s as context.
    Both scalers are fitted on rows < s. baseline_val is persistence: the last value in each
    validation window, repeated H times (original units).
    """
    window = _check_positive("window", window)
    horizon = _check_positive("horizon", horizon)
    val_fraction = _check_fraction(val_fraction)
    if fillna is not None and fillna not in FILLNA_MODES:
        raise DataError(f"fillna: expected None or one of {', '.join(FILLNA_MODES)}; got {fillna!r}")
    target = str(target)  # columns are named by str(name): a DataFrame's column 0 is "0"
    table = _as_columns(source)
    table.require(target, "target")
    if features is None:
        features = [target]
    elif isinstance(features, str):
        features = [features]
    features = [str(f) for f in features]
    if not features:
        raise DataError("features: an empty list; give at least one input column (or None for the target)")
    for f in features:
        table.require(f, "feature")
    x_raw, y_raw, rows = _numeric_inputs(table, features, target, fillna)  # (R, D), (R,), (R,)
    R = len(x_raw)
    need = window + horizon
    if R < need:
        raise DataError(f"{table.label}: {R} usable rows, fewer than one window + horizon "
                        f"({window} + {horizon}); use a smaller window or more data")
    s = R - int(round(val_fraction * R))                                   # split row (position)
    n_train = s - need + 1
    n_val = R - max(s, window) - horizon + 1 if val_fraction > 0 else 0
    if n_train < 1 or (val_fraction > 0 and n_val < 1):
        raise DataError(f"{table.label}: {R} usable rows give {max(n_train, 0)} training and "
                        f"{max(n_val, 0)} validation windows (window {window}, horizon {horizon}, "
                        f"val_fraction {val_fraction}); need at least one of each: more rows, "
                        f"a smaller window or horizon, or another val_fraction")
    scaler_x = Standardizer().fit(x_raw[:s])
    scaler_y = Standardizer().fit(y_raw[:s])
    xs = scaler_x.transform(x_raw).astype(np.float32)                      # (R, D)
    ys = scaler_y.transform(y_raw).astype(np.float32)                      # (R,)
    X_all = np.lib.stride_tricks.sliding_window_view(xs, window, axis=0).transpose(0, 2, 1)  # (R-W+1, W, D)
    Y_all = np.lib.stride_tricks.sliding_window_view(ys[window:], horizon)   # (R-W-H+1, H); row i: [i+W, i+W+H)
    Y_raw = np.lib.stride_tricks.sliding_window_view(y_raw[window:], horizon)
    last = y_raw[window - 1: R - horizon]                                   # (R-W-H+1,) row i+W-1
    tr = slice(0, n_train)                                                  # targets end before s
    va = slice(len(Y_all) - n_val, len(Y_all))                              # first target row >= s
    prep = ForecastWindows(target=target, features=features, window=window, horizon=horizon,
                           scaler_x=scaler_x, scaler_y=scaler_y, fillna=fillna)
    return ForecastData(
        X_train=np.ascontiguousarray(X_all[tr]), y_train=np.ascontiguousarray(Y_all[tr]),
        X_val=np.ascontiguousarray(X_all[va]), y_val=np.ascontiguousarray(Y_all[va]),
        y_val_raw=np.ascontiguousarray(Y_raw[va], dtype=np.float32),
        baseline_val=np.repeat(last[va, None], horizon, axis=1).astype(np.float32),
        split_row=int(rows[s]) if s < R else int(rows[-1]) + 1, preprocessing=prep)


def preprocessing_from_state(d: dict) -> "ForecastWindows | SequenceEncoder":
    """Inverse of ForecastWindows.to_state / SequenceEncoder.to_state (as a model file stores it)."""
    kinds = {"forecast": ForecastWindows, "classify": SequenceEncoder}
    if not isinstance(d, dict) or d.get("kind") not in kinds:
        raise DataError(f"not a stored forecast or classify preprocessing (kind "
                        f"{d.get('kind') if isinstance(d, dict) else type(d).__name__!r})")
    return kinds[d["kind"]].from_state(d)


# -- labelled sequences ------------------------------------------------------------------------
def _tokenize(text: str, tokens: str) -> list[str]:
    return list(text) if tokens == "chars" else text.split()


@dataclass
class SequenceEncoder:
    """What turns table rows into sequences: the text column and vocabulary, or the number columns.

    vocab[0] is "" (id 0: padding and any token not seen in training). `to_state()` is JSON-able.
    """
    label_column: str
    labels: list[str]
    text_column: str | None = None
    tokens: str = "chars"
    vocab: list[str] | None = None
    value_columns: list[str] | None = None
    scaler: Standardizer | None = None

    def encode(self, source) -> tuple[np.ndarray, np.ndarray]:
        """New rows -> X (N, T) int64 ids or (N, T, 1) float32 numbers, and lengths (N,).

        source: a file, a DataFrame, or (for a text model) simply a list of strings."""
        if self.text_column is not None and isinstance(source, (list, tuple)):
            if not source or not all(isinstance(t, str) for t in source):
                raise DataError("encode: expected a non-empty list of strings (one text each)")
            texts = np.empty(len(source), dtype=object)
            texts[:] = source
            return self._encode(_Columns("the list", {self.text_column: texts}))
        return self._encode(_as_columns(source))

    def _encode(self, table: _Columns, rows=None):
        if self.text_column is not None:
            col = table.require(self.text_column, "text")
            col = col if rows is None else col[rows]
            index = {tok: i for i, tok in enumerate(self.vocab) if i > 0}
            seqs = []
            for v in col:
                toks = _tokenize(_text(v), self.tokens)
                # a row with no tokens becomes one unknown token: every sequence has length >= 1
                seqs.append(np.array([index.get(t, 0) for t in toks] or [0], dtype=np.int64))
            return pad_sequences(seqs, dtype=np.int64)
        values = np.stack([table.numeric(n, "value") for n in self.value_columns], axis=1)  # (R, T)
        if rows is not None:
            values = values[rows]
        lengths = _row_lengths(values, self.value_columns, table.label, rows)
        X = np.where(np.isfinite(values), self.scaler.transform(values), 0.0)
        return X.astype(np.float32)[:, :, None], lengths

    def targets(self, source) -> np.ndarray:
        """The label column of new rows -> class ids (N,) int64; an unseen label is refused."""
        return self._targets(_as_columns(source))

    def _targets(self, table: _Columns, rows=None):
        col = table.require(self.label_column, "label")
        col = col if rows is None else col[rows]
        index = {lab: i for i, lab in enumerate(self.labels)}
        out = np.empty(len(col), dtype=np.int64)
        for i, v in enumerate(col):
            key = _label(v)
            if key not in index:
                raise DataError(f"{table.label}: label column {self.label_column!r} has {key!r} at "
                                f"row {i if rows is None else rows[i]}, a class the model was not "
                                f"trained on ({len(self.labels)} classes)")
            out[i] = index[key]
        return out

    def to_state(self) -> dict:
        d = {"kind": "classify", "label_column": self.label_column, "labels": list(self.labels),
             "text_column": self.text_column, "tokens": self.tokens, "vocab": self.vocab,
             "value_columns": self.value_columns}
        if self.scaler is not None:
            d["scaler"] = {k: v.tolist() for k, v in self.scaler.to_state().items()}
        return d

    @classmethod
    def from_state(cls, d: dict) -> "SequenceEncoder":
        return cls(label_column=d["label_column"], labels=list(d["labels"]),
                   text_column=d.get("text_column"), tokens=d.get("tokens", "chars"),
                   vocab=d.get("vocab"), value_columns=d.get("value_columns"),
                   scaler=Standardizer.from_state(d["scaler"]) if d.get("scaler") else None)


def _text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


def _label(v) -> str:
    """Labels are compared as text: 1, 1.0 and "1" read from a CSV all mean class "1"."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _label_order(key: str):
    """Numbers in numeric order (2 before 10), then any other labels alphabetically."""
    try:
        return (0, float(key), "")
    except ValueError:
        return (1, 0.0, key)


def _row_lengths(values: np.ndarray, names, label: str, rows=None) -> np.ndarray:
    """(R, T) numbers with trailing NaN as padding -> lengths (R,); a gap inside a row is refused."""
    ok = np.isfinite(values)                                              # (R, T)
    lengths = ok.sum(axis=1)                                              # (R,)
    prefix = np.arange(values.shape[1])[None, :] < lengths[:, None]       # (R, T) the first L_r cells
    bad_rows = np.flatnonzero((prefix != ok).any(axis=1) | (lengths == 0))
    if len(bad_rows):
        r = int(bad_rows[0])
        rr = r if rows is None else int(rows[r])
        if lengths[r] == 0:
            raise DataError(f"{label}: row {rr} has no numbers")
        c = int(np.flatnonzero(prefix[r] != ok[r])[0])
        raise DataError(f"{label}: column {names[c]!r} has a missing value inside row {rr} "
                        f"(only trailing cells may be empty: they end a shorter sequence)")
    return lengths.astype(np.int64)


@dataclass
class ClassifyData:
    """Padded sequences and class ids, split stratified. See `classify_data`.

    X_* (N, T) int64 token ids (0 = padding/unknown) or (N, T, 1) float32 standardised numbers;
    lengths_* (N,) int64; y_* (N,) int64 class ids into `labels`; baseline_val (N_val,) the
    majority class of the training part, predicted for every validation row.
    """
    X_train: np.ndarray
    lengths_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    lengths_val: np.ndarray
    y_val: np.ndarray
    baseline_val: np.ndarray
    preprocessing: SequenceEncoder

    vocab = property(lambda self: self.preprocessing.vocab)
    labels = property(lambda self: list(self.preprocessing.labels))

    # the unpadded sequences, as model.fit / model.predict take them (views into X_*)
    sequences_train = property(lambda self: _unpad(self.X_train, self.lengths_train))
    sequences_val = property(lambda self: _unpad(self.X_val, self.lengths_val))

    def encode(self, source) -> tuple[np.ndarray, np.ndarray]:
        """New rows (a file, a DataFrame, a list of texts) -> (X, lengths), as the training rows."""
        return self.preprocessing.encode(source)

    def sequences(self, source) -> list[np.ndarray]:
        """New rows -> the list of unpadded sequences that model.predict takes."""
        return _unpad(*self.preprocessing.encode(source))


def _unpad(X: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return [x[:n] for x, n in zip(X, lengths)]


def _stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val), each sorted; every class with >= 2 rows puts >= 1 in each part."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = 0 if val_fraction == 0 or len(idx) < 2 else min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def classify_data(source, text_column: str | None = None, label_column: str | None = None,
                  tokens: str = "chars", val_fraction: float = 0.2, seed: int = 0) -> ClassifyData:
    """A table of labelled sequences -> padded, encoded sequences and class ids, split stratified.

    With text_column: each row's text becomes token ids (tokens="chars" or whitespace "words");
    the vocabulary is built on the training rows only, sorted, with id 0 for padding and for
    tokens only the validation part (or new data) has. Without it: every column but the label is
    one time step, so each row is one sequence of numbers (N, T, 1); empty trailing cells end a
    shorter sequence; the numbers are standardised with one mean and std from the training rows.
    Labels are compared as text and sorted (numbers in numeric order): y = index into `labels`. The split is shuffled with
    `seed` and stratified: each class keeps about val_fraction of its rows for validation.
    """
    if label_column is None:
        raise DataError("label_column: required (the column that holds each row's class)")
    if tokens not in ("chars", "words"):
        raise DataError(f"tokens: expected 'chars' or 'words', got {tokens!r}")
    val_fraction = _check_fraction(val_fraction)
    table = _as_columns(source)
    col = table.require(label_column, "label")
    missing = [i for i, v in enumerate(col) if v is None or (isinstance(v, float) and np.isnan(v))]
    if missing:
        raise DataError(f"{table.label}: label column {label_column!r} is empty at row {missing[0]} "
                        f"({len(missing)} rows without a label)")
    keys = [_label(v) for v in col]
    labels = sorted(set(keys), key=_label_order)
    if len(labels) < 2:
        raise DataError(f"{table.label}: label column {label_column!r} has a single class "
                        f"({labels[0]!r}); a classifier needs at least two")
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[k] for k in keys], dtype=np.int64)                # (R,)
    train, val = _stratified_split(y, val_fraction, seed)
    if len(train) < 2 or (val_fraction > 0 and len(val) < 2):
        raise DataError(f"{table.label}: {table.nrows} rows split into {len(train)} training and "
                        f"{len(val)} validation rows; need at least 2 in each (more rows, or "
                        f"another val_fraction)")
    if text_column is not None:
        texts = table.require(text_column, "text")
        if text_column == label_column:
            raise DataError(f"text_column and label_column are both {text_column!r}")
        if not any(_text(v).strip() for v in texts):
            raise DataError(f"{table.label}: text column {text_column!r} is empty (no row has text)")
        seen = sorted({tok for i in train for tok in _tokenize(_text(texts[i]), tokens)})
        enc = SequenceEncoder(label_column=label_column, labels=labels, text_column=text_column,
                              tokens=tokens, vocab=[""] + seen)
    else:
        value_columns = [n for n in table.names if n != label_column]
        if not value_columns:
            raise DataError(f"{table.label}: no columns besides the label {label_column!r}; give "
                            f"text_column= or one column per time step")
        values = np.stack([table.numeric(n, "value") for n in value_columns], axis=1)  # (R, T)
        _row_lengths(values, value_columns, table.label)
        tv = values[train]
        scaler = Standardizer().fit(tv[np.isfinite(tv)])                  # one mean, one std
        enc = SequenceEncoder(label_column=label_column, labels=labels,
                              value_columns=value_columns, scaler=scaler)
    X_tr, L_tr = enc._encode(table, train)
    if len(val):
        X_va, L_va = enc._encode(table, val)
    else:
        X_va = np.zeros((0,) + X_tr.shape[1:], X_tr.dtype)
        L_va = np.zeros(0, np.int64)
    majority = int(np.bincount(y[train], minlength=len(labels)).argmax())
    return ClassifyData(X_train=X_tr, lengths_train=L_tr, y_train=y[train], X_val=X_va,
                        lengths_val=L_va, y_val=y[val],
                        baseline_val=np.full(len(val), majority, dtype=np.int64),
                        preprocessing=enc)
