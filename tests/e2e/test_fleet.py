"""Issue 16, the rollout itself: twenty real `edge run` daemons (tiny colour bundles, image-folder cameras at
2 fps, one ONNX Runtime thread each) on one private Mosquitto, and `trainer fleet` as the teacher runs it. A group
deploy in two waves reaches every online device, each reports `activated` then `healthy`, the second wave starts
only once the first has ended, a device that was off during the deploy converges when it comes back, and
`trainer fleet ls` shows the new SHA-256 on every device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.fleet.chunks import pack_bundle
from edge.fleet.signing import generate_keypair
from tests.support.broker import Broker
from tests.support.fleet import Fleet, device_config, image_folder, trainer_fleet
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

DEVICES = [f"pi-{i:02d}" for i in range(20)]
TOPICS = ("edgeteach/+/status", "edgeteach/+/model/state", "edgeteach/+/model/progress", "edgeteach/+/cam/state")


@pytest.fixture()
def fleet(broker: Broker) -> Iterator[Fleet]:
    listener = Listener(broker.host, broker.port, TOPICS)
    fleet = Fleet(listener)
    yield fleet
    fleet.stop_all()
    listener.close()


def test_a_group_deploy_in_two_waves_reaches_twenty_devices(tmp_path: Path, broker: Broker, fleet: Fleet) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    base = make_color_bundle(tmp_path / "base")
    new = make_color_bundle(tmp_path / "colours", labels=("red", "green"))
    sha = pack_bundle(new).manifest.sha256
    camera = image_folder(tmp_path / "camera")
    configs = {name: device_config(tmp_path / "devices", name, broker.host, broker.port, base, camera, public) for name in DEVICES}
    for name, config in configs.items():
        fleet.start(name, config)
    wait_for(lambda: len([s for s in fleet.states().values() if s["group"] == "class-a"]) == 20, 300,
             lambda: f"the 20 devices' retained states (got {sorted(fleet.states())})\n{fleet.logs()}")

    # pi-19 is switched off before the deploy (its retained state still names the group)
    fleet.devices["pi-19"].stop()
    wait_for(lambda: fleet.status().get("pi-19") == "offline", 30, "pi-19 offline")

    done = trainer_fleet(["deploy", str(new), "--group", "class-a", "--wave", "50%", "--abort-above", "10%", "--key", str(private),
                          "--name", "colours", "--version", "2", "--wave-timeout", "300",
                          "--host", broker.host, "--port", str(broker.port)])
    assert done.returncode == 0, done.stdout + done.stderr + fleet.logs()
    assert "19 of 19 device(s) healthy" in done.stdout and "offline now, will update when back: pi-19" in done.stdout, done.stdout
    job = fleet.states()["pi-00"]["job_id"]

    # every online device reported each step, activated and healthy
    progress = fleet.progress(job)
    online = DEVICES[:19]
    for step in ("accepted", "downloading", "verifying", "activated", "healthy"):
        assert sorted({device for _, device, data in progress if data["status"] == step}) == online, step
    # two waves: the second (pi-10 ... pi-18) was sent only once the first (pi-00 ... pi-09) had ended
    first_done = max(i for i, device, data in progress if data["status"] == "healthy" and device in DEVICES[:10])
    second_start = min(i for i, device, data in progress if data["status"] == "accepted" and device in DEVICES[10:19])
    assert first_done < second_start

    # pi-19 comes back and converges on the group's retained desired state
    fleet.start("pi-19", configs["pi-19"])
    wait_for(lambda: (fleet.states().get("pi-19") or {}).get("status") == "healthy"
             and fleet.states()["pi-19"]["active"]["sha256"] == sha, 180, lambda: "pi-19 converging\n" + fleet.devices["pi-19"].log())

    listed = trainer_fleet(["ls", "--wait", "3", "--host", broker.host, "--port", str(broker.port)], timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert sorted(rows) == DEVICES, listed.stdout
    for line in rows.values():
        assert f"colours 2 {sha[:12]}" in line and "healthy" in line, line
    assert all(state["active"]["sha256"] == sha for state in fleet.states().values())

    # and back: `trainer fleet rollback` returns every device to the model it ran before (the config's), from its disk
    back = trainer_fleet(["rollback", "--group", "class-a", "--key", str(private), "--wave-timeout", "120",
                          "--host", broker.host, "--port", str(broker.port)])
    assert back.returncode == 0, back.stdout + back.stderr + fleet.logs()
    assert "20 of 20 device(s) healthy" in back.stdout, back.stdout
    states = fleet.states()
    assert all(s["active"]["version"] == "config" and s["previous"]["sha256"] == sha for s in states.values()), states
    assert not [d for _, d, data in fleet.progress(states["pi-00"]["job_id"]) if data["status"] == "downloading"]
    mark = len(fleet.listener.messages)

    def classifying_with_the_config_model() -> set[str]:
        return {m.topic.split("/")[1] for m in fleet.listener.messages[mark:]
                if m.topic.endswith("/cam/state") and m.json()["model"].endswith("/models/base")}

    wait_for(lambda: classifying_with_the_config_model() == set(DEVICES), 60,
             lambda: f"every device classifying with its config model again: {sorted(classifying_with_the_config_model())}")
