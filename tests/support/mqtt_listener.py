"""A separate MQTT client for tests: records every message it sees, so tests read what a real subscriber
(Home Assistant, Node-RED, a student's script) would read."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

    def __init__(self, host: str, port: int, topics: tuple[str, ...] = ("#",), client_id: str | None = None,
                 persistent: bool = False) -> None:
        """`persistent`: a session the broker keeps (and queues QoS 1 messages for) while this listener is
        away, so messages sent before it reconnects after a broker restart are not lost to the test. Needs
        a broker with persistence (see `persistent_broker_config`)."""
        self.messages: list[Seen] = []
        self._cond = threading.Condition()
        self._topics = topics
        client_id = client_id or f"test-listener-{uuid.uuid4().hex[:12]}"
        self.sync_topic = f"edgeteach-test-sync/{client_id}"  # see `sync()`
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
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
        # One SUBSCRIBE for everything: the sync topic's subscription exists before any later PUBLISH of ours.
        client.subscribe([(t, 1) for t in self._topics] + [(self.sync_topic, 1)])
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
                    raise AssertionError(f"timed out after {timeout}s waiting for {count} x {what or predicate}; got "
                                         f"{len(found)}; topics seen: {seen}")
                self._cond.wait(left)

    def wait_topic(self, topic: str, timeout: float = 10.0, count: int = 1, where: Callable[[Seen], bool] | None = None) -> list[Seen]:
        return self.wait_for(lambda m: m.topic == topic and (where is None or where(m)), timeout, count, what=topic)

    def sync(self, timeout: float = 10.0) -> None:
        """Returns once a marker published by this listener came back through the broker. The broker
        handles one client's packets in order, so everything it had queued for this listener before the
        marker (the retained messages of its subscriptions, messages it had received from other clients)
        has arrived by then: the positive event after which "nothing (else) arrived" means something.
        Another client's message counts only once the broker has received it: for "the daemon did not
        publish X" use a marker from the daemon itself, e.g. the reply to a command sent after X."""
        token = uuid.uuid4().hex.encode()
        self.client.publish(self.sync_topic, token, qos=1)
        self.wait_for(lambda m: m.topic == self.sync_topic and m.payload == token, timeout, what=f"sync marker on {self.sync_topic}")

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(host: str, port: int, topic: str, timeout: float = 10.0) -> Seen | None:
    """What a NEW subscriber gets as the retained message on `topic` (None when nothing is retained).

    No fixed wait: the broker queues a topic's retained message while it handles the SUBSCRIBE, before it
    handles the sync marker this subscriber publishes next, so once the marker is back the answer is known
    (`timeout` only bounds a broker that does not answer at all)."""
    listener = Listener(host, port, (topic,))
    try:
        listener.sync(timeout)
        found = listener.on(topic)
        return found[0] if found and found[0].retain else None
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
