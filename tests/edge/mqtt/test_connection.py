"""MqttConnection against a real Mosquitto: birth/will, handlers off the network thread, MQTT 5 replies,
starting while the broker is down, and the bounded QoS 1 queue during an outage."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config.mqtt import MqttSettings
from edge.mqtt.connection import IncomingMessage, MqttConfigError, MqttConnection, OutgoingMessage
from tests.support.broker import Broker, free_port
from tests.support.mqtt_listener import Listener, persistent_broker_config, retained, stay_root_config
from tests.support.waiting import wait_for


def _settings(broker: Broker, **kw: object) -> MqttSettings:
    base = {"host": broker.host, "port": broker.port, "reconnect_min_delay": 1, "reconnect_max_delay": 1, "keepalive": 5}
    base.update(kw)
    return MqttSettings(**base)  # type: ignore[arg-type]


def _conn(broker: Broker, **kw: object) -> MqttConnection:
    return MqttConnection(
        _settings(broker, **kw),
        client_id=f"t-{time.monotonic_ns()}",
        will=OutgoingMessage("dev/status", b"offline", qos=1, retain=True),
        birth=OutgoingMessage("dev/status", b"online", qos=1, retain=True),
    )


def test_birth_handlers_off_network_thread_reply_and_clean_stop(broker: Broker) -> None:
    listener = Listener(broker.host, broker.port)
    conn = _conn(broker)
    threads: list[str] = []
    got = threading.Event()

    def handler(msg: IncomingMessage) -> None:
        threads.append(threading.current_thread().name)
        conn.reply(msg, b'{"pong": true}')
        got.set()

    conn.subscribe("dev/cmd/+", handler)
    conn.start()
    try:
        assert conn.wait_connected(10)
        listener.wait_topic("dev/status", where=lambda m: m.payload == b"online")
        # An MQTT 5 request with response topic and correlation data, as mosquitto_rr sends it.
        requester = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        requester.connect(broker.host, broker.port)
        requester.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "req/answer"
        props.CorrelationData = b"abc-123"
        requester.publish("dev/cmd/ping", b"{}", qos=1, properties=props).wait_for_publish(5)
        assert got.wait(10)
        answer = listener.wait_topic("req/answer")[0]
        assert answer.correlation_data == b"abc-123"
        assert answer.json() == {"pong": True}
        assert threads and threads[0].startswith("mqtt-handler-")
        requester.loop_stop()
        requester.disconnect()
    finally:
        conn.stop()
    offline = listener.wait_topic("dev/status", where=lambda m: m.payload == b"offline")
    assert offline  # published by stop() itself, not by the broker's will
    listener.close()


def test_handler_exception_is_counted_and_worker_survives(broker: Broker) -> None:
    conn = _conn(broker)
    seen: list[bytes] = []

    def handler(msg: IncomingMessage) -> None:
        if msg.payload == b"boom":
            raise RuntimeError("handler bug")
        seen.append(msg.payload)

    conn.subscribe("dev/x", handler)
    conn.start()
    try:
        assert conn.wait_connected(10)
        # The subscription is in place once a probe comes back (no fixed wait for the SUBACK).
        wait_for(lambda: conn.publish("dev/x", b"probe", qos=0) and b"probe" in seen, 10, "a probe through the subscription")
        seen.clear()
        conn.publish("dev/x", b"boom", qos=1)
        conn.publish("dev/x", b"fine", qos=1)
        # One worker handles messages in arrival order: once "fine" is in, "boom" was handled before it.
        wait_for(lambda: b"fine" in seen, 10, "the message after the failing one")
        assert [p for p in seen if p != b"probe"] == [b"fine"]
        assert conn.counters.handler_errors == 1
    finally:
        conn.stop()


def test_starts_while_broker_is_down_then_connects(tmp_path: Path) -> None:
    broker = Broker(workdir=tmp_path, port=free_port())  # not started yet
    conn = _conn(broker)
    started = time.monotonic()
    conn.start()  # must return at once
    try:
        assert time.monotonic() - started < 1.0
        # it tried (and failed) to connect at least once, and says why
        wait_for(lambda: conn.last_error.startswith("cannot reach"), 10, "the failed first connect attempt")
        assert not conn.connected
        broker.start()
        assert conn.wait_connected(15), conn.last_error
    finally:
        conn.stop()
        broker.stop()


def test_outage_queue_is_bounded_and_overflow_counted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=persistent_broker_config(str(store))).start()
    listener = Listener(broker.host, broker.port, ("q/#",), client_id="q-listener", persistent=True)
    conn = _conn(broker, queue_limit=5)
    conn.start()
    try:
        assert conn.wait_connected(10)
        broker.stop()
        wait_for(lambda: not conn.connected, 10, "the connection to notice the broker is gone")
        results = [conn.publish(f"q/{i}", str(i), qos=1) for i in range(8)]
        assert results == [True] * 5 + [False] * 3  # paho refuses the newest, keeps the oldest
        assert conn.counters.overflowed == 3
        assert conn.pending() == 5
        assert not conn.publish("q/zero", b"x", qos=0)  # QoS 0 is dropped while offline
        broker.start()
        assert conn.wait_connected(15)
        got = listener.wait_for(lambda m: m.topic.startswith("q/"), timeout=15, count=5)
        assert sorted(m.topic for m in got) == [f"q/{i}" for i in range(5)]
        wait_for(lambda: conn.pending() == 0, 10, "the broker to acknowledge the queued messages")
        # none of the 3 refused messages arrived after all: a marker sent after them comes back alone
        conn.publish("q/marker", b"m", qos=1)
        listener.wait_topic("q/marker", timeout=10)
        assert sorted(m.topic for m in listener.messages if m.topic.startswith("q/")) == [f"q/{i}" for i in range(5)] + ["q/marker"]
    finally:
        conn.stop()
        listener.close()
        broker.stop()


def test_birth_online_is_retained_again_after_an_outage_that_filled_the_queue(tmp_path: Path) -> None:
    """A restarted broker without persistence has forgotten the retained `online`; the birth message must
    put it back even though the outage filled the QoS 1 queue (it must not be refused behind it)."""
    broker = Broker(workdir=tmp_path, port=free_port()).start()  # persistence false: a restart forgets all
    conn = _conn(broker, queue_limit=3)
    conn.start()
    try:
        assert conn.wait_connected(10)
        wait_for(lambda: (r := retained(broker.host, broker.port, "dev/status")) is not None and r.payload == b"online", 10,
                 "the first birth message")
        assert conn.publish("dev/other", b"kept until the restart", qos=1, retain=True)
        wait_for(lambda: retained(broker.host, broker.port, "dev/other") is not None, 10, "a retained message before the outage")
        broker.stop()
        wait_for(lambda: not conn.connected, 10, "the connection to notice the broker is gone")
        results = [conn.publish(f"q/{i}", str(i), qos=1) for i in range(5)]
        assert results == [True] * 3 + [False] * 2 and conn.pending() == 3  # the queue is full
        broker.start()
        assert retained(broker.host, broker.port, "dev/other") is None  # the restart forgot every retained message
        assert conn.wait_connected(15), conn.last_error
        wait_for(lambda: (r := retained(broker.host, broker.port, "dev/status")) is not None and r.payload == b"online", 10,
                 "the retained `online` birth message after the reconnect")
        wait_for(lambda: conn.pending() == 0, 10, "the queued messages to be acknowledged too")
    finally:
        conn.stop()
        broker.stop()


def test_password_file_and_refused_credentials(tmp_path: Path) -> None:
    import subprocess

    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "edge", "s3cret"], check=True, capture_output=True)
    pw.chmod(0o644)
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=f"password_file {pw}\n" + stay_root_config())
    # allow_anonymous true from the base config stays; a wrong password is still refused by mosquitto.
    broker.start()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    good = _conn(broker, username="edge", password_file=str(secret))
    bad = _conn(broker, username="edge", password="wrong")
    good.start()
    bad.start()
    try:
        assert good.wait_connected(10)
        wait_for(lambda: "refused" in bad.last_error, 10, "the broker to refuse the wrong password")
        assert not bad.connected
    finally:
        good.stop()
        bad.stop()
        broker.stop()
    with pytest.raises(MqttConfigError, match="password_file"):
        _conn(broker, username="edge", password_file=str(tmp_path / "missing"))


def _make_certs(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (EC keys: fast)."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=edgeteach-test-ca", "-days", "2")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days",
            "2",
            *(["-extfile", "san.ext"] if name == "server" else []))
    return {name: folder / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_mutual_tls_with_ca_and_client_certificate(tmp_path: Path) -> None:
    certs = _make_certs(tmp_path)
    tls_conf = (
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"
        f"require_certificate true\n" + stay_root_config()
    )
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=tls_conf).start()
    tls = {"enabled": True, "ca_certs": str(certs["ca.crt"]), "certfile": str(certs["client.crt"]), "keyfile": str(certs["client.key"])}
    good = _conn(broker, tls=tls)
    no_client_cert = _conn(broker, tls={"enabled": True, "ca_certs": str(certs["ca.crt"])})
    good.start()
    no_client_cert.start()
    try:
        assert good.wait_connected(15), good.last_error
        wait_for(lambda: no_client_cert.last_error, 15, "the handshake without a client certificate to fail")
        assert not no_client_cert.connected
    finally:
        good.stop()
        no_client_cert.stop()
        broker.stop()
    with pytest.raises(MqttConfigError, match="certfile and keyfile go together"):
        _conn(broker, tls={"enabled": True, "ca_certs": str(certs["ca.crt"]), "certfile": str(certs["client.crt"])})
    with pytest.raises(MqttConfigError, match="no such file"):
        _conn(broker, tls={"enabled": True, "ca_certs": str(tmp_path / "missing.pem")})


# -- issue 12: the queue's byte budget, low-priority replies, the Maximum Packet Size -------------------


def _offline_conn(tmp_path: Path, **kw: object) -> MqttConnection:
    """A started connection to a broker that is down: every QoS 1 message waits in paho's queue."""
    conn = _conn(Broker(workdir=tmp_path, port=free_port()), **kw)  # never started
    conn.start()
    wait_for(lambda: conn.last_error.startswith("cannot reach"), 10, "the failed first connect attempt")
    return conn


