"""Run each lecture notebook, render it to HTML with nbconvert, and photograph it with headless Chromium.

    PYTHONPATH=src python docs/lecture/screenshot.py             # docs/images/lecture_it.png and lecture_en.png
    PYTHONPATH=src python docs/lecture/screenshot.py --keep out  # also keep the executed .ipynb and .html in out/

Needs rnnlab[lecture] (nbclient, ipykernel, nbconvert) and Debian's /usr/bin/chromium. The page is
photographed at 1200 x 3000 CSS pixels (the top of the lecture: its opening, the first figure, the
hand-written RNN and the "neurone" experiment) and stored as a 256-colour PNG to stay under 1 MB.
Formulas are typeset from a local MathJax where jupyter-server-mathjax is installed (see local_mathjax).
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from rnnlab.lecture import NOTEBOOKS, execute, notebook_path, to_html

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
WINDOW = (1200, 3000)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=5000"]


def local_mathjax() -> str | None:
    """MathJax 2 from the jupyter-server-mathjax wheel (`pip install --no-deps jupyter-server-mathjax`),
    so the formulas are typeset without a network; None: nbconvert's CDN (raw TeX when offline)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")  # found, not imported: it needs jupyter_server
    if spec is None or spec.origin is None:
        return None
    script = Path(spec.origin).parent / "static" / "MathJax.js"
    return f"{script.as_uri()}?config=TeX-AMS-MML_HTMLorMML-full,Safe" if script.exists() else None


def photograph(html: Path, png: Path) -> None:
    """Chromium's screenshot of `html` at WINDOW, re-encoded with a 256-colour palette."""
    raw = png.with_suffix(".raw.png")
    subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={raw}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    html.as_uri()], check=True, capture_output=True, timeout=120)
    with Image.open(raw) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    raw.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=tuple(NOTEBOOKS), action="append", help="default: every language")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for lecture_LANG.png")
    parser.add_argument("--keep", type=Path, help="also write the executed notebook and its HTML here")
    args = parser.parse_args(argv)
    for lang in args.lang or NOTEBOOKS:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            notebook = execute(notebook_path(lang).read_bytes(), work)  # the demos write their plots in work
            html = work / f"lecture_{lang}.html"
            html.write_bytes(to_html(notebook, local_mathjax()))
            png = args.out / f"lecture_{lang}.png"
            photograph(html, png)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / notebook_path(lang).name).write_bytes(notebook)
                (args.keep / html.name).write_bytes(html.read_bytes())
            print(f"{png} ({png.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
