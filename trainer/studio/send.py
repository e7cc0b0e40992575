"""The Studio's "send to devices": the fleet rollout of `trainer fleet` (edge.fleet.controller) driven from the Export
tab. One broker connection (a FleetWatch) per Studio, opened on first use; one rollout at a time, run in a
background thread; its per-device progress kept here so a reloaded page picks it up. The signing key and the
broker password stay in this process: nothing here returns or logs them."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trainer.studio.projects import ProjectError

if TYPE_CHECKING:  # edge.fleet needs the `cryptography` package: imported when the fleet is on, not for every Studio
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.fleet.controller import BrokerSettings, DeviceView, FleetWatch, Outcome

# Device ids and group names as the devices make them: edge.config's sanitise_device_id and fleet.GROUP_PATTERN
# (tests/trainer/studio/test_send.py checks the three agree; the trainer may not import edge.config).
NAME_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_DEVICES = 500  # device ids in one request: a school's worth
SETUP_HINT = ("start the Studio with --fleet-host BROKER and --fleet-key fleet.key (from `trainer fleet keygen`) to send "
              "models to devices; see docs/studio.md")
Kind = Literal["deploy", "rollback"]

log = logging.getLogger(__name__)


class SendError(ProjectError):
    """A send the Studio refuses or cannot do; the text says what to do (a ProjectError: the routes answer it as JSON)."""


@dataclass(frozen=True)
class SendSettings:
    """The broker and signing key `trainer studio --fleet-*` was given. repr=False: a log line never shows the key."""

    broker: BrokerSettings
    private_key: Ed25519PrivateKey = field(repr=False)


def load_settings(host: str, port: int, username: str | None, password_file: Path | None, key: Path) -> SendSettings:
    """The settings, with the key read now so a wrong --fleet-key stops the Studio at start (ValueError says why)."""
    from edge.fleet.controller import broker_settings
    from edge.fleet.signing import SigningError, load_private_key

    try:
        private = load_private_key(key)
    except SigningError as exc:
        raise ValueError(str(exc)) from None
    if password_file is not None and not password_file.is_file():
        raise ValueError(f"--fleet-password-file {password_file}: no such file")
    return SendSettings(broker_settings(host, port, username, str(password_file) if password_file else None), private)


@dataclass(frozen=True)
class Target:
    """Who a rollout goes to: named devices, or a group; waves and the abort threshold as fractions."""

    devices: tuple[str, ...] = ()
    group: str | None = None
    wave: float | None = None
    abort_above: float | None = None


def _share(value: object, what: str) -> float | None:
    from edge.fleet.waves import parse_fraction

    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SendError(f"{what}: give a percentage such as 20%")
    text = f"{value}%" if isinstance(value, (int, float)) else value
    try:
        return parse_fraction(text[:20])
    except ValueError as exc:
        raise SendError(f"{what}: {exc}") from None


def parse_target(body: dict[str, object], rollout: bool = True) -> Target:
    """A JSON body's target, checked: {"devices": [ids]} or {"group": name}, and (for a deploy) "wave" and
    "abort_above" as a percentage (20, "20%")."""
    devices, group = body.get("devices"), body.get("group")
    if (devices is None) == (group is None):
        raise SendError('name the devices ("devices": [ids]) or a group ("group": name), not both')
    if group is not None:
        if not isinstance(group, str) or not NAME_PATTERN.match(group):
            raise SendError(f"group {str(group)[:70]!r}: a group name is 1-64 of a-z, 0-9, _ and - (the devices' fleet.group)")
        names: tuple[str, ...] = ()
    else:
        if not isinstance(devices, list) or not devices or len(devices) > MAX_DEVICES:
            raise SendError(f'"devices" is a list of 1 to {MAX_DEVICES} device ids')
        for device in devices:
            if not isinstance(device, str) or not NAME_PATTERN.match(device):
                raise SendError(f"device {str(device)[:70]!r}: a device id is 1-64 of a-z, 0-9, _ and - (its device_id)")
        names = tuple(sorted(set(devices)))
    if not rollout:
        return Target(names, group)
    return Target(names, group, _share(body.get("wave"), "wave"), _share(body.get("abort_above"), "abort above"))


def device_row(view: DeviceView) -> dict[str, object]:
    """One device as the page's table shows it."""
    state = view.state
    return {"id": view.device_id, "online": view.online, "group": view.group, "model": view.model,
            "status": state.status if state is not None else None, "fps": view.fps, "temperature_c": view.temperature_c}


def job_row(view: DeviceView | None, job_id: str | None) -> dict[str, object]:
    """A device's step in job `job_id`: waiting (nothing of this job yet), accepted, downloading (with percent),
    verifying, activated, healthy, failed or rolled_back (with the device's reason)."""
    state = view.state if view is not None else None
    progress = view.progress if view is not None else None
    if job_id is None or state is None or state.job_id != job_id:
        return {"status": "waiting", "percent": None, "reason": ""}
    status, percent, reason = state.status, None, state.reason
    # the retained state skips the download's steps (trainer/fleet/table.py reads them the same way)
    if status == "accepted" and progress is not None and progress.job_id == job_id:
        status, percent, reason = progress.status, progress.percent, progress.reason
    return {"status": status, "percent": percent, "reason": reason}


