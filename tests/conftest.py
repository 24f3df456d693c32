import numpy as np
import pytest

import rnnlab
from rnnlab.testing import assert_close, assert_rel, numerical_grad  # noqa: F401 - the tests' helpers


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


# the time loops every cell is held to the reference with (rnnlab.testing.kernels, as pytest params)
_needs_numba = pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba cannot run here")
CELL_KERNELS = [pytest.param("numba", 4, marks=_needs_numba), pytest.param("numba", 1, marks=_needs_numba),
                ("numpy", 4)]
CELL_KERNEL_IDS = ["numba", "numba-B1", "numpy"]
