"""edge/dashboard/app.py, auth.py and server.py over real HTTP (the server on a free port, urllib as the client),
with a recording stand-in for the daemon: who may do what, bounded bodies, and that a command's answer is the
command code's own (the real daemon behind it: tests/e2e/test_dashboard.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config.dashboard import DashboardSettings
from edge.dashboard.app import MAX_JSON_BYTES
from edge.dashboard.device import CommandResult, LlmLink
from edge.dashboard.server import DashboardServer
from edge.pipelines.base import Pipeline

REFUSAL = "cam: new bundle refused, the old model keeps running: (the command code's words)"


class FakeDevice:
    device_id = "testdev"

    def __init__(self, models: Path) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.models = models

    def pipelines(self) -> dict[str, Pipeline]:
        return {}

    def stats_payload(self) -> dict[str, Any]:
        return {"pipelines": {}, "process": {"cpu_percent": 1.0}}

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok", "sources": {}, "failed_pipelines": {}, "mqtt_connected": True}

    def command(self, name: str, args: dict[str, Any]) -> CommandResult:
        self.commands.append((name, args))
        if name == "reload":
            return CommandResult({"ok": False, "command": name, "error": REFUSAL})
        return CommandResult({"ok": True, "command": name, "paused": True})

    def models_dir(self) -> Path:
        return self.models

    def llm(self) -> LlmLink | None:
        return None


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.cookie = ""

    def __call__(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        all_headers = {"Cookie": self.cookie} if self.cookie else {}
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base + path, data=body, headers=all_headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers

    def command(self, name: str, payload: bytes, csrf: bool = True) -> tuple[int, bytes, Any]:
        headers = {"Content-Type": "application/json", **({"X-Dashboard": "1"} if csrf else {})}
        return self(f"/api/command/{name}", payload, headers)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def serve(device: FakeDevice, **settings: Any) -> DashboardServer:
    # port 0 (a free one) is below what the config accepts: built without validation
    return DashboardServer(DashboardSettings.model_construct(port=0, **settings), device).start()


@pytest.fixture()
def open_page(tmp_path: Path) -> Iterator[tuple[Client, FakeDevice]]:
    device = FakeDevice(tmp_path)
    server = serve(device)
    try:
        yield Client(server.port), device
    finally:
        server.stop()


def test_a_command_goes_to_the_device_and_its_refusal_comes_back_word_for_word(open_page: tuple[Client, FakeDevice]) -> None:
    client, device = open_page
    status, body, _ = client.command("pause", b'{"pipeline": "cam"}')
    assert status == 200 and json.loads(body)["paused"] is True
    status, body, _ = client.command("reload", b'{"pipeline": "cam", "bundle": "broken"}')
    assert status == 400 and json.loads(body)["error"] == REFUSAL
    assert device.commands == [("pause", {"pipeline": "cam"}), ("reload", {"pipeline": "cam", "bundle": "broken"})]


def test_what_is_refused_before_reaching_the_device(open_page: tuple[Client, FakeDevice]) -> None:
    client, device = open_page
    status, body, _ = client.command("pause", b"{}", csrf=False)  # a form on another site cannot add the header
    assert status == 403 and "x-dashboard: 1" in json.loads(body)["error"]
    assert client.command("status", b"{}")[0] == 404  # the page's commands only
    assert client.command("snapshot", b"{}")[0] == 404  # it has its own route, answering a JPEG
    status, body, _ = client.command("pause", b"x" * (MAX_JSON_BYTES + 1))
    assert status == 413
    assert client.command("pause", b"[1, 2]")[0] == 400
    assert client.command("pause", b"{not json")[0] == 400
    assert client("/api/overview", headers={"Host": "attacker.example:8090"})[0] == 400  # DNS rebinding
    assert client("/api/pipelines/nope/report.html")[0] == 404
    status, body, _ = client("/api/chat", b'{"messages": [{"role": "user", "content": "hi"}]}',
                             {"X-Dashboard": "1", "Content-Type": "application/json"})
    assert status == 404 and "llm.enabled" in json.loads(body)["error"]
    assert device.commands == []


def test_the_page_the_overview_and_the_bundle_list(open_page: tuple[Client, FakeDevice]) -> None:
    client, device = open_page
    (device.models / "colours").mkdir()
    (device.models / "colours" / "manifest.json").write_text('{"task": "image"}')
    (device.models / ".hidden").mkdir()
    (device.models / ".hidden" / "manifest.json").write_text("{}")
    status, body, _ = client("/")
    assert status == 200 and b"/static/dashboard.js" in body
    overview = json.loads(client("/api/overview")[1])
    assert overview["healthy"] is True and overview["stats"]["process"]["cpu_percent"] == 1.0 and overview["chat"] is False
    assert json.loads(client("/api/models")[1])["bundles"] == [{"path": "colours", "task": "image"}]
    for asset in ("dashboard.js", "tiles.js", "health.js", "sound.js", "chat.js", "ui.js", "dashboard.css"):
        status, text, _ = client(f"/static/{asset}")
        assert status == 200 and b"http://" not in text and b"https://" not in text  # offline: nothing from a CDN


def test_with_a_password(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("open sesame\n")
    server = serve(FakeDevice(tmp_path), password_file=str(tmp_path / "password"))
    client = Client(server.port)
    try:
        assert client("/api/live")[0] == 401
        status, _, headers = client("/")
        assert status == 303 and headers["location"] == "/login"
        assert client("/login", urllib.parse.urlencode({"password": "open"}).encode())[0] == 401
        assert client("/login", b"password=" + b"x" * 2000)[0] == 413
        status, _, headers = client("/login", urllib.parse.urlencode({"password": "open sesame"}).encode())
        assert status == 303
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "open sesame" not in cookie
        client.cookie = cookie.split(";")[0]
        assert client("/api/live")[0] == 200
    finally:
        server.stop()


def test_it_will_not_start_exposed_without_a_password(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="needs dashboard.password_file"):
        DashboardServer(DashboardSettings.model_construct(host="0.0.0.0", port=0), FakeDevice(tmp_path))
    with pytest.raises(OSError, match=r"dashboard.password_file: cannot read .*missing"):
        missing = DashboardSettings.model_construct(host="0.0.0.0", port=0, password_file=str(tmp_path / "missing"))
        DashboardServer(missing, FakeDevice(tmp_path))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(OSError, match="is empty"):
        DashboardServer(DashboardSettings.model_construct(port=0, password_file=str(tmp_path / "empty")), FakeDevice(tmp_path))


def test_wrong_guesses_in_parallel_meet_the_limit(tmp_path: Path) -> None:
    """The shared limit of edge/core/guesses.py: past DEFAULT_PER_CLIENT wrong passwords from one address, every
    guess (the right one too) is answered 429 with how long to wait, however many connections send them."""
    from concurrent.futures import ThreadPoolExecutor

    from edge.core.guesses import DEFAULT_PER_CLIENT

    (tmp_path / "password").write_text("open sesame\n")
    server = serve(FakeDevice(tmp_path), password_file=str(tmp_path / "password"))
    client = Client(server.port)
    wrong = urllib.parse.urlencode({"password": "guess"}).encode()
    try:
        with ThreadPoolExecutor(DEFAULT_PER_CLIENT + 5) as pool:
            answers = list(pool.map(lambda _: client("/login", wrong), range(DEFAULT_PER_CLIENT + 5)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [401] * DEFAULT_PER_CLIENT + [429] * 5
        status, body, headers = client("/login", urllib.parse.urlencode({"password": "open sesame"}).encode())
        assert status == 429 and int(headers["retry-after"]) >= 1 and b"Wait" in body
    finally:
        server.stop()
