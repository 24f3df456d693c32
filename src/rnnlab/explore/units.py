"""Interpretable units, found automatically: every unit's activation against simple features of the text.

A feature is one number per character, known once that character has been read (as the state is):
feature[t] describes the text up to and including text[t]. Code (Karpathy, Johnson & Fei-Fei 2015
found such cells in C source): inside a string literal, bracket depth, indentation, position in the
line. Prose: inside quotes, position in the line, inside a word.

    feats = text_features(text)                        # {"inside string literal": (T,), ...}
    found = find_units(trace, feats, per_feature=5)    # [{feature, layer, unit, state, correlation}, ...]
"""
from __future__ import annotations

import numpy as np

CODE_FEATURES = ("inside string literal", "bracket depth", "indentation", "position in line")
PROSE_FEATURES = ("inside quotes", "position in line", "inside word")
FEATURE_SETS = ("auto", "code", "prose")


def looks_like_code(text: str) -> bool:
    """Code has many brackets, colons and '=' or many indented lines; prose has few."""
    if not text:
        return False
    symbols = sum(text.count(c) for c in "()[]{}=:;_")
    lines = text.split("\n")
    indented = sum(1 for line in lines if line.startswith(("    ", "\t")))
    return symbols / len(text) > 0.03 or indented / len(lines) > 0.2


class _Lines:
    """Column and indentation (leading spaces read so far on the line; a tab counts 4) per character."""

    def __init__(self, T: int):
        self.column, self.indent = np.zeros(T), np.zeros(T)
        self.col = self.lead = 0
        self.at_start = True

    def read(self, t: int, ch: str) -> None:
        if ch == "\n":
            self.col, self.lead, self.at_start = 0, 0, True
        else:
            self.col += 1
            if self.at_start and ch in " \t":
                self.lead += 1 if ch == " " else 4
            else:
                self.at_start = False
        self.column[t], self.indent[t] = self.col, self.lead


def code_features(text: str) -> dict[str, np.ndarray]:
    """Python-like source in one scan: strings ('', "", triple-quoted, backslash escapes; the quotes
    count as inside), # comments, bracket depth outside both, indentation, column."""
    T = len(text)
    lines = _Lines(T)
    inside, depth = np.zeros(T), np.zeros(T)
    quote, escaped, comment, level = None, False, False, 0
    t = 0
    while t < T:
        ch = text[t]
        n, in_string = 1, quote is not None  # characters in this token; inside a string after it
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif text.startswith(quote, t):  # the closing delimiter is part of the literal
                n, quote = len(quote), None
            elif ch == "\n" and len(quote) == 1:  # an unclosed one-line string (a syntax error): recover
                quote, in_string = None, False
        elif comment:
            comment = ch != "\n"
        elif ch == "#":
            comment = True
        elif ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, t) else ch
            n, in_string = len(quote), True
        elif ch in "([{":
            level += 1
        elif ch in ")]}":
            level = max(level - 1, 0)
        for k in range(t, min(t + n, T)):
            lines.read(k, text[k])
            inside[k], depth[k] = in_string, level
        t += n
    return {"inside string literal": inside, "bracket depth": depth, "indentation": lines.indent,
            "position in line": lines.column}


def prose_features(text: str) -> dict[str, np.ndarray]:
    """Inside double quotes (straight ones toggle; curly ones open and close), column, inside a word."""
    T = len(text)
    lines = _Lines(T)
    quoted, word = np.zeros(T), np.zeros(T)
    open_ = False
    for t, ch in enumerate(text):
        lines.read(t, ch)
        if ch == '"':
            open_ = not open_
        elif ch == "\u201c":
            open_ = True
        elif ch == "\u201d":
            open_ = False
        quoted[t] = open_ or ch in '"\u201d'  # the closing quote still belongs to the quotation
        word[t] = ch.isalpha() or (ch == "'" and 0 < t < T - 1 and text[t - 1].isalpha() and text[t + 1].isalpha())
    return {"inside quotes": quoted, "position in line": lines.column, "inside word": word}


def text_features(text: str, which: str = "auto") -> dict[str, np.ndarray]:
    """The code or prose features of `text` (auto: code if it looks like code)."""
    if which not in FEATURE_SETS:
        raise ValueError(f"features must be one of {FEATURE_SETS}; got {which!r}")
    if which == "code" or (which == "auto" and looks_like_code(text)):
        return code_features(text)
    return prose_features(text)


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values (T, N) with feature (T,); 0 where either is constant."""
    v = values.astype(np.float64) - values.mean(axis=0, dtype=np.float64)
    f = feature.astype(np.float64) - feature.mean()
    denom = np.sqrt((v * v).sum(axis=0) * (f @ f))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f @ v) / denom
    return np.where(denom > 0, r, 0.0)


def find_units(trace, features: dict[str, np.ndarray], per_feature: int = 5) -> list[dict]:
    """The `per_feature` units (any layer, h or c) with the largest |correlation| for each feature."""
    found = []
    for feature, f in features.items():
        rows = []
        for name, s in trace.states.items():  # s (L, T, H)
            for layer in range(s.shape[0]):
                r = correlations(s[layer], f)
                rows += [(abs(r[u]), layer, u, name, r[u]) for u in range(len(r))]
        rows.sort(key=lambda row: -row[0])
        found += [{"feature": feature, "layer": layer, "unit": unit, "state": name, "correlation": float(r)}
                  for _, layer, unit, name, r in rows[:per_feature] if _ > 0]
    return found
