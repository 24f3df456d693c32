"""Write the lecture notebooks (Italian and English) from the cells below.

    python docs/lecture/build.py          # writes docs/lecture/*.ipynb and src/rnnlab/lecture/*.ipynb
    python docs/lecture/build.py --check  # exit 1 if a written notebook differs from what this file makes

This file is the one source: the Italian text (lezione.py) and the English one (lecture.py) sit
beside it as lists of cells, and the same bytes go to docs/lecture/ (to read on GitHub) and to
src/rnnlab/lecture/ (package data, what `rnnlab lecture` copies). Notebooks are written without
outputs, with fixed cell ids, so a rebuild changes nothing unless the text does.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = ROOT / "src" / "rnnlab" / "lecture"
SOURCES = {"lezione.ipynb": (HERE / "lezione.py", "it"), "lecture.ipynb": (HERE / "lecture.py", "en")}
KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def _cells(source: Path) -> list:
    """The CELLS list of a text module: ("md" | "code" | "hidden", text) pairs."""
    spec = importlib.util.spec_from_file_location(source.stem, source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


def notebook(name: str) -> str:
    """The notebook `name` (a key of SOURCES) as the JSON text written to disk."""
    source, lang = SOURCES[name]
    nb = nbformat.v4.new_notebook(metadata={**KERNEL, "language": lang})
    for index, (kind, text) in enumerate(_cells(source)):
        text = text.strip("\n")
        cell_id = f"{lang}-{index:02d}"
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(text, id=cell_id))
        else:  # "hidden": code whose source starts collapsed (a solution)
            metadata = {"jupyter": {"source_hidden": True}} if kind == "hidden" else {}
            nb.cells.append(nbformat.v4.new_code_cell(text, id=cell_id, metadata=metadata))
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def targets(name: str) -> list[Path]:
    return [HERE / name, PACKAGE / name]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name in SOURCES:
        text = notebook(name)
        for path in targets(name):
            if args.check:
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    stale.append(path)
            else:
                path.write_text(text, encoding="utf-8")
                print(path.relative_to(ROOT))
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run python docs/lecture/build.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
