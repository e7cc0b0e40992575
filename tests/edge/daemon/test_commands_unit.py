"""edge/daemon/commands.py: request validation and dispatch, with a recording fake connection and fake
pipelines (the real broker path is covered by tests/e2e/test_daemon_mqtt.py). Every refusal is checked by
its exact error text: the text is what a user reads to fix the request."""

from __future__ import annotations

import base64
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest

from edge.config.mqtt import COMMAND_NAMES, MqttSettings, SnapshotSettings, allowed_commands
from edge.daemon.commands import MAX_ID_CHARS, CommandError, CommandHandler
from edge.daemon.publisher import to_json
from edge.mqtt.connection import IncomingMessage
from edge.mqtt.topics import Topics

TOPICS = Topics("edgeteach/dev")
MAX_PAYLOAD = 200


class FakeConnection:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.replies: list[tuple[IncomingMessage, bytes]] = []
        self.reply_details: list[dict[str, Any]] = []  # topic, content_type, low_priority of each reply
        self.low_priority: list[bool] = []  # of each publish
        self.subscriptions: list[tuple[str, Any, int, str, bool]] = []

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False, low_priority: bool = False, **_: Any) -> bool:
        self.published.append((topic, payload, qos, retain))
        self.low_priority.append(low_priority)
        return True

    def reply(self, request: IncomingMessage, payload: bytes, qos: int = 1, topic: str | None = None, content_type: str | None = None,
              low_priority: bool = False) -> bool:
        # as MqttConnection.reply: `topic`, else the response topic, else nothing is sent
        if not (topic or request.response_topic):
            return False
        self.replies.append((request, payload))
        self.reply_details.append({"topic": topic or request.response_topic, "content_type": content_type, "low_priority": low_priority,
                                   "correlation_data": request.correlation_data})  # read as MqttConnection.reply does
        return True

    def subscribe(self, topic_filter: str, handler: Any, qos: int = 1, worker: str = "default", no_retained: bool = False) -> None:
        self.subscriptions.append((topic_filter, handler, qos, worker, no_retained))


class FakePipeline:
    def __init__(self, name: str, kind: str = "camera", jpeg: bytes | None = b"\xff\xd8jpeg\xff\xd9") -> None:
        self.name, self.kind, self.jpeg = name, kind, jpeg
        self.paused = False
        self.snapshot_sides: list[int | None] = []
        self.params: list[dict[str, Any]] = []
        self.reloaded: list[str] = []
        self.set_error: Exception | None = None
        self.reload_error: Exception | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def set_params(self, params: dict[str, Any]) -> dict[str, Any]:
        self.params.append(params)
        if self.set_error:
            raise self.set_error
        return {"threshold": params.get("threshold", 0.6)}

    def reload(self, bundle: str) -> None:
        if self.reload_error:
            raise self.reload_error
        self.reloaded.append(bundle)

    def snapshot_jpeg(self, max_side: int | None = None) -> bytes | None:
        self.snapshot_sides.append(max_side)
        return self.jpeg

    def stats(self) -> dict[str, Any]:
        return {"model_sha256": "abc123"}


class FakeTarget:
    def __init__(self, *pipelines: FakePipeline) -> None:
        self._pipelines = {p.name: p for p in pipelines}
        self.paused_calls: list[tuple[str, bool]] = []
        self.reloaded_calls: list[str] = []

    def pipelines(self) -> dict[str, FakePipeline]:
        return dict(self._pipelines)

    def describe(self) -> dict[str, Any]:
        return {"pipelines": sorted(self._pipelines), "uptime_s": 5}

    def pipeline_paused(self, name: str, paused: bool) -> None:
        self.paused_calls.append((name, paused))

    def pipeline_reloaded(self, name: str) -> None:
        self.reloaded_calls.append(name)


def setup(*pipelines: FakePipeline) -> tuple[CommandHandler, FakeConnection, FakeTarget]:
    conn, target = FakeConnection(), FakeTarget(*(pipelines or (FakePipeline("door"),)))
    return CommandHandler(conn, TOPICS, target, MAX_PAYLOAD), conn, target  # type: ignore[arg-type]


def send(handler: CommandHandler, conn: FakeConnection, name: str, payload: Any = None, raw: bytes | None = None,
         topic: str | None = None) -> dict[str, Any]:
    body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
    message = IncomingMessage(topic=topic or TOPICS.command(name), payload=body, response_topic="edgeteach/dev/replies/1",
                              correlation_data=b"c")
    before = len(conn.published)
    handler.handle(message)
    reply_topic, reply_body, qos, retain = conn.published[-1]
    if topic is None:
        assert reply_topic == TOPICS.command_reply(name)
    assert (qos, retain) == (1, False)
    assert conn.replies[-1] == (message, reply_body)  # the MQTT 5 response carries the same body
    assert len(conn.published) > before
    return json.loads(reply_body)


