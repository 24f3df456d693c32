"""What a student sees in Jupyter, tested in a real kernel (nbclient): figures as PNG with no
%matplotlib magic, training progress as one line and no warning, the explore page in an isolated
iframe. Plus the same objects outside a kernel."""
import os

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import rnnlab
from rnnlab import figures, plots
from rnnlab.display import Figure, LineBar, in_notebook, progress_bar
from rnnlab.explore import read_data
from rnnlab.explore.notebook import ExplorePage

CELLS = {
    "figure": 'import rnnlab, rnnlab.figures as figures\nfigures.unrolled("ciao")',
    "plot": "import numpy as np\nfrom rnnlab import plots\n"
            'plots.plot_gradient_flow({"RNN": {"h": np.geomspace(1e-3, 1, 20)}})',
    "train": "from rnnlab.train import TrainConfig, Trainer\n"
             'result = Trainer(TrainConfig(steps=80, hidden=16, layers=1, embedding=8, batch=4, seq_len=16, '
             'eval_every=1000, sample_every=1000, save_every=1000, out="run"), log=lambda line: None).fit()',
    "explore": "page = rnnlab.explore(neurone=True)\npage",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The cells above run top to bottom in a fresh python3 kernel: {name: outputs}."""
    where = tmp_path_factory.mktemp("kernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS.values()])
    src = os.path.abspath(os.path.join(os.path.dirname(rnnlab.__file__), os.pardir))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(where)}})
    client.execute(env=env)  # the kernel imports this rnnlab, as the tests do
    return {name: cell.outputs for name, cell in zip(CELLS, nb.cells)}


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    return output.get("data", {}).get("text/plain", "")


@pytest.mark.parametrize("cell", ["figure", "plot"])
def test_figures_show_inline_as_png_without_magic(executed, cell):
    outputs = executed[cell]
    assert any("image/png" in out.get("data", {}) for out in outputs), outputs
    text_only = [out for out in outputs if set(out.get("data", {})) == {"text/plain"}]
    assert not any(_text(out).startswith("<Figure size") for out in text_only), text_only


def test_training_progress_is_one_line_without_warnings(executed):
    outputs = executed["train"]
    bars = [out for out in outputs if "80/80" in _text(out)]
    assert len(bars) == 1 and bars[0].output_type == "display_data", outputs
    streams = [out.text for out in outputs if out.output_type == "stream"]
    assert not any("%|" in text or "it/s" in text for text in streams), streams  # no chunk per refresh
    everything = "".join(_text(out) for cell in executed.values() for out in cell)
    assert "TqdmWarning" not in everything and "IProgress" not in everything


def test_explore_page_shows_inline_in_an_isolated_iframe(executed):
    html = [out["data"]["text/html"] for out in executed["explore"] if "text/html" in out.get("data", {})]
    assert len(html) == 1
    assert html[0].startswith('<iframe srcdoc="') and 'sandbox="allow-scripts"' in html[0]
    # the page's <style> and <script> are inside the attribute, escaped: nothing reaches the notebook's DOM
    assert "<style" not in html[0] and "<script" not in html[0] and "&lt;style&gt;" in html[0]


# -- the same objects outside a kernel ------------------------------------------------------------
def test_every_figure_function_returns_a_figure_that_draws_itself_as_png():
    made = [figures.feedforward_vs_recurrent(), figures.four_kinds(), figures.unrolled("rete"), figures.lstm_cell(),
            plots.plot_gradient_flow({"RNN": {"h": np.geomspace(1e-3, 1, 10)}}),
            plots.plot_flow_heatmap(np.arange(3), np.ones((3, 10)))]
    for fig in made:
        assert isinstance(fig, Figure)
        png = fig._repr_png_()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == tuple(round(v) for v in fig.get_size_inches() * fig.dpi)


def test_progress_bar_outside_a_kernel_is_tqdm_auto():
    assert not in_notebook()
    from tqdm.auto import tqdm

    bar = progress_bar(total=3, disable=True)
    assert isinstance(bar, tqdm) and not isinstance(bar, LineBar)
    bar.close()


def test_explore_page_object_saves_atomically_and_keeps_its_data(tmp_path):
    import rnnlab.explore.page  # noqa: F401  importing the submodule leaves rnnlab.explore callable

    page = rnnlab.explore(neurone=True)
    assert isinstance(page, ExplorePage)
    path = page.save(tmp_path / "sub" / "neurone.html")
    assert read_data(path.read_text(encoding="utf-8")) == page.data
    assert [p.name for p in path.parent.iterdir()] == ["neurone.html"]  # no temp file left
    assert "MB of HTML" in repr(page)


def test_explore_of_a_model_in_memory(tmp_path):
    from rnnlab.train import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(steps=2, hidden=8, layers=1, embedding=4, batch=2, seq_len=8, out=str(tmp_path / "r")),
                      progress=False, log=lambda line: None)
    trainer.fit()
    page = rnnlab.explore(trainer, text="the cat sat")
    assert page.data["text"] == "the cat sat" and page.data["model"]["name"] == "model in memory"
    assert "<iframe" in page._repr_html_()


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "give a run directory or checkpoint"),
    (dict(run="runs/x", neurone=True), "neurone=True trains its own two models"),
    (dict(run="runs/x", text="abc"), "text= is for a model in memory"),
])
def test_explore_refuses_unclear_requests_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.explore(**kwargs)
