"""The device's side of the fleet (`edge run` with `fleet:` on): follows its own and its group's retained desired
model (its own wins), downloads the bundle in chunks, checks the signature and every SHA-256, activates it through
the daemon's existing reload (the `ModelTarget` the daemon hands in), then holds a health gate and goes back to
the previous model by itself when the new one fails it. Each step goes to `<prefix>/model/progress`; the retained
`<prefix>/model/state` (also kept in models_dir, so a restart keeps the active model) says what runs.

One thread of its own does all of it: MQTT handlers only queue what arrived, so a slow unpack never holds up
the daemon's commands, and the state machine (edge.fleet.protocol) has a single writer."""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge.config.fleet import FleetSettings
from edge.core.bundle import BundleError, load_bundle
from edge.fleet.http import SPAN_CHUNKS, HttpFetchError, fetch_chunks, spans
from edge.fleet.protocol import (
    TERMINAL,
    Desired,
    FleetState,
    ModelRef,
    Progress,
    ProtocolError,
    ReleaseManifest,
    Status,
    advance,
    chunk_index,
    chunk_topic,
    desired_topic,
    group_desired_topic,
    parse_desired,
    progress_topic,
    state_topic,
    to_bytes,
)
from edge.fleet.signing import Keyring, SigningError
from edge.fleet.store import ModelStore, StoreError
from edge.mqtt.connection import IncomingMessage, MqttConnection

log = logging.getLogger(__name__)

WINDOW = 8  # chunk subscriptions in flight: bounds what the broker pushes at a Pi at once
STALL_S = 20.0  # no chunk for this long: subscribe again (the broker sends the retained chunk anew)
BAD_COPIES = 2  # copies of one chunk that did not match the signed manifest before the job fails: the broker's is bad
TICK_S = 0.5


class ActivationError(Exception):
    """The daemon's reload refused the bundle (the old model keeps running); the text says why."""


class ModelTarget(Protocol):
    """What the agent needs of the daemon."""

    def config_model(self) -> ModelRef: ...

    def activate(self, bundle: Path) -> None: ...  # the daemon's reload; raises ActivationError

    def error_count(self) -> int: ...  # inference errors of the fleet's pipeline so far


@dataclass
class _Download:
    desired: Desired
    manifest: ReleaseManifest
    missing: set[int]
    requested: set[int] = field(default_factory=set)
    last_chunk_at: float = 0.0
    reported_percent: float = -100.0
    bad: dict[int, int] = field(default_factory=dict)  # chunk -> copies that did not match the manifest


@dataclass
class _Gate:
    job_id: str
    sha256: str | None
    bundle: str
    errors_before: int
    baseline_ms: float | None
    deadline: float
    latencies: list[float] = field(default_factory=list)
    restore: ModelRef | None = None  # what to go back to
    previous_after_rollback: ModelRef | None = None


