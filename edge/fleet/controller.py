"""The fleet controller behind `trainer fleet`: it watches the devices' retained topics, publishes a signed bundle
as retained chunks, drives a deploy or a rollback wave by wave, and reports every change to a callback (the CLI
prints a live table). Torch-free, on the same MqttConnection as the device (reconnects, QoS 1 queue).

A broker that restarts without persistence forgets retained messages: after every reconnect the controller
publishes again what it had left retained in this run (the chunks and desired states), so a rollout in progress
still ends, and devices resubscribe on their own."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from edge.config.mqtt import MqttSettings
from edge.fleet.chunks import PackedBundle, with_http
from edge.fleet.protocol import (
    ROOT,
    SUCCESS,
    TERMINAL,
    Desired,
    FleetState,
    Progress,
    RollbackOrder,
    chunk_topic,
    desired_topic,
    device_of,
    group_desired_topic,
    to_bytes,
)
from edge.fleet.signing import sign
from edge.fleet.waves import plan_waves, should_abort
from edge.mqtt.connection import IncomingMessage, MqttConnection

PUBLISH_WINDOW_BYTES = 4 * 1024 * 1024  # chunks in flight to the broker at once
BrokerSettings = MqttSettings  # what `trainer fleet` passes around (the trainer does not import edge.config)


class FleetError(RuntimeError):
    """Something the controller cannot do (no broker, no devices); the text says what to do."""


@dataclass
class DeviceView:
    """What the controller knows of one device, from its retained and periodic topics."""

    device_id: str
    online: bool | None = None
    state: FleetState | None = None
    progress: Progress | None = None
    fps: float | None = None
    temperature_c: float | None = None

    @property
    def group(self) -> str | None:
        return self.state.group if self.state is not None else None

    @property
    def model(self) -> str:
        active = self.state.active if self.state is not None else None
        if active is None:
            return "-"
        return f"{active.name} {active.version} {active.sha256[:12]}".strip() if active.sha256 else f"{active.name} (config)"


def broker_settings(host: str, port: int, username: str | None = None, password_file: str | None = None) -> BrokerSettings:
    """The controller's connection settings (the trainer builds them here: it does not import edge.config)."""
    return MqttSettings(host=host, port=port, username=username, password_file=password_file)


def prefix_of(device_id: str) -> str:
    return f"{ROOT}/{device_id}"


