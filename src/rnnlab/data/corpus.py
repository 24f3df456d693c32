"""Corpora of any size: a text file read once, in a streaming pass, into token ids on disk.

    corpus = open_corpus("big.txt")            # ids cached on disk; a second call only checks the cache
    corpus.ids                                 # (N,) IdFile: windows read from disk, nothing mapped whole
    corpus.vocab, corpus.sha256, corpus.notes  # sorted code points; the file's checksum; what reading changed
    train, val = split_text(corpus.ids, 0.1)   # views of the same file
    x, y = TBPTTBatches(train, 32, 64).batch_at(0)

Shapes: N = corpus length (characters), V = vocabulary size, C = characters in one chunk of the file.

The file is read in chunks of CHUNK_BYTES: an incremental UTF-8 decoder (codecs) turns bytes into
text, NumPy turns text into code points (C,) without a Python loop, a table over all code points
marks the characters seen, and a second pass writes each chunk's ids through a lookup table, as
uint8, uint16 or uint32 (the smallest that holds V). Memory stays a few chunks whatever the size.

The ids live in `cache_dir()/corpora`, named by the SHA-256 of the file and the reading options,
beside a JSON header (checksum, length, dtype, vocabulary, and the ids' own SHA-256). A header or
ids file that does not match is rebuilt, never trusted.

Text hygiene, the same for every source: a UTF-8 BOM is dropped; Windows line endings are read as
"\\n" unless keep_crlf; undecodable bytes raise DataError with their offsets unless errors="replace"
(each bad sequence becomes U+FFFD, the rest is kept exactly).
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import DataError, Vocab, _from_code_points, _sha256_file, cache_dir, resolve_source

__all__ = ["Corpus", "IdFile", "open_corpus", "corpus_from_text", "CHUNK_BYTES", "ERRORS", "id_dtype",
           "loading_bytes", "data_loading_bytes"]

CHUNK_BYTES = 1 << 22                  # 4 MiB of the file per step of the streaming pass
CODE_POINTS = 0x110000                 # every Unicode code point (and lone surrogates) indexes the tables
FORMAT = 1                             # of the cache files; another number is rebuilt
ERRORS = ("strict", "replace")
_REPLACEMENT = "\ufffd"
_SHOWN_OFFSETS = 5


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids 0..V-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise DataError(f"a vocabulary of {vocab_size} characters is more than Unicode has")


def loading_bytes(file_bytes: int) -> int:
    """Peak memory of the streaming pass over a file: per chunk the bytes, the text (up to 4 bytes a
    character), its code points, NumPy's index array (8 a character) and the ids; plus the tables."""
    chunk = min(int(file_bytes), CHUNK_BYTES)
    return 18 * chunk + CODE_POINTS * (1 + 4)


def data_loading_bytes(source, text: str | None = None) -> tuple[int, str] | None:
    """(peak bytes of reading `source` into a corpus, a name for it), before reading a byte: the
    streaming pass's few chunks for a file, the text, its code points and ids for one in memory."""
    if text is not None:
        return 12 * len(text), "the text"
    if source is None or source == "builtin":
        return 12 * 2_000_000, "the built-in corpus"
    path = Path(str(source)).expanduser()
    size = path.stat().st_size if path.is_file() else CHUNK_BYTES  # a download: its size is not known yet
    return loading_bytes(size), f"reading {source} ({size:,} bytes, streamed)"


# ----------------------------------------------------------------------------------------------
# ids on disk

