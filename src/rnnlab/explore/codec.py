"""Arrays packed for the page: every value rounded to 4 significant decimal digits, deflated, base85.

Four digits of 2 x 2 x 2000 x 256 states as JSON text take ~14 MB; packed they take ~2.2 bytes a
number. A value x != 0 is stored as m * 10**e with m an integer, 1000 <= |m| <= 9999: exactly the
number `f"{x:.4g}"` would print. Three byte planes, (e + 64) * 2 + sign, then |m| >> 8 and
|m| & 255, are deflated (zlib) and written in base85 with an alphabet that leaves out `"`, `\\` and
`<`, so the string sits in a JSON document inside a <script> tag as it is. The page undoes it with
the browser's DecompressionStream("deflate").

    packed = pack(h)            # h (T, H) -> {"shape": [T, H], "order": "F", "encoding": ENCODING, "data": str}
    h4 = unpack(packed)         # (T, H) float64, each value h rounded to 4 significant digits

Values are stored unit by unit ("order": "F", column-major): one unit's values over time sit side by
side, which deflate compresses better than one time step's units.
"""
from __future__ import annotations

import zlib

import numpy as np

ENCODING = "dec4-deflate-b85"
DIGITS = 4
# 85 printable ASCII characters: "!".."}" without the 8 that need care in JSON or HTML ("\\<>&'`|)
ALPHABET = "".join(c for c in map(chr, range(33, 126)) if c not in "\"\\<'`|>&")
assert len(ALPHABET) == 85
_INDEX = np.full(128, 255, np.uint8)
_INDEX[np.frombuffer(ALPHABET.encode(), np.uint8)] = np.arange(85, dtype=np.uint8)
_EXP_BIAS = 64  # e + 64 must fit in 7 bits: |x| from 1e-61 to 1e66 (float32 spans 1e-45 .. 3e38)


def round_sig(x, digits: int = DIGITS) -> np.ndarray:
    """x rounded to `digits` significant decimal digits, as float64 (what the page stores)."""
    m, e = _decimal(np.asarray(x, np.float64), digits)
    return _value(m, e).reshape(np.shape(x), order="F")


def _value(m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """m * 10**e as the float nearest the decimal (dividing by 10**-e when e < 0, as the page does)."""
    m = m.astype(np.float64)
    return np.where(e >= 0, m * np.power(10.0, np.maximum(e, 0)), m / np.power(10.0, np.maximum(-e, 0)))


def _decimal(x: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """x = m * 10**e with 10**(digits-1) <= |m| < 10**digits (m = e = 0 for x = 0); int64 arrays."""
    if not np.isfinite(x).all():
        raise ValueError("cannot store non-finite values (nan or inf) in the page")
    x = x.ravel(order="F")
    nonzero = x != 0
    e = np.zeros(x.shape, np.int64)
    e[nonzero] = np.floor(np.log10(np.abs(x[nonzero]))).astype(np.int64) - (digits - 1)
    m = np.rint(x / np.power(10.0, e)).astype(np.int64)
    over = np.abs(m) >= 10 ** digits  # 9999.5 rounds up to 10000: one more power of ten
    e[over] += 1
    m[over] = np.rint(x[over] / np.power(10.0, e[over])).astype(np.int64)
    under = nonzero & (np.abs(m) < 10 ** (digits - 1))  # log10 just below a power of ten
    e[under] -= 1
    m[under] = np.rint(x[under] / np.power(10.0, e[under])).astype(np.int64)
    return m, e


def pack(x) -> dict:
    """A float array of any shape -> the JSON-ready packed form (see the module docstring)."""
    x = np.asarray(x, np.float64)
    m, e = _decimal(x, DIGITS)
    e = np.where(m == 0, -_EXP_BIAS, e)
    if e.size and (e.min() < -_EXP_BIAS or e.max() >= _EXP_BIAS):
        raise ValueError(f"values out of the storable range 1e-61 .. 1e66: {np.abs(x).max():g}")
    magnitude = np.abs(m).astype(np.uint16)
    head = ((e + _EXP_BIAS) * 2 + (m < 0)).astype(np.uint8)
    planes = head.tobytes() + (magnitude >> 8).astype(np.uint8).tobytes() + (magnitude & 255).astype(np.uint8).tobytes()
    return {"shape": list(x.shape), "order": "F", "encoding": ENCODING, "data": b85encode(zlib.compress(planes, 6))}


def unpack(packed: dict) -> np.ndarray:
    """The array a `pack` result holds, float64 in its shape (values as rounded when packed)."""
    if not isinstance(packed, dict) or packed.get("encoding") != ENCODING:
        raise ValueError(f"not a packed array of encoding {ENCODING!r}")
    shape = tuple(packed["shape"])
    n = int(np.prod(shape))
    planes = np.frombuffer(zlib.decompress(b85decode(packed["data"])), np.uint8)
    if planes.size != 3 * n:
        raise ValueError(f"packed data holds {planes.size // 3} values; shape {shape} needs {n}")
    head, high, low = planes[:n].astype(np.int64), planes[n:2 * n].astype(np.int64), planes[2 * n:].astype(np.int64)
    m = (high * 256 + low) * np.where(head & 1, -1, 1)
    e = (head >> 1) - _EXP_BIAS
    return _value(m, e).reshape(shape, order=packed.get("order", "C"))


def b85encode(data: bytes) -> str:
    """Base85 of `data` with ALPHABET: each 4 bytes (big-endian, zero-padded at the end) -> 5 characters;
    the padding's characters are dropped, as Ascii85 does."""
    pad = -len(data) % 4
    words = np.frombuffer(data + b"\0" * pad, ">u4").astype(np.int64)
    digits = np.empty((words.size, 5), np.int64)
    for k in range(4, -1, -1):
        digits[:, k] = words % 85
        words //= 85
    chars = np.frombuffer(ALPHABET.encode(), np.uint8)[digits].tobytes().decode()
    return chars[:len(chars) - pad] if pad else chars


def b85decode(text: str) -> bytes:
    """The inverse of `b85encode`."""
    raw = np.frombuffer(text.encode("ascii"), np.uint8)
    pad = -raw.size % 5
    values = _INDEX[np.concatenate([raw, np.full(pad, ord(ALPHABET[-1]), np.uint8)])]
    if (values == 255).any():
        raise ValueError("packed data holds a character outside the base85 alphabet")
    words = np.zeros(values.size // 5, np.int64)
    for k in range(5):
        words = words * 85 + values[k::5]
    data = words.astype(">u4").tobytes()
    return data[:len(data) - pad] if pad else data
