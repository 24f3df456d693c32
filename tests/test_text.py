"""Tests for rnnlab.data.text: vocabulary, loading (builtin, files, downloads via file://), split, TBPTT."""
import hashlib
import json

import numpy as np
import pytest

from rnnlab.data import text as T
from rnnlab.data.text import DataError, TBPTTBatches, Vocab, load_text, split_text


# ---------------------------------------------------------------------------------------- vocab

def test_vocab_round_trip_non_ascii():
    s = "Perché no? Così è 😀🍕 — 中文\n\ttab"
    v = Vocab.from_text(s)
    assert v.chars == sorted(set(s)) and len(v) == len(set(s))
    ids = v.encode(s)
    assert ids.dtype == np.int32 and ids.shape == (len(s),)
    assert v.decode(ids) == s
    assert v.decode(ids.tolist()) == s
    assert v.encode("è")[0] == v.chars.index("è")


def test_vocab_to_from_list_json_keeps_order():
    v = Vocab.from_text("perché 😀")
    v2 = Vocab.from_list(json.loads(json.dumps(v.to_list())))
    assert v2 == v and v2.chars == v.chars
    # an unsorted stored vocabulary keeps its ids (a checkpoint from elsewhere)
    w = Vocab.from_list(["z", "a", "😀"])
    assert w.encode("az😀").tolist() == [1, 0, 2] and w.decode([2, 0]) == "😀z"


def test_vocab_unknown_chars_error():
    v = Vocab.from_text("abc")
    with pytest.raises(DataError) as e:
        v.encode("abxé😀x", source="--prompt")
    msg = str(e.value)
    assert "--prompt" in msg and "'x'" in msg and "'é'" in msg and "'😀'" in msg
    assert "vocabulary of 3 characters" in msg
    with pytest.raises(DataError):
        v.decode([0, 3])
    with pytest.raises(DataError):
        Vocab.from_list(["a", "a"])
    with pytest.raises(DataError):
        Vocab.from_list(["ab"])


def test_vocab_empty_strings():
    v = Vocab.from_text("ab")
    assert v.encode("").shape == (0,) and v.decode([]) == ""


# --------------------------------------------------------------------------------------- builtin

def test_builtin_corpus_deterministic_and_nontrivial():
    a, desc_a = load_text(None)
    b, desc_b = load_text("builtin")
    assert a == b and desc_a == desc_b
    assert len(a) > 500_000 and "def " in a and "\r\n" not in a
    assert list(T.BUILTIN_MODULES) == sorted(T.BUILTIN_MODULES)
    assert len(Vocab.from_text(a)) < 200


def test_builtin_skips_missing_module(monkeypatch):
    full, _ = load_text(None)
    monkeypatch.setattr(T, "BUILTIN_MODULES", ("no_such_module_xyz",) + T.BUILTIN_MODULES)
    assert load_text(None)[0] == full


# ----------------------------------------------------------------------------------------- files

