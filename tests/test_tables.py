"""rnnlab.data.tables: padding, reading tables, forecasting windows, labelled sequences.

The forecasting tests use a series whose value is its own row number, so every window, target
and split boundary can be read back exactly: a leak across the split shows up as a row number.
"""
import json

import numpy as np
import pandas as pd
import pytest

from rnnlab.data.tables import (DataError, ForecastWindows, SequenceEncoder, Standardizer,
                                classify_data, forecast_data, pad_sequences,
                                preprocessing_from_state, read_table)


def rows_frame(R=60):
    """t = row number; u = 10 * row number + 1 (a second feature)."""
    r = np.arange(R, dtype=np.float64)
    return pd.DataFrame({"t": r, "u": 10 * r + 1})


def raw(scaler, a):
    return np.rint(scaler.inverse_transform(np.asarray(a, np.float64))).astype(int)


def one_line_error(fn, *needles):
    with pytest.raises(DataError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# -- pad_sequences -----------------------------------------------------------------------------
def test_pad_sequences_values_lengths_dtype():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.arange(10, 20, dtype=np.float32).reshape(5, 2)
    X, lengths = pad_sequences([a, b], value=-1)
    assert X.shape == (2, 5, 2) and X.dtype == np.float32 and lengths.dtype == np.int64
    np.testing.assert_array_equal(lengths, [3, 5])
    np.testing.assert_array_equal(X[0, :3], a)
    assert (X[0, 3:] == -1).all()
    np.testing.assert_array_equal(X[1], b)
    ids, L = pad_sequences([np.array([3, 1]), np.array([7])], dtype=np.int64)
    np.testing.assert_array_equal(ids, [[3, 1], [7, 0]])
    np.testing.assert_array_equal(L, [2, 1])
    X, L = pad_sequences(np.zeros((4, 3, 2)))  # a regular array: every row full length
    assert X.shape == (4, 3, 2) and (L == 3).all()
    X, L = pad_sequences([np.ones(2, np.int32)] * 99 + [np.ones(3, np.int64)])  # many, mixed dtypes
    assert X.shape == (100, 3) and X.dtype == np.int64 and L[-1] == 3


@pytest.mark.parametrize("seqs, needle", [
    ([], "empty list"),
    ([np.ones((3, 2)), np.ones((3, 3))], "sequence 1"),
    ([np.ones((3, 2)), np.ones((0, 2))], "sequence 1 is empty"),
    ([np.ones((2, 2, 2))], "expected (T,) or (T, D)"),
])
def test_pad_sequences_refuses(seqs, needle):
    one_line_error(lambda: pad_sequences(seqs), needle)


# -- reading -----------------------------------------------------------------------------------
def test_every_format_reads_the_same_table(tmp_path):
    df = rows_frame(20)
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "a.parquet")
    np.save(tmp_path / "a.npy", df.to_numpy())
    np.savez(tmp_path / "a.npz", t=df.t.to_numpy(), m=df.to_numpy())
    for name in ("a.csv", "a.tsv", "a.parquet"):
        got = read_table(tmp_path / name)
        assert list(got.columns) == ["t", "u"], name
        np.testing.assert_array_equal(got.to_numpy(dtype=float), df.to_numpy(), err_msg=name)
    got = read_table(tmp_path / "a.npy")
    assert list(got.columns) == ["c0", "c1"]
    np.testing.assert_array_equal(got.to_numpy(), df.to_numpy())
    got = read_table(tmp_path / "a.npz")
    assert list(got.columns) == ["t", "m_c0", "m_c1"]
    np.testing.assert_array_equal(got.m_c1, df.u)
    # forecast_data reads each of them to the same windows
    ref = forecast_data(df, "t", window=4, horizon=2)
    for name, target in [("a.csv", "t"), ("a.parquet", "t"), ("a.npy", "c0"), ("a.npz", "t")]:
        fd = forecast_data(tmp_path / name, target, window=4, horizon=2)
        np.testing.assert_array_equal(fd.X_train, ref.X_train, err_msg=name)
        np.testing.assert_array_equal(fd.y_val_raw, ref.y_val_raw, err_msg=name)