def new_job_id(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def signed_deploy(packed: PackedBundle, private: Ed25519PrivateKey, job_id: str) -> Desired:
    key, signature = sign(private, packed.manifest.canonical())
    return Desired(job_id=job_id, manifest=packed.manifest, key_id=key, signature=signature)


def signed_rollback(private: Ed25519PrivateKey, job_id: str) -> Desired:
    order = RollbackOrder(job_id=job_id, created=int(time.time()))
    key, signature = sign(private, order.canonical())
    return Desired(job_id=job_id, action="rollback", rollback=order, key_id=key, signature=signature)


class FleetWatch:
    """A connection to the broker that keeps every device's view up to date."""

    def __init__(self, settings: MqttSettings, client_id: str | None = None) -> None:
        # The controller sends whole bundles: room for them in the QoS 1 queue, and for big stats messages.
        settings = settings.model_copy(update={"queue_max_bytes": max(settings.queue_max_bytes, 2 * PUBLISH_WINDOW_BYTES),
                                               "max_payload_bytes": max(settings.max_payload_bytes, 1024 * 1024)})
        self.connection = MqttConnection(settings, client_id=client_id or f"edgeteach-fleet-{secrets.token_hex(4)}")
        self.devices: dict[str, DeviceView] = {}
        self._changed = threading.Condition()
        self._retained: dict[str, bytes] = {}  # what this run left retained, published again after a reconnect
        self._retained_lock = threading.Lock()
        self._connects = 0

    def start(self, timeout: float = 10.0) -> FleetWatch:
        for leaf in ("status", "model/state", "model/progress", "stats"):
            self.connection.subscribe(f"{ROOT}/+/{leaf}", self._on_message, worker="fleet-watch")
        self.connection.add_connect_listener(self._on_connect)
        self.connection.start()
        deadline = time.monotonic() + timeout
        while not self.connection.wait_connected(0.2) and time.monotonic() < deadline:
            if self.connection.last_error and time.monotonic() > deadline - timeout + 2.0:
                break  # refused or unreachable for two seconds: say so now rather than after the timeout
        if not self.connection.connected:
            self.connection.stop(timeout=0.5)
            raise FleetError(f"cannot reach the broker {self.connection.settings.host}:{self.connection.settings.port} "
                             f"({self.connection.last_error or 'no answer'}); check --host/--port and that Mosquitto runs")
        return self

    def stop(self) -> None:
        self.connection.stop(timeout=2.0)

    # -- what the devices say ----------------------------------------------------------------------

    def _on_message(self, message: IncomingMessage) -> None:
        for leaf in ("status", "model/state", "model/progress", "stats"):
            device = device_of(message.topic, leaf)
            if device is not None:
                break
        else:
            return
        with self._changed:
            view = self.devices.setdefault(device, DeviceView(device))
            try:
                if leaf == "status":
                    view.online = message.payload == b"online"
                elif leaf == "model/state" and message.payload:
                    view.state = FleetState.model_validate_json(message.payload)
                elif leaf == "model/progress":
                    view.progress = Progress.model_validate_json(message.payload)
                elif leaf == "stats":
                    _read_stats(view, json.loads(message.payload))
            except (ValidationError, ValueError):
                return  # a device of another version, or junk: the table shows what it knows
            self._changed.notify_all()

    def snapshot(self) -> dict[str, DeviceView]:
        with self._changed:
            return {name: DeviceView(v.device_id, v.online, v.state, v.progress, v.fps, v.temperature_c)
                    for name, v in self.devices.items()}

    def wait_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    # -- publishing --------------------------------------------------------------------------------

    def _on_connect(self) -> None:
        self._connects += 1
        if self._connects > 1:  # a reconnect: the broker may have restarted and forgotten what we left retained
            threading.Thread(target=self._republish, name="fleet-republish", daemon=True).start()

    def _republish(self) -> None:
        with self._retained_lock:
            items = list(self._retained.items())
        for topic, payload in items:
            self._publish_flow(topic, payload)

    def _publish_flow(self, topic: str, payload: bytes) -> None:
        """A retained QoS 1 publish that waits while too much is in flight (a bundle is megabytes)."""
        deadline = time.monotonic() + 300
        while self.connection.pending_bytes() > PUBLISH_WINDOW_BYTES and time.monotonic() < deadline:
            time.sleep(0.01)
        while not self.connection.publish(topic, payload, qos=1, retain=True) and time.monotonic() < deadline:
            time.sleep(0.05)

    def retain(self, topic: str, payload: bytes) -> None:
        with self._retained_lock:
            self._retained[topic] = payload
        self._publish_flow(topic, payload)

    def clear(self, topic: str) -> None:
        with self._retained_lock:
            self._retained.pop(topic, None)
        self._publish_flow(topic, b"")

    def flush(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.connection.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connection.pending() == 0

    def publish_bundle(self, packed: PackedBundle) -> None:
        for index in range(packed.count):
            self.retain(chunk_topic(packed.manifest.sha256, index), packed.chunk(index))
        if not self.flush():
            raise FleetError("the broker did not take the bundle's chunks within 2 minutes; check its connection and limits "
                             "(message_size_limit must allow 48 KiB messages)")


def _read_stats(view: DeviceView, data: Any) -> None:
    if not isinstance(data, dict):
        return
    pipelines = data.get("pipelines")
    if isinstance(pipelines, dict):
        rates = [float(p["fps"]) for p in pipelines.values() if isinstance(p, dict) and isinstance(p.get("fps"), (int, float))]
        view.fps = round(float(sum(rates)), 1) if rates else None
    process = data.get("process")
    if isinstance(process, dict) and isinstance(process.get("soc_temperature_c"), (int, float)):
        view.temperature_c = float(process["soc_temperature_c"])


# -- rollouts --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """How a deploy or rollback ended, device by device."""

    job_id: str
    results: dict[str, str] = field(default_factory=dict)  # device -> healthy | failed: ... | rolled_back: ... | no answer
    skipped_offline: list[str] = field(default_factory=list)
    aborted: bool = False
    waves_done: int = 0
    http_requests: int = 0  # chunks the devices fetched over HTTP

    @property
    def ok(self) -> bool:
        return not self.aborted and all(result == SUCCESS for result in self.results.values())


Report = Callable[[str, dict[str, DeviceView]], None]


def group_members(watch: FleetWatch, group: str) -> tuple[list[str], list[str]]:
    """(online, offline) devices whose retained state names `group`."""
    online: list[str] = []
    offline: list[str] = []
    for name, view in watch.snapshot().items():
        if view.group == group:
            (online if view.online else offline).append(name)
    return sorted(online), sorted(offline)


def _finished(view: DeviceView | None, job_id: str) -> str | None:
    state = view.state if view is not None else None
    if state is None or state.job_id != job_id or state.status not in TERMINAL:
        return None
    return state.status if state.status == SUCCESS else f"{state.status}: {state.reason}"


def run_waves(watch: FleetWatch, desired: Desired, devices: list[str], wave: float | None, abort_above: float | None,
              wave_timeout_s: float, report: Report) -> Outcome:
    """Publishes `desired` to each device's own desired topic, wave by wave, and waits for each wave to end."""
    outcome = Outcome(desired.job_id)
    payload = to_bytes(desired)
    failed = attempted = 0
    for number, members in enumerate(plan_waves(devices, wave), start=1):
        report(f"wave {number}: {len(members)} device(s)", watch.snapshot())
        for device in members:
            watch.retain(desired_topic(prefix_of(device)), payload)
        deadline = time.monotonic() + wave_timeout_s
        pending = set(members)
        while pending and time.monotonic() < deadline:
            watch.wait_change(0.5)
            views = watch.snapshot()
            for device in sorted(pending):
                result = _finished(views.get(device), desired.job_id)
                if result is not None:
                    outcome.results[device] = result
                    pending.discard(device)
            report("", views)
        for device in pending:
            outcome.results[device] = f"no answer within {wave_timeout_s:g} s"
        attempted += len(members)
        failed += sum(1 for d in members if outcome.results[d] != SUCCESS)
        outcome.waves_done = number
        if should_abort(failed, attempted, abort_above):
            outcome.aborted = True
            report(f"aborted after wave {number}: {failed} of {attempted} device(s) failed (over --abort-above)", watch.snapshot())
            break
    return outcome


@dataclass(frozen=True)
class HttpOffer:
    """Serve the bundle over HTTP during the rollout: listen on bind:port, the devices reach it as advertised_host."""

    advertised_host: str
    port: int
    bind: str = "0.0.0.0"


def deploy(watch: FleetWatch, packed: PackedBundle, private: Ed25519PrivateKey, *, devices: list[str] | None = None,
           group: str | None = None, wave: float | None = None, abort_above: float | None = None, wave_timeout_s: float = 600.0,
           report: Report = lambda _msg, _views: None, http: HttpOffer | None = None) -> Outcome:
    """Signs and publishes `packed`, then rolls it out: to `devices`, or to the online members of `group` wave by wave
    and, once every wave went through, to the group's own desired topic (its offline members converge when they
    come back, as will devices that join the group later). With `http`, the devices fetch the chunks from this
    computer over HTTP while the rollout runs (the MQTT chunks stay as the fallback)."""
    from edge.fleet.http import BundleServer

    server = BundleServer(packed, http.bind, http.port).start() if http is not None else None
    try:
        if server is not None and http is not None:
            packed = with_http(packed, server.url(http.advertised_host))
            report(f"serving the bundle at {packed.manifest.http_url}", watch.snapshot())
        desired = signed_deploy(packed, private, new_job_id("deploy"))
        report(f"job {desired.job_id}: publishing {packed.count} chunk(s) of {packed.manifest.size} bytes", watch.snapshot())
        watch.publish_bundle(packed)
        outcome = _roll_out(watch, desired, devices, group, wave, abort_above, wave_timeout_s, report)
        outcome.http_requests = server.requests if server is not None else 0
        return outcome
    finally:
        if server is not None:
            server.stop()


def rollback(watch: FleetWatch, private: Ed25519PrivateKey, *, devices: list[str] | None = None, group: str | None = None,
             wave_timeout_s: float = 120.0, report: Report = lambda _msg, _views: None) -> Outcome:
    """Sends devices back to their previous model (each keeps it on disk)."""
    desired = signed_rollback(private, new_job_id("rollback"))
    return _roll_out(watch, desired, devices, group, None, None, wave_timeout_s, report)


def _roll_out(watch: FleetWatch, desired: Desired, devices: list[str] | None, group: str | None, wave: float | None,
              abort_above: float | None, wave_timeout_s: float, report: Report) -> Outcome:
    if group is not None:
        online, offline = group_members(watch, group)
        if not online and not offline:
            raise FleetError(f"no device has reported group {group!r}; set fleet.group on the devices (`trainer fleet ls` shows them)")
    else:
        online, offline = list(devices or []), []
    outcome = run_waves(watch, desired, online, wave, abort_above, wave_timeout_s, report)
    outcome.skipped_offline = offline
    if group is not None and not outcome.aborted:
        # The group's desired state carries the job from now on; the devices' own ones are cleared so that they do
        # not outvote the group's next job (same job id: the devices see nothing new and do nothing).
        watch.retain(group_desired_topic(group), to_bytes(desired))
        for device in online:
            watch.clear(desired_topic(prefix_of(device)))
    elif group is not None:
        # Aborted: a device that refused the job must not keep it as its own desired state, which would outvote the
        # group's next job; those that took it keep theirs (they stay on the new model until the next deploy).
        for device, result in outcome.results.items():
            if result != SUCCESS:
                watch.clear(desired_topic(prefix_of(device)))
    watch.flush(30.0)
    return outcome


def wait_for_devices(watch: FleetWatch, seconds: float) -> dict[str, DeviceView]:
    """The devices heard of within `seconds` (retained topics arrive at once; stats every mqtt.stats_interval)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watch.wait_change(max(0.0, min(0.5, deadline - time.monotonic())))
    return watch.snapshot()
