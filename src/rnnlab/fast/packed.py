"""The time loop's recurrent GEMM, h_{t-1} W_hh^T, with W_hh^T packed once per sequence.

BLAS packs both operands on every call, and W_hh^T is the same at every step. Here it is packed
once per forward (pack): column blocks of NR, each block's K rows of NR in a row, read in order by
a micro-kernel that computes a tile of RB rows x NR columns of the product with its RB * NV vector
accumulators held in registers over the whole sum over k (the GotoBLAS scheme without its repacking).
For the small per-step GEMMs it beats BLAS, which packs both operands on every call (BENCHMARKS.md).

The micro-kernel is written in LLVM IR (a Numba intrinsic) on vectors of the CPU's widest width
(llvmlite's view of the host): the same tile written as Python on scalars is not vectorized by
LLVM. RB and NV keep the accumulators within the registers: 8 x 2 vectors of 16 floats
on AVX-512 (32 registers), 4 x 2 on AVX2 (16).

Shapes: a (M, K) (h_{t-1}: M = B rows), W^T (K, N) (N = G*H columns, or one thread's share),
packed (ceil(N / NR), K, NR), zero past column N; out (M, N), any row stride.
"""
from __future__ import annotations

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

VECTOR_BYTES = 64 if "+avx512f" in llvmlite.binding.get_host_cpu_features().flatten() else 32
TILE_ROWS = 8 if VECTOR_BYTES == 64 else 4  # RB: 16 or 8 accumulators, half the vector registers
TILE_VECTORS = 2  # NV: vectors per tile row


def block_width(dtype, vector_bytes: int = VECTOR_BYTES) -> int:
    """NR: the columns of one packed block (and of one tile) for this dtype."""
    return TILE_VECTORS * vector_bytes // np.dtype(dtype).itemsize


def packed_shape(N: int, K: int, dtype, vector_bytes: int = VECTOR_BYTES) -> tuple[int, int, int]:
    """The shape of W^T (K, N) packed: (ceil(N / NR), K, NR)."""
    NR = block_width(dtype, vector_bytes)
    return -(-N // NR), K, NR


def pack(W: np.ndarray, out: np.ndarray | None = None, vector_bytes: int = VECTOR_BYTES,
         rows: np.ndarray | None = None) -> np.ndarray:
    """W (N, K), the rows of W_hh whose product h W^T is wanted -> W^T packed (ceil(N / NR), K, NR),
    into `out` where given (of that shape). With `rows` (N indices), the rows W[rows] instead, taken
    where they lie (one thread's gate rows, in its own order: no permuted copy of W first)."""
    N = len(W) if rows is None else len(rows)
    K = W.shape[1]
    shape = packed_shape(N, K, W.dtype, vector_bytes)
    if out is None:
        out = np.empty(shape, W.dtype)
    pack_rows(W, np.arange(N) if rows is None else rows, out)
    return out


def _tile(rows: int, vector_bytes: int, sources: int):
    """An intrinsic tile(a, packed, [a2, packed2,] r, block, out, j): out[r:r+rows, j:j+NR] =
    a[r:r+rows] @ block `block` of packed (+ a2[r:r+rows] @ block `block` of packed2): the accumulators
    are LLVM vector values (phi nodes) through every k of each source in turn, one FMA per vector and k."""
    def codegen(context, builder, signature, args):
        operands = [(context.make_array(signature.args[2 * n])(context, builder, args[2 * n]),
                     context.make_array(signature.args[2 * n + 1])(context, builder, args[2 * n + 1]))
                    for n in range(sources)]
        r, block, j = args[2 * sources], args[2 * sources + 1], args[2 * sources + 3]
        C = context.make_array(signature.args[2 * sources + 2])(context, builder, args[2 * sources + 2])
        real = context.get_value_type(signature.args[0].dtype)
        size = context.get_abi_sizeof(real)
        width = vector_bytes // size
        NR = TILE_VECTORS * width
        vector, i64, i32 = ir.VectorType(real, width), ir.IntType(64), ir.IntType(32)

        def const(value):
            return ir.Constant(i64, value)

        def row_stride(array):
            return builder.sdiv(cgutils.unpack_tuple(builder, array.strides, 2)[0], const(size))

        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                             f"llvm.fma.v{width}{'f32' if size == 4 else 'f64'}")
        undef = ir.Constant(vector, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, width), [0] * width)
        acc = [[ir.Constant(vector, [0.0] * width)] * TILE_VECTORS for _ in range(rows)]
        for A, P in operands:  # the sum over k of one source, continuing the accumulators
            lda, K = row_stride(A), cgutils.unpack_tuple(builder, P.shape, 3)[1]
            a0 = builder.gep(A.data, [builder.mul(r, lda)])  # row r of a
            p0 = builder.gep(P.data, [builder.mul(builder.mul(block, K), const(NR))])  # the block's row 0
            before = builder.basic_block
            loop, done = builder.append_basic_block("tile.k"), builder.append_basic_block("tile.k.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), before)
            phis = [[builder.phi(vector) for _ in range(TILE_VECTORS)] for _ in range(rows)]
            for phi_row, start in zip(phis, acc):
                for phi, value in zip(phi_row, start):
                    phi.add_incoming(value, before)
            p_k = builder.gep(p0, [builder.mul(k, const(NR))])  # row k of the block: NR values
            w = [builder.load(builder.bitcast(builder.gep(p_k, [const(v * width)]), vector.as_pointer()), align=size)
                 for v in range(TILE_VECTORS)]
            acc = []
            for row in range(rows):  # a[r + row, k] broadcast, times the block's row k
                value = builder.load(builder.gep(a0, [builder.add(builder.mul(const(row), lda), k)]))
                broadcast = builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(i32, 0)), undef, splat)
                acc.append([builder.call(fma, [broadcast, w[v], phis[row][v]]) for v in range(TILE_VECTORS)])
            k_next = builder.add(k, const(1))
            k.add_incoming(k_next, loop)
            for phi_row, new_row in zip(phis, acc):
                for phi, value in zip(phi_row, new_row):
                    phi.add_incoming(value, loop)
            builder.cbranch(builder.icmp_signed("<", k_next, K), loop, done)
            builder.position_at_end(done)
        ldc = row_stride(C)
        c0 = builder.gep(C.data, [builder.add(builder.mul(r, ldc), j)])
        for row in range(rows):
            c_row = builder.gep(c0, [builder.mul(const(row), ldc)])
            for v in range(TILE_VECTORS):
                builder.store(acc[row][v], builder.bitcast(builder.gep(c_row, [const(v * width)]), vector.as_pointer()),
                              align=size)
        return context.get_dummy_value()

    if sources == 1:
        @intrinsic
        def tile(typingctx, a, packed, r, block, out, j):
            return types.void(a, packed, r, block, out, j), codegen
    else:
        @intrinsic
        def tile(typingctx, a, packed, a2, packed2, r, block, out, j):
            return types.void(a, packed, a2, packed2, r, block, out, j), codegen
    return tile


