"""The Numba backend of the time-loop driver: any cell definition's step, compiled inside one loop.

For each cell definition this module writes the source of its loop functions (forward_step, its
forward_step_lean for no_grad(), backward_step; the whole loops forward_sweep (forward_sweep_lean
under no_grad()), backward_sweep with the GEMM in Numba for one small sequence; forward_blas,
backward_blas, which call NumPy's own BLAS for each step's GEMM, for any batch; forward_part_lean,
under no_grad(), one thread's share of the hidden units, the threads meeting after each step, its
GEMM on W_hh^T packed once (packed.py), and forward_part_lean_x, which adds x_t W_ih^T in the same
GEMM), specialised to its number of gates G, state variables S and saved activations K, and
compiles them with the definition's own `forward` and `backward` inlined
(numba.njit(inline="always")): the cell's equations are never restated here. A step is one
compiled loop over the batch and the hidden units: no temporaries, nothing allocated per step; a
whole sequence is one compiled call, its GEMMs included, where NumPy's BLAS can be called from
Numba (numpy_blas()), else one call per step beside the driver's GEMM.

This module imports numba, so it is imported only on first use (FastPath.fused, __init__.py). The generated
source is written to a file named after a hash of itself and of the cell's code, under the cache
directory, so that Numba's on-disk cache (`cache=True`) serves later runs and a changed cell gets
a fresh compile.

Shapes: T = time, B = batch, H = hidden units, G = gates; a step reads and writes row t of
(T, B, ...) arrays. mask (T, B): 1 inside a sequence, 0 past its end (all ones without lengths).
How the loops are written follows what LLVM vectorizes: the loop over j has no branch inside and
writes no array it reads; the forward step patches held rows after all rows; the backward step
indexes per-gate (H,) views with j itself, the forward step offsets g * H + j; the biases are added
in the step, not in a separate pass over all T steps (BENCHMARKS.md).
"""
from __future__ import annotations

import ast
import ctypes
import functools
import hashlib
import inspect
import math
import os
import platform
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from ..nn import functional
from ..settings import settings
from . import packed
from .blas import handles as blas_handles
from .packed import pack, pack_rows, packed_matmul, packed_matmul2, packed_shape

jit = numba.njit(cache=True, error_model="numpy", nogil=True)  # numpy's x/0 -> inf: lets loops vectorize
# The loops may fuse a*b + c into one FMA (one rounding instead of two), and nothing else of fastmath:
# no reassociation, NaN and inf as IEEE has them. The LSTM's forward step is bound by its five
# activations' polynomials, which FMA shortens.
LOOP_FASTMATH = {"contract"}


# --- the activations of functional.py on scalars, typed per dtype ---------------------------------
# Each overload is compiled for the argument's own dtype with constants of that dtype, so float32
# stays float32 all the way.
def _constant(numba_type, value):
    """value as a scalar of the numba type's dtype (a compile-time constant in the loops)."""
    return as_dtype(numba_type).type(value)


