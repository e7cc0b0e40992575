"""A real Mosquitto broker on a free loopback port, for tests: the product's own (trainer.demo.broker), logging."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainer.demo.broker import Mosquitto, free_port, mosquitto_binary, wait_for_port

__all__ = ["Broker", "free_port", "mosquitto_available", "mosquitto_with", "wait_for_port"]


@dataclass
class Broker(Mosquitto):
    """One mosquitto process logging to workdir/mosquitto.log; `stop()` and `start()` again on the same port
    simulate an outage."""

    log: bool = True


def mosquitto_available() -> bool:
    return mosquitto_binary() is not None


@contextmanager
def mosquitto_with(config: str, workdir: Path) -> Iterator[int]:
    """The real mosquitto on `config` (a broker's own settings: accounts, ACL, ...) plus a free loopback
    listener; yields its port. Its log goes to workdir/mosquitto.log."""
    from tests.support.mqtt_listener import stay_root_config

    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\n{config.rstrip()}\npersistence false\nlog_dest stderr\n{stay_root_config()}")
    with (workdir / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen([mosquitto_binary() or "mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process=process)
            yield port
        finally:
            process.terminate()
            process.wait(5)
