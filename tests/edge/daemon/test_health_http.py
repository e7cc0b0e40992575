"""The daemon's health server (edge/daemon/health.py on edge/core/webserver.py), over real sockets: the
endpoints, and the framing protections it shares with the LLM API (issue 12 item 7): idle and half-open
sockets are closed at the deadline, idle ones make room for a real probe when the connection cap is
reached, a full house of in-flight requests gets 503 and a closed connection, and no internal error text
leaks into a reply."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from edge.core.webserver import ServerLimits
from edge.daemon import health
from edge.daemon.health import HealthServer

pytestmark = pytest.mark.timeout(60)

IDLE_TIMEOUT_S = 2.0
CAP = 4


class Probe:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.inside = 0
        self.lock = threading.Lock()

    def health(self) -> tuple[bool, dict[str, Any]]:
        with self.lock:
            self.inside += 1
        self.gate.wait(30)
        with self.lock:
            self.inside -= 1
        if self.fail:
            raise RuntimeError("secret detail /etc/edgeteach/edge.yaml")
        return True, {"loop": "ok"}


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HealthServer, Probe]]:
    monkeypatch.setattr(health, "LIMITS", ServerLimits(idle_timeout_s=IDLE_TIMEOUT_S, max_connections=CAP))
    probe = Probe()
    srv = HealthServer("127.0.0.1", 0, probe.health, lambda: "edgeteach_up 1\n").start()
    yield srv, probe
    probe.gate.set()
    srv.stop()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def read_until_closed(sock: socket.socket, wait_s: float) -> tuple[bytes, bool]:
    sock.settimeout(wait_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


def test_endpoints(server: tuple[HealthServer, Probe]) -> None:
    srv, _ = server
    assert get(srv.port, "/healthz") == (200, json.dumps({"loop": "ok"}).encode())
    status, body = get(srv.port, "/metrics")
    assert status == 200 and body == b"edgeteach_up 1\n"
    assert get(srv.port, "/nope")[0] == 404


def test_a_failing_check_is_500_without_its_text(server: tuple[HealthServer, Probe]) -> None:
    srv, probe = server
    probe.fail = True
    status, body = get(srv.port, "/healthz")
    assert status == 500 and b"secret" not in body and b"/etc/" not in body


def test_idle_and_half_open_sockets_are_closed_at_the_deadline(server: tuple[HealthServer, Probe]) -> None:
    srv, srv_probe = server
    silent = socket.create_connection(("127.0.0.1", srv.port))
    half = socket.create_connection(("127.0.0.1", srv.port))
    half.sendall(b"GET /heal")
    started = time.monotonic()
    for sock in (silent, half):
        data, closed = read_until_closed(sock, IDLE_TIMEOUT_S + 5)
        assert closed and data == b""
        sock.close()
    assert time.monotonic() - started < IDLE_TIMEOUT_S + 5
    # A kept-alive connection gets the deadline again after its answer, even when it then trickles half a
    # request (which stops uvicorn's own keep-alive timer). Its first request outlasts the first deadline.
    srv_probe.gate.clear()
    keep = socket.create_connection(("127.0.0.1", srv.port))
    keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(IDLE_TIMEOUT_S * 1.5)
    srv_probe.gate.set()
    keep.settimeout(5)
    assert keep.recv(4096).startswith(b"HTTP/1.1 200")  # a request in flight is never cut by the deadline
    keep.sendall(b"GET /met")
    data, closed = read_until_closed(keep, IDLE_TIMEOUT_S + 5)
    assert closed and b"HTTP/1.1" not in data
    keep.close()


def test_idle_sockets_make_room_for_a_probe(server: tuple[HealthServer, Probe]) -> None:
    srv, _ = server
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(CAP * 5)]
    try:
        assert get(srv.port, "/healthz")[0] == 200  # long before the idle deadline
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_is_busy_a_new_one_gets_503_and_is_closed(server: tuple[HealthServer, Probe]) -> None:
    srv, probe = server
    probe.gate.clear()  # each /healthz now waits inside the check: a request in flight
    busy = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(CAP)]
    for sock in busy:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while probe.inside < CAP and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probe.inside == CAP
    extra = socket.create_connection(("127.0.0.1", srv.port))
    data, closed = read_until_closed(extra, 5)
    extra.close()
    assert data.startswith(b"HTTP/1.1 503") and closed
    probe.gate.set()  # the busy ones were not evicted: they get their answers
    for sock in busy:
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()


def test_a_404_closes_the_connection_before_its_body_is_read(server: tuple[HealthServer, Probe]) -> None:
    srv, _ = server
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
    data, closed = read_until_closed(sock, IDLE_TIMEOUT_S / 2)  # at once, not at the idle deadline
    sock.close()
    assert data.startswith(b"HTTP/1.1 404") and closed and b"edgeteach_up" not in data


def test_the_cap_closes_the_connection_idle_the_longest(server: tuple[HealthServer, Probe]) -> None:
    srv, _ = server
    first = socket.create_connection(("127.0.0.1", srv.port))
    time.sleep(0.2)  # the others arrive later: `first` has waited longest
    others = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(CAP)]  # one over the cap
    try:
        data, closed = read_until_closed(first, IDLE_TIMEOUT_S / 2)  # at once, not at the deadline
        assert closed and data == b""
        for sock in others:  # still open (each would close at its deadline)
            _, closed = read_until_closed(sock, 0.05)
            assert not closed
    finally:
        for sock in (first, *others):
            sock.close()


def test_a_malformed_chunked_body_gets_one_400_and_no_error_in_the_log(server: tuple[HealthServer, Probe],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    # uvicorn answers the bad chunk size itself while the app is still answering the request head: the app's own
    # answer must be dropped, not raise h11's LocalProtocolError ("Exception in ASGI application" with a
    # traceback; found by bench/fuzz_network.py).
    srv, _ = server
    with caplog.at_level("DEBUG"), socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        time.sleep(0.3)  # the app's task runs after uvicorn's 400
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.count(b"HTTP/1.1 ") == 1, answer
    errors = [r for r in caplog.records if r.levelno >= 40]
    assert not errors, [r.getMessage() for r in errors]
    assert get(srv.port, "/healthz")[0] == 200  # the server goes on
