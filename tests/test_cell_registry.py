"""The registry: names in, one clear error out; a definition checked when it is made."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab.nn.cells import CellDefinition, get_cell

ROOT = Path(__file__).resolve().parents[1]


def test_built_in_cells_are_registered_in_order():
    assert rnnlab.cell_names()[:6] == ("lstm", "gru", "rnn", "rnn_relu", "lstm_noforget", "indrnn")


def test_the_registry_is_one_object_on_settings(tmp_path):
    """rnnlab.settings.cells holds every name; a user's cell comes and goes, rnnlab's own stay."""
    registry = rnnlab.settings.cells
    assert registry.names() == rnnlab.cell_names() and "gru" in registry and "lstn" not in registry
    assert repr(registry).startswith("CellRegistry(lstm, gru, rnn")
    lstm = get_cell("lstm")
    path = tmp_path / "mine.py"  # a user's cell is defined in a file of its own
    path.write_text("# the user's cell\n")
    mine = CellDefinition("mine", lstm.gates, lstm.state_names, lstm.saved, _copied(lstm.forward, path),
                          lstm.backward)
    rnnlab.register_cell(mine)
    assert "mine" in registry and get_cell("mine") is mine
    registry.unregister("mine")
    assert "mine" not in registry
    with pytest.raises(ValueError, match="one of rnnlab's own cells"):
        registry.unregister("lstm")
    with pytest.raises(ValueError, match="no cell named 'mine'"):
        registry.unregister("mine")


def _copied(fn, path):
    """fn's code as a function whose source file is `path` (a cell defined outside rnnlab)."""
    import types

    return types.FunctionType(fn.__code__.replace(co_filename=str(path)), fn.__globals__, "forward")


def test_unknown_name_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown cell 'lstn'; registered: lstm, gru"):
        rnnlab.Recurrent("lstn", 3, 4)


def test_a_name_is_taken_once():
    lstm = get_cell("lstm")
    copy = CellDefinition("lstm", lstm.gates, lstm.state_names, lstm.saved, lstm.forward, lstm.backward)
    with pytest.raises(ValueError, match="already registered"):
        rnnlab.register_cell(copy)
    assert rnnlab.register_cell(lstm) is lstm  # the same definition again: nothing to do


@pytest.mark.parametrize("change,message", [
    (dict(name="my cell"), "identifier"),
    (dict(gates=("a", "a")), "distinct"),
    (dict(state_names=("c", "h")), "start with 'h'"),
    (dict(recurrence="sparse"), "recurrence"),
    (dict(gate_bias={"x": 1.0}), "unknown gates"),
])
def test_a_bad_definition_is_refused_when_made(change, message):
    lstm = get_cell("lstm")
    fields = dict(name="x", gates=lstm.gates, state_names=lstm.state_names, saved=lstm.saved, forward=lstm.forward,
                  backward=lstm.backward)
    with pytest.raises(ValueError, match=message):
        CellDefinition(**{**fields, **change})


def test_a_two_state_cell_takes_and_returns_tuples():
    layer = rnnlab.Recurrent("lstm_noforget", 3, 4, num_layers=2, dtype=np.float64, rng=0)
    y, (h, c) = layer(np.ones((2, 5, 3)))
    assert y.shape == (2, 5, 4) and h.shape == c.shape == (2, 2, 4)
    with pytest.raises(TypeError, match=r"lstm_noforget state must be a tuple \(h0, c0\)"):
        layer(np.ones((2, 5, 3)), h)
    assert repr(layer).startswith("Recurrent('lstm_noforget', 3, 4")
    cell = rnnlab.Cell("lstm_noforget", 3, 4, dtype=np.float64)
    h1, c1 = cell(np.ones((2, 3)))
    dx, (dh, dc) = cell.backward((np.ones_like(h1), None))
    assert dx.shape == (2, 3) and dc.shape == (2, 4)


def test_rnnlab_cells_naming_a_missing_file_says_so():
    env = dict(os.environ, RNNLAB_CELLS="/nonexistent/cells.py",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--model", "lstm", "--steps", "1"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode != 0 and "RNNLAB_CELLS names '/nonexistent/cells.py'" in out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_rnnlab_cells_naming_a_broken_file_says_which(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import rnnlab\nraise RuntimeError('my bug')\n")
    env = dict(os.environ, RNNLAB_CELLS=str(broken),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "broken.py failed to load: RuntimeError: my bug" in out.stderr
    assert "Traceback" not in out.stderr, out.stderr
