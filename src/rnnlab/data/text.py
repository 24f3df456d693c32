"""Text corpora for character-level language models: load, encode, split, batch for truncated BPTT.

    text, desc = load_text("tinyshakespeare")      # or None / "builtin", a file path, a URL
    vocab = Vocab.from_text(text)                   # sorted code points; vocab.to_list() -> checkpoint
    ids = vocab.encode(text)                        # (N,) int32
    train, val = split_text(ids, val_fraction=0.1)  # first 90% / last 10%, contiguous (nanoGPT)
    batches = TBPTTBatches(train, batch_size=32, seq_len=64, source=desc)
    for x, y in batches.epoch(rng):                 # x, y: (B, T); y[b, t] == x[b, t + 1] in the text
        ...                                         # carry h across chunks, reset it per epoch

Shapes: N = corpus length (characters), V = vocabulary size, B = parallel streams (batch size),
T = chunk length (truncated-BPTT steps), L = stream length, K = chunks per epoch (L // T).

Every problem with user data raises `DataError` (a ValueError) whose message names the source, the
problem and what to do, so the CLI can print it without a traceback.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import re
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = [
    "DataError", "Vocab", "load_text", "builtin_corpus", "split_text", "TBPTTBatches", "Epoch",
    "TINYSHAKESPEARE_URL", "TINYSHAKESPEARE_SHA256", "BUILTIN_MODULES", "cache_dir", "resolve_source",
]


class DataError(ValueError):
    """A problem with user data; the message says which source, what is wrong and what to do."""


# ----------------------------------------------------------------------------------------------
# vocabulary

class Vocab:
    """Characters (Unicode code points) <-> ids. `from_text` sorts by code point for determinism.

    `chars[i]` is the character with id i. Encoding and decoding go through NumPy on the UTF-32
    code points, so a MB-sized text encodes in milliseconds rather than a Python loop per char.
    """

    def __init__(self, chars: list[str]):
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise DataError(f"vocabulary entries must be single characters; got {c!r}. "
                                "The vocabulary (e.g. in a checkpoint) is damaged: rebuild it from the text.")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise DataError(f"vocabulary has duplicate characters {', '.join(map(repr, dup))}; "
                            "the vocabulary (e.g. in a checkpoint) is damaged: rebuild it from the text.")
        self.chars: list[str] = list(chars)  # read-only by convention: ids index into it
        self._codes = _code_points("".join(self.chars))           # (V,) uint32, id -> code point
        self._order = np.argsort(self._codes).astype(np.int32)    # (V,) ids in code-point order
        self._sorted = self._codes[self._order]                   # (V,) sorted code points

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The distinct characters of `text`, sorted by code point."""
        codes = np.unique(_code_points(text))  # (V,) sorted
        return cls(_from_code_points(codes))

    @classmethod
    def from_list(cls, chars: list[str]) -> "Vocab":
        """Inverse of `to_list`: the order is kept, so ids match the model that stored it."""
        return cls(list(chars))

    def to_list(self) -> list[str]:
        """JSON-able list of characters, id order (store it in checkpoints)."""
        return list(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self) -> str:
        shown = "".join(self.chars[:40])
        return f"Vocab(size={len(self)}, chars={shown!r}{'...' if len(self) > 40 else ''})"

    def _unknown(self, cps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the sorted code points, which code points are not in the vocabulary), both (N,)."""
        if len(self) == 0:
            return np.zeros(len(cps), dtype=np.intp), np.ones(len(cps), dtype=bool)
        # binary search in the sorted code points, then check it is really there
        pos = np.minimum(np.searchsorted(self._sorted, cps), len(self) - 1)  # (N,)
        return pos, self._sorted[pos] != cps                                 # (N,) bool

    def known(self, text: str) -> tuple[str, int]:
        """(`text` without the characters outside the vocabulary, how many were left out)."""
        cps = _code_points(text)                                  # (N,) uint32
        bad = self._unknown(cps)[1]
        if not bad.any():
            return text, 0
        return cps[~bad].tobytes().decode("utf-32-le", "surrogatepass"), int(bad.sum())

    def encode(self, text: str, *, source: str | None = None) -> np.ndarray:
        """Ids of the characters of `text`, shape (N,) int32. Unknown characters raise DataError;
        `source` (e.g. "--prompt") names where the text came from in that message."""
        cps = _code_points(text)                                  # (N,) uint32
        pos, bad = self._unknown(cps)
        if bad.any():
            unknown = _from_code_points(np.unique(cps[bad]))
            listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            where = f"{source}: " if source else ""
            raise DataError(
                f"{where}{len(unknown)} character(s) not in the vocabulary: {listed}{more}. "
                f"The model was trained on a vocabulary of {len(self)} characters; use only those "
                "characters (see Vocab.chars), leave the others out (--skip-unknown, Vocab.known), or train "
                "on a corpus that contains them.")
        return self._order[pos]                                   # (N,) int32

    def decode(self, ids) -> str:
        """Text of a sequence of ids (list or 0-/1-D integer array)."""
        ids = np.atleast_1d(np.asarray(ids))                      # (N,)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"decode expects a 1-D sequence of integer ids; got shape {ids.shape}, "
                             f"dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise DataError(f"ids out of range for a vocabulary of {len(self)} characters "
                            f"(min {ids.min()}, max {ids.max()}); the model and vocabulary do not match.")
        return self._codes[ids.astype(np.intp)].tobytes().decode("utf-32-le", "surrogatepass")


def _code_points(text: str) -> np.ndarray:
    """(N,) uint32 code points of `text`; surrogatepass keeps lone surrogates (from surrogateescape)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _from_code_points(codes: np.ndarray) -> list[str]:
    text = np.asarray(codes, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    return list(text)


# ----------------------------------------------------------------------------------------------
# loading

# The built-in corpus: char-rnn's "train on the Linux source" experiment in miniature. Pure-Python
# standard-library modules that exist from Python 3.10 on, sorted, read in this order; chosen with
# (almost) only ASCII, so V stays near 100 (shlex alone would add 62 accented letters seen once).
BUILTIN_MODULES: tuple[str, ...] = (
    "argparse", "ast", "base64", "calendar", "cmd", "collections", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "difflib", "fractions", "functools", "heapq", "json.decoder",
    "json.encoder", "pathlib", "pprint", "queue", "random", "shutil", "string", "tarfile",
    "tempfile", "textwrap", "threading", "tokenize", "typing", "urllib.parse", "zipfile",
)

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

_URL_RE = re.compile(r"^(https?|file)://", re.IGNORECASE)


def load_text(source: str | os.PathLike | None = None, *, keep_crlf: bool = False, errors: str = "strict",
              max_chars: int | None = None) -> tuple[str, str]:
    """(text, description) of a corpus, whole in memory (`open_corpus` streams one of any size into
    ids on disk instead). `source` is one of:

    - None or "builtin": `builtin_corpus()`, Python standard-library source (no network, no file);
    - "tinyshakespeare": char-rnn's tiny Shakespeare, downloaded once and sha256-checked, then read
      from the cache (`$RNNLAB_CACHE`, else ~/.cache/rnnlab) without network;
    - an http(s):// or file:// URL: downloaded once, cached by a hash of the URL (no checksum);
    - anything else: a path to a UTF-8 text file (write ./builtin for a file named "builtin").

    Windows line endings are read as "\\n" unless keep_crlf; errors="replace" reads undecodable bytes
    as U+FFFD; max_chars reads only the start of a file (at most that many characters).
    """
    path, text, description = resolve_source(source)
    if path is not None:
        text = _read_file(path, description, errors, max_chars)
    if not keep_crlf:
        text = text.replace("\r\n", "\n")
    return (text if max_chars is None else text[:max_chars]), description


def resolve_source(source: str | os.PathLike | None) -> tuple[Path | None, str | None, str]:
    """(path, None, description) of the file that holds `source`'s text (downloaded first where needed),
    or (None, text, description) for the built-in corpus; DataError for a path that is no text file."""
    if source is None or (isinstance(source, str) and source == "builtin"):
        text, description = builtin_corpus()
        return None, text, description
    if not str(source).strip():  # Path("") is the current directory: say what was really given
        raise DataError(f"the data source is empty ({str(source)!r}); give a text file, a URL, tinyshakespeare "
                        "or builtin")
    if isinstance(source, str) and source == "tinyshakespeare":
        path = _download(TINYSHAKESPEARE_URL, "tinyshakespeare.txt", sha256=TINYSHAKESPEARE_SHA256,
                         name="tinyshakespeare", hint="--data path/to/tinyshakespeare.txt")
        return path, None, f"tinyshakespeare ({path})"
    if isinstance(source, str) and _URL_RE.match(source):
        if source.lower().startswith("file://"):  # a local file: the checks a path gets, before any copy
            local = Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path))
            if local.exists() and not local.is_file():  # a missing one may still be in the cache
                raise DataError(f"{source}: {local} is not a regular file (a directory, a device or a pipe); "
                                "pass a text file.")
        fname = "url-" + hashlib.sha256(source.encode()).hexdigest()[:16] + "-" + _safe_name(source)
        path = _download(source, fname, sha256=None, name=source, hint="--data path/to/file.txt")
        return path, None, f"{source} (cached at {path})"
    path = Path(source).expanduser()
    _check_file(path)
    return path, None, str(source)


