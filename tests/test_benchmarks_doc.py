"""BENCHMARKS.md as a reference: short, no diary, each table's median the median of the runs it lists,
each commit it names in the repository, each command's config names known to the harness."""
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "BENCHMARKS.md").read_text()
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_short_and_no_diary():
    assert len(DOC.splitlines()) <= 260
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")]:
        headings = re.findall(r"^#+ .*\b(?:turn|round|session|day|iteration)s? \d+", path.read_text(), re.I | re.M)
        assert not headings, (path.name, headings)


def _runs_and_medians():
    """(runs, stated median) from each table cell written `median (run 1, run 2, run 3)` or each row
    `| runs 1, 2, 3 | median |`."""
    for median, runs in re.findall(r"(\d+\.\d+)(?: \w+)? \((\d+\.\d+(?:, \d+\.\d+){2})\)", DOC):
        yield [float(r) for r in runs.split(", ")], float(median)
    for runs, median in re.findall(r"\| (\d+\.\d+, \d+\.\d+, \d+\.\d+) \| (\d+\.\d+) \|", DOC):
        yield [float(r) for r in runs.split(", ")], float(median)


def test_each_median_is_the_median_of_its_runs():
    pairs = list(_runs_and_medians())
    assert len(pairs) >= 20
    for runs, median in pairs:
        assert statistics.median(runs) == median, (runs, median)


def test_the_commands_name_configs_the_harness_has():
    import bench_rnn

    known = {c.name for c in bench_rnn.CONFIGS + bench_rnn.DENSE_CONFIGS}
    named = {n for line in re.findall(r"--only ([\w\- ]+)", DOC) for n in line.split() if not n.startswith("-")}
    named = {n for n in named if re.match(r"(dense-)?(lstm|gru|rnn)-", n)}
    assert named and named <= known, named - known


def test_the_commits_it_names_are_in_the_history():
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip("not a whole git checkout")
    commits = set(re.findall(r"commit ([0-9a-f]{7,40})\b", DOC))
    assert commits
    for commit in commits:
        found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
        assert found.returncode == 0, f"BENCHMARKS.md names commit {commit}, which is not in this repository"


def test_the_readme_states_the_tables_ranges():
    """README's summary is BENCHMARKS.md's tables: the dense rows' and the char LSTM rows' ranges."""
    readme = (ROOT / "README.md").read_text().replace("\n", " ")
    dense = re.findall(r"^\| \d+, \d+, \d+ \| (?:\*\*)?(\d+\.\d+)[^|]*\| (?:\*\*)?(\d+\.\d+)", DOC, re.M)
    train, infer = [float(t) for t, _ in dense], [float(i) for _, i in dense]
    assert len(dense) == 4
    assert f"takes {min(train):.2f} to {max(train):.2f} of torch's time in training" in readme
    assert f"{min(infer):.2f} to {max(infer):.2f} in inference" in readme
    lstm = [float(m) for b, m in re.findall(r"^\| lstm (\d+), \d+, \d+, \d \| [\d., ]+ \| (\d+\.\d+) \|", DOC, re.M)
            if b != "1"]
    assert len(lstm) == 6
    assert f"LSTM training step takes {min(lstm):.2f} to {max(lstm):.2f} of torch's time" in readme
