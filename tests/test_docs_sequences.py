"""docs/sequences.md and the README's "Your own sequences" run as written and print what they say.

Each ```python block of the page runs in its own process, in a scratch directory; where the page
shows what it prints (a ```text block after it), the output must match: words exactly, and every
number exactly, except the trained model's own score ("validation RMSE", "validation accuracy"),
which may move with the CPU's floating-point kernels and is held to a tolerance and to beating
its baseline. The ```bash blocks run too, with `rnnlab` as `python -m rnnlab`.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("statsmodels")  # the [examples] extra (in [test]): the page's data ships there

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "sequences.md"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MODEL_SCORE = re.compile(r"validation (RMSE|accuracy) (\d+(?:\.\d+)?)")


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def page_examples():
    """(python code, expected output or None) for each python block of the page."""
    found, listed = [], blocks(DOC.read_text())
    for i, (lang, code) in enumerate(listed):
        if lang == "python":
            after = listed[i + 1] if i + 1 < len(listed) else ("", "")
            found.append((code, after[1] if after[0] == "text" else None))
    return found


def reviews_csv(path: Path) -> None:
    """The page's reviews.csv stands for the reader's own: a few labelled texts."""
    good = ["a film I loved", "great fun from start to end", "loved every minute", "a great cast"]
    bad = ["dull and too long", "I hated the ending", "a dull plot", "too long by an hour"]
    rows = [(t, "good") for t in good] * 3 + [(t, "bad") for t in bad] * 3
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))


def run(cmd, cwd: Path, timeout=600) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def check_output(got: str, expected: str) -> None:
    got_lines, want_lines = got.strip().splitlines(), expected.strip().splitlines()
    assert len(got_lines) == len(want_lines), f"printed:\n{got}\nthe page says:\n{expected}"
    for g, w in zip(got_lines, want_lines):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), f"printed {g!r}, the page says {w!r}"
        scores = {m.start(2) for m in MODEL_SCORE.finditer(w)}
        for gm, wm in zip(NUMBER.finditer(g), NUMBER.finditer(w)):
            if wm.start() in scores:
                got_v, want_v = float(gm.group()), float(wm.group())
                tol = 0.15 * want_v if "RMSE" in w else 0.05
                assert abs(got_v - want_v) <= tol, f"printed {g!r}, the page says {w!r} (tolerance {tol:.2f})"
            else:
                assert gm.group() == wm.group(), f"printed {g!r}, the page says {w!r}"
    for g in got_lines:  # the model beats its baseline by a margin
        if m := re.search(r"validation RMSE ([\d.]+), persistence ([\d.]+)", g):
            assert float(m[1]) < 0.75 * float(m[2]), g
        if m := re.search(r"validation accuracy ([\d.]+), majority class ([\d.]+)", g):
            assert float(m[1]) > float(m[2]) + 0.5, g


@pytest.mark.parametrize("index", range(len(page_examples())))
def test_page_python_example(index, tmp_path):
    code, expected = page_examples()[index]
    reviews_csv(tmp_path / "reviews.csv")
    (tmp_path / "example.py").write_text(code)
    out = run([sys.executable, "example.py"], tmp_path)
    if expected is not None:
        check_output(out, expected)


def test_page_commands(tmp_path):
    """The bash blocks (but the installs and the benchmark): fit, predict, evaluate, fit on reviews.

    The page quotes no number from these runs, so each fit runs 2 epochs: the commands, their
    options and the files they write are what is checked here (test_fit_cli.py checks the rest)."""
    reviews_csv(tmp_path / "reviews.csv")
    commands = [line for lang, code in blocks(DOC.read_text()) if lang == "bash"
                for line in code.splitlines()
                if line.strip() and not line.startswith(("pip ", "python benchmarks/"))]
    assert any(c.startswith("rnnlab fit") for c in commands)
    for line in commands:
        argv = shlex.split(line)
        if argv[0] == "rnnlab":
            argv = [sys.executable, "-m", "rnnlab", *argv[1:]]
            if argv[3] == "fit":  # the page states no number of these runs: 2 epochs show they work
                argv += ["--no-progress", "--epochs", "2"]
        elif argv[0] == "python":
            argv[0] = sys.executable
        run(argv, tmp_path)
    for name in ("model.safetensors", "history.json", "metrics.json"):
        assert (tmp_path / "runs" / "sunspots" / name).exists(), name
    assert (tmp_path / "forecasts.csv").read_text().count("\n") > 100


def test_fit_help_lists_the_options_the_page_names():
    text = DOC.read_text()
    named = re.search(r"`rnnlab fit --help` lists the\s+rest: (.*?)\.\n", text, flags=re.S)[1]
    flags = re.findall(r"`(--[\w-]+)", named)
    assert len(flags) >= 10
    out = run([sys.executable, "-m", "rnnlab", "fit", "--help"], ROOT)
    for flag in flags:
        assert flag in out, flag


def test_comparison_table_counts_the_scripts_lines():
    """The code lines in the page's table are what forecaster_compare.py counts in the scripts now."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from forecaster_compare import RUNS, code_lines
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    text = DOC.read_text()
    for name, script, _ in RUNS:
        row = re.search(rf"^\| {re.escape(name)} \| (\d+) \|", text, flags=re.M)
        assert row, f"no row for {name} in the page's table"
        assert int(row[1]) == code_lines(ROOT / "benchmarks" / script), script


def test_readme_section():
    """The README's section: one CLI line, then a Python example of at most 10 lines that runs,
    and the numbers it quotes are the page's."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own sequences", 1)[1].split("\n## ", 1)[0]
    listed = blocks(section)
    assert listed[0][0] == "bash" and len(listed[0][1].strip().splitlines()) == 1
    assert listed[0][1].strip() in DOC.read_text()  # the same command the page runs
    lang, code = listed[1]
    assert lang == "python" and len(code.strip().splitlines()) <= 10
    page = DOC.read_text()
    rmse, persistence = re.findall(r"validation\s+RMSE\s+(\d+\.\d+)\s+against\s+persistence's\s+(\d+\.\d+)", section)[0]
    assert f"validation RMSE {rmse}, persistence {persistence}" in page
    lines = re.findall(r"(\d+) code lines in\s+rnnlab, (\d+) in\s+Keras\s+and\s+(\d+)\s+in\s+PyTorch", section)[0]
    for name, count in zip(("rnnlab", "Keras 3 (torch backend)", "PyTorch"), lines):
        assert re.search(rf"^\| {re.escape(name)} \| {count} \|", page, flags=re.M), name


def test_readme_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own sequences", 1)[1].split("\n## ", 1)[0]
    code = [c for lang, c in blocks(section) if lang == "python"][0]
    (tmp_path / "example.py").write_text(code)
    run([sys.executable, "example.py"], tmp_path)
    assert (tmp_path / "sunspots.safetensors").exists()