def error_of(handler: CommandHandler, conn: FakeConnection, name: str, payload: Any = None, raw: bytes | None = None) -> str:
    reply = send(handler, conn, name, payload, raw)
    assert reply["ok"] is False and reply["command"] == name
    return reply["error"]


# -- envelope -----------------------------------------------------------------------------------------


def test_subscribes_to_all_commands_on_its_own_worker() -> None:
    handler, conn, _ = setup()
    handler.subscribe()
    # no_retained: a command left retained on the broker must never run (MQTT 5 retain handling 2)
    assert conn.subscriptions == [("edgeteach/dev/cmd/+", handler.handle, 1, "commands", True)]


def test_ping_reply_has_ok_command_and_a_timestamp() -> None:
    handler, conn, _ = setup()
    before = time.time()
    reply = send(handler, conn, "ping")
    assert set(reply) == {"ok", "command", "pong", "ts"}
    assert reply["ok"] is True and reply["command"] == "ping" and reply["pong"] is True
    assert before - 0.001 <= reply["ts"] <= time.time() + 0.001
    assert reply["ts"] == round(reply["ts"], 3)
    assert conn.published[-1][0] == "edgeteach/dev/cmd/ping/reply"
    assert (handler.handled, handler.failed) == (1, 0)


@pytest.mark.parametrize("request_id", ["req-1", 42, 0, -7, "", "x" * MAX_ID_CHARS, 10 ** (MAX_ID_CHARS - 1)])
def test_a_valid_id_is_echoed(request_id: Any) -> None:
    handler, conn, _ = setup()
    reply = send(handler, conn, "ping", {"id": request_id})
    assert reply["ok"] is True and reply["id"] == request_id


@pytest.mark.parametrize("request_id", [1.5, True, False, ["a"], {"a": 1}, "x" * (MAX_ID_CHARS + 1), 10**MAX_ID_CHARS])
def test_an_invalid_id_is_refused_and_not_echoed(request_id: Any) -> None:
    # planted bug: the id type/length check removed -> these were accepted (and echoed)
    handler, conn, _ = setup()
    reply = send(handler, conn, "ping", {"id": request_id})
    assert reply["ok"] is False
    assert reply["error"] == '"id" must be a string or integer of at most 128 characters'
    assert "id" not in reply
    assert (handler.handled, handler.failed) == (0, 1)
    assert MAX_ID_CHARS == 128


def test_an_id_is_echoed_on_failures_too() -> None:
    handler, conn, _ = setup()
    reply = send(handler, conn, "nope", {"id": "r7"})
    assert reply["ok"] is False and reply["id"] == "r7"


def test_unknown_command_lists_the_known_ones() -> None:
    handler, conn, _ = setup()
    assert error_of(handler, conn,
                    "reboot") == "unknown command 'reboot'; known commands: pause, ping, reload, resume, set, snapshot, status"


def test_a_topic_outside_cmd_is_answered_as_command_question_mark() -> None:
    handler, conn, _ = setup()
    reply = send(handler, conn, "?", raw=b"", topic="edgeteach/dev/other/ping")
    assert reply["command"] == "?" and reply["error"].startswith("unknown command '?'")
    assert conn.published[-1][0] == "edgeteach/dev/cmd/?/reply"


def test_payload_size_limit_is_inclusive() -> None:
    handler, conn, _ = setup()
    at_limit = b'{"id": "' + b"x" * (MAX_PAYLOAD - 10) + b'"}'
    assert len(at_limit) == MAX_PAYLOAD
    reply = send(handler, conn, "ping", raw=at_limit)
    assert reply["ok"] is False and "id" in reply["error"]  # parsed (the id is too long), not refused for size
    over = b" " * (MAX_PAYLOAD + 1)
    assert error_of(handler, conn, "ping", raw=over) == (
        f"payload is {MAX_PAYLOAD + 1} bytes, more than mqtt.max_payload_bytes ({MAX_PAYLOAD}); send a smaller request")


@pytest.mark.parametrize("raw", [b"", b"  \n\t "])
def test_an_empty_payload_is_an_empty_request(raw: bytes) -> None:
    handler, conn, _ = setup()
    assert send(handler, conn, "ping", raw=raw)["ok"] is True


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"{nope", r'^payload is not valid JSON \(Expecting property name .*\); send a JSON object such as \{"pipeline": "door"\}$'),
        (b"\xff\xfe{}", r"^payload is not valid JSON \('utf-8' codec can't decode"),
        (b"[1, 2]", r"^payload must be a JSON object, got a list$"),
        (b'"ping"', r"^payload must be a JSON object, got a str$"),
        (b"null", r"^payload must be a JSON object, got a NoneType$"),
    ],
)
def test_malformed_payloads_are_refused(raw: bytes, expected: str) -> None:
    import re

    handler, conn, _ = setup()
    reply = send(handler, conn, "ping", raw=raw)
    assert reply["ok"] is False and re.search(expected, reply["error"])
    assert "id" not in reply  # nothing parsed, nothing to echo