def _tanh_float32(a):
    """tanh for float32 as a rational function (Eigen's and TensorFlow's): no libm call, so the
    loop vectorizes; max error 4e-7 against tanh in float64 (float32's own rounding is 6e-8)."""
    x = min(max(a, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@overload(functional.tanh)
def _tanh(a):
    if a == types.float32:
        return _tanh_float32
    return lambda a: math.tanh(a)  # float64: libm, exact to the last bit or so


@overload(functional.sigmoid)
def _sigmoid(a):
    half = _constant(a, 0.5)
    return lambda a: half + half * functional.tanh(half * a)


@overload(functional.relu)
def _relu(a):
    zero = _constant(a, 0.0)
    return lambda a: zero if a < zero else a  # NaN stays NaN, as np.maximum(a, 0)


@overload(functional.drelu_from_output)
def _drelu_from_output(y):
    zero, one = _constant(y, 0.0), _constant(y, 1.0)
    return lambda y: one if y > zero else zero


@overload(functional.dsigmoid_from_output)
def _dsigmoid_from_output(s):
    return lambda s: s - s * s


@overload(functional.dtanh_from_output)
def _dtanh_from_output(y):
    one = _constant(y, 1.0)
    return lambda y: one - y * y


tanh = functional.tanh  # for tests that call the float32 tanh from their own jitted code


# --- the loops, written per cell shape ------------------------------------------------------------
def _tuple(items) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _at(name: str, g: int) -> str:
    return f"{name}[j]" if g == 0 else f"{name}[{g} * H + j]"


def loop_source(G: int, S: int, K: int, dense: bool, apart: bool, blas: str = "", E: int = 0) -> str:
    """The loop functions for G gates, S state variables, K saved activations; `dense`: the
    recurrence is h W_hh^T (a GEMM between steps, hw), else u * h inside the step; `apart`: the x and
    h sides of the pre-activations have gradients of their own (then dHW is written, else only dXW);
    `blas`: the names of NumPy's BLAS functions where the loops may call them (numpy_blas()); E: the
    cell's own parameters, ex (E, H), handed to its functions per unit, their gradients summed into
    dex (E, H) by the backward step."""
    s = [f"s{k}" for k in range(S)]  # states (T+1, B, H)
    v = [f"v{k}" for k in range(K)]  # saved activations (T, B, H)
    fl = [f"flow{k}" for k in range(S)]  # recorded gradient flow (T or 1, B, H)
    d = [f"d{k}" for k in range(1, S)]  # running gradients of the state variables after h (B, H)
    a_x = [f"{_at('ax', g)} + {_at('bias_x', g)}" for g in range(G)]
    a_x_bias = [_at("bias_x", g) for g in range(G)]  # x_t W_ih^T in hw
    a_h = [_at("ah", g) if dense else f"{_at('u', g)} * p0[j]" for g in range(G)]
    if apart:
        a_h = [f"{a} + {_at('bias_h', g)}" for g, a in enumerate(a_h)]
    fwd_args = ", ".join(["xw", "rows", "hw", "bias_x", "bias_h", "u", "mask"] + s + v + ["ex"])
    p_fwd = f", {_tuple([f'q{k}[j]' for k in range(E)])}" if E else ""  # the cell's own parameters, per unit

    def forward_step(name: str, doc: str, save: bool, x_in_hw: bool = False) -> list[str]:
        """Step t's source for hidden units j0..j1-1; with save, it writes the saved activations v[t] too
        (else v0.. are not read); with x_in_hw, hw holds x_t W_ih^T + h W_hh^T and xw is not read."""
        return [
            "@jit",
            f"def {name}(t, j0, j1, {fwd_args}):",
            f'    """{doc}"""',
            f"    B, H, lo, hi = rows.shape[1], j1 - j0, {G} * j0, {G} * j1  # the units' G*H columns: lo..hi-1",
            "    bias_x, bias_h, u = bias_x[lo:hi], bias_h[lo:hi], u[lo:hi]",
            "    for b in range(B):",
            "        ah = hw[b][lo:hi]" if x_in_hw else "        ax, ah = xw[rows[t, b]][lo:hi], hw[b][lo:hi]",
            *[f"        p{k}, n{k} = s{k}[t, b][j0:j1], s{k}[t + 1, b][j0:j1]" for k in range(S)],
            *([f"        w{k} = v{k}[t, b][j0:j1]" for k in range(K)] if save else []),
            *[f"        q{k} = ex[{k}][j0:j1]" for k in range(E)],
            "        for j in range(H):",
            f"            new, saved = step({_tuple(a_x_bias if x_in_hw else a_x)}, {_tuple(a_h)}, "
            f"{_tuple([f'p{k}[j]' for k in range(S)])}{p_fwd})",
            *[f"            n{k}[j] = new[{k}]" for k in range(S)],
            *([f"            w{k}[j] = saved[{k}]" for k in range(K)] if save else []),
            "    for b in range(B):",
            "        if mask[t, b] == 0:  # past the end of its sequence the row holds its state",
            *[f"            _copy(s{k}[t, b][j0:j1], s{k}[t + 1, b][j0:j1])" for k in range(S)],
            "",
        ]

    out = forward_step("forward_step", "Step t: states s[t+1], saved v[t] from hw (h W_hh^T) and x W_ih^T, "
                       "row rows[t, b] of xw for row b; columns G*j0..G*j1-1 of xw, hw and the biases hold "
                       "the gates of units j0..j1-1, gate g at G*j0 + g*(j1-j0) + j (all units: PyTorch's order).",
                       save=True)
    out += forward_step("forward_step_lean", "forward_step without the saved activations (under no_grad(): "
                        "no backward will need them).", save=False)
    if dense and not apart:  # the _x loops' step: only a_x + a_h matters, and hw holds both sides
        out += forward_step("forward_step_lean_x", "forward_step_lean where hw holds x_t W_ih^T + h W_hh^T: a_x is "
                            "the bias alone (no row of zeros read from xw).", save=False,
                            x_in_hw=True)
    bwd_args = ", ".join(["t", "mask", "dy", "dh", "carry", "dXW", "dHW", "u"] + fl + s + v + d + ["ex", "dex"])
    dh_side = "dah" if apart else "dax"
    carry = "dprev[0]" + ("" if dense else "".join(f" + {dh_side}[{g}] * u{g}[j]" for g in range(G)))
    out += [
        "@jit",
        f"def backward_step({bwd_args}):",
        '    """Step t of BPTT: dXW[t] (dHW[t]) from the gradient reaching h_t (dh: through the GEMM, carry:',
        '    around it, dy[t]: from the output) and d1.. (the other state variables); leaves in carry and',
        '    d1.. the gradient reaching step t-1 around the GEMM, records flow[t] (one row: not recording)."""',
        "    B, H = dh.shape",
        "    row = t if flow0.shape[0] > t else 0",
        *[f"    q{k}, dq{k} = ex[{k}], dex[{k}]" for k in range(E)],
        "    for b in range(B):",
        "        dh_b, carry_b, dy_b = dh[b], carry[b], dy[t, b]",
        *[f"        fl{k} = flow{k}[row, b]" for k in range(S)],
        *[f"        e{k} = d{k}[b]" for k in range(1, S)],
        "        if mask[t, b] == 0:  # a held step passes its gradient straight through; its gates get nothing",
        "            for j in range(H):",
        "                carry_b[j] += dh_b[j]",
        *[f"                fl{k}[j] = 0" for k in range(S)],
        "            _fill(dXW[t, b], 0)",
        *(["            _fill(dHW[t, b], 0)"] if apart else []),
        "            continue",
        "        gx, gh = dXW[t, b], dHW[t, b]",
        *[f"        gx{g} = gx[{g} * H:{g + 1} * H]" for g in range(G)],
        *([f"        gh{g} = gh[{g} * H:{g + 1} * H]" for g in range(G)] if apart else []),
        *([f"        u{g} = u[{g} * H:{g + 1} * H]" for g in range(G)] if not dense else []),
        *[f"        p{k}, n{k} = s{k}[t, b], s{k}[t + 1, b]" for k in range(S)],
        *[f"        w{k} = v{k}[t, b]" for k in range(K)],
        "        for j in range(H):",
        "            g0 = dh_b[j] + carry_b[j] + dy_b[j]",
        f"            dax, dah, dprev, dall{', dp' if E else ''} = back({_tuple([f'w{k}[j]' for k in range(K)])}, "
        f"{_tuple([f'p{k}[j]' for k in range(S)])}, {_tuple([f'n{k}[j]' for k in range(S)])}, "
        f"{_tuple(['g0'] + [f'e{k}[j]' for k in range(1, S)])}{p_fwd})",
        *[f"            dq{k}[j] += dp[{k}]" for k in range(E)],
        *[f"            gx{g}[j] = dax[{g}]" for g in range(G)],
        *([f"            gh{g}[j] = dah[{g}]" for g in range(G)] if apart else []),
        f"            carry_b[j] = {carry}",
        *[f"            e{k}[j] = dprev[{k}]" for k in range(1, S)],
        *[f"            fl{k}[j] = dall[{k}]" for k in range(S)],
        "",
    ]
    def forward_loop(name: str, weights: str, gemm: str, step: str, doc: str) -> list[str]:
        """The whole forward loop in one call: each step's GEMM `gemm` (of {a} into {out}) on the
        `weights` arguments (W_hh^T or its packed form), then `step` over every unit."""
        return [
            "@jit",
            f"def {name}({weights.format(W='W_hh_T')}, {fwd_args}):",
            f'    """{doc}"""',
            "    for t in range(rows.shape[0]):",
            *([f"        {gemm.format(a='s0[t]', W='W_hh_T', out='hw')}"] if dense else []),
            f"        {step}(t, 0, s0.shape[2], {fwd_args})",
            "",
        ]

    def sweeps(suffix: str, weights: str, gemm: str, doc: str) -> list[str]:
        """The whole loops, forward and backward, each step's GEMM `gemm` (of {a} into {out}) on the
        `weights` arguments (W_hh^T in the forward, W_hh in the backward, or their packed forms)."""
        return [
            *forward_loop(f"forward_{suffix}", weights, gemm, "forward_step",
                          f"The whole forward loop in one call ({doc})."),
            "@jit",
            f"def backward_{suffix}({weights.format(W='W_hh')}, {bwd_args.replace('t, ', '', 1)}):",
            f'    """The whole backward loop in one call ({doc})."""',
            "    for t in range(dXW.shape[0] - 1, -1, -1):",
            f"        backward_step({bwd_args})",
            *([f"        {gemm.format(a='dHW[t]', W='W_hh', out='dh')}"] if dense else []),
            "",
        ]

    out += sweeps("sweep", "{W}", "matmul({a}, {W}, {out})", "one small sequence at a time: the GEMM in Numba")
    out += forward_loop("forward_sweep_lean", "{W}", "matmul({a}, {W}, {out})", "forward_step_lean",  # batch 1
                        "forward_sweep without the saved activations (under no_grad(): v0.. are not read).")
    if dense and blas:  # the GEMM by NumPy's own BLAS, called from the loop: no Python between steps
        out += [f"# NumPy's BLAS: {blas}", ""]
        out += sweeps("blas", "{W}", "blas_matmul({a}, {W}, {out})", "any batch: each step's GEMM one call of NumPy's BLAS")
    if dense:  # the GEMM on the weights packed once, one thread (packed.py)
        out += sweeps("packed", "{W}_packed, scratch", "packed_matmul({a}, {W}_packed, {out}, scratch)",
                      "any batch: each step's GEMM on the weights packed once")
    # under no_grad(): the units shared among threads (threads.py), the GEMM on W_hh^T packed once
    # (packed.py); with x_t W_ih^T in that GEMM ("_x") where only a_x + a_h matters
    first = {"": ("packed, scratch", "packed_matmul(s0[t], packed, hw_part, scratch)", "forward_step_lean"),
             "_x": ("x, packed_x, packed, scratch", "packed_matmul2(x[t], packed_x, s0[t], packed, hw_part, scratch)",
                    "forward_step_lean_x")}
    for suffix, (operands, gemm, step_a) in first.items() if dense else ():
        if suffix and apart:
            continue
        out += [
            "@jit",
            f"def forward_part_lean{suffix}(part, flags, j0, j1, {operands}, {fwd_args}):",
            '    """This thread\'s part of the lean forward loop: units j0..j1-1, their G*(j1-j0) columns of',
            "    W_hh^T (and W_ih^T, x (T, B, D): then xw is not read) packed alone, together in the",
            "    weights' order; each step's GEMM on them, then the wait at meet() until every part has",
            '    finished the step, since each reads all of h_t next (one part: units 0..H-1, no wait)."""',
            f"    hw_part = hw[:, {G} * j0:{G} * j1]",
            "    for t in range(rows.shape[0]):",
            f"        {gemm}",
            f"        {step_a}(t, j0, j1, {fwd_args})",
            "        meet(flags, part, t + 1)",
            "",
        ]
    return "\n".join(out)


class Loops:
    """The compiled loop functions of one cell definition (attributes forward_step, ..., backward_sweep;
    forward_blas and backward_blas are None where NumPy's BLAS cannot be called, forward_part_lean
    where the recurrence has no GEMM, forward_part_lean_x also where the x and h sides are apart)."""

    def __init__(self, namespace: dict):
        for name in ("forward_step", "forward_step_lean", "backward_step", "forward_sweep", "forward_sweep_lean",
                     "backward_sweep", "forward_blas", "backward_blas", "forward_packed", "backward_packed",
                     "forward_part_lean", "forward_part_lean_x"):
            setattr(self, name, namespace.get(name))


def loops_for(cell, dtype=np.float64) -> Loops:
    """The compiled loops of a cell definition for float32 or float64 arrays, generated and compiled
    once per process (kept in rnnlab.settings.fast.compiled, by cell and dtype)."""
    compiled, dtype = settings.fast.compiled, np.dtype(dtype)
    if ("loops", cell, dtype) not in compiled:
        blas = numpy_blas()
        source = f"# the loops of cell {cell.name!r} on {dtype.name} arrays\n" + loop_source(
            cell.G, len(cell.state_names), len(cell.saved), cell.recurrence == "dense", cell.h_side_apart,
            " ".join(blas[:2]) if blas else "", len(cell.extra_parameters))
        inline = numba.njit(inline="always", error_model="numpy", fastmath=LOOP_FASTMATH)
        module = generated_module(cell, source, f"loops_{dtype.name}", {
            "matmul": matmul, "blas_matmul": blas_matmul, "packed_matmul": packed_matmul,
            "packed_matmul2": packed_matmul2, "meet": meet, "_copy": _copy, "_fill": _fill,
            "step": inline(literals_of_dtype(cell.forward, dtype)),
            "back": inline(literals_of_dtype(cell.backward, dtype))}, fastmath=LOOP_FASTMATH)
        compiled["loops", cell, dtype] = Loops(module.__dict__)
    return compiled["loops", cell, dtype]


_LITERAL = "_rnnlab_literal"  # the dtype's scalar type, in the namespace of a cell function's typed copy


def literals_of_dtype(fn, dtype):
    """A copy of the cell function fn whose number literals are scalars of `dtype`: every float literal,
    and every int literal in arithmetic. Numba types a Python float or int as 64 bits, so `1 - f` or
    `0.5 * a` would turn a float32 loop into float64 arithmetic. fn itself for float64, or where its
    source cannot be read."""
    if np.dtype(dtype) == np.float64:
        return fn
    try:
        source, filename = textwrap.dedent(inspect.getsource(fn)), inspect.getsourcefile(fn)
    except (OSError, TypeError):
        return fn

    def typed(node):
        return ast.copy_location(ast.Call(ast.Name(_LITERAL, ast.Load()), [node], []), node)

    class Literals(ast.NodeTransformer):
        def visit_Constant(self, node):
            return typed(node) if isinstance(node.value, float) else node

        def visit_BinOp(self, node):
            self.generic_visit(node)
            for side in ("left", "right"):
                value = getattr(node, side)
                if isinstance(value, ast.Constant) and type(value.value) is int:
                    setattr(node, side, typed(value))
            return node

    tree = ast.fix_missing_locations(Literals().visit(ast.parse(source)))
    ast.increment_lineno(tree, fn.__code__.co_firstlineno - 1)
    namespace = {**fn.__globals__, _LITERAL: np.dtype(dtype).type}
    exec(compile(tree, filename or "<cell>", "exec"), namespace)
    return namespace[fn.__name__]


def generated_module(cell, source: str, kind: str, namespace: dict, fastmath=frozenset()) -> ModuleType:
    """Generated `source` for a cell, compiled as a module of its own with `namespace` and `jit` (with
    these fastmath flags) in its globals; Numba's disk cache serves it where the source could be
    written to a file."""
    filename = _source_file(cell, source)
    cached = not filename.startswith("<")  # Numba caches only functions with a source file
    # in sys.modules under its own name: Numba's cache finds the module's globals there by name
    module = ModuleType(f"_rnnlab_{kind}_{Path(filename).stem if cached else cell.name}")
    module.__dict__.update({"jit": numba.njit(cache=cached, error_model="numpy", nogil=True, fastmath=set(fastmath)),
                            **namespace})
    sys.modules[module.__name__] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def _source_file(cell, source: str) -> str:
    """A file holding `source`, named after a hash of it and of the code it inlines, for Numba's
    on-disk cache; "<generated>" (no disk cache) where no cache directory can be written."""
    parts = [source, numba.__version__, sys.version, inspect.getsource(sys.modules[__name__]), inspect.getsource(packed)]
    for fn in (cell.forward, cell.backward, *vars(functional).values()):
        if inspect.isfunction(fn):
            try:
                parts.append(inspect.getsource(fn))
            except (OSError, TypeError):  # defined where its source cannot be read: no disk cache
                return f"<rnnlab {cell.name} loops>"
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    base = os.environ.get("RNNLAB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "rnnlab")
    path = Path(base) / "loops" / f"{cell.name}_{digest}.py"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)
    except OSError:
        return f"<rnnlab {cell.name} loops>"
    return str(path)


@jit
def matmul(a, b, out):
    """out = a @ b for a (M, K), b (K, N), M small (the whole-loop sweeps, B = 1, where calling BLAS from
    Python each step costs more than the arithmetic): each row of out is a sum of rows of b, taken four
    at a time (one pass over the output row per four rows of b); the inner loop vectorizes."""
    M, K = a.shape
    N = b.shape[1]
    for i in range(M):
        row = out[i]
        _fill(row, 0)
        k = 0
        while k + 4 <= K:
            a0, a1, a2, a3 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
            b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
            for n in range(N):
                row[n] += a0 * b0[n] + a1 * b1[n] + a2 * b2[n] + a3 * b3[n]
            k += 4
        for k in range(k, K):
            a_ik, b_k = a[i, k], b[k]
            for n in range(N):
                row[n] += a_ik * b_k[n]



@jit
def add_rows(values, ids, out):
    """out[ids[n]] += values[n] for each row n in order (loop.py's scatter of an embedding's rows): one pass over values
    (N, F), where NumPy needs a (V, N) one-hot GEMM or a sort."""
    for n in range(values.shape[0]):
        row, value = out[ids[n]], values[n]
        for j in range(values.shape[1]):
            row[j] += value[j]


# --- NumPy's own BLAS, called from the loops ---------------------------------------------------
# The per-step GEMM called from Python costs a NumPy call and a Numba call per step; called from
# Numba the loop is one call. It must be NumPy's own
# library: the one threads.py sets the threads of, with one thread pool in the process.
_BLAS_NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", 64),  # NumPy's wheels (scipy-openblas, ILP64)
               ("cblas_sgemm64_", "cblas_dgemm64_", 64), ("cblas_sgemm", "cblas_dgemm", 32))


@functools.cache
def numpy_blas():
    """(sgemm, dgemm, int bits): NumPy's BLAS's CBLAS GEMMs by name, the library loaded for the loops
    to link against; None where none of the known names is there (then the driver calls BLAS per step)."""
    for path, handle in blas_handles():
        found = next((names for names in _BLAS_NAMES
                      if all(hasattr(handle, n) for n in names[:2]) and _gemm_works(handle, *names)), None)
        if found is not None:
            llvmlite.binding.load_library_permanently(path)
            return found
    return None


def _gemm_works(handle, sgemm: str, dgemm: str, bits: int) -> bool:
    """Whether the library's sgemm, called with `bits`-bit integers as the loops will call it, multiplies
    a (2, 3) by a (3, 2) matrix right (an LP64 library under a name taken for ILP64 would not)."""
    index = ctypes.c_int64 if bits == 64 else ctypes.c_int32
    gemm = getattr(handle, sgemm)
    gemm.restype = None
    gemm.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [ctypes.c_float, ctypes.c_void_p, index, ctypes.c_void_p, index,
                                                        ctypes.c_float, ctypes.c_void_p, index]
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(6, dtype=np.float32).reshape(3, 2)
    out = np.zeros((2, 2), np.float32)
    gemm(101, 111, 111, 2, 2, 3, 1.0, a.ctypes.data, 3, b.ctypes.data, 2, 0.0, out.ctypes.data, 2)
    return bool(np.array_equal(out, a @ b))


def blas_matmul(a, b, out):
    """out = a @ b for a (M, K), b (K, N), out (M, N), each with unit stride along its rows (a block of
    columns of a C-ordered array will do): one call of NumPy's BLAS (in compiled code)."""
    raise NotImplementedError("blas_matmul runs only inside compiled loops")


@overload(blas_matmul)
def _blas_matmul(a, b, out):
    sgemm, dgemm, bits = numpy_blas()
    real, name = (types.float32, sgemm) if a.dtype == types.float32 else (types.float64, dgemm)
    ints = types.int64 if bits == 64 else types.int32
    gemm = types.ExternalFunction(name, types.void(types.int32, types.int32, types.int32, ints, ints, ints, real,
                                                   types.intp, ints, types.intp, ints, real, types.intp, ints))
    one, zero = _constant(a.dtype, 1.0), _constant(a.dtype, 0.0)
    row_major, no_trans = 101, 111  # CblasRowMajor, CblasNoTrans

    def impl(a, b, out):
        M, K = a.shape
        N = b.shape[1]
        size = a.itemsize  # the leading dimensions: each matrix's row stride, in elements
        gemm(row_major, no_trans, no_trans, M, N, K, one, a.ctypes.data, a.strides[0] // size,
             b.ctypes.data, b.strides[0] // size, zero, out.ctypes.data, out.strides[0] // size)
    return impl


# --- the threads of one forward loop meet after each step -----------------------------------------
# Each of P threads runs the whole loop for its share of the hidden units (loop.py); before step
# t+1 it needs every unit of h_t. A thread says "step t done" by storing t+1 in its own slot of
# `flags` and waits until every slot reads t+1 or more: an atomic store (release: h_t's values are
# visible before it) and atomic loads (acquire), which LLVM neither drops nor hoists out of the wait.
# The slots lie 128 bytes apart, so that no two threads write one cache line.
FLAG_STRIDE = 16  # int64 slots between two threads' flags


def meet_flags(parts: int) -> np.ndarray:
    """The flags for `parts` threads meeting after each step, all at 0 (no step done)."""
    return np.zeros(parts * FLAG_STRIDE, np.int64)


@intrinsic
def _load_acquire(typingctx, array, index):
    def codegen(context, builder, signature, args):
        pointer = _item_pointer(context, builder, signature.args[0], args)
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[2], _item_pointer(context, builder, signature.args[0], args), "release", 8)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


def _item_pointer(context, builder, array_type, args):
    array = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])


