"""The lecture notebooks: built from one source, run top to bottom in a real kernel with their figures
and the explore page as outputs, and copied by `rnnlab lecture` from an installed wheel."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import rnnlab
from rnnlab.lecture import NOTEBOOKS, notebook_path

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(rnnlab.__file__).resolve().parents[1]
SECTIONS = {"it": ["Come funzionano le RNN?", "Tipi di RNN", "BPTT", "Problemi comuni nelle RNN",
                   "Exploding gradients", "Vanishing gradients", "RNN e LSTM", "Esercizi"],
            "en": ["How do RNNs work?", "Types of RNN", "BPTT", "Common problems with RNNs",
                   "Exploding gradients", "Vanishing gradients", "RNNs and LSTMs", "Exercises"]}
SOLUTIONS = {"it": "<summary><b>Soluzioni</b>", "en": "<summary><b>Solutions</b>"}


def _build():
    spec = importlib.util.spec_from_file_location("lecture_build", ROOT / "docs" / "lecture" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict:
    """The environment of a kernel or subprocess that must import this checkout's rnnlab."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))


@pytest.mark.parametrize("name", list(NOTEBOOKS.values()))
def test_both_copies_are_what_the_build_script_writes(name):
    build = _build()
    text = build.notebook(name)
    for path in build.targets(name):
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python docs/lecture/build.py"


@pytest.mark.parametrize("lang", list(NOTEBOOKS))
def test_sections_in_the_lecture_order_exercises_last_with_hidden_solutions(lang):
    nb = nbformat.read(notebook_path(lang), as_version=4)
    nbformat.validate(nb)
    headings = [line.lstrip("#").strip() for cell in nb.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("## ") or line.startswith("### ")]
    positions = [headings.index(section) for section in SECTIONS[lang]]
    assert positions == sorted(positions), headings
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in nb.cells if cell.cell_type == "code"), "ship notebooks without outputs"
    exercises = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith(f"## {SECTIONS[lang][-1]}"))
    solutions = [cell for cell in nb.cells[exercises:] if SOLUTIONS[lang] in cell.source]
    assert len(solutions) == 1 and solutions[0].source.rstrip().endswith("</details>")
    hidden = [cell for cell in nb.cells[exercises:] if cell.metadata.get("jupyter", {}).get("source_hidden")]
    assert hidden and all(cell.cell_type == "code" for cell in hidden)
    assert "TODO" not in "".join(cell.source for cell in nb.cells)


@pytest.fixture(scope="module", params=list(NOTEBOOKS))
def executed(request, tmp_path_factory):
    """(lang, notebook) after every cell ran in a fresh python3 kernel; any error fails here."""
    lang = request.param
    nb = nbformat.read(notebook_path(lang), as_version=4)
    where = tmp_path_factory.mktemp(f"lecture_{lang}")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(where)}})
    client.execute(env=_env())  # a cell that raises raises CellExecutionError here
    return lang, nb


def _outputs(nb, mime: str) -> list:
    return [out["data"][mime] for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if mime in out.get("data", {})]


def test_notebook_runs_with_figures_and_the_explore_page(executed):
    lang, nb = executed
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors, errors
    warnings = [out.text for cell in nb.cells for out in cell.get("outputs", [])
                if out.output_type == "stream" and out.name == "stderr" and "Warning" in out.text]
    assert not warnings, warnings
    figure_cells = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.startswith("figures.")]
    assert len(figure_cells) == 4, [cell.source for cell in figure_cells]  # the seed's four figure TODOs
    for cell in figure_cells:
        assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source
    assert len(_outputs(nb, "image/png")) >= 10  # the figures, the demos' plots, the gates
    pages = [html for html in _outputs(nb, "text/html") if "<iframe" in html and "srcdoc=" in html]
    assert len(pages) == 1, "the explore page, inline in an isolated iframe"
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    same = "uguale all'ultimo stato di rnnlab: True" if lang == "it" else "same as rnnlab's last state: True"
    assert same in text
    assert ("ultimo stato identico: True" if lang == "it" else "last state unchanged: True") in text


def test_bptt_cell_agrees_with_finite_differences(executed):
    _, nb = executed
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(("BPTT:", "differenze finite:", "finite differences:"))]
    assert len(values) == 2 and abs(values[0] - values[1]) < 1e-7, values


def _lecture(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "rnnlab", "lecture", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or _env(), timeout=120)


def test_cli_writes_the_italian_notebook_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "classe"
    done = _lecture("--lang", "it", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "lezione.ipynb").read_bytes() == notebook_path("it").read_bytes()
    html = (out / "lezione.html").read_text(encoding="utf-8")
    assert '<html lang="it">' in html and "Come funzionano le RNN?" in html and "feedforward_vs_recurrent" in html
    assert sorted(p.name for p in out.iterdir()) == ["lezione.html", "lezione.ipynb"]  # no temp files left

    (out / "lezione.ipynb").write_text("my notes", encoding="utf-8")
    again = _lecture("--lang", "it", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr and len(again.stderr.splitlines()) == 1
    assert (out / "lezione.ipynb").read_text(encoding="utf-8") == "my notes"  # the teacher's work is kept
    forced = _lecture("--lang", "it", "--out", str(out), "--overwrite", "--no-html", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (out / "lezione.ipynb").read_bytes() == notebook_path("it").read_bytes()

    english = _lecture("--lang", "en", "--no-html", cwd=out)  # default --out: the current folder
    assert english.returncode == 0 and json.loads((out / "lecture.ipynb").read_text())["metadata"]["language"] == "en"


def test_a_wheel_ships_the_notebooks_and_the_cli_copies_them_without_the_repo(tmp_path):
    """What a teacher who never cloned the repo gets: the wheel, unpacked, is all rnnlab there is."""
    pytest.importorskip("setuptools")  # the build backend; installed wherever pip install -e . ran
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(SRC, project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(project)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("rnnlab-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert {f"rnnlab/lecture/{name}" for name in NOTEBOOKS.values()} <= set(archive.namelist())
        archive.extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    where = tmp_path / "elsewhere"
    where.mkdir()
    done = _lecture("--lang", "it", "--out", "lezione", "--no-html", cwd=where, env=env)
    assert done.returncode == 0, done.stderr
    assert (where / "lezione" / "lezione.ipynb").read_bytes() == notebook_path("it").read_bytes()