def test_deeply_nested_json_is_refused_without_crashing() -> None:
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"))
    handler = CommandHandler(conn, TOPICS, target, 10**7)  # type: ignore[arg-type]
    assert error_of(handler, conn, "ping", raw=b"[" * 200_000 + b"]" * 200_000) == "payload is nested too deeply; send a flat JSON object"


def test_an_integer_too_long_to_convert_is_invalid_json_not_an_internal_error() -> None:
    # json.loads refuses integers of more than 4300 digits with a plain ValueError (found by bench/fuzz_network.py)
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"))
    handler = CommandHandler(conn, TOPICS, target, 10_000)  # type: ignore[arg-type]
    error = error_of(handler, conn, "ping", raw=b'{"id": ' + b"1" * 5000 + b"}")
    assert error.startswith("payload is not valid JSON") and (handler.handled, handler.failed) == (0, 1)


def test_a_bug_in_a_command_becomes_an_internal_error_reply(caplog: pytest.LogCaptureFixture) -> None:
    handler, conn, _ = setup(pipe := FakePipeline("door"))
    pipe.set_error = RuntimeError("boom")
    with caplog.at_level("ERROR", logger="edge.daemon.commands"):
        reply = send(handler, conn, "set", {"threshold": 0.5, "id": 3})
    # the exception's text stays in the log (it may name files or internals): the reply names only its type
    assert reply == {"ok": False, "command": "set", "error": "internal error (RuntimeError); the device log has the details",
                     "id": 3, "ts": reply["ts"]}
    assert (handler.handled, handler.failed) == (0, 1)
    (record,) = caplog.records
    assert record.getMessage() == "command set failed" and record.exc_info is not None  # with the traceback
    send(handler, conn, "set", {"threshold": 0.5})
    assert handler.failed == 2


def test_a_bug_in_reading_a_request_becomes_an_internal_error_reply(caplog: pytest.LogCaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    handler, conn, _ = setup(FakePipeline("door"))

    def broken_parse(payload: bytes) -> dict[str, object]:
        raise KeyError("a bug")

    monkeypatch.setattr(handler, "_parse", broken_parse)
    with caplog.at_level("ERROR", logger="edge.daemon.commands"):
        reply = send(handler, conn, "ping", {"id": 4})
    assert reply == {"ok": False, "command": "ping", "error": "internal error (KeyError); the device log has the details",
                     "ts": reply["ts"]}  # nothing was read, so no id to echo
    assert (handler.handled, handler.failed) == (0, 1)
    (record,) = caplog.records
    assert record.getMessage() == "command ping failed" and record.exc_info is not None
    send(handler, conn, "ping", {})
    assert handler.failed == 2


def test_command_error_is_an_exception() -> None:
    assert issubclass(CommandError, Exception)


# -- unknown fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, payload, expected",
    [
        ("ping", {"x": 1}, "ping does not take x; remove it"),
        ("status", {"b": 1, "a": 2}, "status does not take a, b; remove them"),
        ("pause", {"pipeline": "door", "now": True}, "pause does not take now; remove it"),
        ("resume", {"all": True}, "resume does not take all; remove it"),
        ("reload", {"bundle": "/b", "force": True}, "reload does not take force; remove it"),
        ("snapshot", {"raw": True, "size": 3}, "snapshot does not take size; remove it"),
    ],
)
def test_unknown_fields_are_refused(name: str, payload: dict[str, Any], expected: str) -> None:
    handler, conn, _ = setup()
    assert error_of(handler, conn, name, payload) == expected


# -- choosing the pipeline ----------------------------------------------------------------------------


def test_the_only_pipeline_may_be_left_out_but_not_one_of_several() -> None:
    handler, conn, _ = setup(FakePipeline("door"))
    assert send(handler, conn, "set", {"threshold": 0.7})["pipeline"] == "door"
    handler, conn, _ = setup(FakePipeline("door"), FakePipeline("yard"))
    assert error_of(handler, conn, "set", {"threshold": 0.7}) == "name the pipeline: \"pipeline\": one of ['door', 'yard']"


def test_pipeline_must_be_a_running_pipeline_name() -> None:
    handler, conn, _ = setup(FakePipeline("yard"), FakePipeline("door"))
    assert error_of(handler, conn, "set", {"pipeline": 3, "threshold": 1}) == '"pipeline" must be a string, got int'
    assert error_of(handler, conn, "reload", {"pipeline": "garage",
                                              "bundle": "/b"}) == "no pipeline named 'garage'; running: ['door', 'yard']"
    handler, conn, _ = setup()
    handler._target._pipelines.clear()  # type: ignore[attr-defined]
    assert error_of(handler, conn, "snapshot", {"pipeline": "door"}) == "no pipeline named 'door'; running: none"


# -- commands -----------------------------------------------------------------------------------------


def test_status_is_the_target_description() -> None:
    handler, conn, _ = setup()
    reply = send(handler, conn, "status")
    assert reply["pipelines"] == ["door"] and reply["uptime_s"] == 5 and reply["ok"] is True


