"""`rnnlab explore --serve`: the page from 127.0.0.1 with a live box, and its one JSON endpoint.

    GET /                 the page (its data as in the static file, with "live": true)
    GET /api/live?text=..&layer=0&state=h&unit=5
        -> {"text": str, "models": [{"name", "reads": str, "topk": [[[char, p], ...] per position],
                                     "values": [...] or null, "gates": {name: [...]} or null}, ...]}
Every number comes from rnnlab's own forward pass on the typed text (from a zero state); the page
holds no copy of the cell. One request computes at a time (the layers keep a cache).
"""
from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..nn.losses import log_softmax
from . import codec
from threadpoolctl import threadpool_limits
from .trace import read, top_k

MAX_LIVE = 500  # characters per live request


@dataclass
class LiveModel:
    """A model the live box asks: a character model (with states) or a feed-forward net (`states=False`)."""

    name: str
    model: object
    vocab: object
    prefix: str = ""          # read before the typed text (the neurone models start with "^")
    states: bool = True

    def answer(self, text: str, layer: int, state: str, unit: int) -> dict:
        full = self.prefix + text
        if self.states:
            tr = read(self.model, self.vocab, full)
            logp = tr.logp
            values = gates = None
            s = tr.state(state)
            if s is not None and 0 <= layer < s.shape[0] and 0 <= unit < s.shape[2]:
                values = codec.round_sig(s[layer, :, unit]).tolist()
                gates = {g: codec.round_sig(v[layer, :, unit]).tolist() for g, v in tr.gates.items()}
        else:
            ids = self.vocab.encode(full, source="the typed text")
            logp = log_softmax(np.asarray(self.model(ids[None, :])[0], np.float64))  # (T, V)
            values = gates = None
        topk = top_k(logp, self.vocab.chars, round_to=codec.round_sig)
        return {"name": self.name, "reads": full, "topk": topk, "values": values, "gates": gates}


@dataclass
class App:
    html: str
    models: list[LiveModel]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live(self, query: dict[str, list[str]]) -> tuple[int, dict]:
        text = query.get("text", [""])[0]
        try:
            layer, unit = int(query.get("layer", ["0"])[0]), int(query.get("unit", ["0"])[0])
        except ValueError:
            return HTTPStatus.BAD_REQUEST, {"error": "layer and unit must be integers"}
        state = query.get("state", ["h"])[0]
        if not text:
            return HTTPStatus.BAD_REQUEST, {"error": "no text"}
        if len(text) > MAX_LIVE:
            return HTTPStatus.BAD_REQUEST, {"error": f"at most {MAX_LIVE} characters at a time"}
        try:
            with self.lock, threadpool_limits(1, user_api="blas"):
                answers = [m.answer(text, layer, state, unit) for m in self.models]
        except ValueError as error:  # a character the model never saw
            return HTTPStatus.OK, {"error": str(error).split(". ")[0]}
        return HTTPStatus.OK, {"text": text, "models": answers}


def make_handler(app: App):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, app.html.encode("utf-8"), "text/html; charset=utf-8")
            elif url.path == "/api/live":
                status, body = app.live(parse_qs(url.query))
                self._send(status, json.dumps(body).encode("utf-8"), "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def _send(self, status, body: bytes, kind: str):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # quiet: the terminal shows the URL, not every request
            pass

    return Handler


def serve(app: App, port: int = 0, announce=print) -> int:
    """Serve until Ctrl-C (or SIGTERM) on 127.0.0.1:port (0: a free port); returns 0."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app))
    server.daemon_threads = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop it, even where the shell started it with SIGINT ignored (a background job).
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    announce(f"rnnlab explore: serving at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        announce("rnnlab explore: stopped")
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