def builtin_corpus() -> tuple[str, str]:
    """(text, description): the source of `BUILTIN_MODULES` concatenated, about 1.3 MB on 3.11.

    Deterministic for a given Python version (fixed list, fixed order, UTF-8, newlines as "\\n"),
    so every machine with the same Python gets the same text; different Python versions ship
    slightly different module sources, hence slightly different text. A listed module missing
    from an exotic install (or not valid UTF-8) is skipped.
    """
    stdlib = Path(sysconfig.get_path("stdlib"))
    parts, used = [], 0
    for name in BUILTIN_MODULES:
        base = stdlib.joinpath(*name.split("."))
        for f in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if f.is_file():
                try:
                    text = f.read_bytes().decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    break
                text = text.replace("\r\n", "\n")  # a CRLF checkout must give the same corpus
                parts.append(text if text.endswith("\n") else text + "\n")
                used += 1
                break
    text = "".join(parts)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not text:
        raise DataError(f"builtin corpus: none of the {len(BUILTIN_MODULES)} standard-library modules "
                        f"was found under {stdlib}; pass a text file instead, e.g. --data path/to/text.txt")
    return text, f"builtin (Python {version} standard library, {used} modules)"


def cache_dir() -> Path:
    """Where downloads are kept: $RNNLAB_CACHE, else ~/.cache/rnnlab (read at call time)."""
    env = os.environ.get("RNNLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlab"


def _download(url: str, fname: str, *, sha256: str | None, name: str, hint: str) -> Path:
    """Path of the cached copy of `url`, downloading it first if needed (atomically, via a temp file)."""
    cache = cache_dir()
    path = cache / fname
    if path.is_file() and (sha256 is None or _sha256_file(path) == sha256):
        return path  # a stale or corrupted cached copy falls through and is downloaded again
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{name}: cannot create the cache directory {cache} ({e}); set RNNLAB_CACHE "
                        f"to a writable directory, or pass a local copy: {hint}") from None
    tmp = None
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            digest = hashlib.sha256()
            fd, tmp = tempfile.mkstemp(prefix=fname + ".", suffix=".part", dir=cache)
            limit = _max_text_bytes()
            with os.fdopen(fd, "wb") as out:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    if limit is not None and out.tell() > limit:  # an endless stream (file:///dev/zero)
                        raise DataError(f"{name}: the download passed {out.tell():,} bytes, more text than "
                                        f"this machine's memory can hold; pass a smaller local file: {hint}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{name}: the file downloaded from {url} has sha256 {digest.hexdigest()}, "
                            f"expected {sha256} (corrupted download, or changed upstream). Download "
                            f"it by hand, check it, and pass the local copy: {hint}")
        os.replace(tmp, path)  # atomic: readers see no file or the whole file, never a partial one
        tmp = None
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
        raise DataError(f"{name}: could not download {url} ({reason}). If you are offline, fetch "
                        f"the file elsewhere and pass the local copy: {hint}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_name(url: str) -> str:
    """A filesystem-safe tail of the URL, so cached files stay recognisable."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", tail)[:64] or "download"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"data file {str(path)!r} not found; check the path, or use --data builtin "
                        "or --data tinyshakespeare.")
    if path.is_dir():
        raise DataError(f"data path {str(path)!r} is a directory, not a text file; pass a file "
                        "(concatenate several files into one first).")
    if not path.is_file():  # /dev/zero, a FIFO, a terminal: reading would never end
        raise DataError(f"data path {str(path)!r} is not a regular file (a device, pipe or socket); save the "
                        "text to a file first.")


def _read_file(path: Path, description: str, errors: str = "strict", max_chars: int | None = None) -> str:
    """The text of a file, whole (refused up front where it cannot fit in memory) or its first max_chars."""
    from ..validate import format_bytes

    size, limit = path.stat().st_size, _max_text_bytes()
    wanted = size if max_chars is None else min(size, 4 * int(max_chars) + 4)  # UTF-8: at most 4 bytes a char
    if limit is not None and wanted > limit:
        raise DataError(f"data file {str(path)!r} has {format_bytes(size)}; reading it whole needs about "
                        f"{format_bytes(10 * size)}, more than this machine's memory. `rnnlab train` and "
                        "`rnnlab evaluate` stream a file of any size; here, pass a part of it "
                        "(head -c 100M in.txt > part.txt).")
    try:
        with open(path, "rb") as f:
            data = f.read(wanted)
    except OSError as e:
        raise DataError(f"data file {str(path)!r} cannot be read ({e.strerror or e}); "
                        "check its permissions.") from None
    return _decode(data, description, errors, final=wanted >= size)


def _max_text_bytes() -> int | None:
    """The largest text file this machine can read and encode whole: bytes, str (up to 4 per
    character) and ids (4 per character) take about 10 times the file's size."""
    from ..validate import machine_memory

    memory = machine_memory()
    return None if memory is None else memory // 10


def _decode(data: bytes, name: str, errors: str = "strict", final: bool = True) -> str:
    """UTF-8 (a leading BOM dropped; a character cut at the end dropped unless final); undecodable
    bytes (strict) or an empty text raise DataError, with the offsets of the first bad bytes."""
    from .corpus import _check_reading, _count, _Reading

    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    text = decoder.decode(data, final)
    reading = _Reading()
    _count(reading, data, text, 0, final)
    _check_reading(reading, name, errors, lambda stop: data[:stop])
    return text


# ----------------------------------------------------------------------------------------------
# splitting and batching

def split_text(ids, val_fraction: float = 0.1):
    """(train, val): the first (1 - val_fraction) and the last val_fraction of `ids`, contiguous
    (nanoGPT's shakespeare_char convention). Views, not copies; works on a str too."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


class TBPTTBatches:
    """Truncated-BPTT batches over a 1-D id array: B parallel streams, consecutive chunks of T steps.

    After dropping `offset` ids from the start, the n = N - offset remaining ids are cut into B
    contiguous streams of L = (n - 1) // B ids each (the +1 leaves room for the last target):

        stream b, inputs  = ids[offset + b*L     : offset + (b+1)*L]
        stream b, targets = ids[offset + b*L + 1 : offset + (b+1)*L + 1]

    Chunk k (k = 0 .. K-1, K = L // T) is `(x, y)`, both (B, T), with x = inputs[:, k*T:(k+1)*T],
    y = targets[:, k*T:(k+1)*T], i.e. y is x shifted by one in the text. Row b of chunk k
    continues row b of chunk k-1 exactly (x[b, 0] of chunk k follows x[b, T-1] of chunk k-1), so
    a trainer carries the hidden state across consecutive chunks of one epoch and resets it at
    each epoch start. The last L - K*T ids of each stream are not seen in that epoch.

    `epoch(rng)` draws a random offset in [0, T) per epoch so epochs see different chunk boundaries
    (off by default: offset 0). To resume exactly mid-epoch, store the epoch's `offset` and the
    next chunk index, then call `epoch(offset=..., start=...)`; `batch_at(k, offset)` gives any
    single chunk. Seeding the rng from (seed, epoch), e.g. `np.random.default_rng([seed, epoch])`,
    makes the offsets reproducible too.
    """

    def __init__(self, ids, batch_size: int, seq_len: int, *, source: str = "corpus"):
        if not hasattr(ids, "rows"):  # an IdFile (corpus.py) stays on disk; anything else is an array
            ids = np.asarray(ids)                                 # (N,)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 1-D integer array; got shape {ids.shape}, dtype {ids.dtype}")
        if int(batch_size) < 1 or int(seq_len) < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1; got {batch_size}, {seq_len}")
        self.ids, self.source = ids, source
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        need = self.batch_size * self.seq_len + 1  # one chunk in every stream, plus the last target
        if len(ids) < need:
            raise DataError(
                f"{source} has {len(ids):,} characters, but batch size {self.batch_size} x sequence "
                f"length {self.seq_len} needs at least {need:,} (B*T+1). Use a smaller --batch or "
                "--seq-len, or a longer text.")

    @property
    def max_offset(self) -> int:
        """Largest start offset an epoch may use: below T, and leaving at least one chunk."""
        return min(self.seq_len - 1, len(self.ids) - self.batch_size * self.seq_len - 1)

    def num_batches(self, offset: int = 0) -> int:
        """Chunks per stream (K) in an epoch that starts at `offset`."""
        return (len(self.ids) - offset - 1) // self.batch_size // self.seq_len

    @property
    def batches_per_epoch(self) -> int:
        """K at offset 0 (the default); a random offset may give one chunk fewer."""
        return self.num_batches(0)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _check_offset(self, offset: int) -> None:
        if not 0 <= offset <= self.max_offset:
            raise ValueError(f"offset must be in [0, {self.max_offset}]; got {offset}")

    def _chunk(self, index: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk `index` at `offset`, read as B windows of T + 1 ids (one per stream): (x, y), (B, T) int32."""
        B, T = self.batch_size, self.seq_len
        L = (len(self.ids) - offset - 1) // B
        starts = offset + np.arange(B) * L + index * T                       # (B,)
        if hasattr(self.ids, "rows"):
            window = self.ids.rows(starts, T + 1)                            # (B, T+1) read from disk
        else:
            window = self.ids[starts[:, None] + np.arange(T + 1)]            # (B, T+1)
        window = window.astype(np.int32)
        return np.ascontiguousarray(window[:, :T]), np.ascontiguousarray(window[:, 1:])

    def batch_at(self, index: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Chunk `index` of the epoch that starts at `offset`: (x, y), both (B, T), fresh copies."""
        self._check_offset(offset)
        K = self.num_batches(offset)
        if not 0 <= index < K:
            raise IndexError(f"chunk index {index} out of range for {K} chunks per epoch")
        return self._chunk(index, offset)

    def epoch(self, rng: np.random.Generator | None = None, *, offset: int | None = None,
              start: int = 0) -> "Epoch":
        """One epoch: offset 0, or drawn from `rng`, or given (to resume); iterate from chunk `start`."""
        if offset is None:
            offset = 0 if rng is None else int(rng.integers(0, self.max_offset + 1))
        return Epoch(self, offset, start)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter(self.epoch())


class Epoch:
    """One pass over the streams at a fixed `offset`, yielding (x, y) chunks from `start` on.

    `len()` is the epoch's total chunk count K (counting those before `start`), so progress bars
    and "last chunk" checks are the same whether or not the epoch was resumed.
    """

    def __init__(self, batches: TBPTTBatches, offset: int, start: int = 0):
        self.batches, self.offset, self.start = batches, int(offset), int(start)
        batches._check_offset(self.offset)
        if not 0 <= self.start <= len(self):
            raise IndexError(f"start chunk {start} out of range for {len(self)} chunks per epoch")

    def __len__(self) -> int:
        return self.batches.num_batches(self.offset)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(self.start, len(self)):
            yield self.batches._chunk(k, self.offset)

    def __repr__(self) -> str:
        return f"Epoch(offset={self.offset}, start={self.start}, chunks={len(self)})"


def text_batch(source, vocab=None, batch: int = 32, seq_len: int = 100, split: str = "val"):
    """(x, y) ids (B, T) from a text, the vocabulary and a description; validation split by default."""
    text, description = load_text(source)
    vocab = vocab or Vocab.from_text(text)
    ids = vocab.encode(text, source=description)
    part = split_text(ids, 0.1)[1] if split == "val" else ids
    if len(part) < batch * seq_len + 1:
        part, split = ids, "all"
    try:
        x, y = TBPTTBatches(part, batch, seq_len, source=description).batch_at(0)
    except DataError as error:
        raise ValueError(str(error)) from None
    where = "validation split (last 10%) of " if split == "val" else ""
    return x, y, vocab, f"{where}{description}", text
