"""A real Mosquitto broker on a free loopback port, for tests: the product's own (trainer.demo.broker), logging."""

from __future__ import annotations

from dataclasses import dataclass

from trainer.demo.broker import Mosquitto, free_port, mosquitto_binary, wait_for_port

__all__ = ["Broker", "free_port", "mosquitto_available", "wait_for_port"]


@dataclass
class Broker(Mosquitto):
    """One mosquitto process logging to workdir/mosquitto.log; `stop()` and `start()` again on the same port
    simulate an outage."""

    log: bool = True


def mosquitto_available() -> bool:
    return mosquitto_binary() is not None
