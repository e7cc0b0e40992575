"""DecisionPublisher's policy through a real broker, with a controlled clock: state on change and on
heartbeat, never above max_rate_hz, a held-back change flushed by tick(); events on every change."""

from __future__ import annotations

import time

from edge.config import PublishSettings
from edge.config.mqtt import MqttSettings
from edge.daemon.publisher import DecisionPublisher
from edge.mqtt.connection import MqttConnection
from edge.mqtt.topics import Topics
from edge.pipelines.base import Decision
from tests.support.broker import Broker
from tests.support.mqtt_listener import Listener


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _decision(label: str, seq: int, changed: bool) -> Decision:
    scores = {"a": 0.9 if label == "a" else 0.1, "b": 0.9 if label == "b" else 0.1}
    return Decision("p", label, 0.9, scores, time.time(), seq, "bundle", "0" * 64, 1.5, changed=changed)


def _sync(conn: MqttConnection, listener: Listener) -> None:
    """Everything `conn` published before this call has reached the listener once the marker has: one
    connection, one subscription, QoS 0 like the states, so the broker keeps the order."""
    token = str(time.monotonic_ns()).encode()
    assert conn.publish("edgeteach/dev/marker", token, qos=0)
    listener.wait_topic("edgeteach/dev/marker", where=lambda m: m.payload == token)


def test_state_on_change_and_heartbeat_never_above_max_rate(broker: Broker) -> None:
    topics = Topics.for_device("dev")
    conn = MqttConnection(MqttSettings(host=broker.host, port=broker.port), client_id="pub-test")
    listener = Listener(broker.host, broker.port, ("edgeteach/dev/#",))
    clock = Clock()
    pub = DecisionPublisher(conn, topics, clock=clock)
    pub.configure("p", PublishSettings(heartbeat_s=10, max_rate_hz=1))
    conn.start()
    try:
        assert conn.wait_connected(10)
        pub.on_decision(_decision("a", 1, changed=True))  # first state: published
        clock.now += 0.1
        pub.on_decision(_decision("a", 2, changed=False))  # unchanged, heartbeat not due: nothing
        clock.now += 0.1
        pub.on_decision(_decision("b", 3, changed=True))  # a change inside the 1 s rate limit: held back
        clock.now += 0.1
        pub.tick()
        listener.wait_topic("edgeteach/dev/p/event", count=2)  # events are never rate-limited
        _sync(conn, listener)
        assert [m.json()["seq"] for m in listener.on("edgeteach/dev/p/state")] == [1]
        clock.now += 1.0
        pub.tick()  # the held-back change goes out once the limit allows, with no new decision
        states = listener.wait_topic("edgeteach/dev/p/state", count=2)
        assert [m.json()["seq"] for m in states] == [1, 3]
        clock.now += 5.0
        pub.on_decision(_decision("b", 4, changed=False))
        pub.tick()
        _sync(conn, listener)
        assert len(listener.on("edgeteach/dev/p/state")) == 2  # unchanged and heartbeat (10 s) not due
        clock.now += 5.1
        pub.tick()  # heartbeat: the unchanged latest state again
        states = listener.wait_topic("edgeteach/dev/p/state", count=3)
        assert states[-1].json()["seq"] == 4 and states[-1].json()["label"] == "b"
        events = [m.json() for m in listener.on("edgeteach/dev/p/event")]
        assert [(e["label"], e["previous"]) for e in events] == [("a", None), ("b", "a")]
        assert pub.counters()["p"]["states_published"] == 3 and pub.counters()["p"]["events_published"] == 2
    finally:
        conn.stop()
        listener.close()


def test_discovery_switched_off_removes_the_retained_configs(broker: Broker) -> None:
    from edge.daemon.discovery import Discovery
    from tests.support.mqtt_listener import retained

    topics = Topics.for_device("dev")
    conn = MqttConnection(MqttSettings(host=broker.host, port=broker.port), client_id="disc-test")
    listener = Listener(broker.host, broker.port, ("homeassistant/#",))
    conn.start()
    try:
        assert conn.wait_connected(10)
        on = Discovery(conn, topics, "dev", enabled=True)
        on.set_pipelines({"door": "camera"})
        kept = retained(broker.host, broker.port, "homeassistant/sensor/dev_door/config")
        assert kept is not None and kept.json()["availability_topic"] == "edgeteach/dev/status"
        off = Discovery(conn, topics, "dev", enabled=False)  # the next start, with discovery disabled
        off.set_pipelines({"door": "camera"})
        for topic in off.config_topics("door"):
            listener.wait_topic(topic, where=lambda m: m.payload == b"")  # the removal reached the broker
            assert retained(broker.host, broker.port, topic) is None
    finally:
        conn.stop()
        listener.close()


def test_events_the_queue_refuses_are_counted_as_dropped_and_replies_cannot_cause_it() -> None:
    """edgeteach_events_dropped_total counts events the QoS 1 queue refused, on its byte budget too; a flood
    of low-priority replies (command replies) leaves the room events need. The broker is down: all waits."""
    from tests.support.broker import free_port
    from tests.support.waiting import wait_for

    conn = MqttConnection(MqttSettings(host="127.0.0.1", port=free_port(), queue_limit=100, queue_max_bytes=65536), client_id="drop-test")
    pub = DecisionPublisher(conn, Topics.for_device("dev"))
    conn.start()
    try:
        wait_for(lambda: conn.last_error.startswith("cannot reach"), 10, "the failed first connect attempt")
        while conn.publish("edgeteach/dev/cmd/snapshot/reply", bytes(4000), qos=1, low_priority=True):
            pass  # replies fill their half of the byte budget, and no more
        assert 28000 < conn.pending_bytes() <= 32768
        pub.on_decision(_decision("a", 1, changed=True))
        pub.on_decision(_decision("b", 2, changed=True))
        assert pub.counters()["p"]["events_published"] == 2 and pub.counters()["p"]["events_dropped"] == 0
        # planted bug: a refused event not counted -> events_dropped stays 0 here
        assert conn.publish("edgeteach/dev/big", bytes(65536 - conn.pending_bytes()), qos=1)  # the budget is now full
        pub.on_decision(_decision("a", 3, changed=True))
        assert pub.counters()["p"]["events_published"] == 2 and pub.counters()["p"]["events_dropped"] == 1
    finally:
        conn.stop()
