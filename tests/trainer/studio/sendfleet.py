"""Send tests' setting: a real Mosquitto, two real `edge run` daemons with the fleet on (tests/support/fleet.py, as
tests/e2e/test_fleet*.py), and a real Studio with fleet settings whose project holds a small trained bundle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.fleet.chunks import pack_bundle
from edge.fleet.signing import generate_keypair
from tests.support.broker import Broker
from tests.support.fleet import Fleet, device_config, image_folder
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for
from tests.trainer.studio.client import Client
from trainer.studio.app import create_app
from trainer.studio.limits import StudioLimits
from trainer.studio.send import Sender, load_settings
from trainer.studio.server import StudioServer

DEVICES = ["pi-a", "pi-b"]
TOPICS = ("edgeteach/+/status", "edgeteach/+/model/state", "edgeteach/+/model/progress")


@dataclass
class Classroom:
    fleet: Fleet
    sender: Sender
    client: Client
    server: StudioServer
    sha256: str  # the project's bundle as the devices will name it


def trained_project(client: Client, root: Path, name: str = "colours") -> Path:
    """A project made through the API whose model folder holds a tiny real bundle (and the report the Export tab reads)."""
    assert client.post("/api/projects", {"name": name, "task": "image"}).status == 201
    model = make_color_bundle(root / name / ".studio" / "model", labels=("red", "green"))
    report = {"labels": ["red", "green"], "metrics": {"fp32": {"accuracy": 1.0, "n": 2}}, "data": {"counts": {"red": 1, "green": 1}},
              "settings": {"epochs": 1}, "history": []}
    (model / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return model


def classroom(tmp: Path, broker: Broker) -> Iterator[Classroom]:
    private, public = generate_keypair(tmp / "keys")
    listener = Listener(broker.host, broker.port, TOPICS)
    fleet = Fleet(listener)
    base, camera = make_color_bundle(tmp / "base"), image_folder(tmp / "camera")
    for name in DEVICES:
        fleet.start(name, device_config(tmp / "devices", name, broker.host, broker.port, base, camera, public))
    sender = Sender(load_settings(broker.host, broker.port, None, None, private))
    limits = StudioLimits()
    server = StudioServer(create_app(tmp / "projects", None, limits, cache_dir=tmp / "cache", sender=sender), "127.0.0.1", 0, limits)
    server.start()
    client = Client(server.port)
    try:
        model = trained_project(client, tmp / "projects")
        wait_for(lambda: set(fleet.states()) == set(DEVICES), 120, lambda: "the devices' states\n" + fleet.logs())
        yield Classroom(fleet, sender, client, server, pack_bundle(model, "colours-model", "x").manifest.sha256)
    finally:
        server.stop()
        sender.stop()
        fleet.stop_all()
        listener.close()

