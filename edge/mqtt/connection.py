"""One MQTT connection for the whole process, over paho-mqtt 2.x (VERSION2 callbacks).

General on purpose (the daemon and `edge llm` both use it): it knows nothing about pipelines.

What it adds to a bare paho client:
- starts while the broker is down (`connect_async` + `loop_start`) and reconnects with backoff;
- an optional Last Will and a "birth" message published on every (re)connect, e.g. a retained
  `offline`/`online` pair on a status topic; `stop()` publishes the will payload itself, because the
  broker sends the will only on an unclean disconnect;
- subscriptions that survive reconnects (re-subscribed in `on_connect`);
- message handlers that run on worker threads, never on paho's network thread, so a slow handler
  (an inference, a bundle reload, an LLM answer) cannot stall keepalives or acknowledgements;
- a bounded in-memory queue for QoS >= 1 messages not yet acknowledged (while disconnected, or while a slow
  link drains). paho keeps those messages and resends them after reconnecting. The queue is bounded twice:
  `queue_limit` messages and `queue_max_bytes` payload bytes. A message that would go over either is
  REFUSED, the newest one (as paho itself does with `MQTT_ERR_QUEUE_SIZE`: it never evicts older ones, which
  are already on the wire or promised), and that refusal is counted in `overflowed`. `essential=True`
  messages (birth, will-on-stop, retained status) may use a small reserve above the limit, so a queue full
  of outage events cannot keep the `online` birth message from going out on reconnect; `low_priority=True`
  messages (command replies) may fill only half of it, so a flood of requests cannot crowd out events;
- the MQTT 5 Maximum Packet Size at CONNECT (`max_payload_bytes` + headroom), so the broker drops a bigger
  message for this client instead of sending it; MQTT 3.1.1 cannot say so, and such a message is dropped
  on arrival, before any handler (the broker's `message_size_limit` keeps it off the device entirely);
- `reply()` for MQTT 5 request/response (response topic + correlation data).

Typical use::

    conn = MqttConnection(settings, client_id="edgeteach-kitchen",
                          will=OutgoingMessage("edgeteach/kitchen/status", b"offline", qos=1, retain=True),
                          birth=OutgoingMessage("edgeteach/kitchen/status", b"online", qos=1, retain=True))
    conn.subscribe("edgeteach/kitchen/cmd/+", handle_command)      # handle_command(msg: IncomingMessage)
    conn.start()                                                    # returns at once, broker up or not
    conn.publish("edgeteach/kitchen/door/event", b"{...}", qos=1)
    conn.stop()                                                     # publishes the will payload, disconnects
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config.mqtt import MqttSettings, max_packet_bytes

log = logging.getLogger(__name__)

Payload = bytes | bytearray | str | None

ESSENTIAL_RESERVE = 64  # room above queue_limit for essential messages (see module doc)
LOW_PRIORITY_SHARE = 0.5  # the part of the queue (count and bytes) low_priority messages may fill


class MqttConfigError(ValueError):
    """Settings that cannot work (unreadable password file, missing TLS file); the message says which."""


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    payload: bytes = b""
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class IncomingMessage:
    """A received message, detached from paho's objects (safe to keep and pass across threads)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None  # MQTT 5 request/response
    correlation_data: bytes | None = None
    received_at: float = field(default_factory=time.time)


Handler = Callable[[IncomingMessage], None]


def _ignoring_message(fn: Callable[[], None]) -> Handler:
    """A handler that calls `fn` and ignores the message it is given (connect listeners take none)."""

    def handler(_msg: IncomingMessage) -> None:
        fn()

    return handler


@dataclass
class ConnectionCounters:
    connects: int = 0  # successful CONNACKs, the first one included
    disconnects: int = 0  # unexpected losses of the connection
    published: int = 0  # publish() calls accepted (sent or queued)
    overflowed: int = 0  # QoS >= 1 messages refused: queue_limit messages or queue_max_bytes already pending
    dropped_offline: int = 0  # QoS 0 messages dropped because the broker was unreachable
    received: int = 0
    handler_errors: int = 0
    handler_dropped: int = 0  # incoming messages dropped because a handler worker's queue was full
    oversized: int = 0  # incoming messages over the maximum packet size, dropped on arrival (MQTT 3.1.1)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _to_bytes(payload: Payload) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def read_password(settings: MqttSettings) -> str | None:
    """The password from the config, or from `password_file` (first line, stripped) when given."""
    if settings.password_file:
        path = Path(settings.password_file).expanduser()
        try:
            return path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
        except OSError as exc:
            raise MqttConfigError(f"mqtt.password_file: cannot read {path} ({exc.strerror}); create it with the broker password on one "
                                  "line, readable by this user") from exc
    return settings.password