def test_pause_and_resume_one_pipeline_or_all() -> None:
    door, yard = FakePipeline("door"), FakePipeline("yard")
    handler, conn, target = setup(door, yard)
    reply = send(handler, conn, "pause", {"pipeline": "yard"})
    assert reply["pipelines"] == ["yard"] and reply["paused"] is True
    assert yard.paused and not door.paused and target.paused_calls == [("yard", True)]
    reply = send(handler, conn, "pause")
    assert reply["pipelines"] == ["door", "yard"] and door.paused
    reply = send(handler, conn, "resume", {"pipeline": "door"})
    assert reply == {**reply, "pipelines": ["door"], "paused": False} and not door.paused and yard.paused
    send(handler, conn, "resume")
    assert not yard.paused
    assert target.paused_calls[-3:] == [("door", False), ("door", False), ("yard", False)]


def test_set_passes_the_settings_to_the_pipeline() -> None:
    handler, conn, _ = setup(pipe := FakePipeline("door"))
    reply = send(handler, conn, "set", {"pipeline": "door", "threshold": 0.8, "smoothing": {"method": "none"}})
    assert pipe.params == [{"threshold": 0.8, "smoothing": {"method": "none"}}]
    assert reply["pipeline"] == "door" and reply["settings"] == {"threshold": 0.8}


def test_set_with_nothing_to_set() -> None:
    handler, conn, _ = setup()
    assert error_of(handler, conn, "set", {"pipeline": "door"}) == (
        'nothing to set; send e.g. {"threshold": 0.8} or {"smoothing": {"method": "n_of_m", "n": 2, "m": 3}}')


@pytest.mark.parametrize("exc", [ValueError("threshold must be between 0 and 1"), TypeError("threshold must be between 0 and 1")])
def test_set_reports_a_refused_setting_with_the_pipeline_name(exc: Exception) -> None:
    handler, conn, _ = setup(pipe := FakePipeline("door"))
    pipe.set_error = exc
    assert error_of(handler, conn, "set", {"threshold": 7}) == "door: threshold must be between 0 and 1"


def test_reload_validates_then_reports_the_new_model() -> None:
    handler, conn, target = setup(pipe := FakePipeline("door"))
    reply = send(handler, conn, "reload", {"bundle": "/models/new"})
    assert pipe.reloaded == ["/models/new"] and target.reloaded_calls == ["door"]
    assert reply["pipeline"] == "door" and reply["bundle"] == "/models/new" and reply["model_sha256"] == "abc123"


@pytest.mark.parametrize("payload", [{}, {"bundle": ""}, {"bundle": 5}, {"bundle": None}])
def test_reload_needs_a_bundle_path(payload: dict[str, Any]) -> None:
    handler, conn, target = setup()
    assert error_of(handler, conn, "reload", payload) == 'reload needs "bundle": the path of a bundle folder on this device'
    assert target.reloaded_calls == []


def test_a_refused_bundle_keeps_the_old_model() -> None:
    handler, conn, target = setup(pipe := FakePipeline("door"))
    pipe.reload_error = ValueError("bad checksum")
    assert error_of(handler, conn, "reload", {"bundle": "/b"}) == "door: new bundle refused, the old model keeps running: bad checksum"
    assert target.reloaded_calls == []


# -- snapshots: the image to the requester only, rate-limited, downscaled, never while paused -----------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_setup(jpeg: bytes | None = b"\xff\xd8abc", **settings: Any) -> tuple[CommandHandler, FakeConnection, FakePipeline, Clock]:
    conn, pipe, clock = FakeConnection(), FakePipeline("door", jpeg=jpeg), Clock()
    handler = CommandHandler(conn, TOPICS, FakeTarget(pipe), MAX_PAYLOAD, snapshot=SnapshotSettings(**settings),  # type: ignore[arg-type]
                             clock=clock)
    return handler, conn, pipe, clock


def snap(handler: CommandHandler, conn: FakeConnection, payload: dict[str, Any] | None = None,
         response_topic: str | None = "edgeteach/dev/replies/me") -> tuple[dict[str, Any], bytes | None]:
    """One snapshot request: (the broadcast reply on cmd/snapshot/reply, what the requester got or None)."""
    replies = len(conn.replies)
    handler.handle(IncomingMessage(topic=TOPICS.command("snapshot"), payload=json.dumps(payload or {}).encode(),
                                   response_topic=response_topic, correlation_data=b"c"))
    topic, body, qos, retain = conn.published[-1]
    assert (topic, qos, retain) == ("edgeteach/dev/cmd/snapshot/reply", 1, False)
    return json.loads(body), (conn.replies[-1][1] if len(conn.replies) > replies else None)