@intrinsic
def _spin_pause(typingctx):
    """x86's pause: a spinning thread yields the core's resources to its sibling (nothing elsewhere)."""
    def codegen(context, builder, signature, args):
        if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()
    return types.void(), codegen


_sched_yield = types.ExternalFunction("sched_yield", types.int32())  # POSIX: give the core to another thread
SPINS = 4000  # pauses before a waiting thread yields its core: about as long as a short step


@jit
def meet(flags, part, count):
    """Store count in this part's slot, then wait until every part's slot reads count or more."""
    _store_release(flags, part * FLAG_STRIDE, count)
    for other in range(0, flags.size, FLAG_STRIDE):
        spins = 0
        while _load_acquire(flags, other) < count:
            spins += 1
            if spins < SPINS:
                _spin_pause()
            else:  # the other thread is not running (another program took its core): let it run
                _sched_yield()


# --- a part's operands, made in its own thread as its loop starts (loop._part_operands) ---------
@jit
def pack_part(W_hh, W_ih, rows, packed_h, packed_x, inputs, xw_part, scratch):
    """Its gate rows of W_hh and W_ih packed; where xw_part has rows, its columns of xw as well:
    inputs W_ih[rows]^T (the embedding's projected table, or x W_ih^T over all steps). One compiled
    call, so that the parts' threads never wait for each other's Python."""
    pack_rows(W_hh, rows, packed_h)
    pack_rows(W_ih, rows, packed_x)
    if xw_part.shape[0] > 0:
        packed_matmul(inputs, packed_x, xw_part, scratch)


# --- helpers: loops, not slices (a slice assignment costs seconds of compile time) --------------
@jit
def _copy(src, dst):
    for j in range(src.shape[0]):
        dst[j] = src[j]


@jit
def _fill(dst, value):
    for j in range(dst.shape[0]):
        dst[j] = value
