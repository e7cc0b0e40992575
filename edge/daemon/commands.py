"""Remote control over MQTT: `<prefix>/cmd/<name>` with a JSON object payload, answered on
`<prefix>/cmd/<name>/reply` and on the requester's own reply topic: the MQTT 5 response topic (with the
correlation data) or, for MQTT 3.1.1 clients, a "reply_to" in the request.

Commands (docs/mqtt.md has examples):
    ping                                   -> {"pong": true}
    status                                 -> pipelines, their settings, counters and source states
    pause   {"pipeline": "door"}           -> stops classifying (no pipeline = all)
    resume  {"pipeline": "door"}
    set     {"pipeline": "door", "threshold": 0.8, "smoothing": {...}, "min_hold_s": 2}
    reload  {"pipeline": "door", "bundle": "/path/to/bundle"}   validated first; a bad bundle is refused
                                                                  and the old model keeps running. Only
                                                                  folders inside `models_dir` (symlinks
                                                                  resolved; relative = under it) are loaded
    snapshot {"pipeline": "door"}          -> {"jpeg_base64": ...} on the requester's reply topic only; with
                                              "raw": true the JPEG bytes themselves are that reply
`"pipeline"` may be left out when the daemon runs a single pipeline. Any request may carry an "id",
echoed in the reply. Every reply has "ok"; failures carry "error" saying what was wrong and how to fix it.
Malformed, oversized or unknown requests get an error reply; a command can never take the daemon down.
Never executed, never answered (a log line says why): a retained command (left on the broker, it would
run again on every start), and a request whose MQTT 5 response topic or "reply_to" has a wildcard or is not
under `mqtt.reply_prefix` (default `<prefix>/replies/`): a requester must not make the device publish on
topics that are not meant for replies.

Camera images are what a classroom neighbour must not get (issue 12): the image of a snapshot goes only to
the requester's reply topic, never to the broadcast `cmd/snapshot/reply` (which says a snapshot was taken,
and its size); a snapshot is refused without such a topic, while the pipeline is paused, and more often than
`mqtt.snapshot.min_interval_s` for the whole device, and it is downscaled to `mqtt.snapshot.max_side`.
Replies are low-priority MQTT messages: a flood of requests fills at most half of the QoS 1 queue, so it
never crowds out the pipelines' events.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.config.mqtt import MAX_REQUEST_ID_CHARS, SnapshotSettings, default_reply_prefix, reply_topic_problem
from edge.daemon.publisher import to_json
from edge.mqtt.connection import IncomingMessage, MqttConnection
from edge.mqtt.topics import Topics
from edge.pipelines.base import Pipeline

log = logging.getLogger(__name__)

MAX_ID_CHARS = MAX_REQUEST_ID_CHARS
MANIFEST_NAME = "manifest.json"
# One reply for a missing folder, a folder that is not a bundle and a path outside models_dir, so a requester
# cannot probe the device's files through cmd/reload; the reason is in the log only.
RELOAD_PATH_REFUSED = ("no such bundle under models_dir: give the path of a bundle folder inside the device's models_dir "
                       "(the device log says why); the old model keeps running")


def confined_bundle(bundle: str, models_dir: str | Path) -> tuple[Path | None, str]:
    """(the bundle folder, "") when `bundle` names a folder holding a manifest inside `models_dir`, once `..` and
    symlinks are resolved (a relative path is taken under models_dir); else (None, why, for the log)."""
    try:
        root = Path(models_dir).expanduser().resolve()
        resolved = (root / Path(bundle).expanduser()).resolve()  # an absolute path replaces root; a relative one goes under it
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        return None, f"cannot resolve the path ({exc})"
    if not resolved.is_relative_to(root):
        return None, f"{resolved} is outside models_dir {root}"
    try:
        if resolved.name == MANIFEST_NAME and resolved.is_file():
            resolved = resolved.parent
        if not resolved.exists():
            return None, f"{resolved}: no such folder"
        if not (resolved / MANIFEST_NAME).is_file():
            return None, f"{resolved}: not a bundle (no {MANIFEST_NAME} in a folder)"
    except OSError as exc:  # a name over 255 bytes (ENAMETOOLONG), a folder we may not enter
        return None, f"cannot look at {resolved} ({exc.strerror})"
    return resolved, ""


@dataclass(frozen=True)
class PrivateReply:
    """The part of a reply only the requester may see (a camera image): a command returns it under
    PRIVATE_KEY; it goes on the requester's reply topic only, the rest of the reply on the broadcast too."""

    fields: dict[str, Any] = field(default_factory=dict)  # added to the requester's JSON reply
    raw: bytes | None = None  # sent instead of the JSON reply ("raw": true)
    content_type: str | None = None  # of `raw` (MQTT 5 Content Type property)