class IdFile:
    """(N,) token ids in a file, read a window at a time: memory and address space stay flat whatever N.

    Slicing with a step of 1 gives a view of the same file; `read(start, stop)` and `rows(starts, width)`
    give NumPy arrays. Pickles as its path (the file must be where it was)."""

    ndim = 1

    def __init__(self, path, dtype, start: int = 0, stop: int | None = None):
        self.path, self.dtype = Path(path), np.dtype(dtype)
        total = os.path.getsize(self.path) // self.dtype.itemsize
        self.start = int(start)
        self.stop = total if stop is None else int(stop)
        if not 0 <= self.start <= self.stop <= total:
            raise ValueError(f"window {self.start}:{self.stop} outside the {total} ids of {self.path}")
        self._fd = os.open(self.path, os.O_RDONLY)  # open now: a cache rebuilt meanwhile cannot swap it

    def __getstate__(self):
        return {"path": self.path, "dtype": self.dtype, "start": self.start, "stop": self.stop, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __repr__(self) -> str:
        return f"IdFile({str(self.path)!r}, {self.dtype.name}, {self.start}:{self.stop})"

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("an IdFile slices with step 1 only; read() it first")
            return IdFile(self.path, self.dtype, self.start + start, self.start + max(start, stop))
        index = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"index {key} out of range for {len(self)} ids")
        return self.read(index, index + 1)[0]

    def __array__(self, dtype=None, copy=None):
        ids = self.read()
        return ids if dtype is None else ids.astype(dtype)

    def _read(self, start: int, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        size = self.dtype.itemsize
        data = os.pread(self._fd, count * size, (self.start + start) * size)
        if len(data) != count * size:
            raise DataError(f"the token id file {self.path} was truncated while in use; run again to rebuild it")
        return np.frombuffer(data, self.dtype)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """ids[start:stop] as a NumPy array (read-only)."""
        stop = len(self) if stop is None else min(stop, len(self))
        return self._read(start, max(stop - start, 0))

    def rows(self, starts, width: int) -> np.ndarray:
        """(len(starts), width): row b is ids[starts[b] : starts[b] + width], one read per row."""
        return np.stack([self._read(int(s), width) for s in starts]) if len(starts) else \
            np.empty((0, width), self.dtype)


# ----------------------------------------------------------------------------------------------
# the corpus

@dataclass(frozen=True)
class Corpus:
    """Token ids (an IdFile, or an array for a text already in memory), their vocabulary, where they
    came from, the SHA-256 that recognises the text, and one line per change reading made to it."""

    ids: object
    vocab: Vocab
    description: str
    sha256: str
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, start: int = 0, stop: int | None = None) -> str:
        """The characters start:stop, decoded."""
        window = self.ids[start:stop]
        return self.vocab.decode(np.asarray(window))


def open_corpus(source=None, *, keep_crlf: bool = False, errors: str = "strict", vocab: Vocab | None = None,
                skip_unknown: bool = False) -> Corpus:
    """The corpus of `source` (as `load_text` takes it), its ids from the cache when a valid one exists.

    vocab: encode with this vocabulary (a model's) instead of the text's own; characters outside it
    raise DataError, or with skip_unknown are left out and counted in `notes`."""
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {', '.join(ERRORS)}; got {errors!r}")
    path, text, description = resolve_source(source)
    if path is None:
        return corpus_from_text(text, description, keep_crlf=keep_crlf, vocab=vocab, skip_unknown=skip_unknown)
    sha, size = _file_sha256(path, description)
    options = {"keep_crlf": bool(keep_crlf), "errors": errors, "skip_unknown": bool(skip_unknown),
               "vocab": None if vocab is None else hashlib.sha256(json.dumps(vocab.to_list()).encode()).hexdigest()}
    key = hashlib.sha256(json.dumps({"format": FORMAT, "sha256": sha, "options": options}, sort_keys=True)
                         .encode()).hexdigest()[:32]
    folder = _corpus_dir(description)
    header_path, ids_path = folder / f"{key}.json", folder / f"{key}.ids"
    cached = _cached(header_path, ids_path, sha, size, options, vocab)
    if cached is not None:
        header, own_vocab = cached
        return Corpus(IdFile(ids_path, header["dtype"]), own_vocab, description, sha, tuple(header["notes"]))
    header, own_vocab = _build(path, description, ids_path, keep_crlf, errors, vocab, skip_unknown)
    header.update({"format": FORMAT, "sha256": sha, "bytes": size, "options": options})
    _write_json(header_path, header)
    return Corpus(IdFile(ids_path, header["dtype"]), own_vocab, description, sha, tuple(header["notes"]))


