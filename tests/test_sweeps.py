"""Sweeps over seeds on real engines: mean ± std tables, a Dask LocalCluster, resume, Ctrl-C."""
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rnnlab.cli import _check_experiment, build_parser, main
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
    args = build_parser().parse_args(["experiment", "adding", "--seeds", "0-2"])
    _check_experiment(args)  # parsed where a bad list gets one line, not argparse's usage
    assert args.seeds == [0, 1, 2]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "adding", "--seed", "1", "--seeds", "0-2"])
    with pytest.raises(ValueError, match="listed twice"):
        plan("adding", seeds=[1, 1])


def test_seed_ranges_are_bounded_before_any_list_is_built():
    with pytest.raises(ValueError, match="at most 1000 seeds per sweep; '0-1000000000' lists 1,000,000,001"):
        parse_seeds("0-1000000000")
    assert len(parse_seeds("0-999")) == 1000
    with pytest.raises(ValueError, match="at most 1000 seeds"):
        plan("adding", seeds=range(1001))


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


def _damaged(stored: dict, spec) -> dict:
    """The ways a run file was found damaged: name -> (file bytes, the reason reported)."""
    row = stored["row"]
    without = lambda key: {**stored, "row": {k: v for k, v in row.items() if k != key}}
    with_row = lambda **changes: {**stored, "row": {**row, **changes}}
    cases = {"cut short": (b'{"spec": {"experiment"', "not a JSON document"),
             "not UTF-8": (b"\xff\xfe{}", "not a JSON document"),
             "a list": (b"[]", "not a run record"),
             "no value": (without("value"), "its row's 'value' is None, not a number"),
             "value a string": (with_row(value="0.5"), "its row's 'value' is '0.5', not a number"),
             "another seed's row": (with_row(seed=7), "its row's 'seed' is 7, not the run's 1"),
             "losses damaged": (with_row(losses=[1.0, "x"]), "its row's 'losses' is not a list of numbers"),
             "success a string": (with_row(success="yes"), "its row's 'success' is 'yes'"),
             "other settings": ({**stored, "spec": {**stored["spec"], "steps": 99}}, "its settings are not the ones")}
    return {name: (data if isinstance(data, bytes) else json.dumps(data).encode(), reason)
            for name, (data, reason) in cases.items()}


