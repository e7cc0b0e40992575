"""Classroom mode's classic failure: two devices with one MQTT client id (an SD card cloned without renaming the
Pi keeps its hostname, hence its device_id and client id). The broker lets the newest connection in and drops
the other, which reconnects and drops the first: both flap forever and neither works. Watched from outside with
the doctor's own client id: this device's retained `status` flapping (the broker publishes the dropped one's
Last Will), or its stats coming from two processes (uptime going back)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from edge.doctor.base import CheckResult
from edge.mqtt.topics import Topics

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.mqtt.connection import IncomingMessage

WATCH_S = 4.0  # a flapping pair reconnects every mqtt.reconnect_min_delay (1 s): several flaps show in this time


def check_client_id(config: EdgeConfig, timeout_s: float, watch_s: float = WATCH_S) -> CheckResult:
    from edge.mqtt.connection import MqttConnection

    topics = Topics.for_device(config.device_id, config.mqtt.topic_prefix)
    client_id = config.mqtt.client_id or f"edgeteach-{config.device_id}"
    seen: list[tuple[str, bytes, bool]] = []
    lock = threading.Lock()

    def keep(message: IncomingMessage) -> None:
        with lock:
            seen.append((message.topic, message.payload, message.retain))

    quiet = logging.getLogger("edge.mqtt.connection")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the mqtt row already reports an unreachable broker
    connection = MqttConnection(config.mqtt, client_id=f"edgeteach-doctor-ids-{socket.gethostname()}-{os.getpid()}")
    try:
        connection.subscribe(topics.status, keep, qos=1)
        connection.subscribe(topics.stats, keep, qos=0)
        connection.start()
        if not connection.wait_connected(timeout_s):
            return CheckResult("mqtt client id", "skip", "the broker did not answer (see the mqtt row)")
        time.sleep(watch_s)
    finally:
        connection.stop(timeout=1.0, publish_will=False)
        quiet.setLevel(level)
    with lock:
        messages = list(seen)
    live_status = [payload for topic, payload, retained in messages if topic == topics.status and not retained]
    uptimes = [_uptime(payload) for topic, payload, _ in messages if topic == topics.stats]
    uptimes_known = [u for u in uptimes if u is not None]
    went_back = any(later < earlier for earlier, later in zip(uptimes_known, uptimes_known[1:]))
    drops = live_status.count(b"offline")
    if drops >= 2 or went_back or (drops >= 1 and live_status.count(b"online") >= 1):
        why = f"its status went offline {drops} time(s) in {watch_s:g} s" if drops else "its stats come from two processes"
        return CheckResult("mqtt client id", "warn",
                           f"{topics.prefix}: {why}; another client most likely uses the client id {client_id}, and the broker "
                           "keeps dropping one for the other",
                           "give every device its own name: a cloned SD card keeps the hostname (`sudo hostnamectl set-hostname "
                           "pi-07`, then restart edgeteach), or set device_id / mqtt.client_id in each config")
    retained_online = any(topic == topics.status and payload == b"online" for topic, payload, _ in messages)
    if not uptimes_known and not retained_online:
        return CheckResult("mqtt client id", "skip", f"no daemon publishes as {topics.prefix} now (start `edge run` to check its id)")
    return CheckResult("mqtt client id", "ok", f"{client_id}: one daemon, its connection steady for {watch_s:g} s")


def _uptime(payload: bytes) -> float | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    value = data.get("uptime_s") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) else None
