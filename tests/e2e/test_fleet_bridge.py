"""docs/fleet.md's school setup, proven with two real Mosquittos: the room broker runs the bridge block read out
of the page itself (only its address pointed at the test's school broker), the devices are on the room broker,
the controller on the school's. A group deploy reaches them, and the school broker sees their states."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.mqtt import MqttSettings
from edge.fleet.chunks import pack_bundle
from edge.fleet.controller import FleetWatch, deploy, wait_for_devices
from edge.fleet.signing import generate_keypair, load_private_key
from tests.support.broker import Broker, mosquitto_with
from tests.support.fleet import Fleet, device_config, image_folder
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.paths import REPO
from tests.support.waiting import wait_for

FLEET_DOC = REPO / "docs" / "fleet.md"


def documented_bridge(school_port: int) -> str:
    """The block of docs/fleet.md that starts with `# /etc/mosquitto/conf.d/bridge.conf`, its address pointed at the test's
    school broker."""
    match = re.search(r"```text\n# /etc/mosquitto/conf\.d/bridge\.conf[^\n]*\n(.*?)```", FLEET_DOC.read_text(), re.S)
    assert match, "docs/fleet.md lost its bridge block"
    block = match.group(1)
    assert "address school-broker.local:1883" in block and "topic edgeteach/# both 1" in block, block
    return block.replace("address school-broker.local:1883", f"address 127.0.0.1:{school_port}")


@pytest.fixture()
def room(tmp_path: Path, broker: Broker) -> Iterator[int]:
    """The room's broker, bridged to `broker` (the school's) by the documented block."""
    workdir = tmp_path / "room"
    workdir.mkdir()
    with mosquitto_with("allow_anonymous true\n" + documented_bridge(broker.port), workdir) as port:
        yield port


def test_a_deploy_from_the_school_broker_reaches_devices_on_a_bridged_room_broker(tmp_path: Path, broker: Broker, room: int) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    base = make_color_bundle(tmp_path / "base")
    camera = image_folder(tmp_path / "camera")
    school = Listener(broker.host, broker.port, ("edgeteach/+/model/state", "edgeteach/+/model/progress", "edgeteach/+/status"))
    fleet = Fleet(school)  # what the school broker sees, through the bridge
    watch = FleetWatch(MqttSettings(host=broker.host, port=broker.port)).start()
    try:
        for name in ("pi-0", "pi-1"):
            fleet.start(name, device_config(tmp_path / "devices", name, "127.0.0.1", room, base, camera, public))
        wait_for(lambda: set(fleet.states()) == {"pi-0", "pi-1"}, 120, lambda: "the devices' states at the school broker\n" + fleet.logs())
        assert set(wait_for_devices(watch, 0.5)) == {"pi-0", "pi-1"}

        packed = pack_bundle(make_color_bundle(tmp_path / "new", labels=("red", "green")), "new", "2")
        outcome = deploy(watch, packed, load_private_key(private), group="class-a", wave=0.5, wave_timeout_s=120)
        assert outcome.ok and outcome.waves_done == 2, (outcome, fleet.logs())
        for name in ("pi-0", "pi-1"):
            assert fleet.states()[name]["active"]["sha256"] == packed.manifest.sha256
            assert watch.snapshot()[name].state.active.sha256 == packed.manifest.sha256  # type: ignore[union-attr]
    finally:
        watch.stop()
        fleet.stop_all()
        school.close()
    assert (tmp_path / "room" / "mosquitto.log").read_text().count("Connecting bridge") >= 1