def test_the_snapshot_image_goes_to_the_requester_only() -> None:
    # planted bug: the private fields merged into the broadcast reply -> jpeg_base64 on cmd/snapshot/reply
    handler, conn, pipe, _ = snapshot_setup()
    broadcast, own = snap(handler, conn, {"raw": False, "id": "s1"})
    assert broadcast == {"ok": True, "command": "snapshot", "pipeline": "door", "content_type": "image/jpeg", "bytes": 5, "raw": False,
                         "id": "s1", "ts": broadcast["ts"]}
    assert own is not None and json.loads(own) == {**broadcast, "jpeg_base64": base64.b64encode(b"\xff\xd8abc").decode()}
    assert conn.reply_details[-1] == {"topic": "edgeteach/dev/replies/me", "content_type": None, "low_priority": True,
                                     "correlation_data": b"c"}
    assert all(b"\xff\xd8" not in body and b"jpeg_base64" not in body for _, body, _, _ in conn.published)


def test_a_raw_snapshot_is_the_jpeg_bytes_on_the_requesters_topic_only() -> None:
    # planted bug: the raw bytes published on <prefix>/<pipeline>/snapshot as before -> a broadcast carries them
    handler, conn, _, _ = snapshot_setup()
    broadcast, own = snap(handler, conn, {"raw": True})
    assert own == b"\xff\xd8abc"
    assert conn.reply_details[-1] == {"topic": "edgeteach/dev/replies/me", "content_type": "image/jpeg", "low_priority": True,
                                     "correlation_data": b"c"}
    assert broadcast["ok"] is True and broadcast["bytes"] == 5 and broadcast["raw"] is True and "jpeg_base64" not in broadcast
    assert [topic for topic, _, _, _ in conn.published] == ["edgeteach/dev/cmd/snapshot/reply"]


def test_reply_to_names_the_requesters_topic_for_mqtt_3_clients() -> None:
    # planted bug: reply_to ignored -> the MQTT 3.1.1 requester is refused as if it had named no topic
    handler, conn, _, _ = snapshot_setup()
    broadcast, own = snap(handler, conn, {"reply_to": "edgeteach/dev/replies/student-4"}, response_topic=None)
    assert broadcast["ok"] is True and "reply_to" not in broadcast
    assert own is not None and "jpeg_base64" in json.loads(own)
    assert conn.reply_details[-1]["topic"] == "edgeteach/dev/replies/student-4"


def test_the_mqtt5_response_topic_wins_over_reply_to() -> None:
    handler, conn, _, _ = snapshot_setup()
    snap(handler, conn, {"reply_to": "edgeteach/dev/replies/other"}, response_topic="edgeteach/dev/replies/me")
    assert [d["topic"] for d in conn.reply_details] == ["edgeteach/dev/replies/me"]


@pytest.mark.parametrize("reply_to", ["edgeteach/other/replies/x", "edgeteach/dev/replies/#", "edgeteach/dev/cam/state", "", 7, None])
def test_a_refused_reply_to_is_neither_executed_nor_answered(reply_to: Any, caplog: pytest.LogCaptureFixture) -> None:
    # planted bug: reply_to not checked -> the image went to any topic the requester named
    handler, conn, pipe, _ = snapshot_setup()
    with caplog.at_level(logging.WARNING, logger="edge.daemon.commands"):
        handler.handle(IncomingMessage(topic=TOPICS.command("snapshot"), payload=json.dumps({"reply_to": reply_to}).encode()))
    assert conn.published == [] and conn.replies == [] and pipe.snapshot_sides == []
    assert (handler.handled, handler.failed) == (0, 1)
    (record,) = caplog.records
    assert record.getMessage().startswith("ignoring command snapshot: reply_to: the reply topic")
    assert record.getMessage().endswith("; it was neither executed nor answered")
    handler.handle(IncomingMessage(topic=TOPICS.command("snapshot"), payload=json.dumps({"reply_to": reply_to}).encode()))
    assert (handler.handled, handler.failed) == (0, 2)  # each refusal counts


def test_a_snapshot_without_a_reply_topic_of_the_requester_is_refused() -> None:
    # planted bug: the PRIVATE_COMMANDS check removed -> a snapshot taken with nowhere private to send it
    handler, conn, pipe, _ = snapshot_setup()
    broadcast, own = snap(handler, conn, response_topic=None)
    assert own is None and pipe.snapshot_sides == []
    assert broadcast["ok"] is False and broadcast["error"] == (
        "snapshot sends its image to the requester only: send the request with an MQTT 5 response topic or a \"reply_to\", both "
        "under 'edgeteach/dev/replies/' (mqtt.reply_prefix)")


def test_snapshots_are_rate_limited_per_device_with_an_error_that_carries_no_image() -> None:
    # planted bugs: no rate limit -> the second snapshot is served; a refusal moving the next allowed time ->
    # the one at 1001.0 is refused
    handler, conn, pipe, clock = snapshot_setup(min_interval_s=1.0)
    assert snap(handler, conn)[0]["ok"] is True
    clock.now += 0.6
    broadcast, own = snap(handler, conn)
    expected = "too many snapshots: at most one every 1 s per device (mqtt.snapshot.min_interval_s); try again in 0.4 s"
    assert broadcast["ok"] is False and broadcast["error"] == expected
    assert own is not None and json.loads(own) == broadcast  # the requester learns why, and gets no image
    assert len(pipe.snapshot_sides) == 1  # no frame was even encoded
    clock.now += 0.4
    assert snap(handler, conn)[0]["ok"] is True
    clock.now += 0.999
    assert snap(handler, conn)[0]["ok"] is False
    assert (handler.handled, handler.failed) == (2, 2)


