"""`rnnlab explore --serve` against hostile clients: foreign Host and Origin headers (DNS rebinding),
idle connections, clients that leave mid-answer, bad ports, and pages too big to build."""
import http.client
import socket
import struct
import threading
import time

import pytest

from explore_helpers import CODE, tiny_checkpoint
import rnnlab
from rnnlab.cli import main
from rnnlab.explore import explore_page
from rnnlab.explore.server import App, LiveModel, LocalServer, serve
from rnnlab.nn.cells import get_cell, register_cell
from rnnlab.nn.cells.definition import CellDefinition


@pytest.fixture
def served(tmp_path):
    """A live server in a thread of this process: (server, log lines); shut down afterwards."""
    model, vocab = tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    log = []
    server = LocalServer(0, max_threads=4, log=log.append)
    app = App("<html>" + "x" * 8_000_000 + "</html>", [LiveModel("a", model, vocab)])
    thread = threading.Thread(target=serve, args=(app,), kwargs=dict(server=server, announce=log.append, timeout=0.5))
    thread.start()
    yield server, log
    server.shutdown()
    thread.join(timeout=10)


def get(port, path="/api/live?text=def", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_only_this_machines_own_page_may_ask(served):
    server, _ = served
    port = server.port
    assert get(port)[0] == 200  # http.client sends Host: 127.0.0.1:port
    for host in (f"localhost:{port}", f"[::1]:{port}"):
        assert get(port, headers={"Host": host})[0] == 200
        assert get(port, headers={"Host": host, "Origin": f"http://{host}"})[0] == 200
    refused = [{"Host": f"evil.example:{port}"},                       # a rebound name
               {"Host": "evil.example"},
               {"Host": f"127.0.0.1:{port + 1}"},                       # another port
               {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"},
               {"Host": f"127.0.0.1:{port}", "Origin": "null"},
               {"Host": f"127.0.0.1:{port}", "Origin": f"https://127.0.0.1:{port}"}]
    for headers in refused:
        for path in ("/", "/api/live?text=def"):
            status, body = get(port, path, headers)
            assert status == 403 and b"def" not in body and b"xxxx" not in body, (headers, path, status)


def test_idle_connections_time_out_and_threads_are_capped(served):
    server, _ = served
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
    try:
        time.sleep(0.3)
        assert threading.active_count() <= before + 4  # max_threads=4 of them at once, the rest wait their turn
        for s in idle:  # each is served in turn, then closed by the server after 0.5 s of silence
            s.settimeout(15)
            assert s.recv(1) == b""
    finally:
        for s in idle:
            s.close()
    assert get(server.port)[0] == 200


def test_a_client_leaving_mid_answer_is_one_line(served, capfd):
    server, log = served
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    s.recv(1000)  # the answer has started
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # a reset, as a browser's aborted load
    deadline = time.monotonic() + 10
    while not any("went away" in line for line in log) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in log if "went away" in line]
    assert len(lines) == 1 and lines[0].startswith("rnnlab explore: 127.0.0.1:"), log
    assert get(server.port)[0] == 200  # and it goes on serving
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_bad_port_is_refused_before_any_work(tmp_path, capsys, port):
    tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    start = time.perf_counter()
    code = main(["explore", str(tmp_path / "a.safetensors"), "--serve", "--port", port,
                 "--out", str(tmp_path / "p.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"--port must be an integer in [0, 65535] (0: a free one); got {port}" in err
    assert time.perf_counter() - start < 2 and not (tmp_path / "p.html").exists()


def test_a_taken_port_is_named_before_any_work(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["explore", str(tmp_path / "a.safetensors"), "--serve", "--port", str(port),
                     "--out", str(tmp_path / "p.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"127.0.0.1:{port}: Address already in use; choose another --port, or 0 for a free one" in err
    assert not (tmp_path / "p.html").exists()


def test_connectivity_too_big_for_a_page_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    tiny_checkpoint(tmp_path / "a.safetensors", "lstm")
    text = tmp_path / "long.py"
    text.write_text(CODE * 200)  # 22,200 characters
    start = time.perf_counter()
    code = main(["explore", str(tmp_path / "a.safetensors"), "--text", str(text), "--chars", "12000",
                 "--positions", "12000", "--window", "12000", "--out", str(tmp_path / "p.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "connectivity at 11,999 positions x 12,000 characters back is 143,988,000 values" in err
    assert "lower --positions or --window" in err
    assert time.perf_counter() - start < 2 and not (tmp_path / "p.html").exists()
    # within the page's bound, the memory estimate (as training's) still refuses on a small machine
    monkeypatch.setenv("RNNLAB_MEMORY_LIMIT", "20000000")
    with pytest.raises(ValueError, match=r"exploring 12,000 characters .* needs about .* lower --positions, "
                                         r"--window or --chars"):
        explore_page(tmp_path / "a.safetensors", text_file=text, chars=12000, max_positions=2000, window=2000)


def test_registration_refuses_names_that_are_not_identifiers():
    lstm = get_cell("lstm")
    for field, value in (("gates", ("i", "f", "<img src=x onerror=alert(1)>", "o")),
                         ("state_names", ("h", 'c"><script>')),
                         ("saved", (*lstm.saved[:-1], "a b"))):
        evil = CellDefinition(**{**{f: getattr(lstm, f) for f in ("gates", "state_names", "saved", "forward",
                                                                  "backward", "recurrence", "h_side_apart",
                                                                  "parameters", "gate_bias")},
                                 "name": "evil_cell", field: value, "gate_bias": {}})
        with pytest.raises(ValueError, match="names must be Python identifiers; got '"):
            register_cell(evil)
        assert "evil_cell" not in rnnlab.settings.cells.cells