@dataclass
class Rollout:
    """One deploy or rollback and what is known of it; `view()` is what the page polls."""

    kind: Kind
    project: str | None
    targets: list[str]  # devices shown: the named ones, or the group's members when it started
    target: Target
    started: float = field(default_factory=time.time)
    job_id: str | None = None
    previous_jobs: dict[str, str | None] = field(default_factory=dict)  # each device's job when this one began
    rows: dict[str, dict[str, object]] = field(default_factory=dict)
    message: str = ""
    running: bool = True
    error: str = ""
    outcome: dict[str, object] | None = None

    def update(self, message: str, views: dict[str, DeviceView]) -> None:
        """The controller's report callback: learns the job id from the first device that took a new job."""
        if message:
            self.message = message[:300]
        if self.job_id is None:
            for name in self.targets:
                state = views[name].state if name in views else None
                if state is not None and state.job_id and state.job_id != self.previous_jobs.get(name) \
                        and state.job_id.startswith(f"{self.kind}-"):
                    self.job_id = state.job_id
                    break
        for name in self.targets:
            self.rows[name] = job_row(views.get(name), self.job_id)

    def finish(self, outcome: Outcome, views: dict[str, DeviceView]) -> None:
        self.job_id = outcome.job_id
        self.update("", views)
        self.outcome = {"ok": outcome.ok, "aborted": outcome.aborted, "waves_done": outcome.waves_done,
                        "results": dict(sorted(outcome.results.items())), "skipped_offline": list(outcome.skipped_offline)}
        self.running = False

    def view(self) -> dict[str, object]:
        return {"kind": self.kind, "project": self.project, "job_id": self.job_id, "running": self.running,
                "message": self.message, "error": self.error, "outcome": self.outcome, "group": self.target.group,
                "devices": [{"id": name, **self.rows.get(name, job_row(None, None))} for name in self.targets]}


class Sender:
    """The Studio's side of the fleet: the device list, and one rollout at a time in a background thread."""

    def __init__(self, settings: SendSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._watch: FleetWatch | None = None
        self._rollout: Rollout | None = None
        self._thread: threading.Thread | None = None

    def watch(self) -> FleetWatch:
        """The broker connection, opened on first use (503 with the reason when the broker cannot be reached)."""
        from edge.fleet.controller import FleetError, FleetWatch, wait_for_devices

        with self._lock:
            if self._watch is None:
                try:
                    watch = FleetWatch(self.settings.broker).start(timeout=5.0)
                except FleetError as exc:
                    raise SendError(str(exc).replace("--host/--port", "--fleet-host/--fleet-port"), 503) from None
                wait_for_devices(watch, 1.0)  # the retained states arrive at once after subscribing
                self._watch = watch
            return self._watch

    def stop(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None

    def devices(self) -> list[dict[str, object]]:
        views = self.watch().snapshot()
        return [device_row(views[name]) for name in sorted(views)]

    def rollout(self) -> dict[str, object] | None:
        with self._lock:
            return self._rollout.view() if self._rollout is not None else None

    def _targets(self, watch: FleetWatch, target: Target) -> list[str]:
        from edge.fleet.controller import group_members

        if target.group is not None:
            online, offline = group_members(watch, target.group)
            if not online and not offline:
                raise SendError(f"no device has reported group {target.group!r}; set fleet.group on the devices", 400)
            return online + offline
        known = watch.snapshot()
        unknown = [d for d in target.devices if d not in known]
        if unknown:
            raise SendError(f"no device {', '.join(unknown[:5])} on the broker: pick devices from the list", 400)
        return list(target.devices)

    def _begin(self, kind: Kind, project: str | None, target: Target) -> tuple[FleetWatch, Rollout]:
        watch = self.watch()
        with self._lock:
            if self._rollout is not None and self._rollout.running:
                raise SendError(f"a {self._rollout.kind} is still running; wait for it to end", 409)
            targets = self._targets(watch, target)
            views = watch.snapshot()
            states = {n: views[n].state if n in views else None for n in targets}
            rollout = Rollout(kind, project, targets, target,
                              previous_jobs={n: state.job_id if state is not None else None for n, state in states.items()})
            rollout.update("", views)
            self._rollout = rollout
        return watch, rollout

    def send(self, project: str, bundle: Path, name: str, target: Target) -> dict[str, object]:
        """Packs the bundle folder now (a bad one is refused at once), then signs and rolls it out in the background."""
        from edge.fleet.chunks import ArchiveError, pack_bundle
        from edge.fleet.controller import deploy

        try:
            packed = pack_bundle(bundle, name, time.strftime("%Y%m%d-%H%M%S"))
        except (ArchiveError, OSError) as exc:
            raise SendError(f"the model cannot be sent: {exc}", 400) from None
        watch, rollout = self._begin("deploy", project, target)
        devices = list(target.devices) or None

        def run() -> Outcome:
            return deploy(watch, packed, self.settings.private_key, devices=devices, group=target.group, wave=target.wave,
                          abort_above=target.abort_above, report=rollout.update)

        self._start(rollout, watch, run)
        return rollout.view()

    def rollback(self, target: Target) -> dict[str, object]:
        """Sends the devices back to the model they ran before (each keeps it on its disk)."""
        from edge.fleet.controller import rollback

        watch, rollout = self._begin("rollback", None, target)
        devices = list(target.devices) or None
        self._start(rollout, watch, lambda: rollback(watch, self.settings.private_key, devices=devices, group=target.group,
                                                     report=rollout.update))
        return rollout.view()

    def _start(self, rollout: Rollout, watch: FleetWatch, run: Callable[[], Outcome]) -> None:
        from edge.fleet.controller import FleetError

        def body() -> None:
            try:
                rollout.finish(run(), watch.snapshot())
            except (FleetError, OSError) as exc:
                rollout.error, rollout.running = str(exc)[:500], False
            except Exception as exc:  # a bug must not leave a rollout "running" for ever, which would block every next one
                log.exception("the %s stopped", rollout.kind)
                rollout.error, rollout.running = f"stopped by an error ({type(exc).__name__}); see the Studio's log", False

        self._thread = threading.Thread(target=body, name=f"studio-{rollout.kind}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Whether the rollout's thread ended within `timeout` (tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()
