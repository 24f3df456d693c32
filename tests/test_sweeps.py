"""Sweeps over seeds on real engines: mean ± std tables, a Dask LocalCluster, resume, Ctrl-C."""
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.cli import build_parser
from rnnlab.experiments import plan, run_experiment
from rnnlab.experiments import runners
from rnnlab.experiments.engine import run_spec
from rnnlab.experiments.registry import parse_seeds
from rnnlab.experiments.store import RunStore
from rnnlab.experiments.tables import format_table

TINY = dict(cells=["rnn"], Ts=[10], steps=3, hidden=4, batch=4)


def test_seed_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-2, 9") == [0, 1, 2, 9]
    for bad in ("3-1", "a", "1-b", ""):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)
    assert build_parser().parse_args(["experiment", "adding", "--seeds", "0-2"]).seeds == [0, 1, 2]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "adding", "--seed", "1", "--seeds", "0-2"])
    with pytest.raises(ValueError, match="listed twice"):
        plan("adding", seeds=[1, 1])


def test_every_configuration_runs_once_per_seed(tmp_path):
    result = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, **TINY)
    assert [(r["model"], r["seed"]) for r in result.rows] == [("rnn", 0), ("rnn", 1)]
    assert result.rows[0]["losses"] != result.rows[1]["losses"]
    line = next(line for line in result.table.splitlines() if "| rnn" in line)
    assert "| 0-1 " in line and " ± " in line and " 0/2 |" in line  # 3 steps: no seed reaches 95%
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["rows"]) == 2 and saved["seeds"] == [0, 1]
    assert saved["summary"][0]["runs"] == 2 and saved["summary"][0]["succeeded"] == 0
    assert (tmp_path / "temporal-order.png").read_bytes()[:4] == b"\x89PNG"


def test_table_counts_successes_and_spreads():
    row = dict(task="adding", model="lstm", hidden=4, T=6, steps=3, metric="test MSE", baseline=1 / 6,
               baseline_name="predict 1", seconds=1.0, losses=[1.0], loss_baseline=1 / 6)
    rows = [dict(row, seed=0, value=0.004, success=True), dict(row, seed=1, value=0.008, success=True),
            dict(row, seed=2, value=0.3, success=False)]
    line = format_table(rows).splitlines()[2]
    assert "| 0-2 " in line and "0.1040 ± 0.1698" in line and " 2/3 |" in line
    same = [dict(row, seed=s, value=0.8103448275862069 + e, success=None) for s, e in enumerate((0, 1e-16, -1e-16))]
    assert "0.8103 ± 0.0000" in format_table(same).splitlines()[2]  # rounding noise is no spread


def test_dask_cluster_runs_a_sweep_and_a_second_invocation_reuses_every_run(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import rnnlab.experiments.engine as engine

    local = run_experiment("temporal-order", seeds=[0, 1], **TINY)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        first = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, engine="dask",
                               address=cluster.scheduler_address, **TINY)
        assert (first.reused, first.trained) == (0, 2)
        assert [r["value"] for r in first.rows] == [r["value"] for r in local.rows]  # same numbers on any engine
        assert len(list((tmp_path / "runs").glob("*.json"))) == 2

        def no_training(spec, progress=False):
            raise AssertionError(f"trained {spec} again")

        monkeypatch.setattr(engine, "run_spec", no_training)
        again = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, engine="dask",
                               address=cluster.scheduler_address, **TINY)
    assert (again.reused, again.trained) == (2, 0)
    assert again.table == first.table
    saved = json.loads((tmp_path / "results.json").read_text())  # the reuse-only invocation's, yet it
    assert saved["run_seconds"] > 0  # keeps the runs' time
    assert saved["run_seconds"] == pytest.approx(sum(r["seconds"] for r in first.rows))


def test_a_changed_setting_never_reuses_a_run(tmp_path):
    run_experiment("temporal-order", seeds=[0], out=tmp_path, **TINY)
    more = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, **TINY)
    assert (more.reused, more.trained) == (1, 1)
    other = run_experiment("temporal-order", seeds=[0], out=tmp_path, **dict(TINY, steps=4))
    assert (other.reused, other.trained) == (0, 1)


