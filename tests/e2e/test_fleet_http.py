"""The bundle over HTTP from the controller (`deploy --http`), with real daemons, a real Mosquitto and the
controller's real uvicorn server: the devices fetch every chunk over HTTP (range requests of up to SPAN_CHUNKS
chunks, each chunk checked against the signed manifest); with the HTTP server out of reach they fall back to
the MQTT chunks and still end healthy."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.mqtt import MqttSettings
from edge.fleet.chunks import pack_bundle
from edge.fleet.controller import FleetWatch, HttpOffer, deploy
from edge.fleet.http import SPAN_CHUNKS
from edge.fleet.signing import generate_keypair, load_private_key
from tests.support.broker import Broker, free_port
from tests.support.fleet import Fleet, device_config, image_folder, padded_bundle
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

NAMES = ["pi-0", "pi-1"]


@pytest.fixture()
def setup(tmp_path: Path, broker: Broker) -> Iterator[tuple[Fleet, FleetWatch, Path]]:
    private, public = generate_keypair(tmp_path / "keys")
    listener = Listener(broker.host, broker.port, ("edgeteach/+/model/state", "edgeteach/+/model/progress"))
    fleet = Fleet(listener)
    base, camera = make_color_bundle(tmp_path / "base"), image_folder(tmp_path / "camera")
    for name in NAMES:
        fleet.start(name, device_config(tmp_path / "devices", name, broker.host, broker.port, base, camera, public))
    watch = FleetWatch(MqttSettings(host=broker.host, port=broker.port)).start()
    wait_for(lambda: set(fleet.states()) == set(NAMES), 120, lambda: "the devices' states\n" + fleet.logs())
    yield fleet, watch, private
    watch.stop()
    fleet.stop_all()
    listener.close()


def test_the_devices_fetch_every_chunk_over_http(tmp_path: Path, setup: tuple[Fleet, FleetWatch, Path]) -> None:
    fleet, watch, private = setup
    packed = pack_bundle(padded_bundle(tmp_path / "big", 0.3), "big", "1")
    outcome = deploy(watch, packed, load_private_key(private), group="class-a", wave_timeout_s=120,
                     http=HttpOffer("127.0.0.1", free_port(), bind="127.0.0.1"))
    assert outcome.ok, (outcome, fleet.logs())
    assert outcome.http_requests == len(NAMES) * math.ceil(packed.count / SPAN_CHUNKS)  # each device, each span of chunks, once
    assert "the rest comes over MQTT" not in fleet.logs()


def test_without_the_http_server_the_devices_fall_back_to_mqtt(tmp_path: Path, setup: tuple[Fleet, FleetWatch, Path]) -> None:
    fleet, watch, private = setup
    packed = pack_bundle(padded_bundle(tmp_path / "big", 0.3), "big", "1")
    # the server listens on 127.0.0.1 but tells the devices 127.0.0.2: every connection is refused
    outcome = deploy(watch, packed, load_private_key(private), group="class-a", wave_timeout_s=120,
                     http=HttpOffer("127.0.0.2", free_port(), bind="127.0.0.1"))
    assert outcome.ok, (outcome, fleet.logs())
    assert outcome.http_requests == 0
    assert fleet.logs().count("the rest comes over MQTT") == len(NAMES)