def test_the_queue_has_a_byte_budget_as_well_as_a_count(tmp_path: Path) -> None:
    # planted bug: no byte check (count only) -> the 9th 8000-byte message is accepted
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=persistent_broker_config(str(store))).start()
    listener = Listener(broker.host, broker.port, ("b/#",), client_id="b-listener", persistent=True)
    conn = _conn(broker, queue_limit=100, queue_max_bytes=65536)
    conn.start()
    try:
        assert conn.wait_connected(10)
        broker.stop()
        wait_for(lambda: not conn.connected, 10, "the connection to notice the broker is gone")
        accepted = [conn.publish(f"b/{i}", bytes(8000), qos=1) for i in range(8)]  # 64000 bytes: fits
        assert accepted == [True] * 8 and conn.pending_bytes() == 64000
        assert not conn.publish("b/over", bytes(8000), qos=1)  # 72000 > 65536: the newest is refused, counted
        assert conn.counters.overflowed == 1 and conn.pending() == 8  # 8 of 100: the count was not the reason
        assert conn.publish("b/small", bytes(1536), qos=1)  # 65536 exactly: still fits
        assert not conn.publish("b/one-more", b"x", qos=1)
        assert conn.counters.overflowed == 2 and conn.pending_bytes() == 65536
        assert conn.publish("b/status", b"online", qos=1, essential=True)  # essential messages may go over
        broker.start()
        assert conn.wait_connected(15)
        wait_for(lambda: conn.pending() == 0 and conn.pending_bytes() == 0, 15, "the broker to acknowledge the queue")
        conn.publish("b/marker", b"m", qos=1)
        listener.wait_topic("b/marker", timeout=10)
        assert sorted(m.topic for m in listener.messages if m.topic.startswith("b/")) == sorted(
            [f"b/{i}" for i in range(8)] + ["b/small", "b/status", "b/marker"])
    finally:
        conn.stop()
        listener.close()
        broker.stop()


