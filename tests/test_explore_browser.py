"""The explore page used as a person would: real headless Chromium (Debian's package) driven by playwright.

Clicks a unit and checks every character's colour against that unit's embedded values, hovers a
character and reads the top 5, types into the live box of `rnnlab explore --serve` (a subprocess)
and checks the predictions against rnnlab's forward pass, then stops the server by its PID.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from explore_helpers import CODE, tiny_checkpoint
from rnnlab.explore import codec, connectivity_rows, page_data, read_data, render
from rnnlab.explore.neurone import train_neurone
from rnnlab.nn.losses import log_softmax

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOW = {"\n": "\u21b5", " ": "\u2423", "\t": "\u21e5"}


def unit_colour(v, scale):
    """The page's colour map (page.js unitColour), with JavaScript's Math.round."""
    a = min(abs(v) / scale, 1) if scale > 0 else 0
    k = math.floor(255 * (1 - a) + 0.5)
    return f"rgb(255, {k}, {k})" if v >= 0 else f"rgb({k}, {k}, 255)"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "lstm.safetensors"
    model, vocab = tiny_checkpoint(path, "lstm")
    text = tmp_path / "text.py"
    text.write_text(CODE)
    return path, text, model, vocab


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert not errors, errors
    return page


def test_static_page(browser, run, tmp_path):
    path, text, _, _ = run
    tiny_checkpoint(tmp_path / "gru.safetensors", "gru", seed=3)
    out = tmp_path / "page.html"
    subprocess.run([sys.executable, "-m", "rnnlab", "explore", str(path), str(tmp_path / "gru.safetensors"),
                    "--text", str(text), "--window", "20", "--out", str(out)], check=True, capture_output=True,
                   timeout=300)
    data = read_data(out.read_text())
    page = open_page(browser, out.as_uri())
    spans = page.locator("#text span.ch")
    assert spans.count() == len(CODE)

    # click the second listed unit: every character takes that unit's colour
    button = page.locator("#unit-list button").nth(1)
    layer, state, unit = (button.get_attribute(f"data-{k}") for k in ("layer", "state", "unit"))
    button.click()
    assert "active" in button.get_attribute("class")
    values = codec.unpack(data["layers"][int(layer)][state])[:, int(unit)]
    scale = np.abs(values).max()
    colours = page.eval_on_selector_all("#text span.ch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert colours == [unit_colour(v, scale) for v in values]
    assert len(set(colours)) > 10, "a unit's colours vary along the text"

    # hover a character: the top 5 next characters with their probabilities, and the unit's gates
    t = CODE.index("return") + 2
    spans.nth(t).hover()
    items = page.locator("#topk li").all_inner_texts()
    expected = data["topk"][t]
    assert len(items) == 5
    for item, (char, p) in zip(items, expected):
        shown, prob = item.split()[:2]
        assert shown == SHOW.get(char, char) and float(prob) == pytest.approx(p, rel=1e-3)
    assert page.inner_text("#info-pos") == f"position {t}"
    gates = page.inner_text("#gates")
    assert all(f"{g} = " in gates for g in ("i", "f", "g", "o")), gates
    compare = page.locator("#topk-compare li").all_inner_texts()  # the second model's top 5 too
    assert [item.split()[0] for item in compare] == [SHOW.get(c, c) for c, _ in data["compare"][0]["topk"][t]]

    # click a character: its connectivity colours the characters before it, darkest where the gradient is largest
    conn = data["connectivity"]
    i = len(conn["positions"]) // 2
    pos = conn["positions"][i]
    spans.nth(pos).click()
    row = connectivity_rows(conn)[i]
    colours = page.eval_on_selector_all("#text span.ch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    darkest = pos - len(row) + 1 + int(np.argmax(row))
    assert colours[darkest] == "rgb(0, 180, 0)"
    assert all(c == "rgba(0, 0, 0, 0)" for c in colours[pos + 1:])
    assert page.locator("#conn-plot polyline").count() == 2  # the GRU's horizon beside the LSTM's
    assert "gru" in page.inner_text("#conn-legend") and "lstm" in page.inner_text("#conn-legend")
    page.screenshot(path=str(tmp_path / "explore.png"))
    assert (tmp_path / "explore.png").stat().st_size > 10_000


def start_server(args):
    """`rnnlab explore ... --serve` in a subprocess; (process, URL) once it prints the URL."""
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "explore", *args, "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "serving at " in line:
            return proc, line.split("serving at ")[1].split()[0]
    proc.wait(timeout=10)
    raise AssertionError("the server did not start:\n" + "".join(lines))


def stop_server(proc):
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, by PID
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out, out


def live_top5(page, typed, index=0):
    page.locator("#live-input").fill("")
    page.locator("#live-input").press_sequentially(typed, delay=30)
    page.wait_for_function("t => document.querySelector('#live-text') && document.querySelector('#live-text')"
                           ".textContent === t", arg=typed, timeout=60_000)
    page.wait_for_selector(f"#live-topk-{index} li", timeout=60_000)
    return [item.split()[:2] for item in page.locator(f"#live-topk-{index} li").all_inner_texts()]


def expected_top5(logits_last, chars):
    p = np.exp(log_softmax(np.asarray(logits_last, np.float64)))
    best = np.argsort(-p, kind="stable")[:5]
    return [(chars[j], p[j]) for j in best]


def check_top5(shown, expected):
    assert len(shown) == 5
    for (char, prob), (c, p) in zip(shown, expected):
        assert char == SHOW.get(c, c) and float(prob) == pytest.approx(p, rel=1e-3), (shown, expected)


def test_served_page_live_box(browser, run, tmp_path):
    path, text, model, vocab = run
    proc, url = start_server([str(path), "--text", str(text), "--out", str(tmp_path / "p.html")])
    try:
        assert url.startswith("http://127.0.0.1:")
        page = open_page(browser, url)
        assert page.locator("#live").is_visible()
        typed = "def g(s"
        shown = live_top5(page, typed)
        logits = model(vocab.encode(typed)[None])
        check_top5(shown, expected_top5(logits[0, -1], vocab.chars))
    finally:
        stop_server(proc)


def test_neurone_served_side_by_side(browser, tmp_path):
    proc, url = start_server(["--neurone"])
    try:
        page = open_page(browser, url)
        shown_ff, shown_rnn = live_top5(page, "neur", 0), live_top5(page, "neur", 1)
        ff, rnn, vocab = train_neurone()  # the same seeds: the same two models as the server's
        ids = vocab.encode("^neur")[None]
        check_top5(shown_ff, expected_top5(ff(ids)[0, -1], vocab.chars))
        check_top5(shown_rnn, expected_top5(rnn(ids)[0, -1], vocab.chars))
        assert shown_ff != shown_rnn  # after "neur" the RNN knows the prefix; the feed-forward net sees only "r"
        # the typed characters take the colours of the RNN's state after each of them (not after the "^" before)
        layer, state, unit = page.evaluate("() => [rnnlab.view.layer, rnnlab.view.state, rnnlab.view.unit]")
        h, _ = rnn.rnn(rnn.embedding(ids))  # (1, 5, H): one layer, so its output is its state
        assert (layer, state) == (0, "h")
        values = h[0, 1:, unit]
        page_column = page.evaluate("() => Array.from(rnnlab.view.layers[0].h.col(rnnlab.view.unit))")
        scale = max(np.abs(codec.round_sig(values)).max(), np.abs(page_column).max())
        colours = page.eval_on_selector_all("#live-text span.ch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
        assert colours == [unit_colour(v, scale) for v in codec.round_sig(values)]
    finally:
        stop_server(proc)


ASTRAL = "a\U0001F600b \U0001D465 = x\u00b2;\n\U0001F4A1 ok\n"  # an emoji, a mathematical italic x, a BMP letter


def test_page_indexes_characters_by_code_point(browser, tmp_path):
    """Characters outside the BMP are two UTF-16 units in JavaScript and one in the data: every span,
    colour and hover must follow the data's positions."""
    text = ASTRAL * 3
    model, vocab = tiny_checkpoint(tmp_path / "a.safetensors", "lstm", text=text)
    data = page_data(model, vocab, text, "astral", window=10)
    out = tmp_path / "astral.html"
    out.write_text(render(data), encoding="utf-8")
    page = open_page(browser, out.as_uri())
    spans = page.locator("#text span.ch")
    assert page.eval_on_selector_all("#text span.ch", "els => els.map(e => e.textContent)") == list(text)
    button = page.locator("#unit-list button").first
    layer, state, unit = (button.get_attribute(f"data-{k}") for k in ("layer", "state", "unit"))
    button.click()
    values = codec.unpack(data["layers"][int(layer)][state])[:, int(unit)]
    colours = page.eval_on_selector_all("#text span.ch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert colours == [unit_colour(v, np.abs(values).max()) for v in values]
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for t in (len(text) - 2, text.index("\U0001D465") + 1):  # the last letter, and the character after a math letter
        spans.nth(t).hover()
        assert page.inner_text("#info-pos") == f"position {t}"
        assert page.inner_text("#info-char") == json.dumps(text[t], ensure_ascii=False)
        assert "NaN" not in page.inner_text("#info-value")
        assert [li.split()[0] for li in page.locator("#topk li").all_inner_texts()] == \
            [SHOW.get(c, c) for c, _ in data["topk"][t]]
    assert not errors, errors
    assert page.inner_text("#status") == f"{len(text)} characters"


EVIL = '<img src=x onerror="window.pwned=1">'
EVIL_STATE = 'c" onfocus="window.pwned=2" autofocus x="'


def test_names_in_the_data_reach_the_page_as_text(browser, tmp_path):
    """A gate, state, feature, model or cell name with markup shows as text and runs nothing (on load,
    on hover, on a click). Registration refuses such names; a page must not rely on that."""
    model, vocab = tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    data = page_data(model, vocab, CODE, "model " + EVIL, window=10)
    data["model"]["cell"] = EVIL
    data["model"]["gates"][0] = EVIL
    data["model"]["states"][1] = EVIL_STATE
    for layer in data["layers"]:
        layer["gates"][EVIL] = layer["gates"].pop("i")
        layer[EVIL_STATE] = layer.pop("c")
    for u in data["units"]:
        u["feature"] = EVIL + u["feature"]
        u["state"] = EVIL_STATE if u["state"] == "c" else u["state"]
    out = tmp_path / "evil.html"
    out.write_text(render(data), encoding="utf-8")
    page = open_page(browser, out.as_uri())
    buttons = page.locator("#unit-list button")
    for k in range(min(buttons.count(), 6)):
        buttons.nth(k).click()
        page.locator("#text span.ch").nth(10 + k).hover()
        page.locator("#text span.ch").nth(10 + k).click()
    page.wait_for_timeout(200)  # an image's onerror fires after its (failed) load
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("img").count() == 0
    assert EVIL in page.inner_text("#unit-list") and EVIL in page.inner_text("#conn-legend")
    assert EVIL_STATE in page.eval_on_selector_all("#state option", "els => els.map(e => e.value)")
    page.locator("#state").select_option(EVIL_STATE)
    listed = page.locator(f"#unit-list button[data-layer='0']").first
    listed.click()
    page.locator("#text span.ch").nth(3).hover()
    assert EVIL in page.inner_text("#gates") or "embedded for the listed units only" in page.inner_text("#gates")
