"""The `dashboard:` section: on by default on 127.0.0.1; on any other address a password_file is required, as a
config error naming the key and its line (found by `edge config check` and `edge run` before anything starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, load_config, parse_config, validate_config
from edge.config.dashboard import DEFAULT_PORT
from edge.config.health import HealthSettings
from edge.config.llm import LlmSettings

EXPOSED = "the dashboard on 0.0.0.0 would show the camera and the controls to the whole network without a password"


def problems(text: str) -> list[str]:
    return validate_config(yaml.safe_load(text), text)[1]


def test_defaults_serve_it_on_loopback_on_a_port_of_its_own() -> None:
    settings = parse_config({}).dashboard
    assert (settings.enabled, settings.host, settings.port, settings.password_file) == (True, "127.0.0.1", DEFAULT_PORT, None)
    assert DEFAULT_PORT not in (HealthSettings().port, LlmSettings().port)


def test_a_network_address_without_a_password_is_refused_with_its_line() -> None:
    found = problems("device_id: d\ndashboard:\n  host: 0.0.0.0\n")
    assert len(found) == 1
    assert found[0].startswith("dashboard.host (line 3): " + EXPOSED), found
    assert "dashboard.password_file" in found[0]
    with pytest.raises(ConfigError):
        parse_config({"dashboard": {"host": "192.168.1.20", "port": 8090}})


@pytest.mark.parametrize("section", [
    {"host": "0.0.0.0", "password_file": "dashboard-password"},
    {"host": "127.0.0.1"},
    {"host": "localhost"},
    {"host": "::1"},
    {"host": "0.0.0.0", "enabled": False},
])
def test_what_is_accepted(section: dict[str, object]) -> None:
    assert validate_config({"dashboard": section})[1] == []


def test_every_problem_at_once_with_the_others(tmp_path: Path) -> None:
    found = problems("dashboard:\n  host: 0.0.0.0\n  port: 0\nmqtt:\n  reconnect_min_delay: 9\n  reconnect_max_delay: 1\n")
    assert len(found) == 3 and any(p.startswith("dashboard.port") for p in found) and any(EXPOSED in p for p in found)


def test_the_password_file_is_taken_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "edge.yaml").write_text("dashboard:\n  host: 0.0.0.0\n  password_file: secrets/dashboard\n")
    assert load_config(tmp_path / "edge.yaml").dashboard.password_file == str(tmp_path / "secrets" / "dashboard")