def test_the_rate_limit_is_shared_by_all_pipelines() -> None:
    conn, clock = FakeConnection(), Clock()
    handler = CommandHandler(conn, TOPICS, FakeTarget(FakePipeline("door"), FakePipeline("yard")), MAX_PAYLOAD,  # type: ignore[arg-type]
                             clock=clock)
    assert snap(handler, conn, {"pipeline": "door"})[0]["ok"] is True
    assert "too many snapshots" in snap(handler, conn, {"pipeline": "yard"})[0]["error"]


def test_the_rate_limit_and_max_side_default_to_the_config_models_defaults() -> None:
    handler, conn, pipe, clock = snapshot_setup()
    snap(handler, conn)
    clock.now += SnapshotSettings().min_interval_s - 0.01
    assert snap(handler, conn)[0]["ok"] is False
    assert pipe.snapshot_sides == [SnapshotSettings().max_side]


def test_snapshot_settings_come_from_the_connection_settings() -> None:
    # the daemon passes none: the mqtt section's snapshot settings apply
    conn, pipe, clock = FakeConnection(), FakePipeline("door"), Clock()
    conn.settings = SimpleNamespace(reply_prefix=None, snapshot=SnapshotSettings(max_side=96, min_interval_s=5))  # type: ignore[attr-defined]
    handler = CommandHandler(conn, TOPICS, FakeTarget(pipe), MAX_PAYLOAD, clock=clock)  # type: ignore[arg-type]
    snap(handler, conn)
    clock.now += 4.9
    assert "at most one every 5 s" in snap(handler, conn)[0]["error"]
    assert pipe.snapshot_sides == [96]


def test_snapshots_are_downscaled_to_max_side() -> None:
    # planted bug: snapshot_jpeg() called without max_side -> full-size frames
    handler, conn, pipe, _ = snapshot_setup(max_side=320)
    snap(handler, conn)
    assert pipe.snapshot_sides == [320]


def test_no_snapshot_while_the_pipeline_is_paused() -> None:
    # planted bug: the paused check removed -> the camera is read while its users think it is off
    handler, conn, pipe, clock = snapshot_setup()
    pipe.paused = True
    broadcast, own = snap(handler, conn)
    assert broadcast["error"] == "door is paused: no snapshots while paused; resume it first" and pipe.snapshot_sides == []
    assert own is not None and b"jpeg" not in own
    pipe.paused = False
    assert snap(handler, conn)[0]["ok"] is True  # the refusal did not use up the rate limit


def test_replies_are_low_priority_messages() -> None:
    # planted bug: replies published with normal priority -> a flood of requests could fill the whole queue
    handler, conn, _ = setup()
    send(handler, conn, "ping")
    assert conn.low_priority == [True] and conn.reply_details[-1]["low_priority"] is True


@pytest.mark.parametrize("raw", ["true", 1, 0, None, [True]])
def test_snapshot_raw_must_be_a_bool(raw: Any) -> None:
    # planted bug: the bool check removed -> "raw": "true" / 1 were accepted
    handler, conn, _ = setup()
    assert error_of(handler, conn, "snapshot", {"raw": raw}) == '"raw" must be true or false'


def test_snapshot_only_for_cameras_with_a_frame() -> None:
    handler, conn, _ = setup(FakePipeline("mic", kind="microphone"))
    assert error_of(handler, conn, "snapshot") == "mic is a microphone pipeline; snapshots exist for camera pipelines only"
    handler, conn, _ = setup(FakePipeline("door", jpeg=None))
    assert error_of(handler, conn, "snapshot") == "door has no frame yet (source starting or failing); try again in a moment"


def test_counters_count_handled_and_failed() -> None:
    handler, conn, _ = setup()
    send(handler, conn, "ping")
    send(handler, conn, "status")
    send(handler, conn, "ping", {"x": 1})
    assert (handler.handled, handler.failed) == (2, 1)
    send(handler, conn, "ping", {"x": 1})
    assert (handler.handled, handler.failed) == (2, 2)


# -- retained commands and reply topics --------------------------------------------------------------


def message(name: str, response_topic: str | None = None, retain: bool = False) -> IncomingMessage:
    return IncomingMessage(topic=TOPICS.command(name), payload=b"", retain=retain, response_topic=response_topic)


