"""Input checks that run before any work starts: option ranges and memory estimates.

Each rule is written once and named two ways: by its field for the library ("eval_batches must be an
integer >= 0") and by its flag for the command line ("--eval-batches must be ..."). The memory
estimates are arithmetic on the sizes only, so an impossible run is refused in microseconds with the
estimate in bytes, instead of a MemoryError minutes later (or a machine swapping to death).

    problem = check_value(-3, INT_GE0)                 # "must be an integer >= 0; got -3"
    need = char_rnn_training_bytes(vocab=100, cell="lstm", hidden=10**6, layers=2, embedding=64,
                                   batch=32, seq_len=64, dtype="float32")
    require_memory(need, "this run", "--hidden, --layers")   # MemoryLimitError naming the options
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass



def gates(cell: str) -> int:
    """G, the gates of a registered cell (4, the LSTM's, for an unknown name: estimates stay generous)."""
    from .nn.cells import cell_names, get_cell

    return get_cell(cell).G if cell in cell_names() else 4


# -- option ranges ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An allowed range: an integer or a finite real, with a lower bound (and an optional upper one)."""

    kind: str                       # "int" | "real"
    low: float
    low_open: bool = False          # low < x instead of low <= x
    high: float | None = None
    high_open: bool = True
    optional: bool = False          # None is allowed (the default applies)
    note: str = ""                  # what a special value means, e.g. "0: no clipping"

    def describe(self) -> str:
        what = "an integer" if self.kind == "int" else "a finite number"
        if self.high is None:
            text = f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = (f"{what} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                    f"{')' if self.high_open else ']'}")
        return text + (f" ({self.note})" if self.note else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


POSITIVE_INT = Rule("int", 1)
INT_GE0 = Rule("int", 0)
POSITIVE_REAL = Rule("real", 0, low_open=True)
REAL_GE0 = Rule("real", 0)
PROBABILITY = Rule("real", 0, high=1)
SEED = Rule("int", 0, note="any integer from 0 up")


def check_value(value, rule: Rule) -> str | None:
    """None if `value` obeys `rule`, else "must be ...; got VALUE"."""
    if value is None and rule.optional:
        return None
    ok = not isinstance(value, bool)
    if ok and rule.kind == "int":
        ok = isinstance(value, numbers.Integral)
    elif ok:
        ok = isinstance(value, numbers.Real) and math.isfinite(value)
    if ok:
        ok = (value > rule.low) if rule.low_open else (value >= rule.low)
    if ok and rule.high is not None:
        ok = (value < rule.high) if rule.high_open else (value <= rule.high)
    return None if ok else f"must be {rule.describe()}; got {value!r}"


def flag(name: str) -> str:
    """The command-line spelling of a field name: eval_batches -> --eval-batches."""
    return "--" + name.replace("_", "-")


def check_values(values: dict, rules: dict[str, Rule], *, as_flags: bool = False) -> list[str]:
    """Every broken rule among `values` (names missing from `values` are skipped), one line each."""
    problems = []
    for name, rule in rules.items():
        if name in values:
            problem = check_value(values[name], rule)
            if problem:
                problems.append(f"{flag(name) if as_flags else name} {problem}")
    return problems


def check_out_dir(value, what: str = "--out") -> None:
    """A directory path we may create or write into, checked without creating anything."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"{what} must name a directory; got {str(value)!r} (use --out . for the "
                         "current directory)")
    path = os.path.abspath(os.path.expanduser(os.fspath(value)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {value}: exists and is not a directory; choose a directory")
    parent = path
    while not os.path.exists(parent):  # the nearest ancestor that exists must be a writable directory
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{what} {value}: cannot create a directory inside {parent}, which is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {value}: {parent} is not writable (permission denied)")


# -- memory ----------------------------------------------------------------------------------------
class MemoryLimitError(ValueError):
    """A run whose estimated memory exceeds this machine's; the message gives bytes and the options."""


def machine_memory() -> int | None:
    """Bytes of memory this process may use: RAM, lowered by a cgroup limit; $RNNLAB_MEMORY_LIMIT wins."""
    env = os.environ.get("RNNLAB_MEMORY_LIMIT")
    if env:
        try:
            return int(float(env))
        except ValueError:
            pass
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                limit = int(f.read().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if 0 < limit < (total or float("inf")):
            total = limit
    return total


def format_bytes(n: float) -> str:
    """'64.0 TB (64,000,000,000,000 bytes)': readable, and the exact figure."""
    value, unit = float(n), "bytes"
    for name in ("kB", "MB", "GB", "TB", "PB", "EB"):
        if value < 1000:
            break
        value, unit = value / 1000, name
    exact = f"{int(n):,} bytes"
    return exact if unit == "bytes" else f"{value:.1f} {unit} ({exact})"


def require_memory(need: int, what: str, options: str) -> None:
    """MemoryLimitError if `need` bytes exceed this machine's memory; `options` says what to lower."""
    have = machine_memory()
    if have is not None and need > have:
        raise MemoryLimitError(f"{what} needs about {format_bytes(need)} of memory, more than this machine's "
                               f"{format_bytes(have)}; lower {options}")


def char_rnn_parameters(vocab: int, cell: str, hidden: int, layers: int, embedding: int) -> int:
    """Parameter count of a CharRNN: embedding V x E, per layer G*H x (in + H) and two G*H biases, head."""
    G = gates(cell)
    first = G * hidden * (embedding + hidden) + 2 * G * hidden
    rest = (layers - 1) * (G * hidden * 2 * hidden + 2 * G * hidden)
    return vocab * embedding + first + rest + hidden * vocab + vocab


def bptt_cache_floats(batch: int, seq_len: int, hidden: int, layers: int, cell: str) -> int:
    """Floats kept for backward over one chunk: per step, layer and stream, the input projection and
    gate activations (2G x H) and the states and their tanh (about 4 x H)."""
    return batch * seq_len * layers * hidden * (2 * gates(cell) + 4)


def char_rnn_training_bytes(*, vocab: int, cell: str, hidden: int, layers: int, embedding: int, batch: int,
                            seq_len: int, dtype: str = "float32") -> int:
    """Weights, gradients and two optimizer moments (4 copies of the parameters), the BPTT cache,
    and the logits, probabilities and their gradient (3 x B x T x V)."""
    itemsize = 8 if dtype == "float64" else 4
    params = char_rnn_parameters(vocab, cell, hidden, layers, embedding)
    per_chunk = bptt_cache_floats(batch, seq_len, hidden, layers, cell) + batch * seq_len * (embedding + 3 * vocab)
    return itemsize * (4 * params + per_chunk)


def char_rnn_memory_hint(*, vocab: int, cell: str, hidden: int, layers: int, embedding: int, batch: int,
                         seq_len: int) -> str:
    """The options to lower, the biggest term first."""
    params = char_rnn_parameters(vocab, cell, hidden, layers, embedding) * 4
    cache = bptt_cache_floats(batch, seq_len, hidden, layers, cell)
    weights = "--hidden or --layers"
    chunk = "--batch or --seq-len (the BPTT cache is batch x seq-len x hidden x layers)"
    return f"{weights}, or {chunk}" if params >= cache else f"{chunk}, or {weights}"


def check_char_rnn_memory(*, vocab: int, cell: str, hidden: int, layers: int, embedding: int, batch: int,
                          seq_len: int, dtype: str = "float32", what: str = "this run",
                          data: tuple[int, str] | None = None) -> None:
    """MemoryLimitError where the model, its BPTT cache and (data: (bytes, what)) the reading of the
    text cannot fit; the message names the bigger part and the way out."""
    sizes = dict(vocab=vocab, cell=cell, hidden=hidden, layers=layers, embedding=embedding, batch=batch,
                 seq_len=seq_len)
    model = char_rnn_training_bytes(dtype=dtype, **sizes)
    data_bytes, data_what = data if data is not None else (0, "")
    hint = char_rnn_memory_hint(**sizes)
    if data_bytes > model:
        hint = f"the text's size (train on a part of it: head -c 100M in.txt > part.txt), or {hint}"
    where = f"{what} ({cell}, hidden {hidden}, {layers} layers, batch {batch} x seq-len {seq_len}"
    where += f"; {format_bytes(data_bytes)} for {data_what})" if data_bytes else ")"
    require_memory(model + data_bytes, where, hint)


def sequence_model_bytes(*, batch: int, seq_len: int, hidden: int, layers: int = 1, cell: str = "lstm",
                         examples: int = 0, features: int = 16, itemsize: int = 8) -> int:
    """A task model (experiments, demos, diagnose): BPTT cache of one batch, `examples` held-out
    sequences of `features` floats per step, and the recurrent weights."""
    G = gates(cell)
    cache = bptt_cache_floats(batch, seq_len, hidden, layers, cell)
    data = (batch + examples) * seq_len * features
    weights = 4 * layers * G * hidden * 2 * hidden
    return itemsize * (cache + data + weights)


MAX_CONNECTIVITY_VALUES = 5_000_000  # positions x window in one page: about 11 MB of it (2.2 bytes a value)


def explore_bytes(*, chars: int, positions: int, window: int, vocab: int, cell: str, hidden: int, layers: int,
                  embedding: int, models: int = 1, group: int = 32, itemsize: int = 4) -> int:
    """`rnnlab explore` on `chars` characters, per model: the trace (states and gates, L x T x H each,
    and log p, T x V in float64), one batch of `group` windows through BPTT for the connectivity, and
    the positions x window norms the page keeps (float64 rows, their concatenation and the codec's
    working arrays: about 24 bytes a value). The last term is the one that grows quadratically."""
    batch = min(group, positions)
    trace = itemsize * layers * chars * hidden * (2 + gates(cell)) + 2 * 8 * chars * vocab
    bptt = itemsize * (bptt_cache_floats(batch, window, hidden, layers, cell) + 2 * batch * window * embedding)
    return models * (trace + bptt + 24 * positions * window)


def check_explore_size(*, chars: int, positions: int, window: int, **sizes) -> None:
    """ValueError (MemoryLimitError) before any work when the connectivity would not fit a page or memory.
    positions and window as they will be computed (at most chars - 1 positions, window at most chars)."""
    values = positions * window
    if values > MAX_CONNECTIVITY_VALUES:
        raise ValueError(f"connectivity at {positions:,} positions x {window:,} characters back is {values:,} "
                         f"values, more than one page holds ({MAX_CONNECTIVITY_VALUES:,}); lower --positions or "
                         "--window")
    need = explore_bytes(chars=chars, positions=positions, window=window, **sizes)
    require_memory(need, f"exploring {chars:,} characters (connectivity at {positions:,} positions x {window:,} "
                         "back)", "--positions, --window or --chars")


__all__ = ["Rule", "check_value", "check_values", "check_out_dir", "flag", "MemoryLimitError", "machine_memory",
           "format_bytes", "require_memory", "char_rnn_parameters", "char_rnn_training_bytes",
           "check_char_rnn_memory", "sequence_model_bytes", "explore_bytes", "check_explore_size",
           "POSITIVE_INT", "INT_GE0", "POSITIVE_REAL",
           "REAL_GE0", "PROBABILITY", "SEED"]