def corpus_from_text(text: str, description: str = "text", *, keep_crlf: bool = False, vocab: Vocab | None = None,
                     skip_unknown: bool = False) -> Corpus:
    """A corpus of a text already in memory (the built-in corpus, or Trainer(text=...)): ids in memory."""
    from ..train import text_sha256  # the checksum a run records for its text

    sha = text_sha256(text)
    notes = []
    if not keep_crlf and "\r\n" in text:
        notes.append(_crlf_note(text.count("\r\n")))
        text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DataError(f"{description} is empty{' (only whitespace)' if text else ''}; a character model needs "
                        "text to learn from.")
    pieces = [text[i:i + CHUNK_BYTES] for i in range(0, len(text), CHUNK_BYTES)]
    seen = np.zeros(CODE_POINTS, bool)
    for piece in pieces:
        mark_seen(seen, code_points(piece))
    own_vocab, table, known = _tables(seen, vocab, skip_unknown, description)
    ids, skipped = [], 0
    for piece in pieces:
        cps = code_points(piece)
        if known is not None:
            keep = known[cps]
            skipped += len(cps) - int(keep.sum())
            cps = cps[keep]
        ids.append(table.take(cps))
    if skipped:
        notes.append(_skip_note(skipped, seen, vocab))
    ids = np.concatenate(ids) if ids else np.zeros(0, table.dtype)
    return Corpus(ids, own_vocab, description, sha, tuple(notes))


# ----------------------------------------------------------------------------------------------
# the streaming pass

def mark_seen(seen: np.ndarray, cps: np.ndarray) -> None:
    """seen[c] = True for every code point c in cps; a count of the narrow types is the faster way."""
    if cps.dtype.itemsize <= 2:
        width = 1 << (8 * cps.dtype.itemsize)
        seen[:width] |= np.bincount(cps, minlength=width) > 0
    else:
        seen[cps] = True


def code_points(text: str) -> np.ndarray:
    """(C,) code points of `text` in the narrowest array that holds them: uint8 for Latin-1 text,
    uint16 below U+10000, else uint32 (lone surrogates kept, as surrogatepass does)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), np.uint8)
    try:
        return np.frombuffer(text.encode("latin-1"), np.uint8)
    except UnicodeEncodeError:
        pass
    wide = text.encode("utf-16-le", "surrogatepass")
    if len(wide) == 2 * len(text):  # no character needed a surrogate pair
        return np.frombuffer(wide, np.uint16)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


class _Reading:
    """What one pass over the file saw: characters, line endings changed, undecodable bytes."""

    def __init__(self):
        self.characters = 0
        self.crlf = 0
        self.bad = 0                    # undecodable byte sequences (each one U+FFFD under "replace")
        self.bad_at: list[int] = []     # byte offsets of the first few
        self.non_ascii = False          # a character above U+007F decoded correctly (a UTF-8 file shows some)
        self.nul = 0
        self.has_text = False           # anything but whitespace
        self.bytes = 0

    def lines(self, read_bytes) -> list[int]:
        """The line of each offset in bad_at, counting newlines in read_bytes(stop) (only on failure)."""
        prefix = read_bytes(max(self.bad_at) + 1) if self.bad_at else b""
        return [prefix.count(b"\n", 0, offset) + 1 for offset in self.bad_at]


def _chunks(path: Path, keep_crlf: bool, reading: _Reading | None = None):
    """Yield the text of `path` as code-point arrays (C,), chunk by chunk; count into `reading`."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    held = ""  # a final "\r" held back: the "\n" that completes it may open the next chunk
    offset = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            final = not chunk
            pending = decoder.getstate()[0]
            text = decoder.decode(chunk, final)
            if reading is not None:
                _count(reading, pending + chunk if pending else chunk, text, offset - len(pending), final)
                offset += len(chunk)
            text, held = held + text, ""
            if not keep_crlf and "\r" in text:
                if text.endswith("\r") and not final:
                    text, held = text[:-1], "\r"
                before = len(text)
                text = text.replace("\r\n", "\n")
                if reading is not None:
                    reading.crlf += before - len(text)
            if text:
                yield code_points(text)
            if final:
                return


def _count(reading: _Reading, data: bytes, text: str, base: int, final: bool) -> None:
    """Add one chunk to `reading`: data is the bytes decoded into text, starting at byte `base`."""
    reading.bytes += len(data)
    reading.characters += len(text)
    if b"\0" in data:
        reading.nul += data.count(b"\0")
    if not reading.has_text and text.strip():
        reading.has_text = True
    if text.isascii():
        return
    replaced = 0
    if _REPLACEMENT in text:
        replaced = text.count(_REPLACEMENT) - data.count(_REPLACEMENT.encode("utf-8"))
    if not reading.non_ascii:
        reading.non_ascii = replaced <= 0 or len(text) - len(text.encode("ascii", "ignore")) > replaced
    if replaced <= 0:
        return
    reading.bad += replaced
    position = 0  # where the first few are: strict decoding from one error to the next
    while len(reading.bad_at) < _SHOWN_OFFSETS:
        try:
            data[position:].decode("utf-8")
            break
        except UnicodeDecodeError as error:
            if error.reason == "unexpected end of data" and not final:
                break  # a character cut by the chunk's end: the next chunk completes it
            reading.bad_at.append(base + position + error.start)
            position += error.end