def test_a_retained_command_is_neither_executed_nor_answered(caplog: pytest.LogCaptureFixture) -> None:
    handler, conn, target = setup(pipe := FakePipeline("door"))
    with caplog.at_level(logging.WARNING, logger="edge.daemon.commands"):
        handler.handle(IncomingMessage(topic=TOPICS.command("pause"), payload=b"", retain=True,
                                       response_topic="edgeteach/dev/replies/1"))
    assert not pipe.paused and target.paused_calls == []
    assert conn.published == [] and conn.replies == []
    assert (handler.handled, handler.failed) == (0, 0)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.msg == ("ignoring retained command on %s: commands are never executed from retained messages; "
                          "clear it with an empty retained message")
    assert record.args == ("edgeteach/dev/cmd/pause",)


def test_a_request_without_response_topic_is_answered_on_the_reply_topic() -> None:
    handler, conn, _ = setup()
    msg = message("ping")
    handler.handle(msg)
    assert [p[0] for p in conn.published] == ["edgeteach/dev/cmd/ping/reply"]
    assert json.loads(conn.published[0][1])["ok"] is True and conn.replies == []
    assert (handler.handled, handler.failed) == (1, 0)


@pytest.mark.parametrize("response_topic", ["edgeteach/dev/replies/1", "edgeteach/dev/replies/a/b"])
def test_a_response_topic_under_the_default_reply_prefix_is_answered(response_topic: str) -> None:
    handler, conn, _ = setup()  # the fake connection has no settings: the default prefix applies
    handler.handle(msg := message("ping", response_topic))
    assert conn.replies == [(msg, conn.published[-1][1])]
    assert (handler.handled, handler.failed) == (1, 0)


