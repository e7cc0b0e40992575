"""trainer.studio.send on its own: targets checked against the devices' own naming rules, and a Studio without
fleet settings (or a client on another computer) answering with what to do."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from edge.config.edge import sanitise_device_id
from edge.config.fleet import GROUP_PATTERN
from edge.fleet.signing import generate_keypair
from tests.trainer.studio.conftest import Running
from trainer.studio.app import create_app
from trainer.studio.limits import StudioLimits
from trainer.studio.send import NAME_PATTERN, Sender, SendError, load_settings, parse_target
from trainer.studio.server import StudioServer


def test_the_naming_rule_is_the_devices_own() -> None:
    assert NAME_PATTERN.pattern == GROUP_PATTERN
    for raw in ("Pi.Kitchen", "pi-01", "x" * 90, "a b/c#"):
        assert NAME_PATTERN.match(sanitise_device_id(raw)), raw


def test_targets() -> None:
    assert parse_target({"devices": ["pi-b", "pi-a", "pi-a"], "wave": 20, "abort_above": "10%"}).devices == ("pi-a", "pi-b")
    target = parse_target({"group": "class-a", "wave": "50%"})
    assert (target.group, target.wave, target.abort_above) == ("class-a", 0.5, None)
    for body in ({"devices": ["a+"]}, {"devices": "pi-a"}, {"devices": ["x"] * 501}, {"group": 3}, {"group": "a/#"},
                 {"group": "g", "wave": -5}, {"group": "g", "wave": [1]}):
        with pytest.raises(SendError):
            parse_target(body)


def test_without_fleet_settings_the_api_says_how_to_turn_it_on(studio: Running) -> None:
    settings = studio.client.get("/api/fleet").json()
    assert settings["enabled"] is False and settings["here"] is True and "--fleet-host" in settings["setup"], settings
    for reply in (studio.client.get("/api/fleet/devices"), studio.client.post("/api/fleet/rollback", {"group": "g"}),
                  studio.client.post("/api/projects/p/send", {"group": "g"})):
        assert reply.status == 409 and "--fleet-host" in reply.json()["error"], reply.body


def test_a_bad_key_stops_the_settings(tmp_path: Path) -> None:
    (tmp_path / "fleet.key").write_text("not a key")
    with pytest.raises(ValueError, match="trainer fleet keygen"):
        load_settings("localhost", 1883, None, None, tmp_path / "fleet.key")
    private, _ = generate_keypair(tmp_path / "keys")
    with pytest.raises(ValueError, match="no such file"):
        load_settings("localhost", 1883, None, tmp_path / "nope", private)


def _lan_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_only_the_studios_own_computer_may_send(tmp_path: Path) -> None:
    address = _lan_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    private, _ = generate_keypair(tmp_path / "keys")
    sender = Sender(load_settings("127.0.0.1", 1, None, None, private))  # never reached: refused before
    limits = StudioLimits()
    server = StudioServer(create_app(tmp_path / "p", "class-pw", limits, sender=sender), address, 0, limits)
    server.start()
    try:
        login = _login(address, server.port)  # the class password lets a student's browser in...
        assert _request(address, server.port, "GET", "/api/projects", login)[0] == 200
        reply = _request(address, server.port, "GET", "/api/fleet/devices", login)  # ...but not to the devices
        assert reply[0] == 403 and "Studio's own computer" in reply[1], reply
        assert _request(address, server.port, "POST", "/api/fleet/rollback", login, b'{"group":"g"}')[0] == 403
        assert json.loads(_request(address, server.port, "GET", "/api/fleet", login)[1]) == {"enabled": True, "here": False,
                                                                                            "setup": None}
    finally:
        server.stop()


def _request(host: str, port: int, method: str, path: str, cookie: str, body: bytes | None = None) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"X-Studio": "1", "Cookie": cookie, "Content-Type": "application/json"}
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _login(host: str, port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", "/login", body="password=class-pw", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                                            "X-Studio": "1"})
        response = conn.getresponse()
        response.read()
        cookie = response.getheader("set-cookie") or ""
        return cookie.split(";")[0]
    finally:
        conn.close()


def test_the_studio_does_not_start_with_a_bad_fleet_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.paths import REPO

    done = subprocess.run([sys.executable, "-m", "trainer.cli", "studio", "--projects", str(tmp_path / "p"), "--fleet-host",
                           "127.0.0.1", "--fleet-key", str(tmp_path / "missing.key")], cwd=str(REPO), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "send to devices" in done.stderr and "missing.key" in done.stderr, done.stderr
    assert "open http" not in done.stdout