def test_unreadable_files_give_one_line(tmp_path):
    one_line_error(lambda: read_table(tmp_path / "missing.csv"), "missing.csv", "no such file")
    (tmp_path / "empty.csv").write_text("")
    one_line_error(lambda: read_table(tmp_path / "empty.csv"), "empty.csv", "empty")
    (tmp_path / "header.csv").write_text("t,u\n")
    one_line_error(lambda: read_table(tmp_path / "header.csv"), "header.csv", "no rows")
    (tmp_path / "latin1.csv").write_bytes("t,name\n1,caf\xe9\n".encode("latin-1"))
    one_line_error(lambda: read_table(tmp_path / "latin1.csv"), "latin1.csv", "UTF-8")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    one_line_error(lambda: read_table(tmp_path / "bad.parquet"), "bad.parquet", "cannot read")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    one_line_error(lambda: read_table(tmp_path / "objects.npy"), "objects.npy", "cannot read")
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    one_line_error(lambda: read_table(tmp_path / "data.xlsx"), "data.xlsx", "unknown table format")
    np.savez(tmp_path / "ragged.npz", a=np.zeros(3), b=np.zeros(4))
    one_line_error(lambda: read_table(tmp_path / "ragged.npz"), "ragged.npz", "different lengths")
    one_line_error(lambda: read_table(tmp_path), "directory")


# -- Standardizer ------------------------------------------------------------------------------
def test_standardizer_round_trip_and_constant_column():
    a = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    s = Standardizer().fit(a)
    np.testing.assert_allclose(s.mean, [3.0, 5.0])
    np.testing.assert_allclose(s.std, [np.sqrt(8 / 3), 1.0])  # constant column: divided by 1
    z = s.transform(a)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-15)
    assert (z[:, 1] == 0).all()
    np.testing.assert_allclose(s.inverse_transform(z), a, rtol=0, atol=1e-14)
    s2 = Standardizer.from_state(s.to_state())
    np.testing.assert_array_equal(s2.transform(a), z)
    with pytest.raises(DataError):
        s.transform(np.zeros((2, 3)))


# -- forecasting: windows, split, scalers ------------------------------------------------------
def test_windows_and_horizon_exact():
    W, H, R = 5, 3, 60
    fd = forecast_data(rows_frame(R), "t", window=W, horizon=H, val_fraction=0.25)
    s = R - round(0.25 * R)
    assert fd.split_row == s == 45
    n_train, n_val = s - W - H + 1, R - s - H + 1
    assert fd.X_train.shape == (n_train, W, 1) and fd.y_train.shape == (n_train, H)
    assert fd.X_val.shape == (n_val, W, 1) and fd.y_val.shape == (n_val, H)
    assert fd.X_train.dtype == fd.y_train.dtype == np.float32
    for i in range(n_train):                       # window i reads rows i..i+W-1, forecasts i+W..
        np.testing.assert_array_equal(raw(fd.scaler_x, fd.X_train[i])[:, 0], np.arange(i, i + W))
        np.testing.assert_array_equal(raw(fd.scaler_y, fd.y_train[i]), np.arange(i + W, i + W + H))
    for j in range(n_val):                         # the first validation target is row s
        start = s - W + j
        np.testing.assert_array_equal(raw(fd.scaler_x, fd.X_val[j])[:, 0], np.arange(start, start + W))
        np.testing.assert_array_equal(fd.y_val_raw[j], np.arange(start + W, start + W + H))
        np.testing.assert_array_equal(fd.baseline_val[j], [start + W - 1] * H)  # persistence
    np.testing.assert_allclose(fd.inverse_y(fd.y_val), fd.y_val_raw, atol=1e-4)
    assert fd.feature_names == ["t"] and fd.target == "t" and (fd.window, fd.horizon) == (W, H)