class FleetAgent:
    def __init__(self, connection: MqttConnection, prefix: str, settings: FleetSettings, store: ModelStore, keyring: Keyring,
                 target: ModelTarget, clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = connection
        self._prefix = prefix
        self._settings = settings
        self._store = store
        self._keyring = keyring
        self._target = target
        self._clock = clock
        self._events: queue.Queue[tuple[str, object]] = queue.Queue()
        self._desired: dict[str, Desired | None] = {"device": None, "group": None}
        self._download: _Download | None = None
        self._gate: _Gate | None = None
        self._gate_lock = threading.Lock()  # observe() runs on the inference threads
        self._recent_ms: deque[float] = deque(maxlen=50)  # the running model's latencies: the gate's baseline
        self._thread = threading.Thread(target=self._run, name="fleet-agent", daemon=True)
        self._stopping = threading.Event()
        self.state = FleetState(group=settings.group)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._events.put(("restore", None))
        self._conn.subscribe(desired_topic(self._prefix), lambda m: self._events.put(("desired:device", m.payload)), worker="fleet")
        if self._settings.group:
            self._conn.subscribe(group_desired_topic(self._settings.group), lambda m: self._events.put(("desired:group", m.payload)),
                                 worker="fleet")
        self._conn.add_connect_listener(lambda: self._events.put(("connected", None)))
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        self._events.put(("stop", None))
        self._thread.join(timeout)

    def observe(self, model: str, latency_ms: float) -> None:
        """Every decision of the fleet's pipeline (inference thread): the health gate counts the new model's."""
        with self._gate_lock:
            gate = self._gate
            if gate is not None and model == gate.bundle:
                gate.latencies.append(latency_ms)
            elif gate is None:
                self._recent_ms.append(latency_ms)

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, payload = self._events.get(timeout=TICK_S)
            except queue.Empty:
                kind, payload = "tick", None
            try:
                self._handle(kind, payload)
                self._tick()
            except Exception:  # a bug here must not end the agent: the daemon keeps classifying either way
                log.exception("fleet: handling %s failed", kind)

    def _handle(self, kind: str, payload: object) -> None:
        if kind == "restore":
            self._restore()
        elif kind == "connected":
            self._publish_state()
        elif kind.startswith("desired:"):
            assert isinstance(payload, bytes)
            self._on_desired(kind.partition(":")[2], payload)
        elif kind == "chunk":
            assert isinstance(payload, IncomingMessage)
            self._on_chunk(payload)

    def _tick(self) -> None:
        now = self._clock()
        download = self._download
        if download is not None and now - download.last_chunk_at > STALL_S:
            log.info("fleet: no chunk for %.0f s; asking the broker again", STALL_S)
            download.last_chunk_at = now
            for index in list(download.requested):
                topic = chunk_topic(download.manifest.sha256, index)
                self._conn.unsubscribe(topic)
                self._conn.subscribe(topic, self._chunk_arrived, worker="fleet")
        if self._gate is not None:
            self._check_gate(now)

    # -- state -------------------------------------------------------------------------------------

    def _set(self, status: Status, job_id: str | None, reason: str = "", publish: bool = True, **changes: object) -> None:
        self.state = self.state.model_copy(update={"status": advance(self.state.status, status), "job_id": job_id, "reason": reason,
                                                   "ts": round(time.time(), 3), **changes})
        if publish:
            self._store.save_state(self.state)
            self._publish_state()

    def _publish_state(self) -> None:
        self._conn.publish(state_topic(self._prefix), to_bytes(self.state), qos=1, retain=True, essential=True)

    def _progress(self, desired: Desired, status: Status, reason: str = "", percent: float | None = None,
                  resumed: int | None = None) -> None:
        if reason:
            log.log(logging.WARNING if status in ("failed", "rolled_back") else logging.INFO, "fleet: job %s %s: %s",
                    desired.job_id, status, reason)
        else:
            log.info("fleet: job %s %s%s", desired.job_id, status, f" {percent:.0f}%" if percent is not None else "")
        message = Progress(job_id=desired.job_id, sha256=desired.sha256, status=status, reason=reason, percent=percent,
                           resumed_chunks=resumed)
        self._conn.publish(progress_topic(self._prefix), to_bytes(message), qos=1, retain=False)

    def _step(self, desired: Desired, status: Status, reason: str = "", percent: float | None = None, resumed: int | None = None,
              **changes: object) -> None:
        """One step of a job: the state machine, a progress message, and the retained state (every step but the
        download's percentages, which only the progress topic carries)."""
        if status == "downloading" and self.state.status == "downloading":
            self._progress(desired, status, reason, percent, resumed)
            return
        self._set(status, desired.job_id, reason, publish=status not in ("downloading", "verifying"), **changes)
        self._progress(desired, status, reason, percent, resumed)

    def _restore(self) -> None:
        """At start: the model the last run ended with, put back through the daemon's reload."""
        saved = self._store.load_state()
        config_model = self._target.config_model()
        active = saved.active
        if active is not None and active.sha256 is not None:
            bundle = self._store.ready(active.sha256)
            try:
                if bundle is None:
                    raise ActivationError(f"{active.sha256[:12]} is no longer in models_dir")
                self._target.activate(bundle)
                log.info("fleet: running %s %s (%s) as before the restart", active.name, active.version, active.sha256[:12])
            except ActivationError as exc:
                log.error("fleet: cannot run the model of the last run again (%s); running the config's model", exc)
                saved = saved.model_copy(update={"active": config_model, "status": "idle",
                                                 "reason": f"after a restart: {exc}"})
        else:
            saved = saved.model_copy(update={"active": config_model})
        if saved.status in ("accepted", "downloading", "verifying"):  # idle, not failed: the retained desired state resumes it
            saved = saved.model_copy(update={"status": "idle", "reason": "interrupted by a restart"})
        self.state = saved.model_copy(update={"group": self._settings.group})
        if self.state.status == "activated":  # the restart came during a health gate: hold it again
            self._open_gate(self.state.job_id or "", self.state.active, self.state.previous, None)
        self._store.save_state(self.state)
        self._publish_state()

    # -- jobs --------------------------------------------------------------------------------------

    def _on_desired(self, source: str, payload: bytes) -> None:
        try:
            desired = parse_desired(payload)
        except ProtocolError as exc:
            log.warning("fleet: ignoring the %s desired model: %s", source, exc)
            self._conn.publish(progress_topic(self._prefix), to_bytes(Progress(job_id="", status="failed", reason=str(exc))), qos=1)
            return
        self._desired[source] = desired
        self._converge()

    def _converge(self) -> None:
        desired = self._desired["device"] or self._desired["group"]
        if desired is None or self._gate is not None:  # a job under its health gate finishes first
            return
        if self._download is not None and self._download.desired.job_id == desired.job_id:
            return
        if self.state.job_id == desired.job_id and self.state.status in TERMINAL:
            return  # done already (a reconnect or restart delivers the retained desired state again)
        self._start(desired)

    def _start(self, desired: Desired) -> None:
        self._cancel_download()
        self._step(desired, "accepted")
        try:
            self._keyring.verify(desired)
        except SigningError as exc:
            self._step(desired, "failed", f"refused: {exc}")
            return
        if desired.action == "rollback":
            self._roll_back_on_order(desired)
            return
        manifest = desired.manifest
        assert manifest is not None
        active = self.state.active
        if active is not None and active.sha256 == manifest.sha256:
            self._step(desired, "healthy", "already running this model")
            return
        if manifest.size > self._settings.max_bundle_bytes:
            self._step(desired, "failed", f"refused: the bundle is {manifest.size} bytes, over fleet.max_bundle_bytes "
                                          f"({self._settings.max_bundle_bytes})")
            return
        if self._store.ready(manifest.sha256) is not None:
            self._verify_and_activate(desired, manifest)
            return
        try:
            self._store.make_room(manifest, self._kept())
        except StoreError as exc:
            self._step(desired, "failed", str(exc))
            return
        missing = self._store.missing(manifest)
        resumed = len(manifest.chunks) - len(missing)
        self._download = _Download(desired, manifest, set(missing), last_chunk_at=self._clock())
        percent = 100.0 * resumed / len(manifest.chunks)
        self._step(desired, "downloading", "", percent, resumed)
        self._download.reported_percent = percent
        if missing and manifest.http_url is not None:
            self._download_over_http(self._download)
        if not self._download.missing:
            self._finish_download()
            return
        self._request_more()

    def _download_over_http(self, download: _Download) -> None:
        """The missing chunks from the controller's HTTP server, in order; at the first problem the rest comes over MQTT."""
        manifest = download.manifest
        for first, count in spans(sorted(download.missing), SPAN_CHUNKS):
            try:
                for index, data in enumerate(fetch_chunks(manifest, first, count), start=first):
                    self._store.write_chunk(manifest, index, data)
                    download.missing.discard(index)
                    self._chunk_written(download)
            except (HttpFetchError, StoreError) as exc:
                log.warning("fleet: over HTTP: %s; the rest comes over MQTT", exc)
                return

    def _chunk_written(self, download: _Download) -> None:
        """A chunk more on disk: a progress message every 10 %."""
        download.last_chunk_at = self._clock()
        total = len(download.manifest.chunks)
        percent = 100.0 * (total - len(download.missing)) / total
        if percent - download.reported_percent >= 10 or not download.missing:
            download.reported_percent = percent
            self._step(download.desired, "downloading", "", round(percent, 1))

    def _kept(self) -> set[str | None]:
        return {ref.sha256 for ref in (self.state.active, self.state.previous) if ref is not None}

    def _request_more(self) -> None:
        download = self._download
        assert download is not None
        for index in sorted(download.missing - download.requested)[: WINDOW - len(download.requested)]:
            download.requested.add(index)
            self._conn.subscribe(chunk_topic(download.manifest.sha256, index), self._chunk_arrived, worker="fleet")

    def _chunk_arrived(self, message: IncomingMessage) -> None:
        self._events.put(("chunk", message))

    def _cancel_download(self) -> None:
        download, self._download = self._download, None
        if download is not None:
            for index in download.requested:
                self._conn.unsubscribe(chunk_topic(download.manifest.sha256, index))

    def _on_chunk(self, message: IncomingMessage) -> None:
        download = self._download
        if download is None:
            return
        index = chunk_index(message.topic, download.manifest.sha256)
        if index is None or index not in download.missing:
            return  # a duplicate, or a chunk of a download that was superseded
        self._conn.unsubscribe(message.topic)
        download.requested.discard(index)
        download.last_chunk_at = self._clock()
        try:
            self._store.write_chunk(download.manifest, index, message.payload)
        except StoreError as exc:
            download.bad[index] = download.bad.get(index, 0) + 1
            if download.bad[index] >= BAD_COPIES:
                self._cancel_download()
                self._step(download.desired, "failed", f"chunk {index} on the broker does not match the signed manifest "
                           f"({download.bad[index]} copies): damaged or forged; deploy the bundle again")
                return
            log.warning("fleet: %s", exc)
            self._request_more()  # BAD_COPIES bounds this: a bad retained copy cannot make a loop
            return
        except OSError as exc:
            self._cancel_download()
            self._step(download.desired, "failed", f"cannot write the download in models_dir ({exc.strerror or exc})")
            return
        download.missing.discard(index)
        self._chunk_written(download)
        if download.missing:
            self._request_more()
        else:
            self._finish_download()

    def _finish_download(self) -> None:
        download, self._download = self._download, None
        assert download is not None
        self._verify_and_activate(download.desired, download.manifest)

    def _verify_and_activate(self, desired: Desired, manifest: ReleaseManifest) -> None:
        self._step(desired, "verifying")
        try:
            self._keyring.verify(desired)  # again: the key list may have changed while it downloaded
            bundle = self._store.unpack(manifest, self._settings.max_bundle_bytes)
            load_bundle(bundle)
        except (SigningError, StoreError, BundleError) as exc:
            if isinstance(exc, BundleError):
                self._store.discard(manifest.sha256)
            self._step(desired, "failed", f"refused: {exc}")
            return
        with self._gate_lock:
            baseline = statistics.median(self._recent_ms) if self._recent_ms else None
        errors_before = self._target.error_count()
        try:
            self._target.activate(bundle)
        except ActivationError as exc:
            self._step(desired, "failed", f"the device refused the bundle, the old model keeps running: {exc}")
            return
        new = ModelRef(sha256=manifest.sha256, name=manifest.name, version=manifest.version, bundle=str(bundle), job_id=desired.job_id)
        before, before_previous = self.state.active, self.state.previous
        self._step(desired, "activated", active=new, previous=before)
        self._open_gate(desired.job_id, new, before, before_previous, baseline, errors_before)

    # -- the health gate ---------------------------------------------------------------------------

    def _open_gate(self, job_id: str, new: ModelRef | None, restore: ModelRef | None, previous_after_rollback: ModelRef | None,
                   baseline: float | None = None, errors_before: int | None = None) -> None:
        if new is None:
            return
        gate = _Gate(job_id=job_id, sha256=new.sha256, bundle=new.bundle,
                     errors_before=self._target.error_count() if errors_before is None else errors_before, baseline_ms=baseline,
                     deadline=self._clock() + self._settings.health_gate.timeout_s, restore=restore,
                     previous_after_rollback=previous_after_rollback)
        with self._gate_lock:
            self._gate = gate
        self._check_gate(self._clock())

    def _check_gate(self, now: float) -> None:
        gate = self._gate
        assert gate is not None
        settings = self._settings.health_gate
        errors = self._target.error_count() - gate.errors_before
        with self._gate_lock:
            latencies = list(gate.latencies)
        problem = ""
        if errors > 0:
            problem = f"{errors} inference error(s) with the new model"
        elif len(latencies) >= settings.classifications:
            median = statistics.median(latencies) if latencies else 0.0
            if gate.baseline_ms is not None:
                allowed = settings.latency_factor * gate.baseline_ms + settings.latency_slack_ms
                if median > allowed:
                    problem = (f"median latency {median:.1f} ms over the allowed {allowed:.1f} ms "
                               f"({settings.latency_factor:g} x the old model's {gate.baseline_ms:.1f} ms"
                               f" + {settings.latency_slack_ms:g} ms)")
            if not problem:
                self._close_gate()
                self._set("healthy", gate.job_id, f"{len(latencies)} classifications, no error")
                self._progress_by_id(gate, "healthy")
                self._store.prune(self._kept())
                self._converge()
                return
        elif now > gate.deadline:
            problem = f"only {len(latencies)} of {settings.classifications} classifications in {settings.timeout_s:g} s"
        if problem:
            self._close_gate()
            self._roll_back(gate, f"health gate failed: {problem}")
            self._converge()

    def _close_gate(self) -> None:
        with self._gate_lock:
            self._gate = None
            self._recent_ms.clear()

    def _progress_by_id(self, gate: _Gate, status: Status, reason: str = "") -> None:
        message = Progress(job_id=gate.job_id, sha256=gate.sha256, status=status, reason=reason)
        self._conn.publish(progress_topic(self._prefix), to_bytes(message), qos=1, retain=False)

    def _roll_back(self, gate: _Gate, reason: str) -> None:
        restore = gate.restore
        if restore is None:
            self._set("failed", gate.job_id, f"{reason}; no previous model to go back to")
            self._progress_by_id(gate, "failed", self.state.reason)
            return
        try:
            self._target.activate(Path(restore.bundle))
        except ActivationError as exc:
            self._set("failed", gate.job_id, f"{reason}; going back to {restore.name} failed too: {exc}")
            self._progress_by_id(gate, "failed", self.state.reason)
            return
        self._set("rolled_back", gate.job_id, reason, active=restore, previous=gate.previous_after_rollback)
        self._progress_by_id(gate, "rolled_back", reason)
        log.warning("fleet: rolled back to %s %s: %s", restore.name, restore.version, reason)

    def _roll_back_on_order(self, desired: Desired) -> None:
        previous, active = self.state.previous, self.state.active
        if previous is None:
            self._step(desired, "failed", "no previous model on this device to go back to")
            return
        try:
            self._target.activate(Path(previous.bundle))
        except ActivationError as exc:
            self._step(desired, "failed", f"going back to {previous.name} was refused, the current model keeps running: {exc}")
            return
        self._step(desired, "activated", active=previous, previous=active)
        self._step(desired, "healthy", f"back on {previous.name} {previous.version}".strip())
