"""Send to devices through the Studio's API, with a real Mosquitto and two real `edge run` daemons with the fleet
on: the device list, a deploy that reaches both (each reports activated, then healthy, with the project's bundle),
the progress kept on the server, refused inputs, and a rollback to the devices' previous model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import Broker
from tests.support.waiting import wait_for
from tests.trainer.studio.sendfleet import DEVICES, Classroom, classroom


@pytest.fixture()
def room(tmp_path: Path, broker: Broker) -> Iterator[Classroom]:
    yield from classroom(tmp_path, broker)


def ended(room: Classroom) -> dict[str, Any]:
    """The rollout once the server says it ended."""
    def done() -> dict[str, Any] | None:
        rollout = room.client.get("/api/fleet/rollout").json()["rollout"]
        return rollout if rollout and not rollout["running"] else None

    return wait_for(done, 180, lambda: f"the rollout ending: {room.client.get('/api/fleet/rollout').json()}\n{room.fleet.logs()}")


def test_send_reaches_the_devices_and_rollback_brings_back_their_model(room: Classroom) -> None:
    listed = room.client.get("/api/fleet/devices")
    assert listed.status == 200, listed.body
    rows = {d["id"]: d for d in listed.json()["devices"]}
    assert sorted(rows) == DEVICES and all(r["group"] == "class-a" and r["model"].startswith("base") for r in rows.values()), rows

    started = room.client.post("/api/projects/colours/send", {"devices": DEVICES, "wave": 50, "abort_above": "10%"})
    assert started.status == 202, started.body
    assert [d["id"] for d in started.json()["rollout"]["devices"]] == DEVICES
    # one rollout at a time
    again = room.client.post("/api/projects/colours/send", {"group": "class-a"})
    assert again.status == 409 and "still running" in again.json()["error"], again.body

    rollout = ended(room)
    assert rollout["outcome"]["ok"], (rollout, room.fleet.logs())
    assert rollout["outcome"]["waves_done"] == 2  # 50 % of two devices: one per wave
    assert {d["id"]: d["status"] for d in rollout["devices"]} == {name: "healthy" for name in DEVICES}
    job = rollout["job_id"]
    steps = room.fleet.progress(job)
    for name in DEVICES:
        assert {"accepted", "downloading", "verifying", "activated", "healthy"} <= {d["status"] for _, device, d in steps if device == name}
    states = room.fleet.states()
    assert all(states[name]["active"]["sha256"] == room.sha256 for name in DEVICES), states
    assert {d["model"].split()[-1] for d in room.client.get("/api/fleet/devices").json()["devices"]} == {room.sha256[:12]}

    back = room.client.post("/api/fleet/rollback", {"group": "class-a"})
    assert back.status == 202, back.body
    rollout = ended(room)
    assert rollout["kind"] == "rollback" and rollout["outcome"]["ok"], rollout
    states = room.fleet.states()
    assert all(s["active"]["version"] == "config" and s["previous"]["sha256"] == room.sha256 for s in states.values()), states


def test_bad_targets_are_refused_before_anything_is_sent(room: Classroom) -> None:
    cases = [
        ({"devices": ["pi-a/../#"]}, "device id"),
        ({"devices": ["PI-A"]}, "device id"),
        ({"devices": []}, "list of 1 to"),
        ({"devices": ["pi-zz"]}, "no device pi-zz"),
        ({"group": "class a"}, "group name"),
        ({"group": "class-z"}, "no device has reported group"),
        ({"group": "class-a", "devices": ["pi-a"]}, "not both"),
        ({}, "not both"),
        ({"group": "class-a", "wave": "150%"}, "wave"),
        ({"group": "class-a", "wave": "lots"}, "wave"),
        ({"group": "class-a", "abort_above": True}, "abort above"),
    ]
    for body, said in cases:
        reply = room.client.post("/api/projects/colours/send", body)
        assert reply.status == 400 and said in reply.json()["error"], (body, reply.status, reply.body)
    assert room.client.post("/api/projects/nothing/send", {"group": "class-a"}).status == 404
    assert room.client.post("/api/projects/colours/send", body=b"x" * 5000).status == 413
    assert room.client.get("/api/fleet/rollout").json()["rollout"] is None
    assert not room.fleet.progress()  # no device heard of any job