def test_split_never_leaks_the_future():
    """Rows from the split on are 1000 + row: any of them in a training array would show."""
    R, W, H = 80, 6, 2
    df = rows_frame(R)
    s = R - round(0.2 * R)
    df.loc[s:, "t"] += 1000
    df.loc[s:, "u"] += 1000
    fd = forecast_data(df, "t", features=["t", "u"], window=W, horizon=H, val_fraction=0.2)
    assert fd.split_row == s
    x_train = fd.scaler_x.inverse_transform(fd.X_train.astype(np.float64))
    y_train = fd.scaler_y.inverse_transform(fd.y_train.astype(np.float64))
    assert x_train[..., 0].max() < s and y_train.max() < s     # nothing from rows >= s
    assert np.rint(y_train.max()) == s - 1                      # ... yet every row < s is used
    assert (fd.y_val_raw >= 1000 + s).all()                     # validation forecasts only rows >= s
    assert fd.y_val_raw.min() == 1000 + s and fd.y_val_raw.max() == 1000 + R - 1
    # the scalers saw only rows < s: exactly their mean and std
    before = df.iloc[:s]
    np.testing.assert_allclose(fd.scaler_x.mean, before[["t", "u"]].mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fd.scaler_x.std, before[["t", "u"]].std(ddof=0).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fd.scaler_y.mean, before.t.mean(), rtol=1e-12)
    # standardised training data has mean ~0 over the rows it was fitted on
    assert abs(fd.y_train[:, 0].mean()) < 0.2 and fd.y_val.min() > 5  # val lies far outside


def test_val_fraction_zero_trains_on_everything():
    fd = forecast_data(rows_frame(30), "t", window=4, horizon=2, val_fraction=0)
    assert fd.X_train.shape == (30 - 4 - 2 + 1, 4, 1) and fd.X_val.shape == (0, 4, 1)
    assert fd.y_val.shape == (0, 2) and fd.baseline_val.shape == (0, 2)


def test_windows_on_new_data_and_state_round_trip():
    df = rows_frame(40)
    fd = forecast_data(df, "t", features=["u", "t"], window=5, horizon=2)
    new = rows_frame(12).drop(columns=[])
    X = fd.windows(new)
    assert X.shape == (12 - 5 + 1, 5, 2)                    # the last window ends at the last row
    np.testing.assert_array_equal(raw(fd.scaler_x, X[-1])[:, 1], np.arange(7, 12))
    X2, Y = fd.windows(new, targets=True)
    assert X2.shape == (12 - 5 - 2 + 1, 5, 2) and Y.shape == (6, 2)
    np.testing.assert_array_equal(Y[0], [5, 6])
    prep = ForecastWindows.from_state(json.loads(json.dumps(fd.preprocessing.to_state())))
    np.testing.assert_array_equal(prep.windows(new), X)     # bit for bit through JSON
    assert isinstance(preprocessing_from_state(fd.preprocessing.to_state()), ForecastWindows)
    one_line_error(lambda: fd.windows(rows_frame(4)), "fewer than one window")
    one_line_error(lambda: fd.windows(new[["t"]]), "'u'")


# -- forecasting: missing values ---------------------------------------------------------------
def nan_frame():
    t = np.arange(12, dtype=float)
    t[[0, 5, 6]] = np.nan
    t[9] = np.inf
    return pd.DataFrame({"t": t})


def test_nan_refused_naming_column_and_row(tmp_path):
    nan_frame().to_csv(tmp_path / "gaps.csv", index=False)
    msg = one_line_error(lambda: forecast_data(tmp_path / "gaps.csv", "t", window=2),
                         "gaps.csv", "'t'", "row 0", "fillna")
    assert "4 such values" in msg
    df = pd.DataFrame({"t": np.arange(10.0)})
    df.loc[7, "t"] = np.inf
    one_line_error(lambda: forecast_data(df, "t", window=2), "'t'", "inf at row 7")
    df.index = pd.date_range("2024-01-01", periods=10, freq="D")  # a DataFrame's own row labels
    one_line_error(lambda: forecast_data(df, "t", window=2), "'t'", "inf at row 7 (2024-01-08)")


