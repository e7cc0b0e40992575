"""Shared fixtures: the ../shared fixtures folder, a real Mosquitto broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.paths import REPO

# Native llama.cpp generation runs in a process of its own, so a crash or hang fails one test and not the run.
pytest_plugins = ["tests.support.crash_isolation"]

SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "fixtures").is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED}/fixtures (they live beside the checkout, not in it)")
    return SHARED / "fixtures"


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (Debian package 'mosquitto')")
    b = Broker(workdir=tmp_path, port=free_port()).start()
    try:
        yield b
    finally:
        b.stop()
