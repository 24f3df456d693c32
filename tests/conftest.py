import numpy as np
import pytest


def numerical_grad(f, array, eps=1e-6):
    """Central differences of scalar f() with respect to every entry of `array` (modified in place)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + eps
        plus = f()
        array[i] = old - eps
        minus = f()
        array[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_close(name, ours, theirs, tol):
    """Relative-to-scale agreement; on failure print ours, theirs and the max difference."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(ours - theirs).max(initial=0.0))
    if not diff <= tol * scale:
        raise AssertionError(f"{name}: max |ours - theirs| = {diff:.3e} > {tol:.0e} * {scale:.3g}\n"
                             f"ours:\n{ours}\ntheirs:\n{theirs}")


def assert_rel(name, analytic, numeric, tol=1e-6):
    """Max error relative to the larger of the two gradients; on failure print both."""
    denom = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-8)
    rel = np.abs(analytic - numeric).max() / denom
    assert rel < tol, f"{name}: relative error {rel:.2e}\nanalytic:\n{analytic}\nnumeric:\n{numeric}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _corpus_cache(tmp_path_factory):
    """Token-id caches (and any download) of the whole run go to a temporary directory, not ~/.cache;
    subprocesses inherit it. A test that needs its own sets RNNLAB_CACHE again."""
    import os

    before = os.environ.get("RNNLAB_CACHE")
    os.environ["RNNLAB_CACHE"] = str(tmp_path_factory.mktemp("rnnlab-cache"))
    yield
    if before is None:
        os.environ.pop("RNNLAB_CACHE", None)
    else:
        os.environ["RNNLAB_CACHE"] = before
