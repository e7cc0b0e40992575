"""`edge doctor`'s dashboard row: off, an unreadable password file (the daemon would run without its page), the
port answered by another program, and a real dashboard already answering there."""

from __future__ import annotations

import socket
from pathlib import Path

from edge.config import parse_config
from edge.config.dashboard import DashboardSettings
from edge.doctor.dashboard import check_dashboard
from tests.edge.dashboard.test_app import FakeDevice
from tests.support.broker import free_port


def test_off_and_without_a_config(tmp_path: Path) -> None:
    assert check_dashboard(None).status == "skip"
    assert check_dashboard(parse_config({"dashboard": {"enabled": False}})).status == "skip"


def test_an_unreadable_password_file_fails(tmp_path: Path) -> None:
    row = check_dashboard(parse_config({"dashboard": {"port": free_port(), "password_file": str(tmp_path / "missing")}}))
    assert row.status == "fail" and "dashboard.password_file: cannot read" in row.detail and "without its page" in row.detail


def test_a_free_port_and_a_stranger_on_it(tmp_path: Path) -> None:
    port = free_port()
    row = check_dashboard(parse_config({"dashboard": {"port": port}}))
    assert row.status == "ok" and row.detail == f"http://127.0.0.1:{port}/ (this machine only, no password); port free"
    with socket.create_server(("127.0.0.1", port)) as stranger:  # accepts, then never answers HTTP
        stranger.settimeout(5)
        row = check_dashboard(parse_config({"dashboard": {"port": port}}))
    assert row.status == "warn" and f"port {port} is answered by another program" in row.detail


def test_a_running_dashboard_is_recognised(tmp_path: Path) -> None:
    from edge.dashboard.server import DashboardServer

    (tmp_path / "password").write_text("pw\n")
    settings = DashboardSettings.model_construct(port=0, password_file=str(tmp_path / "password"))
    server = DashboardServer(settings, FakeDevice(tmp_path)).start()
    try:
        row = check_dashboard(parse_config({"dashboard": {"port": server.port, "password_file": str(tmp_path / "password")}}))
        assert row.status == "ok" and row.detail.endswith("(with a password); answering (the daemon runs)"), row.detail
    finally:
        server.stop()