jit = numba.njit(cache=True, nogil=True)


@jit
def pack_rows(W, rows, out):
    """out[c, k, l] = W[rows[c*NR + l], k], 0 past the last of rows (pack)."""
    NR, K = out.shape[2], out.shape[1]
    for c in range(out.shape[0]):
        for l in range(NR):
            n = c * NR + l
            if n < rows.size:
                source = W[rows[n]]
                for k in range(K):
                    out[c, k, l] = source[k]
            else:
                for k in range(K):
                    out[c, k, l] = 0


def matmul_for(vector_bytes: int = VECTOR_BYTES, tile_rows: int = TILE_ROWS, sources: int = 1):
    """The compiled matmul(operands, out, scratch), operands = (a, packed) or (a, packed, a2, packed2):
    out = a @ W^T (+ a2 @ W2^T), with tiles of tile_rows rows and vectors of vector_bytes (the host's
    by default; tests build the others' too). `scratch` (M, NR) holds the last block where N (out's
    columns) is not a multiple of NR."""
    full, four, two, one = (_tile(n, vector_bytes, sources) for n in (tile_rows, 4, 2, 1))

    @jit
    def rows(operands, block, out, j):
        """out[:, j:j+NR] from block `block`, every row: whole tiles, then 4, 2, 1 rows."""
        M, r = operands[0].shape[0], 0
        while r + tile_rows <= M:
            full(*operands, r, block, out, j)
            r += tile_rows
        if tile_rows > 4 and r + 4 <= M:
            four(*operands, r, block, out, j)
            r += 4
        if r + 2 <= M:
            two(*operands, r, block, out, j)
            r += 2
        if r < M:
            one(*operands, r, block, out, j)

    @jit
    def matmul(operands, out, scratch):
        N, (blocks, _, NR) = out.shape[1], operands[1].shape
        for block in range(blocks):  # the block's K x NR stays in L1 while every row passes
            j = block * NR
            if j + NR <= N:
                rows(operands, block, out, j)
            else:  # the last block, partly past N: whole tiles into scratch, its first columns copied
                rows(operands, block, scratch, 0)
                for i in range(out.shape[0]):
                    for n in range(N - j):
                        out[i, j + n] = scratch[i, n]
    return matmul


_host_matmul, _host_matmul2 = matmul_for(sources=1), matmul_for(sources=2)


def packed_matmul(a, packed, out, scratch):
    """out = a @ W^T for a (M, K) and W^T packed by pack() (in compiled code)."""
    raise NotImplementedError("packed_matmul runs only inside compiled loops")


def packed_matmul2(a, packed, a2, packed2, out, scratch):
    """out = a @ W^T + a2 @ W2^T, each W^T packed by pack(), in one pass (in compiled code)."""
    raise NotImplementedError("packed_matmul2 runs only inside compiled loops")


@overload(packed_matmul)
def _packed_matmul(a, packed, out, scratch):
    return lambda a, packed, out, scratch: _host_matmul((a, packed), out, scratch)


@overload(packed_matmul2)
def _packed_matmul2(a, packed, a2, packed2, out, scratch):
    return lambda a, packed, a2, packed2, out, scratch: _host_matmul2((a, packed, a2, packed2), out, scratch)
