"""Corpora of any size: ids written once to a validated cache on disk, read in windows; text hygiene."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data import corpus as C
from rnnlab.data.corpus import IdFile, open_corpus
from rnnlab.data.text import DataError, TBPTTBatches, Vocab, load_text, split_text

SRC = Path(__file__).resolve().parents[1] / "src"
TEXT = "Première ligne — café\r\nsecond line 日本語 😀\r\n" * 50 + "the end\r"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("RNNLAB_CACHE", str(folder))
    return folder / "corpora"


def _file(tmp_path, data: bytes, name="t.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_ids_equal_encoding_the_text_in_memory_at_any_chunk_size(tmp_path, monkeypatch):
    path = _file(tmp_path, b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    expected = TEXT.replace("\r\n", "\n")
    vocab = Vocab.from_text(expected)
    for chunk in (7, 13, 1 << 22):  # boundaries inside characters and between \r and \n
        monkeypatch.setattr(C, "CHUNK_BYTES", chunk)
        corpus = open_corpus(path, keep_crlf=False, errors="strict", skip_unknown=False,
                             vocab=None) if chunk == 7 else open_corpus(str(path))
        assert corpus.vocab == vocab and isinstance(corpus.ids, IdFile) and corpus.ids.dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(corpus.ids), vocab.encode(expected))
        assert corpus.text() == expected
        assert corpus.notes == ("100 Windows line endings (\\r\\n) read as \\n (--keep-crlf keeps them)",)
        for f in C.cache_dir().joinpath("corpora").glob("*"):
            f.unlink()  # the next chunk size builds again
    kept = open_corpus(path, keep_crlf=True)
    assert kept.text() == TEXT and kept.notes == () and "\r" in kept.vocab.chars


def test_crlf_and_lf_texts_read_the_same(tmp_path):
    lf = open_corpus(_file(tmp_path, TEXT.replace("\r\n", "\n").encode(), "lf.txt"))
    crlf = open_corpus(_file(tmp_path, TEXT.encode(), "crlf.txt"))
    assert lf.vocab == crlf.vocab
    np.testing.assert_array_equal(np.asarray(lf.ids), np.asarray(crlf.ids))
    assert load_text(tmp_path / "crlf.txt")[0] == TEXT.replace("\r\n", "\n")
    assert load_text(tmp_path / "crlf.txt", keep_crlf=True)[0] == TEXT


@pytest.mark.parametrize("size, dtype", [(200, np.uint8), (256, np.uint8), (257, np.uint16), (70_000, np.uint32)])
def test_the_smallest_id_type_that_fits(tmp_path, size, dtype):
    chars = [chr(c) for c in range(0x21, 0x21 + size + 2048) if not 0xD800 <= c < 0xE000][:size]
    corpus = open_corpus(_file(tmp_path, "".join(chars * 2).encode()))
    assert len(corpus.vocab) == size and corpus.ids.dtype == dtype
    assert corpus.text() == "".join(chars * 2)


def test_the_cache_is_used_and_a_damaged_or_stale_one_rebuilt(tmp_path, cache, monkeypatch):
    path = _file(tmp_path, TEXT.encode())
    first = open_corpus(path)
    header = next(cache.glob("*.json"))
    ids_file = header.with_suffix(".ids")
    built = []
    real_build = C._build
    monkeypatch.setattr(C, "_build", lambda *a, **k: built.append(1) or real_build(*a, **k))
    assert open_corpus(path).vocab == first.vocab and built == []       # cached: nothing rebuilt
    expected = np.asarray(first.ids).copy()
    damages = {
        "flipped id": lambda: ids_file.write_bytes(bytes([ids_file.read_bytes()[0] ^ 1]) + ids_file.read_bytes()[1:]),
        "truncated ids": lambda: ids_file.write_bytes(ids_file.read_bytes()[:-3]),
        "ids gone": lambda: ids_file.unlink(),
        "header not JSON": lambda: header.write_text("{nope"),
        "forged dtype": lambda: header.write_text(json.dumps({**json.loads(header.read_text()), "dtype": "uint32"})),
        "forged vocab": lambda: header.write_text(json.dumps({**json.loads(header.read_text()), "vocab": [-1]})),
        "other text's checksum": lambda: header.write_text(json.dumps({**json.loads(header.read_text()),
                                                                       "sha256": "0" * 64})),
    }
    for name, damage in damages.items():
        damage()
        again = open_corpus(path)
        assert built and again.vocab == first.vocab, name
        np.testing.assert_array_equal(np.asarray(again.ids), expected, err_msg=name)
        built.clear()
    path.write_bytes(TEXT.encode() + b"more")  # the text changed: a new key, a new build
    assert open_corpus(path).text().endswith("more") and built


def test_batches_read_from_disk_equal_those_from_memory(tmp_path):
    corpus = open_corpus(_file(tmp_path, (TEXT * 4).encode()))
    in_memory = np.asarray(corpus.ids)
    train_disk, val_disk = split_text(corpus.ids, 0.1)
    train_mem, val_mem = split_text(in_memory, 0.1)
    assert isinstance(train_disk, IdFile) and len(val_disk) == len(val_mem)
    a, b = TBPTTBatches(train_disk, 4, 16), TBPTTBatches(train_mem, 4, 16)
    for offset in (0, 5):
        for (xa, ya), (xb, yb) in zip(a.epoch(offset=offset), b.epoch(offset=offset), strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
            assert xa.dtype == np.int32
    np.testing.assert_array_equal(a.batch_at(3, 2)[1], b.batch_at(3, 2)[1])
    twin = pickle.loads(pickle.dumps(train_disk))
    np.testing.assert_array_equal(np.asarray(twin), train_mem)
    assert train_disk[-1] == train_mem[-1] and train_disk[2] == train_mem[2]


def test_mostly_utf8_with_a_bad_byte_names_offsets_and_replace(tmp_path):
    good = "café ok\n".encode() * 3
    path = _file(tmp_path, good + b"bad \xe9 byte\n" + good + b"\xff\n")
    with pytest.raises(DataError) as error:
        open_corpus(path)
    message = str(error.value)
    offset = len(good) + 4
    assert f"byte offset {offset} (line 4)" in message and "--errors replace" in message
    assert "2 undecodable" in message and "iconv" not in message and "latin1" not in message
    corpus = open_corpus(path, errors="replace")
    assert corpus.text() == (good + b"bad ").decode() + "\ufffd byte\n" + good.decode() + "\ufffd\n"
    assert any("2 undecodable byte sequence(s) read as U+FFFD" in n and str(offset) in n for n in corpus.notes)
    assert load_text(path, errors="replace")[0] == corpus.text()
    with pytest.raises(DataError, match="--errors replace"):
        load_text(path)


def test_a_single_byte_encoding_gets_the_conversion_advice(tmp_path):
    path = _file(tmp_path, "caf\xe9 cr\xe8me\n".encode("latin-1") * 10)
    with pytest.raises(DataError, match="single-byte encoding.*iconv -f cp1252"):
        open_corpus(path)


@pytest.mark.parametrize("data, match", [(b"", "is empty"), (b" \n\t\r\n", "only whitespace"),
                                         (bytes(range(256)) * 64, "does not look like text"),
                                         (b"\0\0\0\0" * 1000 + b"abc", "does not look like text")])
def test_what_is_not_text_is_one_clear_error(tmp_path, data, match):
    with pytest.raises(DataError, match=match):
        open_corpus(_file(tmp_path, data))


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_corpus(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="is a directory"):
        open_corpus(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        path = _file(tmp_path, b"abc")
        path.chmod(0)
        with pytest.raises(DataError, match="cannot be read"):
            open_corpus(path)


def test_a_model_vocabulary_and_skip_unknown(tmp_path):
    vocab = Vocab.from_text("abc \n")
    path = _file(tmp_path, b"abc xyz\nab\n")
    with pytest.raises(DataError, match=r"3 character\(s\) not in the model's vocabulary.*--skip-unknown"):
        open_corpus(path, vocab=vocab)
    corpus = open_corpus(path, vocab=vocab, skip_unknown=True)
    assert corpus.vocab == vocab and corpus.text() == "abc \nab\n"
    assert corpus.notes == ("skipped 3 character(s) not in the model's vocabulary (3 distinct: 'x', 'y', 'z')",)
    assert vocab.known("abz\nq") == ("ab\n", 2)


def test_training_data_larger_than_the_address_space_limit(tmp_path):
    """A corpus bigger than the whole memory the process may map trains: nothing grows with the file."""
    limit = 256 * 2**20  # rnnlab and NumPy take about 150 MB of it before any data
    line = b"the quick brown fox jumps over the lazy dog; PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS 0123456789\r\n"
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        block = line * 10_000
        for _ in range(limit // len(block) + 8):
            f.write(block)
    assert path.stat().st_size > limit + 2**20
    script = textwrap.dedent(f"""
        import os, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        sys.modules["numba"] = None  # the NumPy loops: LLVM alone would take a third of the limit
        from rnnlab.train import TrainConfig, Trainer
        try:
            bytearray({limit})  # the limit holds: the file could never be read whole
            sys.exit("the address-space limit is not enforced")
        except MemoryError:
            pass
        config = TrainConfig(data={str(path)!r}, steps=3, hidden=16, layers=1, embedding=8, batch=4, seq_len=16,
                             eval_every=3, eval_batches=2, sample_every=10**6, save_every=10**6, sample_length=5,
                             out={str(tmp_path / 'run')!r})
        def stop(row):  # after three steps and an evaluation; before the loss plot, whose library
            if row["step"] == 3:  # alone would not fit in the limit
                print("steps", row["step"], "val", row["val_loss"], flush=True)
                os._exit(0)

        Trainer(config, progress=False).fit(callback=stop)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steps 3 val" in done.stdout and "Windows line endings" in done.stdout