@pytest.mark.parametrize("mode, rows, values", [
    ("zero", list(range(12)), [0, 1, 2, 3, 4, 0, 0, 7, 8, 0, 10, 11]),
    ("drop", [1, 2, 3, 4, 7, 8, 10, 11], [1, 2, 3, 4, 7, 8, 10, 11]),
    ("ffill", list(range(1, 12)), [1, 2, 3, 4, 4, 4, 7, 8, 8, 10, 11]),        # leading gap dropped
    ("interpolate", list(range(12)), [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),  # ends held flat
])
def test_fillna_modes(mode, rows, values):
    fd = forecast_data(nan_frame(), "t", window=1, horizon=1, val_fraction=0, fillna=mode)
    series = np.concatenate([raw(fd.scaler_x, fd.X_train[:, 0])[:, 0],
                             [int(fd.scaler_y.inverse_transform(np.float64(fd.y_train[-1, 0])).round())]])
    np.testing.assert_array_equal(series, values)
    assert fd.split_row == rows[-1] + 1


# -- forecasting: errors -----------------------------------------------------------------------
def test_forecast_errors_one_line(tmp_path):
    path = tmp_path / "sensor.csv"
    pd.DataFrame({"time": [f"2024-01-{d:02d}" for d in range(1, 21)], "temp": np.arange(20.0),
                  "note": ["ok"] * 19 + ["n/a?"]}).to_csv(path, index=False)
    one_line_error(lambda: forecast_data(path, "pressure", window=3), "sensor.csv",
                   "no target column 'pressure'", "'temp'")
    one_line_error(lambda: forecast_data(path, "time", window=3), "sensor.csv",
                   "target column 'time' is not numeric", "row 0")
    one_line_error(lambda: forecast_data(path, "temp", features=["temp", "note"], window=3),
                   "sensor.csv", "feature column 'note' is not numeric", "row 0")
    one_line_error(lambda: forecast_data(path, "temp", features=["nope"], window=3),
                   "no feature column 'nope'")
    one_line_error(lambda: forecast_data(path, "temp", window=20), "sensor.csv", "20 usable rows",
                   "fewer than one window")
    one_line_error(lambda: forecast_data(path, "temp", window=15, horizon=2), "sensor.csv",
                   "validation windows")
    one_line_error(lambda: forecast_data(path, "temp", window=0), "window", ">= 1")
    one_line_error(lambda: forecast_data(path, "temp", horizon=0), "horizon", ">= 1")
    one_line_error(lambda: forecast_data(path, "temp", window=2.5), "window")
    one_line_error(lambda: forecast_data(path, "temp", window=3, val_fraction=1), "val_fraction")
    one_line_error(lambda: forecast_data(path, "temp", window=3, fillna="mean"), "fillna")
    one_line_error(lambda: forecast_data([1, 2, 3], "c0"), "expected a file path")


# -- classification ----------------------------------------------------------------------------
def text_frame():
    texts = ["good film", "great fun", "so good", "loved it", "bad film", "awful", "so bad",
             "hated it", "fine", "ok i guess", "meh", "average"]
    labels = ["pos"] * 4 + ["neg"] * 4 + ["mid"] * 4
    return pd.DataFrame({"text": texts * 3, "label": labels * 3})


def test_classify_text_split_vocab_and_encoding(tmp_path):
    df = text_frame()
    cd = classify_data(df, text_column="text", label_column="label", tokens="words", seed=3)
    assert cd.labels == ["mid", "neg", "pos"]
    n = len(df)
    assert len(cd.y_train) + len(cd.y_val) == n
    np.testing.assert_array_equal(np.bincount(cd.y_val), [2, 2, 2])       # 12 per class -> 2 each
    assert cd.X_train.dtype == np.int64 and cd.X_train.shape[0] == len(cd.lengths_train)
    assert cd.vocab[0] == "" and cd.vocab[1:] == sorted(cd.vocab[1:])
    # ids decode back to the words of each training row, padding is 0 past its length
    words = {" ".join(cd.vocab[t] for t in row[:L]) for row, L in zip(cd.X_train, cd.lengths_train)}
    assert words <= set(df.text)
    for row, L in zip(cd.X_train, cd.lengths_train):
        assert (row[L:] == 0).all() and (row[:L] > 0).all()
    seqs = cd.sequences_val
    assert [len(q) for q in seqs] == cd.lengths_val.tolist()
    np.testing.assert_array_equal(pad_sequences(seqs)[0], cd.X_val[:, : cd.lengths_val.max()])
    # same seed -> same split; another seed -> another
    again = classify_data(df, text_column="text", label_column="label", tokens="words", seed=3)
    np.testing.assert_array_equal(again.X_val, cd.X_val)
    other = classify_data(df, text_column="text", label_column="label", tokens="words", seed=4)
    assert not np.array_equal(other.y_train, cd.y_train) or not np.array_equal(other.X_train, cd.X_train)
    # baseline: the training part's majority class for every validation row
    assert cd.baseline_val.shape == cd.y_val.shape and len(set(cd.baseline_val)) == 1
    # chars: single characters, the space included
    cc = classify_data(df, text_column="text", label_column="label", tokens="chars")
    assert all(len(t) == 1 for t in cc.vocab[1:]) and " " in cc.vocab


def test_vocabulary_comes_from_training_rows_only():
    df = pd.DataFrame({"text": ["aa", "ab", "ba", "bb", "aab", "zzz"],
                       "label": [0, 0, 1, 1, 0, 1]})
    # find a seed that puts the only "z" row into validation; its tokens must be unknown (0)
    for seed in range(50):
        cd = classify_data(df, text_column="text", label_column="label", val_fraction=0.34, seed=seed)
        if "z" not in cd.vocab:
            break
    else:
        pytest.fail("no seed put the 'zzz' row into validation")
    z = [i for i, L in enumerate(cd.lengths_val) if L == 3 and (cd.X_val[i, :3] == 0).all()]
    assert z, (cd.X_val, cd.vocab)
    X, L = cd.encode(pd.DataFrame({"text": ["zab", ""]}))
    np.testing.assert_array_equal(X, [[0, cd.vocab.index("a"), cd.vocab.index("b")], [0, 0, 0]])
    np.testing.assert_array_equal(L, [3, 1])                 # an empty row: one unknown token
    X2, L2 = cd.encode(["zab", ""])                          # a plain list of texts
    assert [q.tolist() for q in cd.sequences(["zab", ""])] == [X[0].tolist(), [0]]
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(L2, L)
    one_line_error(lambda: cd.encode([1, 2]), "list of strings")
    enc = SequenceEncoder.from_state(json.loads(json.dumps(cd.preprocessing.to_state())))
    np.testing.assert_array_equal(enc.encode(pd.DataFrame({"text": ["zab", ""]}))[0], X)
    np.testing.assert_array_equal(enc.targets(df), [0, 0, 1, 1, 0, 1])
    assert isinstance(preprocessing_from_state(cd.preprocessing.to_state()), SequenceEncoder)
    one_line_error(lambda: preprocessing_from_state({"kind": "image"}), "image")


def test_classify_numbers_per_row_with_trailing_gaps(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("s0,s1,s2,label\n1,2,3,up\n3,2,1,down\n1,2,,up\n2,1,,down\n"
                    "0,5,9,up\n9,5,0,down\n4,5,6,up\n6,5,4,down\n")
    cd = classify_data(path, label_column="label", val_fraction=0.25, seed=0)
    assert cd.X_train.shape == (6, 3, 1) and cd.X_train.dtype == np.float32
    assert cd.labels == ["down", "up"] and np.bincount(cd.y_val).tolist() == [1, 1]
    scaler = cd.preprocessing.scaler
    X, L = cd.encode(path)
    np.testing.assert_array_equal(L, [3, 3, 2, 2, 3, 3, 3, 3])
    np.testing.assert_allclose(scaler.inverse_transform(X[2, :2, 0].astype(np.float64)), [1, 2], atol=1e-5)
    assert X[2, 2, 0] == 0                                  # padding
    # the one mean and std come from the training rows only
    frame = pd.read_csv(path)
    train_rows = [i for i in range(8) if i not in _val_rows(cd, X, L)]
    vals = frame.iloc[train_rows, :3].to_numpy().ravel()
    np.testing.assert_allclose(scaler.mean, np.nanmean(vals), rtol=1e-6)
    path.write_text("s0,s1,s2,label\n1,,3,up\n3,2,1,down\n1,2,3,up\n2,1,3,down\n")
    one_line_error(lambda: classify_data(path, label_column="label", val_fraction=0.5),
                   "rows.csv", "'s1'", "inside row 0")


def _val_rows(cd, X, L):
    return [i for i in range(len(X)) for j in range(len(cd.X_val))
            if L[i] == cd.lengths_val[j] and np.array_equal(X[i], cd.X_val[j])]


def test_labels_sort_numbers_numerically_and_series_read():
    df = pd.DataFrame({"text": ["a", "b", "c", "d", "e", "f"] * 2, "label": [10, 2, 1, 10, 2, 1] * 2})
    cd = classify_data(df, text_column="text", label_column="label", val_fraction=0.5)
    assert cd.labels == ["1", "2", "10"]
    series = pd.Series(np.arange(30.0), name="level")
    fd = forecast_data(series, "level", window=3)
    assert fd.feature_names == ["level"] and fd.X_train.shape[1:] == (3, 1)
    frame = pd.DataFrame({0: np.arange(30.0)})                 # a column named by the integer 0
    assert forecast_data(frame, 0, window=3).target == "0"


def test_classify_errors_one_line(tmp_path):
    path = tmp_path / "reviews.csv"
    text_frame().to_csv(path, index=False)
    one_line_error(lambda: classify_data(path, text_column="body", label_column="label"),
                   "reviews.csv", "no text column 'body'")
    one_line_error(lambda: classify_data(path, text_column="text", label_column="stars"),
                   "reviews.csv", "no label column 'stars'")
    one_line_error(lambda: classify_data(path, text_column="text"), "label_column")
    one_line_error(lambda: classify_data(path, text_column="text", label_column="label",
                                         tokens="bpe"), "tokens")
    text_frame().assign(label="pos").to_csv(tmp_path / "one.csv", index=False)
    one_line_error(lambda: classify_data(tmp_path / "one.csv", text_column="text", label_column="label"),
                   "one.csv", "'label'", "single class")
    text_frame().assign(text="").to_csv(tmp_path / "blank.csv", index=False)
    one_line_error(lambda: classify_data(tmp_path / "blank.csv", text_column="text", label_column="label"),
                   "blank.csv", "text column 'text' is empty")
    text_frame().iloc[[0, 4, 8]].to_csv(tmp_path / "tiny.csv", index=False)
    one_line_error(lambda: classify_data(tmp_path / "tiny.csv", text_column="text", label_column="label"),
                   "tiny.csv", "at least 2")
    df = text_frame()
    df.loc[5, "label"] = None
    one_line_error(lambda: classify_data(df, text_column="text", label_column="label"),
                   "'label'", "row 5")
    one_line_error(lambda: classify_data(df[["label"]].dropna(), label_column="label"),
                   "no columns besides the label")
    cd = classify_data(text_frame(), text_column="text", label_column="label")
    one_line_error(lambda: cd.preprocessing.targets(text_frame().assign(label="wow")),
                   "'wow'", "not trained on")


def test_arrays_need_no_pandas(tmp_path, monkeypatch):
    """pandas and pyarrow are an optional extra: arrays and .npy/.npz work without them, and a CSV
    says what to install."""
    np.save(tmp_path / "series.npy", np.arange(40.0))
    pd.DataFrame({"t": np.arange(40.0)}).to_csv(tmp_path / "series.csv", index=False)
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # `import pandas` now fails
    fd = forecast_data(tmp_path / "series.npy", "c0", window=4)
    assert fd.X_train.shape == (28, 4, 1)
    assert forecast_data(np.arange(40.0), "c0", window=4).X_val.shape == fd.X_val.shape
    cd = classify_data(np.c_[np.arange(12.0), np.arange(12) % 2], label_column="c1", val_fraction=0.34)
    assert cd.labels == ["0", "1"]
    one_line_error(lambda: forecast_data(tmp_path / "series.csv", "t"), "pip install 'rnnlab[tables]'")
