"""`rnnlab explore --serve`: the page from 127.0.0.1 with a live box, and its one JSON endpoint.

    GET /                 the page (its data as in the static file, with "live": true)
    GET /api/live?text=..&layer=0&state=h&unit=5
        -> {"text": str, "models": [{"name", "reads": str, "topk": [[[char, p], ...] per position],
                                     "values": [...] or null, "gates": {name: [...]} or null}, ...]}
Every number comes from rnnlab's own forward pass on the typed text (from a zero state); the page
holds no copy of the cell. One request computes at a time (the layers keep a cache).

Only this machine's browser may ask: a request whose Host (or Origin, when sent) is not
127.0.0.1, localhost or [::1] with the server's own port gets 403, so a web page that rebinds its
own name to 127.0.0.1 cannot read the text or use the endpoint. A connection idle for
IDLE_TIMEOUT seconds is closed, at most MAX_THREADS connections are served at once (the others
wait in the listen queue), and a client that goes away mid-answer is one line in the log.
"""
from __future__ import annotations

import json
import signal
import sys
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
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
IDLE_TIMEOUT = 10.0  # seconds a connection may sit without sending a request
MAX_THREADS = 16  # connections served at once: a browser opens about 6


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


def allowed_origins(port: int) -> tuple[set[str], set[str]]:
    """The Host values and the Origin values a request to 127.0.0.1:`port` may carry."""
    hosts = {f"{name}:{port}" for name in LOCAL_NAMES} | (set(LOCAL_NAMES) if port == 80 else set())
    return hosts, {f"http://{host}" for host in hosts}


def make_handler(app: App, timeout: float = IDLE_TIMEOUT):
    class Handler(BaseHTTPRequestHandler):
        def setup(self):
            self.timeout = timeout  # StreamRequestHandler sets it on the socket: an idle connection ends
            super().setup()

        def do_GET(self):
            hosts, origins = allowed_origins(self.server.server_address[1])
            host, origin = self.headers.get("Host"), self.headers.get("Origin")
            if host not in hosts or (origin is not None and origin not in origins):
                self._send(HTTPStatus.FORBIDDEN, b"forbidden: only this machine's own page may ask "
                           b"(Host and Origin must be 127.0.0.1, localhost or [::1] with this port)", "text/plain")
                return
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


class LocalServer(ThreadingHTTPServer):
    """127.0.0.1:port, a thread per connection, at most `max_threads` at once; errors logged in one line."""

    daemon_threads = True

    def __init__(self, port: int = 0, max_threads: int = MAX_THREADS, log=None):
        self.slots = threading.BoundedSemaphore(max_threads)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        try:
            super().__init__(("127.0.0.1", port), BaseHTTPRequestHandler)
        except OverflowError:  # bind's own words for a port outside 0..65535
            raise ValueError(f"--port must be an integer in [0, 65535] (0: a free one); got {port}") from None
        except OSError as error:
            raise OSError(error.errno, f"cannot serve on 127.0.0.1:{port}: {error.strerror or error}; choose "
                                       "another --port, or 0 for a free one") from None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request, client_address):
        self.slots.acquire()  # waits for a connection to end (each ends within IDLE_TIMEOUT when idle)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):  # a page closed or reloaded mid-answer
            self.log(f"rnnlab explore: {client_address[0]}:{client_address[1]} went away mid-answer "
                     f"({type(error).__name__})")
        else:
            self.log(f"rnnlab explore: a request from {client_address[0]}:{client_address[1]} failed: "
                     f"{type(error).__name__}: {error}")


def serve(app: App, port: int = 0, announce=print, server: LocalServer | None = None,
          timeout: float = IDLE_TIMEOUT) -> int:
    """Serve until Ctrl-C (or SIGTERM) on 127.0.0.1:port (0: a free port), or on `server` (bound
    beforehand, so a taken port is refused before any work); returns 0."""
    server = server or LocalServer(port)
    server.RequestHandlerClass = make_handler(app, timeout)

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop it, even where the shell started it with SIGINT ignored (a background job).
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    announce(f"rnnlab explore: serving at http://127.0.0.1:{server.port}/ (Ctrl-C stops)")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        announce("rnnlab explore: stopped")
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
