"""The dashboard's way into the command code (CommandHandler.execute, which MQTT's handle() also uses): the same
validation and the same error text as over MQTT, nothing published on the broker, and the page's password rather
than mqtt.commands.allow deciding who may use it."""

from __future__ import annotations

from typing import Any

from edge.daemon.commands import CommandHandler
from tests.edge.daemon.test_commands_unit import TOPICS, FakeConnection, FakePipeline, FakeTarget, send


def handler(allowed: frozenset[str] | None = None) -> tuple[CommandHandler, FakeConnection, FakeTarget]:
    conn, target = FakeConnection(), FakeTarget(FakePipeline("door"), FakePipeline("mic", kind="microphone"))
    return CommandHandler(conn, TOPICS, target, 4096, allowed=allowed), conn, target  # type: ignore[arg-type]


def page(h: CommandHandler, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    return h.execute(name, dict(args), private_ok=True, honour_allow_list=False)


def test_the_same_errors_as_over_mqtt() -> None:
    h, conn, _ = handler()
    for name, args in [("set", {"pipeline": "door"}), ("pause", {"pipeline": "nope"}), ("reload", {"pipeline": "door"}),
                       ("snapshot", {"pipeline": "mic"}), ("frobnicate", {})]:
        over_mqtt = send(h, conn, name, args)
        published = len(conn.published)
        from_page, private = page(h, name, args)
        assert from_page["ok"] is False and from_page["error"] == over_mqtt["error"], name
        assert private is None
        assert len(conn.published) == published  # the page's request is answered to the page, not on the broker


def test_pause_from_the_page_is_the_mqtt_pause() -> None:
    h, conn, target = handler()
    reply, _ = page(h, "pause", {"pipeline": "door"})
    assert reply == {"ok": True, "command": "pause", "pipelines": ["door"], "paused": True}
    assert target.pipelines()["door"].paused and target.paused_calls == [("door", True)]  # the daemon marks MQTT states
    assert h.handled == 1


def test_the_page_is_not_bound_by_the_mqtt_allow_list_but_mqtt_still_is() -> None:
    h, conn, target = handler(allowed=frozenset({"ping"}))
    reply, _ = page(h, "pause", {"pipeline": "door"})
    assert reply["ok"] is True
    over_mqtt, _ = h.execute("pause", {"pipeline": "door"}, private_ok=True)
    assert over_mqtt["ok"] is False and "turned off on this device" in over_mqtt["error"]


def test_a_snapshot_for_the_page_comes_back_as_bytes() -> None:
    h, conn, _ = handler()
    reply, private = page(h, "snapshot", {"pipeline": "door", "raw": True})
    assert reply["ok"] is True and private.raw == b"\xff\xd8jpeg\xff\xd9"
    assert "jpeg_base64" not in reply and reply["bytes"] == 8  # the image travels as the bytes, not inside the reply
    again, _ = page(h, "snapshot", {"pipeline": "door", "raw": True})
    assert again["ok"] is False and "too many snapshots" in again["error"]  # the device-wide rate limit holds for the page too
