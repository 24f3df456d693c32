import numpy as np
import pytest


def assert_close(name, ours, theirs, tol):
    """Relative-to-scale agreement; on failure print ours, theirs and the max difference."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(ours - theirs).max(initial=0.0))
    if not diff <= tol * scale:
        raise AssertionError(f"{name}: max |ours - theirs| = {diff:.3e} > {tol:.0e} * {scale:.3g}\n"
                             f"ours:\n{ours}\ntheirs:\n{theirs}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