@pytest.mark.parametrize(
    "response_topic, problem",
    [
        ("edgeteach/dev/cmd/reboot",
         "the reply topic 'edgeteach/dev/cmd/reboot' is not under 'edgeteach/dev/replies/' (mqtt.reply_prefix)"),
        ("edgeteach/dev/replies", "the reply topic 'edgeteach/dev/replies' is not under 'edgeteach/dev/replies/' (mqtt.reply_prefix)"),
        ("edgeteach/dev/replies/#", "the reply topic 'edgeteach/dev/replies/#' contains a wildcard (+, #), a NUL or starts with $"),
        ("", "the reply topic must be a non-empty string"),
    ],
)
def test_a_refused_response_topic_is_neither_executed_nor_answered(response_topic: str, problem: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    handler, conn, target = setup(pipe := FakePipeline("door"))
    with caplog.at_level(logging.WARNING, logger="edge.daemon.commands"):
        handler.handle(message("pause", response_topic))
    assert not pipe.paused and target.paused_calls == []
    assert conn.published == [] and conn.replies == []
    assert (handler.handled, handler.failed) == (0, 1)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.msg == "ignoring command %s: %s; it was neither executed nor answered"
    assert record.args == ("pause", problem)
    handler.handle(message("ping", response_topic))
    assert (handler.handled, handler.failed) == (0, 2)
    assert conn.published == []


def test_the_reply_prefix_comes_from_the_connection_settings() -> None:
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"))
    conn.settings = SimpleNamespace(reply_prefix="site/answers/")  # type: ignore[attr-defined]
    handler = CommandHandler(conn, TOPICS, target, MAX_PAYLOAD)  # type: ignore[arg-type]
    handler.handle(msg := message("ping", "site/answers/42"))
    assert conn.replies == [(msg, conn.published[-1][1])]
    assert (handler.handled, handler.failed) == (1, 0)
    handler.handle(message("ping", "edgeteach/dev/replies/1"))  # the default prefix no longer applies
    assert len(conn.replies) == 1 and len(conn.published) == 1
    assert (handler.handled, handler.failed) == (1, 1)


def test_settings_without_a_reply_prefix_mean_the_default() -> None:
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"))
    conn.settings = SimpleNamespace(reply_prefix=None)  # type: ignore[attr-defined]
    handler = CommandHandler(conn, TOPICS, target, MAX_PAYLOAD)  # type: ignore[arg-type]
    handler.handle(message("ping", "edgeteach/dev/replies/1"))
    handler.handle(message("ping", "site/answers/42"))
    assert (handler.handled, handler.failed) == (1, 1) and len(conn.replies) == 1


# -- mqtt.commands: which commands the device carries out (issue 12 item 2) -----------------------------


def test_a_command_left_out_of_the_allow_list_is_refused_and_not_run() -> None:
    conn, target = FakeConnection(), FakeTarget(pipe := FakePipeline("door"))
    handler = CommandHandler(conn, TOPICS, target, MAX_PAYLOAD, allowed={"ping", "status"})  # type: ignore[arg-type]
    assert send(handler, conn, "ping")["ok"] is True
    error = error_of(handler, conn, "pause", {"pipeline": "door"})
    assert error == ("pause is turned off on this device: the device's owner can allow it in the config "
                     "(mqtt.commands.allow; docs/security.md)")
    assert target.paused_calls == [] and pipe.paused is False
    # an unknown command still says so (not "turned off"), so a typo is told apart from a policy
    assert error_of(handler, conn, "pasue").startswith("unknown command 'pasue'")


def test_no_allowed_command_means_no_subscription(caplog: pytest.LogCaptureFixture) -> None:
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"))
    with caplog.at_level(logging.INFO, logger="edge.daemon.commands"):
        CommandHandler(conn, TOPICS, target, MAX_PAYLOAD, allowed=()).subscribe()  # type: ignore[arg-type]
    assert conn.subscriptions == []
    assert [r.getMessage() for r in caplog.records] == [f"MQTT commands are off (mqtt.commands); not subscribing to {TOPICS.commands}"]


def test_reply_to_answers_any_command_for_mqtt_3_clients() -> None:
    handler, conn, _ = setup()
    handler.handle(IncomingMessage(topic=TOPICS.command("ping"), payload=b'{"reply_to": "edgeteach/dev/replies/s4", "id": 4}'))
    (message, body), = conn.replies
    assert json.loads(body)["id"] == 4 and message.topic == TOPICS.command("ping")
    assert conn.reply_details[0]["topic"] == "edgeteach/dev/replies/s4"


def test_a_raw_snapshot_goes_to_reply_to_with_the_requests_correlation() -> None:
    handler, conn, _, _ = snapshot_setup()
    handler.handle(IncomingMessage(topic=TOPICS.command("snapshot"), payload=b'{"raw": true, "reply_to": "edgeteach/dev/replies/s4"}',
                                   correlation_data=b"corr"))
    (message, raw), = conn.replies
    assert raw.startswith(b"\xff\xd8") and message.topic == TOPICS.command("snapshot")
    assert conn.reply_details[0]["topic"] == "edgeteach/dev/replies/s4" and conn.reply_details[0]["correlation_data"] == b"corr"


def test_a_json_snapshot_reply_carries_the_requests_correlation() -> None:
    handler, conn, _, _ = snapshot_setup()
    snap(handler, conn, {"id": "c"})
    assert conn.reply_details[-1]["correlation_data"] == b"c" and conn.replies[-1][0].topic == TOPICS.command("snapshot")


@pytest.mark.parametrize(("mqtt", "expected"), [
    ({}, {"ping", "status", "pause", "resume", "set"}),  # an anonymous (likely open) broker: no reload, no snapshot
    ({"username": "pi-01", "password": "x"}, set(COMMAND_NAMES)),
    ({"tls": {"enabled": True, "certfile": "c.pem", "keyfile": "k.pem"}}, set(COMMAND_NAMES)),
    ({"tls": {"enabled": False, "certfile": "c.pem"}}, {"ping", "status", "pause", "resume", "set"}),
    ({"commands": {"allow": ["ping", "snapshot"]}}, {"ping", "snapshot"}),
    ({"username": "pi-01", "commands": {"allow": ["ping"]}}, {"ping"}),
    ({"username": "pi-01", "commands": {"enabled": False}}, set()),
])
def test_allowed_commands_default_depends_on_broker_credentials(mqtt: dict[str, Any], expected: set[str]) -> None:
    assert allowed_commands(MqttSettings(**mqtt)) == expected


def test_lone_surrogates_in_the_id_or_reply_to_neither_crash_nor_publish_elsewhere() -> None:
    # "\udcff" is valid JSON but no valid UTF-8 (found by bench/fuzz_network.py: UnicodeEncodeError, no reply at all)
    handler, conn, _ = setup()
    reply = send(handler, conn, "ping", raw=b'{"id": "a\\udcffb"}')
    assert reply["ok"] is True and reply["id"] == "a\udcffb"  # escaped in the reply's JSON, read back the same
    before = len(conn.published)
    handler.handle(IncomingMessage(topic=TOPICS.command("ping"), payload=b'{"reply_to": "edgeteach/dev/replies/\\udcff"}'))
    assert len(conn.published) == before and (handler.handled, handler.failed) == (1, 1)  # neither run nor answered


def test_to_json_writes_utf8_and_escapes_only_what_utf8_cannot_hold() -> None:
    assert to_json({"label": "café"}) == '{"label":"café"}'.encode()
    assert to_json({"id": "\udcff"}) == b'{"id":"\\udcff"}'


def test_every_refusal_before_a_command_runs_is_counted_each_time() -> None:
    """`failed` counts refusals one by one (a counter set to 1 would pass a test that sends only one)."""
    handler, conn, target = setup(FakePipeline("door"))
    for expected in (1, 2):  # a response topic outside the reply prefix: neither run nor answered
        handler.handle(message("ping", response_topic="elsewhere/replies"))
        assert handler.failed == expected
    for expected in (3, 4):  # the same through "reply_to"
        handler.handle(IncomingMessage(topic=TOPICS.command("ping"), payload=b'{"reply_to": "elsewhere/x"}'))
        assert handler.failed == expected
    for expected in (5, 6):  # a request the parser refuses: answered with the error
        assert error_of(handler, conn, "ping", raw=b"{not json")
        assert handler.failed == expected
    assert handler.handled == 0 and target.paused_calls == []