def test_file_ok_and_bom(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffciao perché\n".encode("utf-8"))
    text, desc = load_text(p)
    assert text == "ciao perché\n" and desc == str(p)
    assert load_text(str(p))[0] == text


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        load_text(tmp_path / "missing.txt")
    assert "missing.txt" in str(e.value)
    with pytest.raises(DataError, match="directory"):
        load_text(tmp_path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ab\ncd\xe9f")
    with pytest.raises(DataError, match="UTF-8") as e:
        load_text(bad)
    assert "byte offset 5" in str(e.value) and "line 2" in str(e.value) and "latin1.txt" in str(e.value)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_text(empty)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \n\t\n")
    with pytest.raises(DataError, match="whitespace"):
        load_text(blank)


# ------------------------------------------------------------------------------------- downloads

@pytest.fixture
def fake_shakespeare(tmp_path, monkeypatch):
    """A local stand-in served via file://, with its checksum as the expected one; cache in tmp."""
    src = tmp_path / "input.txt"
    src.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n", encoding="utf-8")
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(T, "TINYSHAKESPEARE_URL", src.as_uri())
    monkeypatch.setattr(T, "TINYSHAKESPEARE_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    return src


def test_tinyshakespeare_download_and_cache_reuse(fake_shakespeare, tmp_path, monkeypatch):
    text, desc = load_text("tinyshakespeare")
    assert text.startswith("First Citizen:") and "tinyshakespeare" in desc
    cached = tmp_path / "cache" / "tinyshakespeare.txt"
    assert cached.read_bytes() == fake_shakespeare.read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == ["tinyshakespeare.txt"]  # no temp left
    # offline now: the cached copy is used without touching the URL
    monkeypatch.setattr(T, "TINYSHAKESPEARE_URL", (tmp_path / "gone.txt").as_uri())
    assert load_text("tinyshakespeare")[0] == text


def test_tinyshakespeare_checksum_mismatch(fake_shakespeare, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "TINYSHAKESPEARE_SHA256", "0" * 64)
    with pytest.raises(DataError, match="sha256") as e:
        load_text("tinyshakespeare")
    assert "--data path/to/tinyshakespeare.txt" in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written or wrong is cached


def test_tinyshakespeare_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(T, "TINYSHAKESPEARE_URL", (tmp_path / "nowhere.txt").as_uri())
    with pytest.raises(DataError, match="could not download") as e:
        load_text("tinyshakespeare")
    assert "--data path/to/tinyshakespeare.txt" in str(e.value)


def test_stale_cached_copy_is_redownloaded(fake_shakespeare, tmp_path):
    cached = tmp_path / "cache" / "tinyshakespeare.txt"
    cached.parent.mkdir()
    cached.write_text("truncated")
    assert load_text("tinyshakespeare")[0].startswith("First Citizen:")


def test_url_download_cached_by_url(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "corpus.txt"
    src.write_text("hello wörld\n", encoding="utf-8")
    url = src.as_uri()
    text, desc = load_text(url)
    assert text == "hello wörld\n" and url in desc
    src.unlink()  # the cached copy is enough from now on
    assert load_text(url)[0] == text
    with pytest.raises(DataError, match="could not download"):
        load_text((tmp_path / "other.txt").as_uri())


# ----------------------------------------------------------------------------------- split/batch

def test_split_text():
    ids = np.arange(1000)
    train, val = split_text(ids)
    assert len(train) == 900 and len(val) == 100
    assert np.array_equal(np.concatenate([train, val]), ids)
    assert split_text("abcdefghij", 0.2) == ("abcdefgh", "ij")
    with pytest.raises(ValueError):
        split_text(ids, 1.0)


def test_batches_contiguous_and_shifted():
    N, B, T_ = 1003, 4, 7
    ids = np.arange(N, dtype=np.int32)  # id == position, so contiguity is visible in the values
    batches = TBPTTBatches(ids, B, T_, source="test")
    L = (N - 1) // B
    assert batches.batches_per_epoch == len(batches) == L // T_
    chunks = list(batches)
    assert len(chunks) == batches.batches_per_epoch
    for k, (x, y) in enumerate(chunks):
        assert x.shape == y.shape == (B, T_) and x.dtype == np.int32
        assert np.array_equal(y, x + 1)                       # y is x shifted by one
        assert np.array_equal(x[:, 0], np.arange(B) * L + k * T_)
        if k:
            assert np.array_equal(x[:, 0], chunks[k - 1][0][:, -1] + 1)  # row b continues row b
    for k in (0, 5, len(chunks) - 1):
        assert all(np.array_equal(a, b) for a, b in zip(batches.batch_at(k), chunks[k]))


def test_batches_random_offset_and_resume():
    ids = np.arange(500)
    batches = TBPTTBatches(ids, 3, 10)
    ep = batches.epoch(np.random.default_rng(1))
    assert 0 <= ep.offset < 10
    chunks = list(ep)
    assert len(chunks) == len(ep) == batches.num_batches(ep.offset)
    assert chunks[0][0][0, 0] == ep.offset
    for k in range(1, len(chunks)):
        assert np.array_equal(chunks[k][0][:, 0], chunks[k - 1][0][:, -1] + 1)
    offsets = {batches.epoch(np.random.default_rng(s)).offset for s in range(30)}
    assert len(offsets) > 1  # different epochs see different chunk boundaries
    resumed = list(batches.epoch(offset=ep.offset, start=3))
    assert len(resumed) == len(chunks) - 3
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(resumed, chunks[3:]))
    x, y = batches.batch_at(2, offset=ep.offset)
    assert np.array_equal(x, chunks[2][0]) and np.array_equal(y, chunks[2][1])


def test_batches_too_short():
    B, T_ = 4, 8
    TBPTTBatches(np.zeros(B * T_ + 1, dtype=np.int32), B, T_)  # exactly enough: one chunk
    with pytest.raises(DataError) as e:
        TBPTTBatches(np.zeros(B * T_, dtype=np.int32), B, T_, source="tiny.txt")
    msg = str(e.value)
    assert "tiny.txt" in msg and "32" in msg and "33" in msg and "--batch" in msg and "--seq-len" in msg
    # minimum length: a random offset must still leave one chunk
    b = TBPTTBatches(np.arange(B * T_ + 1), B, T_)
    assert b.max_offset == 0 and len(b.epoch(np.random.default_rng(0))) == 1