PRIVATE_KEY = "_private"
PRIVATE_COMMANDS = frozenset({"snapshot"})  # refused unless the requester named its own reply topic


class CommandError(Exception):
    """A request that cannot be carried out; the message goes back to the requester as "error"."""


class CommandTarget(Protocol):
    """What commands act on: the daemon."""

    def pipelines(self) -> dict[str, Pipeline]: ...

    def describe(self) -> dict[str, Any]: ...

    def pipeline_paused(self, name: str, paused: bool) -> None: ...

    def pipeline_reloaded(self, name: str) -> None: ...


class CommandHandler:
    """Subscribes to `<prefix>/cmd/+` and dispatches requests on its own MQTT worker thread."""

    def __init__(self, connection: MqttConnection, topics: Topics, target: CommandTarget, max_payload_bytes: int,
                 models_dir: str | Path | None = None, snapshot: SnapshotSettings | None = None,
                 allowed: Collection[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = connection
        self.models_dir = models_dir  # None (embedding, tests): reload takes any path; the daemon always sets one
        self._topics = topics
        self._target = target
        self._max_payload = max_payload_bytes
        settings = getattr(connection, "settings", None)
        self._reply_prefix = default_reply_prefix(topics.prefix, getattr(settings, "reply_prefix", None))
        self._snapshot_settings = snapshot or getattr(settings, "snapshot", None) or SnapshotSettings()
        self._clock = clock
        self._next_snapshot_at = float("-inf")  # read and written under _run_lock only
        self._run_lock = threading.Lock()  # MQTT's "commands" worker and the dashboard's threads run commands one at a time
        self.handled = 0
        self.failed = 0
        self._commands: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "pause": self._pause,
            "resume": self._resume,
            "set": self._set,
            "reload": self._reload,
            "snapshot": self._snapshot,
        }
        # None (embedding, tests): every command; the daemon passes edge.config.mqtt.allowed_commands(...)
        self.allowed = frozenset(self._commands) if allowed is None else frozenset(allowed)

    def subscribe(self) -> None:
        if not self.allowed:  # mqtt.commands.enabled: false (or an empty allow list): nobody can command the device
            log.info("MQTT commands are off (mqtt.commands); not subscribing to %s", self._topics.commands)
            return
        # A worker of its own: a slow reload must not hold up connect listeners on the default worker.
        # no_retained: a command left retained on the broker is never executed (MQTT 5 retain handling 2).
        self._conn.subscribe(self._topics.commands, self.handle, qos=1, worker="commands", no_retained=True)

    # -- dispatch ----------------------------------------------------------------------------------

    def handle(self, message: IncomingMessage) -> None:
        name = self._topics.command_name(message.topic) or "?"
        if message.retain:  # an MQTT 3.1.1 broker ignores retain handling: drop it here
            log.warning("ignoring retained command on %s: commands are never executed from retained messages; clear it with "
                        "an empty retained message", message.topic)
            return
        if message.response_topic is not None:
            problem = reply_topic_problem(message.response_topic, self._reply_prefix)
            if problem is not None:
                log.warning("ignoring command %s: %s; it was neither executed nor answered", name, problem)
                self.failed += 1
                return
        request_id: Any = None
        reply_to: str | None = None
        private: PrivateReply | None = None
        try:
            args = self._parse(message.payload)
            request_id = args.pop("id", None)
            if "reply_to" in args:  # the MQTT 3.1.1 way to name one's own reply topic
                reply_to = args.pop("reply_to")
                problem = reply_topic_problem(reply_to, self._reply_prefix)
                if problem is not None:
                    log.warning("ignoring command %s: reply_to: %s; it was neither executed nor answered", name, problem)
                    self.failed += 1
                    return
            if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)
                                           or len(str(request_id)) > MAX_ID_CHARS):
                request_id = None
                raise CommandError(f'"id" must be a string or integer of at most {MAX_ID_CHARS} characters')
        except CommandError as exc:
            reply = {"ok": False, "command": name, "error": str(exc)}
            self.failed += 1
        except Exception as exc:
            reply = self._internal_error(name, exc)
        else:
            reply, private = self.execute(name, args, private_ok=bool(message.response_topic or reply_to))
        if request_id is not None:
            reply["id"] = request_id
        reply["ts"] = round(time.time(), 3)
        body = to_json(reply)
        # Low priority: a flood of requests may fill only half of the QoS 1 queue, never the room events need.
        self._conn.publish(self._topics.command_reply(name), body, qos=1, retain=False, low_priority=True)
        own_topic = message.response_topic or reply_to  # the MQTT 5 response topic wins over "reply_to"
        if own_topic is None:
            return
        if private is None:
            self._conn.reply(message, body, topic=own_topic, low_priority=True)
        elif private.raw is not None:
            self._conn.reply(message, private.raw, topic=own_topic, content_type=private.content_type, low_priority=True)
        else:
            self._conn.reply(message, to_json({**reply, **private.fields}), topic=own_topic, low_priority=True)

    def execute(self, name: str, args: dict[str, Any], private_ok: bool, honour_allow_list: bool = True
                ) -> tuple[dict[str, Any], PrivateReply | None]:
        """Runs one command, as MQTT and the device's dashboard both do: (the reply, with "ok" and the result or
        an "error" saying what to fix; the part only the requester may see, or None). `private_ok`: the requester
        has a channel of its own for an image. `honour_allow_list`: False for the dashboard, which has its own
        password; mqtt.commands.allow is about who may command the device through the broker. Commands run one
        at a time whoever sends them (a reload from the page and one over MQTT never interleave)."""
        with self._run_lock:
            try:
                command = self._commands.get(name)
                if command is None:
                    raise CommandError(f"unknown command {name!r}; known commands: {', '.join(sorted(self._commands))}")
                if honour_allow_list and name not in self.allowed:
                    raise CommandError(f"{name} is turned off on this device: the device's owner can allow it in the config "
                                       "(mqtt.commands.allow; docs/security.md)")
                if name in PRIVATE_COMMANDS and not private_ok:
                    raise CommandError(f"{name} sends its image to the requester only: send the request with an MQTT 5 response "
                                       f'topic or a "reply_to", both under {self._reply_prefix!r} (mqtt.reply_prefix)')
                result = command(args)
                private = result.pop(PRIVATE_KEY, None)
                self.handled += 1
                return {"ok": True, "command": name, **result}, private
            except CommandError as exc:
                self.failed += 1
                return {"ok": False, "command": name, "error": str(exc)}, None
            except Exception as exc:
                return self._internal_error(name, exc), None

    def _internal_error(self, name: str, exc: Exception) -> dict[str, Any]:
        """The reply to a bug, in reading a request or in running it: an error reply, never a dead worker. Called in
        the `except` block, so the log gets the traceback; the exception's text may name files or internals, so it
        goes to the log only and the reply names its type."""
        log.exception("command %s failed", name)
        self.failed += 1
        return {"ok": False, "command": name, "error": f"internal error ({type(exc).__name__}); the device log has the details"}

    def _parse(self, payload: bytes) -> dict[str, Any]:
        if len(payload) > self._max_payload:
            raise CommandError(f"payload is {len(payload)} bytes, more than mqtt.max_payload_bytes "
                               f"({self._max_payload}); send a smaller request")
        if not payload.strip():
            return {}
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also an integer of more than 4300 digits
            raise CommandError(f'payload is not valid JSON ({exc}); send a JSON object such as {{"pipeline": "door"}}') from None
        except RecursionError:
            raise CommandError("payload is nested too deeply; send a flat JSON object") from None
        if not isinstance(data, dict):
            raise CommandError(f"payload must be a JSON object, got a {type(data).__name__}")
        return data

    # -- helpers -----------------------------------------------------------------------------------

    def _pipeline(self, args: dict[str, Any]) -> tuple[str, Pipeline]:
        """The pipeline a command acts on: the one named by "pipeline", or the only one running."""
        chosen = self._named_pipeline(args)
        if chosen is not None:
            return chosen
        pipelines = self._target.pipelines()
        if len(pipelines) == 1:
            return next(iter(pipelines.items()))
        raise CommandError(f'name the pipeline: "pipeline": one of {sorted(pipelines)}')

    def _named_pipeline(self, args: dict[str, Any]) -> tuple[str, Pipeline] | None:
        """The pipeline named by "pipeline", or None when the request names none."""
        pipelines = self._target.pipelines()
        name = args.pop("pipeline", None)
        if name is None:
            return None
        if not isinstance(name, str):
            raise CommandError(f'"pipeline" must be a string, got {type(name).__name__}')
        if name not in pipelines:
            raise CommandError(f"no pipeline named {name!r}; running: {sorted(pipelines) or 'none'}")
        return name, pipelines[name]

    @staticmethod
    def _no_more(args: dict[str, Any], command: str) -> None:
        if args:
            raise CommandError(f"{command} does not take {', '.join(sorted(map(str, args)))}; remove {'it' if len(args) == 1 else 'them'}")

    # -- commands ----------------------------------------------------------------------------------

    def _ping(self, args: dict[str, Any]) -> dict[str, Any]:
        self._no_more(args, "ping")
        return {"pong": True}

    def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        self._no_more(args, "status")
        return self._target.describe()

    def _pause_resume(self, args: dict[str, Any], pause: bool) -> dict[str, Any]:
        chosen = self._named_pipeline(args)
        self._no_more(args, "pause" if pause else "resume")
        targets = [chosen] if chosen else list(self._target.pipelines().items())
        for name, pipeline in targets:
            pipeline.pause() if pause else pipeline.resume()
            self._target.pipeline_paused(name, pause)
        return {"pipelines": [name for name, _ in targets], "paused": pause}

    def _pause(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._pause_resume(args, True)

    def _resume(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._pause_resume(args, False)

    def _set(self, args: dict[str, Any]) -> dict[str, Any]:
        name, pipeline = self._pipeline(args)
        if not args:
            raise CommandError('nothing to set; send e.g. {"threshold": 0.8} or {"smoothing": {"method": "n_of_m", "n": 2, "m": 3}}')
        try:
            settings = pipeline.set_params(dict(args))
        except (ValueError, TypeError) as exc:
            raise CommandError(f"{name}: {exc}") from None
        return {"pipeline": name, "settings": settings}

    def _reload(self, args: dict[str, Any]) -> dict[str, Any]:
        name, pipeline = self._pipeline(args)
        bundle = args.pop("bundle", None)
        self._no_more(args, "reload")
        if not isinstance(bundle, str) or not bundle:
            raise CommandError('reload needs "bundle": the path of a bundle folder on this device')
        path = bundle
        if self.models_dir is not None:
            folder, why = confined_bundle(bundle, self.models_dir)
            if folder is None:
                log.warning("reload of %s refused: %s", name, why)
                raise CommandError(f"{name}: {RELOAD_PATH_REFUSED}")
            path = str(folder)  # the checked folder, not the request's path: a symlink swapped later is not followed
        try:
            pipeline.reload(path)
        except ValueError as exc:  # BundleError is a ValueError; the old model keeps running
            raise CommandError(f"{name}: new bundle refused, the old model keeps running: {exc}") from None
        self._target.pipeline_reloaded(name)
        stats = pipeline.stats()
        return {"pipeline": name, "bundle": bundle, "model_sha256": stats.get("model_sha256")}

    def _snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        name, pipeline = self._pipeline(args)
        raw = args.pop("raw", False)
        self._no_more(args, "snapshot")
        if not isinstance(raw, bool):
            raise CommandError('"raw" must be true or false')
        if pipeline.kind != "camera":
            raise CommandError(f"{name} is a {pipeline.kind} pipeline; snapshots exist for camera pipelines only")
        if pipeline.paused:  # paused means "camera off" to the people in front of it
            raise CommandError(f"{name} is paused: no snapshots while paused; resume it first")
        now, interval = self._clock(), self._snapshot_settings.min_interval_s
        if now < self._next_snapshot_at:
            raise CommandError(f"too many snapshots: at most one every {interval:g} s per device (mqtt.snapshot.min_interval_s); "
                               f"try again in {self._next_snapshot_at - now:.1f} s")
        self._next_snapshot_at = now + interval  # a refused request does not push it further
        jpeg = pipeline.snapshot_jpeg(self._snapshot_settings.max_side)
        if jpeg is None:
            raise CommandError(f"{name} has no frame yet (source starting or failing); try again in a moment")
        private = (PrivateReply(raw=jpeg, content_type="image/jpeg") if raw
                   else PrivateReply(fields={"jpeg_base64": base64.b64encode(jpeg).decode("ascii")}))
        return {"pipeline": name, "content_type": "image/jpeg", "bytes": len(jpeg), "raw": raw, PRIVATE_KEY: private}