def test_low_priority_messages_fill_at_most_half_of_the_queue(tmp_path: Path) -> None:
    # planted bug: low_priority ignored -> the 6th reply is accepted and, with 10, no room is left for events
    conn = _offline_conn(tmp_path, queue_limit=10, queue_max_bytes=65536)
    try:
        replies = [conn.publish(f"r/{i}", b"{}", qos=1, low_priority=True) for i in range(7)]
        assert replies == [True] * 5 + [False] * 2
        events = [conn.publish(f"e/{i}", b"{}", qos=1) for i in range(6)]  # the other half is still free for events
        assert events == [True] * 5 + [False]
        assert conn.counters.overflowed == 3 and conn.pending() == 10
    finally:
        conn.stop()


def test_low_priority_messages_use_at_most_half_of_the_byte_budget(tmp_path: Path) -> None:
    conn = _offline_conn(tmp_path, queue_limit=1000, queue_max_bytes=65536)
    try:
        assert conn.publish("r/0", bytes(30000), qos=1, low_priority=True)
        assert not conn.publish("r/1", bytes(3000), qos=1, low_priority=True)  # 33000 > 32768
        assert conn.publish("e/0", bytes(35000), qos=1)  # 65000 <= 65536 for an ordinary message
        assert conn.counters.overflowed == 1 and conn.pending_bytes() == 65000
        assert conn.publish("r/q0", b"x", qos=0, low_priority=True) is False  # QoS 0 offline: dropped, not queued
        assert conn.counters.overflowed == 1
    finally:
        conn.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_oversized_message_never_reaches_a_handler(broker: Broker, protocol: str) -> None:
    # planted bugs: no MaximumPacketSize at CONNECT -> MQTT 5: the broker sends it and `oversized` counts 1, not 0;
    # no size check in _on_message -> MQTT 3.1.1: the handler gets the 1 MB message
    conn = _conn(broker, protocol=protocol, max_payload_bytes=1024)
    got: list[tuple[str, int]] = []
    arrived = threading.Condition()

    def handler(msg: IncomingMessage) -> None:
        with arrived:
            got.append((msg.topic, len(msg.payload)))
            arrived.notify_all()

    conn.subscribe("big/+", handler)
    conn.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    try:
        assert conn.wait_connected(10)

        def seen(topic: str) -> bool:
            with arrived:
                return any(t == topic for t, _ in got)

        # the subscription is in place once a first message comes through
        wait_for(lambda: sender.publish("big/warm", b"w", qos=1) is not None and seen("big/warm"), 10, "the subscription")
        sender.publish("big/huge", bytes(1_000_000), qos=1).wait_for_publish(10)
        fits = 1024 + 60_000  # over max_payload_bytes but within the headroom: it arrives (a handler refuses it with a reply)
        sender.publish("big/fits", bytes(fits), qos=1).wait_for_publish(10)
        sender.publish("big/marker", b"m", qos=1).wait_for_publish(10)  # the broker forwards in order: huge was before it
        wait_for(lambda: seen("big/marker"), 10, "the marker")
        assert ("big/fits", fits) in got
        assert not seen("big/huge")
        assert conn.counters.oversized == (0 if protocol == "5" else 1)  # MQTT 5: the broker kept it; 3.1.1: dropped here
    finally:
        sender.loop_stop()
        sender.disconnect()
        conn.stop()