class _Worker:
    """One thread draining one queue of (handler, message) pairs, so handlers never block paho."""

    def __init__(self, name: str, counters: ConnectionCounters, lock: threading.Lock, maxsize: int) -> None:
        self.name = name
        self._queue: queue.Queue[tuple[Handler, IncomingMessage] | None] = queue.Queue(maxsize=maxsize)
        self._counters = counters
        self._lock = lock
        self._thread = threading.Thread(target=self._run, name=f"mqtt-handler-{name}", daemon=True)
        self._thread.start()

    def submit(self, handler: Handler, message: IncomingMessage) -> bool:
        try:
            self._queue.put_nowait((handler, message))
            return True
        except queue.Full:
            with self._lock:
                self._counters.handler_dropped += 1
            return False

    def qsize(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            handler, message = item
            try:
                handler(message)
            except Exception:  # a handler bug must not kill the worker: log it, count it, go on
                with self._lock:
                    self._counters.handler_errors += 1
                log.exception("MQTT handler for %s failed", message.topic)

    def stop(self, timeout: float) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class MqttConnection:
    """A reconnecting MQTT client with worker-thread handlers. All public methods are thread-safe.

    Args:
        settings: the `mqtt:` section (host, port, protocol "5"/"3.1.1", credentials, TLS, backoff,
            `queue_limit`).
        client_id: unique per process on the broker (a second client with the same id kicks this one).
        will: Last Will, sent by the broker if this process dies or the network drops.
        birth: published on every successful (re)connect, after subscriptions are restored.
        handler_queue_size: incoming messages waiting per worker; beyond it they are dropped and counted.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        will: OutgoingMessage | None = None,
        birth: OutgoingMessage | None = None,
        handler_queue_size: int = 256,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.will = will
        self.birth = birth
        self.counters = ConnectionCounters()
        self._lock = threading.Lock()
        self._admit = threading.Lock()  # one publish at a time between the queue check and paho's enqueue
        self._max_packet = max_packet_bytes(settings.max_payload_bytes)
        self._handler_queue_size = handler_queue_size
        self._subscriptions: dict[str, tuple[int, Handler, str, bool]] = {}  # filter -> (qos, handler, worker, no_retained)
        self._workers: dict[str, _Worker] = {}
        self._connect_listeners: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._started = False
        self._stopping = False
        self._last_error = ""
        self.protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = self._make_client()

    # -- setup -------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self.protocol)
        if s.username is not None:
            client.username_pw_set(s.username, read_password(s))
        if s.tls.enabled:
            for key in ("ca_certs", "certfile", "keyfile"):
                value = getattr(s.tls, key)
                if value and not Path(value).expanduser().is_file():
                    raise MqttConfigError(f"mqtt.tls.{key}: no such file {value}; give the path of a PEM file readable by this user")
            if bool(s.tls.certfile) != bool(s.tls.keyfile):
                raise MqttConfigError("mqtt.tls: certfile and keyfile go together (mutual TLS needs both); set both or neither")
            client.tls_set(
                ca_certs=str(Path(s.tls.ca_certs).expanduser()) if s.tls.ca_certs else None,
                certfile=str(Path(s.tls.certfile).expanduser()) if s.tls.certfile else None,
                keyfile=str(Path(s.tls.keyfile).expanduser()) if s.tls.keyfile else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(s.tls.insecure)
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain)
        # Whole seconds are what paho documents; keep at least 1 s so a flapping broker is not hammered.
        client.reconnect_delay_set(min_delay=max(1, int(s.reconnect_min_delay)), max_delay=max(1, int(s.reconnect_max_delay)))
        # paho's own bound sits above ours by the reserve; `publish` enforces queue_limit for the rest.
        client.max_queued_messages_set(int(s.queue_limit) + ESSENTIAL_RESERVE)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        return client

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the network thread and connects in the background; returns at once even if the broker
        is down (paho retries with backoff)."""
        if self._started:
            return
        self._started = True
        properties = None
        if self.protocol == mqtt.MQTTv5:
            # The broker must not forward any packet bigger than this to us (MQTT-3.1.2-25; Mosquitto drops
            # it for this client): a 10 MB publish to cmd/ping never reaches this process's memory.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's Properties.__init__ is unannotated
            properties.MaximumPacketSize = self._max_packet
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive, properties=properties)
        self._client.loop_start()

    def stop(self, timeout: float = 2.0, publish_will: bool = True) -> None:
        """Clean shutdown: publishes the will payload (e.g. retained `offline`) when connected, waits up
        to `timeout` for it to be acknowledged, disconnects, and stops the network and worker threads."""
        if not self._started:
            return
        self._stopping = True
        was_connected = self._connected.is_set()
        deadline = time.monotonic() + timeout
        if publish_will and self.will is not None and self._connected.is_set():
            info = self._client.publish(self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # connection lost meanwhile: the broker publishes the will itself then
        try:
            self._client.disconnect()
        except Exception:  # already disconnected
            pass
        # paho's loop_stop() joins without a timeout, and its network thread may be inside a connect
        # attempt to an unreachable broker (up to connect_timeout) or a backoff sleep: bound the wait so
        # a stop stays within its budget; the thread is a daemon and ends on its own.
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        # Nothing left to flush when the broker was unreachable: do not wait out a backoff sleep.
        stopper.join(max(0.1, deadline - time.monotonic()) if was_connected else 0.3)
        self._connected.clear()
        for worker in list(self._workers.values()):
            worker.stop(max(0.1, deadline - time.monotonic()))
        self._started = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def last_error(self) -> str:
        return self._last_error

    def pending(self) -> int:
        """QoS >= 1 messages published but not yet acknowledged (the queue `queue_limit` bounds)."""
        # paho exposes no public accessor; _out_messages is exactly the queue max_queued_messages bounds.
        return len(getattr(self._client, "_out_messages", ()))

    def pending_bytes(self) -> int:
        """Payload bytes of those messages (the queue `queue_max_bytes` bounds)."""
        return self._queue_usage()[1]

    def _queue_usage(self) -> tuple[int, int]:
        # Under paho's own (reentrant) lock: its network thread removes acknowledged messages meanwhile.
        with getattr(self._client, "_out_message_mutex", contextlib.nullcontext()):
            messages = list(getattr(self._client, "_out_messages", {}).values())
        return len(messages), sum(len(m.payload) for m in messages)

    def _queue_full(self, size: int, low_priority: bool) -> bool:
        """Whether one more message of `size` payload bytes would go over queue_limit or queue_max_bytes
        (half of each for low-priority messages)."""
        share = LOW_PRIORITY_SHARE if low_priority else 1.0
        count, used = self._queue_usage()
        return count >= self.settings.queue_limit * share or used + size > self.settings.queue_max_bytes * share

    def handler_queue_sizes(self) -> dict[str, int]:
        return {name: worker.qsize() for name, worker in self._workers.items()}

    def add_connect_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` runs (on the default worker) after every successful (re)connect, e.g. to
        re-publish retained state the broker lost when it restarted."""
        with self._lock:
            self._connect_listeners.append(callback)

    # -- publishing --------------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: Payload, qos: int = 0, retain: bool = False, properties: Properties | None = None,
        essential: bool = False, low_priority: bool = False
    ) -> bool:
        """Sends now, or queues (QoS >= 1) until acknowledged. Returns False when the message was dropped:
        QoS 0 while offline, or QoS >= 1 when it would take the pending messages over `queue_limit` or
        `queue_max_bytes` (counted in `counters.overflowed`). `essential` messages may exceed the limits by
        a small reserve: use it only for a few retained status-like messages, never for a stream.
        `low_priority` messages may fill only half of each limit: use it for what a flood of requests
        produces (command replies), so it can never take the room events need."""
        data = _to_bytes(payload)
        try:
            with self._admit:
                full = qos > 0 and not essential and self._queue_full(len(data), low_priority)
                info = None if full else self._client.publish(topic, data, qos=qos, retain=retain, properties=properties)
        except ValueError as exc:  # invalid topic or payload: a caller bug, never a crash
            log.error("cannot publish to %r: %s", topic, exc)
            return False
        with self._lock:
            if info is None or info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self.counters.overflowed += 1
                overflowed = self.counters.overflowed
            elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
                self.counters.dropped_offline += 1
                return False
            else:
                self.counters.published += 1
                return True
        if overflowed == 1 or overflowed % 100 == 0:
            count, used = self._queue_usage()
            log.warning("MQTT queue full (%d messages, %d bytes pending; mqtt.queue_limit %d, mqtt.queue_max_bytes %d, half of each for "
                        "low-priority replies): dropped %d QoS 1 message(s) so far", count, used, self.settings.queue_limit,
                        self.settings.queue_max_bytes, overflowed)
        return False

    def reply(self, request: IncomingMessage, payload: Payload, qos: int = 1, topic: str | None = None, content_type: str | None = None,
              low_priority: bool = False) -> bool:
        """Answers a request on `topic`, else on its MQTT 5 response topic, echoing its correlation data
        (and, MQTT 5, naming the `content_type`). Returns False (and sends nothing) when there is no topic."""
        topic = topic or request.response_topic
        if not topic:
            return False
        properties = None
        if self.protocol == mqtt.MQTTv5 and (request.correlation_data is not None or content_type):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's Properties.__init__ is unannotated
            if request.correlation_data is not None:
                properties.CorrelationData = request.correlation_data
            if content_type:
                properties.ContentType = content_type
        return self.publish(topic, payload, qos=qos, properties=properties, low_priority=low_priority)

    # -- subscribing -------------------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, worker: str = "default", no_retained: bool = False) -> None:
        """Calls `handler(IncomingMessage)` for every message matching `topic_filter`, on the worker
        thread named `worker` (one thread per name, messages handled in arrival order). Give long-running
        handlers their own worker name so they do not delay others. Survives reconnects.

        `no_retained`: retained messages never reach the handler (for requests and commands, which must
        never be executed from a message someone left retained on the broker): MQTT 5 subscribes with
        retain handling 2 (the broker sends none), and any message with the retain flag set (MQTT 3.1.1)
        is dropped here."""
        with self._lock:
            self._subscriptions[topic_filter] = (qos, handler, worker, no_retained)
            self._ensure_worker(worker)
        if self._connected.is_set():
            self._client.subscribe([self._subscription_entry(topic_filter, qos, no_retained)])

    def _subscription_entry(self, topic_filter: str, qos: int, no_retained: bool) -> tuple[str, Any]:
        if no_retained and self.protocol == mqtt.MQTTv5:
            return topic_filter, SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        return topic_filter, qos

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        if self._connected.is_set():
            self._client.unsubscribe(topic_filter)

    def _ensure_worker(self, name: str) -> _Worker:
        worker = self._workers.get(name)
        if worker is None:
            worker = self._workers[name] = _Worker(name, self.counters, self._lock, self._handler_queue_size)
        return worker

    # -- paho callbacks (network thread: never block here) ----------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._last_error = f"broker refused the connection: {reason_code}"
            log.error("MQTT %s:%s refused the connection: %s (check mqtt.username/password/tls)", self.settings.host, self.settings.port,
                      reason_code)
            return
        with self._lock:
            self.counters.connects += 1
            subscriptions = list(self._subscriptions.items())
            listeners = list(self._connect_listeners)
            default = self._ensure_worker("default")
        self._last_error = ""
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        if subscriptions:
            client.subscribe([self._subscription_entry(topic_filter, qos, no_retained)
                              for topic_filter, (qos, _, _, no_retained) in subscriptions])
        if self.birth is not None:
            client.publish(self.birth.topic, self.birth.payload, qos=self.birth.qos, retain=self.birth.retain)
        self._connected.set()
        for listener in listeners:
            default.submit(_ignoring_message(listener), IncomingMessage(topic="$connected", payload=b""))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._last_error = f"cannot reach {self.settings.host}:{self.settings.port}"
        log.debug("MQTT connect to %s:%s failed; retrying with backoff", self.settings.host, self.settings.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        if self._stopping:
            return
        with self._lock:
            self.counters.disconnects += 1
        if not self._last_error.startswith("broker refused"):  # keep the cause, not paho's follow-up error
            self._last_error = f"disconnected: {reason_code}"
        log.warning("MQTT connection to %s:%s lost (%s); reconnecting with backoff, QoS 1 messages are queued (limit %d)",
                    self.settings.host, self.settings.port, reason_code, self.settings.queue_limit)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if len(message.payload) > self._max_packet:
            # Only a broker that ignores our Maximum Packet Size (MQTT 3.1.1) lets this through: drop it here,
            # before it is copied, queued for a worker (256 of them would be gigabytes) or parsed.
            with self._lock:
                self.counters.oversized += 1
                oversized = self.counters.oversized
            if oversized == 1 or oversized % 100 == 0:
                log.warning("dropped a %d-byte message on %s: over mqtt.max_payload_bytes + %d bytes of headroom (%d so far); on an "
                            "MQTT 3.1.1 broker set message_size_limit to keep such messages off the device", len(message.payload),
                            message.topic[:200], self._max_packet - self.settings.max_payload_bytes, oversized)
            return
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        incoming = IncomingMessage(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            response_topic=response_topic or None,
            correlation_data=bytes(correlation) if correlation is not None else None,
        )
        with self._lock:
            self.counters.received += 1
            targets = [
                (handler, self._workers[worker])
                for topic_filter, (_, handler, worker, no_retained) in self._subscriptions.items()
                if mqtt.topic_matches_sub(topic_filter, incoming.topic) and not (no_retained and incoming.retain)
            ]
            refused = incoming.retain and any(no_retained and mqtt.topic_matches_sub(topic_filter, incoming.topic)
                                              for topic_filter, (_, _, _, no_retained) in self._subscriptions.items())
        if refused:
            log.warning("ignoring retained message on %s: requests and commands are never executed from retained messages "
                        "(clear it with an empty retained message)", incoming.topic)
        for handler, worker in targets:
            worker.submit(handler, incoming)
