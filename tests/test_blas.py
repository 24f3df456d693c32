"""fast.blas: the transposed copy by NumPy's own BLAS (omatcopy), exact, with NumPy's copy where it cannot."""
import numpy as np
import pytest

from rnnlab.fast import blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(400, 100), (512, 128), (3, 5), (1, 7), (7, 1)])
def test_transpose_is_exact(dtype, shape):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    a[0, 0], a[-1, -1] = np.nan, -0.0
    out = np.full(shape[::-1], 7.0, dtype)
    assert blas.transpose(a, out) is out
    np.testing.assert_array_equal(out, a.T)
    assert np.signbit(out[-1, -1])


def test_numpys_blas_has_omatcopy():
    """NumPy's wheels bundle OpenBLAS, which has it: else the copy falls back to NumPy's, slower at
    power-of-two row lengths (blas.py)."""
    from rnnlab.fast import threads

    if not any(lib.internal_api == "openblas" for lib in threads.blas_libraries()):
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    assert set(blas._omatcopy()) == {np.float32, np.float64}


def test_transpose_falls_back_to_numpy_where_blas_cannot():
    a = np.arange(12.0).reshape(3, 4)
    view = a[:, ::2]  # not C-ordered
    out = np.empty((2, 3))
    np.testing.assert_array_equal(blas.transpose(view, out), view.T)
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(blas.transpose(ints, np.empty((3, 2), int)), ints.T)
    with pytest.raises(ValueError, match="transposed shape"):
        blas.transpose(a, np.empty((3, 4)))