def test_the_memory_check_counts_the_text_and_refuses_before_any_work(tmp_path, monkeypatch):
    from rnnlab.train import TrainConfig, Trainer
    from rnnlab.validate import MemoryLimitError, char_rnn_training_bytes

    config = TrainConfig(data=str(_file(tmp_path, TEXT.encode())), hidden=8, layers=1, embedding=4, batch=2,
                         seq_len=8, out=str(tmp_path / "run"))
    model = char_rnn_training_bytes(vocab=1, cell="lstm", hidden=8, layers=1, embedding=4, batch=2, seq_len=8)
    text = "x" * 5_000_000  # read whole, in memory: 12 bytes a character counted
    monkeypatch.setenv("RNNLAB_MEMORY_LIMIT", str(model + 12 * len(text) - 1))
    with pytest.raises(MemoryLimitError, match="for the text.*lower the text's size .*head -c"):
        Trainer(config, text=text)
    assert not (tmp_path / "run").exists()  # refused before anything was made
    monkeypatch.setenv("RNNLAB_MEMORY_LIMIT", str(model + C.loading_bytes(len(TEXT)) - 1))
    with pytest.raises(MemoryLimitError, match=f"for reading {config.data} \\({len(TEXT.encode()):,} bytes, streamed"):
        Trainer(config)
    assert not (tmp_path / "run").exists() and not C.cache_dir().exists()
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # a file's size beyond the first chunk adds nothing: it is streamed
        f.truncate(50 * C.CHUNK_BYTES)
    assert C.data_loading_bytes(str(big)) == (C.loading_bytes(C.CHUNK_BYTES), f"reading {big} "
                                              f"({50 * C.CHUNK_BYTES:,} bytes, streamed)")