def test_ctrl_c_keeps_finished_runs_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "sweep"
    args = ["experiment", "temporal-order", "--cells", "rnn", "--T", "10", "--seeds", "0-5", "--steps", "150",
            "--hidden", "8", "--batch", "8", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=dict(os.environ))
    deadline = time.time() + 120
    while not list(out.glob("runs/*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole process group
    _, err = proc.communicate(timeout=120)
    kept = len(list(out.glob("runs/*.json")))
    if proc.returncode == 0:
        pytest.skip("the sweep finished before the interrupt landed")
    assert proc.returncode == 130 and "Traceback" not in err
    assert f"{kept} of 6 runs had finished and are kept" in err
    assert 1 <= kept < 6
    (out / "runs" / ".half-written.json.123.tmp").write_text('{"spec": ')  # a write cut short: ignored
    code = build_parser().parse_args(args)
    resumed = code.run(code)
    assert resumed == 0
    saved = json.loads((out / "results.json").read_text())
    assert (saved["reused"], saved["trained"]) == (kept, 6 - kept) and len(saved["rows"]) == 6


def test_a_damaged_run_file_counts_as_missing(tmp_path):
    first = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, **TINY)
    spec = plan("temporal-order", seeds=[1], **TINY)[0]
    RunStore(tmp_path).path(spec).write_text("{not json")
    again = run_experiment("temporal-order", seeds=[0, 1], out=tmp_path, **TINY)
    assert (again.reused, again.trained) == (1, 1)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(again.rows) == strip(first.rows)  # retrained the same: every run seeds its own generators


def test_engine_choices_are_checked():
    with pytest.raises(ValueError, match="engine must be one of local, dask, ray"):
        run_experiment("temporal-order", engine="spark", **TINY)
    with pytest.raises(ValueError, match="--address joins a Dask scheduler"):
        run_experiment("temporal-order", address="tcp://nowhere:8786", **TINY)
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'rnnlab\[ray\]'"):
            run_experiment("temporal-order", engine="ray", seeds=[0, 1], **TINY)


def test_horizon_sweeps_T_over_cells_on_both_tasks(tmp_path):
    specs = plan("horizon", cells=["rnn", "lstm"], Ts=[10, 20], seeds=[0, 1], steps=2)
    assert len(specs) == 2 * 2 * 2 * 2 and {s.experiment for s in specs} == {"adding", "temporal-order"}
    assert {s.cell for s in plan("horizon", Ts=[10])} >= {"rnn", "gru", "lstm"}
    result = run_experiment("horizon", cells=["rnn"], Ts=[10, 12], steps=2, hidden=4, batch=4, out=tmp_path)
    assert len(result.rows) == 4 and all(r["success"] is not None for r in result.rows)
    assert (tmp_path / "horizon.png").read_bytes()[:4] == b"\x89PNG"


def test_horizon_runs_stop_once_solved_and_other_runs_keep_their_keys(monkeypatch):
    horizon = plan("horizon", cells=["lstm"], Ts=[10], steps=250, hidden=4, batch=4)
    assert all(s.stop_when_solved for s in horizon)
    adding = plan("adding", cells=["lstm"], Ts=[10], steps=250, hidden=4, batch=4)[0]
    assert not adding.stop_when_solved
    # a run stored before the field existed hashed the other fields alone: it must keep its name
    old = {k: v for k, v in dataclasses.asdict(adding).items() if k != "stop_when_solved"}
    assert adding.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert horizon[0].key() != adding.key()

    monkeypatch.setattr(runners, "TEMPORAL_ORDER_STOP", -1.0)  # any accuracy passes: solved at the first check
    spec = plan("horizon", cells=["rnn"], Ts=[10], steps=250, hidden=4, batch=4)[1]
    assert spec.experiment == "temporal-order"
    assert run_spec(spec)["trained_steps"] == runners.SOLVED_CHECK_EVERY
    assert run_spec(dataclasses.replace(spec, stop_when_solved=False))["trained_steps"] == 250


def test_a_sweep_worker_pins_the_thread_policy_and_restores_it(monkeypatch):
    from rnnlab.experiments import engine
    from rnnlab.settings import settings

    monkeypatch.setattr(engine, "run_spec", lambda spec: {"allowed": settings.max_threads()})
    settings.threads = None
    before = settings.max_threads()
    spec = plan("temporal-order", **TINY)[0]
    assert engine._work(3, spec, 1, os.getpid()) == (3, {"allowed": 1})
    assert settings.max_threads() == before