def test_a_damaged_run_file_is_set_aside_named_and_retrained(tmp_path, capsys):
    out = tmp_path / "sweep"
    first = run_experiment("temporal-order", seeds=[0, 1], out=out, **TINY)
    spec = plan("temporal-order", seeds=[1], **TINY)[0]
    path = RunStore(out).path(spec)
    good = json.loads(path.read_text())
    cases = _damaged(good, spec)
    for k, (name, (data, reason)) in enumerate(cases.items()):  # each read back, refused, named and kept
        path.write_bytes(data)
        store = RunStore(out)
        assert store.load(spec) is None and not path.exists(), name
        aside = out / "runs" / "set-aside" / (path.name + (f".{k}" if k else ""))
        assert len(store.set_aside) == 1 and store.set_aside[0].startswith(f"{path}: {reason}"), name
        assert store.set_aside[0].endswith(f"moved to {aside}; the run is trained again"), (name, store.set_aside)
        assert aside.read_bytes() == data, name  # kept, not deleted
    path.write_text(json.dumps(good))
    assert RunStore(out).load(spec) == good["row"]  # the good file reads back as it was
    # end to end: reported before training, retrained the same, recorded in results.json
    path.write_bytes(cases["no value"][0])
    warned = []
    again = run_experiment("temporal-order", seeds=[0, 1], out=out, warn=warned.append, **TINY)
    assert (again.reused, again.trained) == (1, 1) and warned == again.set_aside and len(warned) == 1
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(again.rows) == strip(first.rows)
    assert json.loads(path.read_text())["row"]["seed"] == 1  # the retrained run's file replaced it
    assert json.loads((out / "results.json").read_text())["set_aside"] == warned
    # the command says so on stderr, one line per file, and goes on
    path.write_bytes(b"{")
    code = main(["experiment", "temporal-order", "--cells", "rnn", "--T", "10", "--seeds", "0-1", "--steps", "3",
                 "--hidden", "4", "--batch", "4", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if "set aside" in line] == [
        f"rnnlab experiment: set aside: {path}: not a JSON document (cut short or damaged); moved to "
        f"{out / 'runs' / 'set-aside' / path.name}.{len(cases) + 1}; the run is trained again"]


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


# -- dead workers: retried, then named; finished runs kept; no orphans; no hang --------------------
def _descendants() -> set:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids, timeout=15.0) -> set:
    """The pids among `pids` still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_run_that_kills_its_worker_is_retried_then_named(engine, monkeypatch):
    from rnnlab.experiments import engine as engines
    from rnnlab.experiments.engine import SweepFailed, run_specs
    from sweep_helpers import ALWAYS, ONCE, killing_work, marker

    monkeypatch.setattr(engines, "RETRIES", 1)  # every death costs a fresh worker process: keep them few

    specs = plan("temporal-order", seeds=[0, ONCE, ALWAYS, 2], **TINY)
    kept = {}
    before = _descendants()
    start = time.monotonic()
    try:
        with pytest.raises(SweepFailed) as failure:
            run_specs(specs, engine, jobs=2, on_result=lambda i, row: kept.setdefault(i, row), work=killing_work)
    finally:
        if os.path.exists(marker(os.getpid(), ONCE)):
            os.remove(marker(os.getpid(), ONCE))
    message = str(failure.value)
    assert message.startswith(f"run temporal-order rnn T=10 seed {ALWAYS}: the worker died 2 times"), message
    assert "3 of 4 runs had finished and are kept" in message
    assert sorted(kept) == [0, 1, 3] and kept[1]["seed"] == ONCE  # the run killed once was tried again
    assert time.monotonic() - start < 60
    if engine == "dask":  # the cluster's processes are gone (loky keeps its pool a while for the next sweep)
        assert not _gone(_descendants() - before)


def test_a_dask_sweep_with_no_worker_left_ends_with_a_message(monkeypatch):
    import logging

    from distributed import Client, LocalCluster

    from rnnlab.experiments import engine
    from sweep_helpers import STUCK, killing_work

    monkeypatch.setattr(engine, "NO_WORKERS_GRACE", 2.0)
    specs = plan("temporal-order", seeds=[STUCK, 0], **TINY)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        def take_the_workers_away():  # as a scheduler sees it when every worker was killed and none came back
            while not client.processing().get(next(iter(client.scheduler_info()["workers"]), None)):
                time.sleep(0.1)
            cluster.scale(0)

        thief = threading.Thread(target=take_the_workers_away, daemon=True)
        thief.start()
        start = time.monotonic()
        with pytest.raises(engine.SweepFailed, match=r"no Dask worker left for 2 s \(2 runs unfinished"):
            engine.run_specs(specs, "dask", jobs=1, address=cluster.scheduler_address, work=killing_work)
        assert time.monotonic() - start < 30


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_killing_the_driver_leaves_no_worker_behind(tmp_path, engine):
    import psutil

    args = ["experiment", "temporal-order", "--cells", "rnn", "--T", "10", "--seeds", "0-3", "--steps", "100000",
            "--hidden", "8", "--batch", "8", "--out", str(tmp_path / "sweep"), "--engine", engine, "--jobs", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        driver = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        busy = []
        while len(busy) < 2 and time.monotonic() < deadline:  # both workers training (a second of CPU each)
            time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read()
            busy = [p for p in driver.children(recursive=True) if sum(p.cpu_times()[:2]) > 2.0]
        assert len(busy) >= 2, "the workers never got going"
        workers = {p.pid for p in driver.children(recursive=True)}
        proc.kill()  # SIGKILL: nothing of the driver runs after it
        proc.wait(timeout=10)
        assert not _gone(workers, timeout=20), "workers outlived the sweep's process"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _descendants() & workers if workers else ():
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_a_dask_sweep_at_once(tmp_path):
    import psutil

    args = ["experiment", "temporal-order", "--cells", "rnn", "--T", "10", "--seeds", "0-3", "--steps", "100000",
            "--hidden", "8", "--batch", "8", "--out", str(tmp_path / "sweep"), "--engine", "dask", "--jobs", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = ""
    try:
        deadline = time.monotonic() + 90
        while "(dask, 2 workers)" not in err and time.monotonic() < deadline:
            err += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        driver = psutil.Process(proc.pid)
        while not driver.children() and time.monotonic() < deadline:  # the LocalCluster is starting its workers:
            time.sleep(0.02)                                           # a Ctrl-C now must not be lost
        workers = {p.pid for p in driver.children(recursive=True)}
        sent = time.monotonic()
        # To the driver alone: a worker still booting Python when the whole group gets SIGINT may print
        # "Fatal Python error: init_import_site" (seen once, under load); the driver's promptness is the claim.
        os.kill(proc.pid, signal.SIGINT)
        while proc.poll() is None and time.monotonic() - sent < 90:  # the runs themselves would take minutes
            try:
                workers |= {p.pid for p in driver.children(recursive=True)}  # those started after the Ctrl-C too
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        code = proc.wait(timeout=10)
        assert time.monotonic() - sent < 30, "Ctrl-C waited for the cluster's start and the runs"
        err += proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130 and "Traceback" not in err, err
    assert "interrupted: 0 of 4 runs had finished and are kept" in err
    assert not _gone(workers)
