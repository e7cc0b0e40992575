"""A separate MQTT client for tests: records every message it sees, so tests read what a real subscriber
(Home Assistant, Node-RED, a student's script) would read."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    correlation_data: bytes | None
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


class Listener:
    """Subscribes to `topics` (default everything) and keeps all messages; reconnects on its own."""

    def __init__(self, host: str, port: int, topics: tuple[str, ...] = ("#",), client_id: str | None = None, persistent: bool = False) -> None:
        """`persistent`: a session the broker keeps (and queues QoS 1 messages for) while this listener is
        away, so messages sent before it reconnects after a broker restart are not lost to the test. Needs
        a broker with persistence (see `persistent_broker_config`)."""
        self.messages: list[Seen] = []
        self._cond = threading.Condition()
        self._topics = topics
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-listener-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self._connected = threading.Event()
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect_async(host, port, keepalive=10, clean_start=False, properties=props)
        else:
            self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError(f"test listener could not connect to {host}:{port}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        with self._cond:
            self.messages.append(Seen(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, corr, time.time()))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Seen]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 10.0, count: int = 1, what: str = "") -> list[Seen]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"timed out after {timeout}s waiting for {count} x {what or predicate}; got {len(found)}; topics seen: {seen}")
                self._cond.wait(left)

    def wait_topic(self, topic: str, timeout: float = 10.0, count: int = 1, where: Callable[[Seen], bool] | None = None) -> list[Seen]:
        return self.wait_for(lambda m: m.topic == topic and (where is None or where(m)), timeout, count, what=topic)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(host: str, port: int, topic: str, timeout: float = 3.0) -> Seen | None:
    """What a NEW subscriber gets as the retained message on `topic` (None when nothing is retained)."""
    listener = Listener(host, port, (topic,))
    try:
        found = listener.wait_topic(topic, timeout=timeout)
        return found[0] if found[0].retain else None
    except AssertionError:
        return None
    finally:
        listener.close()


def persistent_broker_config(directory: str) -> str:
    """Extra mosquitto config that keeps sessions and retained messages across a stop/start. mosquitto
    drops root privileges to its own user, so when run as root it is told to stay root to write here."""
    return f"persistence true\npersistence_location {directory.rstrip('/')}/\n" + stay_root_config()


def stay_root_config() -> str:
    """mosquitto started as root drops to its own user, which cannot read pytest's private tmp folders
    (password files, persistence); tell it to stay root there."""
    import os

    return "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