def _build(path: Path, description: str, ids_path: Path, keep_crlf: bool, errors: str, vocab: Vocab | None,
           skip_unknown: bool) -> tuple[dict, Vocab]:
    """Two passes over the file: the vocabulary and the checks, then the ids, written atomically."""
    reading = _Reading()
    seen = np.zeros(CODE_POINTS, bool)
    try:
        for cps in _chunks(path, keep_crlf, reading):
            mark_seen(seen, cps)
    except OSError as error:
        raise DataError(f"data file {description} cannot be read ({error.strerror or error}); check its "
                        "permissions.") from None
    _check_reading(reading, description, errors, lambda stop: _head(path, stop))
    own_vocab, table, known = _tables(seen, vocab, skip_unknown, description)
    length = reading.characters - reading.crlf  # before any skipping: an upper bound
    need = length * table.dtype.itemsize
    free = shutil.disk_usage(ids_path.parent).free
    if need > free:
        from ..validate import format_bytes

        raise DataError(f"{description}: its token ids need {format_bytes(need)} on disk in {ids_path.parent}, "
                        f"which has {format_bytes(free)} free; set RNNLAB_CACHE to a directory with more room")
    fd, tmp = tempfile.mkstemp(prefix=ids_path.name + ".", suffix=".part", dir=ids_path.parent)
    digest, written, skipped = hashlib.sha256(), 0, 0
    try:
        with os.fdopen(fd, "wb") as out:
            for cps in _chunks(path, keep_crlf):
                if known is not None:
                    keep = known[cps]
                    skipped += len(cps) - int(keep.sum())
                    cps = cps[keep]
                ids = table.take(cps)
                out.write(ids.data)
                digest.update(ids.data)
                written += len(ids)
        os.replace(tmp, ids_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if written == 0:
        raise DataError(f"{description}: no character of the text is in the model's vocabulary; nothing to read")
    notes = []
    if reading.crlf:
        notes.append(_crlf_note(reading.crlf))
    if reading.bad:
        notes.append(f"{reading.bad:,} undecodable byte sequence(s) read as U+FFFD "
                     f"({_offsets(reading, lambda stop: _head(path, stop))})")
    if skipped:
        notes.append(_skip_note(skipped, seen, vocab))
    header = {"length": written, "dtype": table.dtype.name, "vocab": [ord(c) for c in own_vocab.chars],
              "ids_sha256": digest.hexdigest(), "notes": notes}
    return header, own_vocab


def _head(path: Path, stop: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(stop)


def _check_reading(reading: _Reading, description: str, errors: str, read_bytes) -> None:
    """One clear DataError for a text that is empty, not text, or (strict) not valid UTF-8."""
    if not reading.has_text:
        raise DataError(f"data file {description} is empty{' (only whitespace)' if reading.characters else ''}; "
                        "a character model needs text to learn from.")
    if reading.nul > max(16, reading.bytes // 100) or reading.bad > max(16, reading.bytes // 4):
        raise DataError(f"data file {description} does not look like text ({reading.nul:,} NUL bytes, "
                        f"{reading.bad:,} byte sequences that are not UTF-8, in {reading.bytes:,} bytes); pass a "
                        "UTF-8 text file (UTF-16 text: `iconv -f utf-16 -t utf-8 in.txt > out.txt`).")
    if reading.bad and errors == "strict":
        if reading.non_ascii:  # valid UTF-8 beside the bad bytes: converting the whole file would garble it
            advice = ("It is mostly UTF-8 (with correct non-ASCII characters too), so do not convert the whole "
                      "file from another encoding: pass --errors replace to read each bad sequence as U+FFFD "
                      "and keep the rest as it is")
        else:
            advice = ("It has no valid non-ASCII UTF-8 at all, so it is likely in a single-byte encoding: convert "
                      "it, e.g. `iconv -f cp1252 -t utf-8 in.txt > out.txt`, or pass --errors replace to read "
                      "each bad byte as U+FFFD")
        raise DataError(f"data file {description} is not valid UTF-8: {reading.bad:,} undecodable byte "
                        f"sequence(s) ({_offsets(reading, read_bytes)}). {advice}.")


def _offsets(reading: _Reading, read_bytes) -> str:
    shown = ", ".join(f"byte offset {o} (line {line})" for o, line in zip(reading.bad_at, reading.lines(read_bytes)))
    return ("at " if reading.bad <= len(reading.bad_at) else "first at ") + shown


def _tables(seen: np.ndarray, vocab: Vocab | None, skip_unknown: bool, description: str):
    """(vocabulary, code point -> id table, code point -> known mask or None) for the characters seen."""
    present = np.flatnonzero(seen)                                   # (V_text,) sorted code points
    if vocab is None:
        vocab = Vocab(_from_code_points(present))
    codes = vocab._codes                                             # (V,) id -> code point
    table = np.zeros(CODE_POINTS, id_dtype(len(vocab)))
    table[codes] = np.arange(len(vocab))
    known = np.zeros(CODE_POINTS, bool)
    known[codes] = True
    unknown = present[~known[present]]
    if len(unknown) == 0:
        return vocab, table, None
    if not skip_unknown:
        chars = _from_code_points(unknown)
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:20])
        more = f" and {len(chars) - 20} more" if len(chars) > 20 else ""
        raise DataError(f"{description}: {len(chars)} character(s) not in the model's vocabulary of {len(vocab)}: "
                        f"{listed}{more}; pass --skip-unknown to leave them out, or use a text in its vocabulary")
    return vocab, table, known


def _crlf_note(count: int) -> str:
    return f"{count:,} Windows line endings (\\r\\n) read as \\n (--keep-crlf keeps them)"


def _skip_note(skipped: int, seen: np.ndarray, vocab: Vocab) -> str:
    present = np.flatnonzero(seen)
    known = np.isin(present, vocab._codes)
    chars = _from_code_points(present[~known])
    listed = ", ".join(map(repr, chars[:10])) + (" ..." if len(chars) > 10 else "")
    return f"skipped {skipped:,} character(s) not in the model's vocabulary ({len(chars)} distinct: {listed})"


# ----------------------------------------------------------------------------------------------
# the cache

def _file_sha256(path: Path, description: str) -> tuple[str, int]:
    """The SHA-256 of the file's bytes after a UTF-8 BOM (the text's own bytes), and the file's size."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            first = True
            while chunk := f.read(CHUNK_BYTES):
                size += len(chunk)
                if first and chunk.startswith(codecs.BOM_UTF8):
                    chunk = chunk[len(codecs.BOM_UTF8):]
                first = False
                digest.update(chunk)
    except OSError as error:
        raise DataError(f"data file {description} cannot be read ({error.strerror or error}); check its "
                        "permissions.") from None
    return digest.hexdigest(), size


def _corpus_dir(description: str) -> Path:
    folder = cache_dir() / "corpora"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{description}: cannot create the cache directory {folder} for its token ids "
                        f"({error.strerror or error}); set RNNLAB_CACHE to a writable directory") from None
    return folder


def _cached(header_path: Path, ids_path: Path, sha: str, size: int, options: dict, vocab: Vocab | None):
    """(header, vocabulary) of a cache entry that matches in every respect, else None (it is rebuilt)."""
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
        own_vocab = Vocab(_from_code_points(np.asarray(header["vocab"], dtype=np.int64)))
        dtype = np.dtype(header["dtype"])
        ok = (header.get("format") == FORMAT and header.get("sha256") == sha and header.get("bytes") == size
              and header.get("options") == options and dtype == id_dtype(len(own_vocab))
              and isinstance(header.get("notes"), list)
              and (vocab is None or own_vocab == vocab)
              and ids_path.stat().st_size == int(header["length"]) * dtype.itemsize)
        if not ok or _sha256_file(ids_path) != header.get("ids_sha256"):
            return None
    except (OSError, ValueError, TypeError, KeyError, OverflowError):  # absent, damaged or forged
        return None
    return header, own_vocab


def _write_json(path: Path, value: dict) -> None:
    from ..io import atomic_write_bytes  # the one atomic writer

    atomic_write_bytes(path, json.dumps(value))