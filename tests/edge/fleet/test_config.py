"""The `fleet:` config section: off by default, on once a key is listed, never on without one; key paths taken
relative to the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config_text, parse_config


def test_the_fleet_is_off_by_default_and_on_once_a_key_is_listed(tmp_path: Path) -> None:
    assert not parse_config({}).fleet.active
    config = load_config_text("fleet:\n  group: class-a\n  public_keys: [keys/fleet.pub]\n", "edge.yaml", tmp_path)
    assert config.fleet.active and config.fleet.group == "class-a"
    assert config.fleet.public_keys == [str(tmp_path / "keys" / "fleet.pub")]
    assert not parse_config({"fleet": {"enabled": False, "public_keys": ["k.pub"]}}).fleet.active


def test_enabling_it_without_a_key_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="trainer fleet keygen"):
        parse_config({"fleet": {"enabled": True}})


@pytest.mark.parametrize("fleet", [{"group": "Class A"}, {"max_bundle_bytes": 10**9}, {"health_gate": {"latency_factor": 0.5}},
                                   {"publick_keys": []}])
def test_bad_fleet_settings_are_refused(fleet: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="fleet"):
        parse_config({"fleet": fleet})
