"""Issue 16, what goes wrong during a rollout, with real daemons and a real Mosquitto: a bundle with a bad or an
untrusted signature is refused by every device and the deploy aborts at its threshold; a model that fails the
health gate is rolled back by the device itself; a download cut half-way resumes from the chunks on disk and a
restart keeps the active model; the broker restarts (forgetting every retained message) mid-rollout and the
rollout still ends."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from edge.config.mqtt import MqttSettings
from edge.fleet.chunks import pack_bundle
from edge.fleet.controller import FleetWatch, deploy, prefix_of, signed_deploy
from edge.fleet.protocol import chunk_topic, desired_topic, group_desired_topic, to_bytes
from edge.fleet.signing import generate_keypair, load_private_key
from tests.support.broker import Broker
from tests.support.fleet import Fleet, device_config, failing_bundle, image_folder, padded_bundle, trainer_fleet
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

TOPICS = ("edgeteach/+/status", "edgeteach/+/model/state", "edgeteach/+/model/progress", "edgeteach/+/cam/state")


@pytest.fixture()
def fleet(broker: Broker) -> Iterator[Fleet]:
    listener = Listener(broker.host, broker.port, TOPICS)
    fleet = Fleet(listener)
    yield fleet
    fleet.stop_all()
    listener.close()


@pytest.fixture()
def watch(broker: Broker) -> Iterator[FleetWatch]:
    watch = FleetWatch(MqttSettings(host=broker.host, port=broker.port, reconnect_min_delay=1, reconnect_max_delay=1)).start()
    yield watch
    watch.stop()


def _start(tmp_path: Path, broker: Broker, fleet: Fleet, names: list[str], public: Path, **kwargs: object) -> dict[str, Path]:
    base = make_color_bundle(tmp_path / "base")
    camera = image_folder(tmp_path / "camera")
    configs = {name: device_config(tmp_path / "devices", name, broker.host, broker.port, base, camera, public, **kwargs)  # type: ignore[arg-type]
               for name in names}
    for name, config in configs.items():
        fleet.start(name, config)
    wait_for(lambda: set(fleet.states()) >= set(names), 120, lambda: f"the devices' states\n{fleet.logs()}")
    return configs


def _ended(fleet: Fleet, device: str, job: str) -> dict[str, Any]:
    """The device's retained state once `job` ended there, else {}."""
    state = fleet.states().get(device) or {}
    return state if state.get("job_id") == job and state.get("status") in ("healthy", "failed", "rolled_back") else {}


def test_a_bad_signature_is_refused_by_every_device_and_the_deploy_aborts_at_the_threshold(
        tmp_path: Path, broker: Broker, fleet: Fleet, watch: FleetWatch) -> None:
    private, public = generate_keypair(tmp_path / "keys", "teacher")
    intruder, _ = generate_keypair(tmp_path / "keys", "intruder")
    names = ["pi-0", "pi-1", "pi-2", "pi-3"]
    _start(tmp_path, broker, fleet, names, public)
    new = make_color_bundle(tmp_path / "new", labels=("red", "green"))

    # signed with a key no device trusts: wave 1 (one device) fails, 100% > 10%, no wave 2
    done = trainer_fleet(["deploy", str(new), "--group", "class-a", "--wave", "25%", "--abort-above", "10%", "--key", str(intruder),
                          "--wave-timeout", "120", "--host", broker.host, "--port", str(broker.port)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "aborted after wave 1" in done.stdout and "0 of 1 device(s) healthy" in done.stdout, done.stdout
    job = fleet.states()["pi-0"]["job_id"]
    refused = [(device, data) for _, device, data in fleet.progress(job) if data["status"] == "failed"]
    assert [device for device, _ in refused] == ["pi-0"] and "not in fleet.public_keys" in refused[0][1]["reason"]
    assert {device for _, device, _ in fleet.progress(job)} == {"pi-0"}  # the other waves never got it

    # the teacher's real signature on another manifest (changed after signing), on the group's topic: all refuse
    packed = pack_bundle(new)
    good = signed_deploy(packed, load_private_key(private), "tampered-1")
    other = pack_bundle(make_color_bundle(tmp_path / "evil", labels=("red", "blue")))
    forged = good.model_copy(update={"manifest": other.manifest})
    watch.publish_bundle(other)
    watch.retain(group_desired_topic("class-a"), to_bytes(forged))
    for name in names:
        state = wait_for(partial(_ended, fleet, name, "tampered-1"), 60, f"{name} refusing the tampered manifest")
        assert state["status"] == "failed" and "bad signature" in str(state["reason"]), state
        assert state["active"]["version"] == "config"
    assert not [p for p in (tmp_path / "devices").glob(f"*/models/{other.manifest.sha256}")]  # nothing was downloaded


def test_a_model_failing_the_health_gate_is_rolled_back_by_the_device(tmp_path: Path, broker: Broker, fleet: Fleet,
                                                                       watch: FleetWatch) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    _start(tmp_path, broker, fleet, ["pi-0"], public)
    bad = pack_bundle(failing_bundle(tmp_path / "broken"), "broken", "1")
    outcome = deploy(watch, bad, load_private_key(private), devices=["pi-0"], wave_timeout_s=120)
    assert not outcome.ok and outcome.results["pi-0"].startswith("rolled_back: health gate failed: "), outcome
    assert "inference error" in outcome.results["pi-0"]
    state = fleet.states()["pi-0"]
    assert state["active"]["version"] == "config" and state["active"]["sha256"] is None, state
    def statuses() -> list[str]:
        return [d["status"] for _, _, d in fleet.progress(outcome.job_id)]

    wait_for(lambda: statuses()[-2:] == ["activated", "rolled_back"], 10, lambda: f"activated, then rolled_back: {statuses()}")
    assert statuses()[:2] == ["accepted", "downloading"], statuses()
    # the old model classifies again: fresh decisions from the config's bundle
    mark = len(fleet.listener.messages)
    fleet.listener.wait_for(lambda m: m.topic == "edgeteach/pi-0/cam/state" and m.json()["model"].endswith("/models/base")
                            and fleet.listener.messages.index(m) >= mark, 30, what="pi-0 classifying with its old model")


def test_a_cut_download_resumes_and_a_restart_keeps_the_active_model(tmp_path: Path, broker: Broker, fleet: Fleet,
                                                                      watch: FleetWatch) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    configs = _start(tmp_path, broker, fleet, ["pi-0"], public)
    packed = pack_bundle(padded_bundle(tmp_path / "big", 0.3), "big", "1")
    assert packed.count >= 6
    half = packed.count // 2
    for index in range(half):  # only the first half is on the broker: the download stops there
        watch.retain(chunk_topic(packed.manifest.sha256, index), packed.chunk(index))
    desired = signed_deploy(packed, load_private_key(private), "cut-1")
    watch.retain(desired_topic(prefix_of("pi-0")), to_bytes(desired))
    wait_for(lambda: any(d["status"] == "downloading" and (d["percent"] or 0) >= 100 * half // packed.count
                         for _, _, d in fleet.progress("cut-1")), 60, lambda: "half the chunks\n" + fleet.logs())
    fleet.devices["pi-0"].stop()  # cut: the device goes off half-way

    for index in range(half, packed.count):
        watch.retain(chunk_topic(packed.manifest.sha256, index), packed.chunk(index))
    watch.flush()
    mark = len(fleet.listener.messages)
    fleet.start("pi-0", configs["pi-0"])
    state = wait_for(lambda: _ended(fleet, "pi-0", "cut-1"), 90, lambda: "pi-0 finishing\n" + fleet.logs())
    assert state["status"] == "healthy", state
    resumed = [d for i, _, d in fleet.progress("cut-1") if i >= mark and d["status"] == "downloading"]
    assert resumed[0]["resumed_chunks"] == half, resumed  # it fetched only the missing chunks

    # a restart keeps the active model: the daemon runs the fleet's bundle again, not the config's
    fleet.devices["pi-0"].stop()
    mark = len(fleet.listener.messages)
    fleet.start("pi-0", configs["pi-0"])
    seen = fleet.listener.wait_for(lambda m: m.topic == "edgeteach/pi-0/cam/state" and fleet.listener.messages.index(m) >= mark
                                   and packed.manifest.sha256 in m.json()["model"], 90, what="pi-0 classifying with the fleet model")
    assert seen
    assert fleet.states()["pi-0"]["active"]["sha256"] == packed.manifest.sha256


def test_the_rollout_ends_when_the_broker_restarts_in_the_middle(tmp_path: Path, broker: Broker, fleet: Fleet,
                                                                  watch: FleetWatch) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    names = ["pi-0", "pi-1"]
    _start(tmp_path, broker, fleet, names, public)
    packed = pack_bundle(padded_bundle(tmp_path / "big", 0.2), "big", "1")
    restarts: list[str] = []

    def restart_broker_at_wave_1(message: str, _views: object) -> None:
        if message.startswith("wave 1") and not restarts:  # the chunks are on the broker; the desired states not yet
            broker.stop()
            broker.start()  # no persistence: every retained chunk and state is gone
            restarts.append(message)

    outcome = deploy(watch, packed, load_private_key(private), group="class-a", wave_timeout_s=180, report=restart_broker_at_wave_1)
    assert restarts and outcome.ok, (outcome, fleet.logs(), (broker.workdir / "mosquitto.log").read_text()[-3000:])
    assert watch.connection.counters.connects >= 2
    for name in names:
        assert _ended(fleet, name, outcome.job_id).get("status") == "healthy", fleet.logs()


def test_a_damaged_chunk_on_the_broker_fails_the_job_without_a_busy_loop(tmp_path: Path, broker: Broker, fleet: Fleet,
                                                                         watch: FleetWatch) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    _start(tmp_path, broker, fleet, ["pi-0"], public)
    packed = pack_bundle(padded_bundle(tmp_path / "big", 0.2), "big", "1")
    for index in range(packed.count):
        chunk = packed.chunk(index)
        watch.retain(chunk_topic(packed.manifest.sha256, index), b"\0" + chunk[1:] if index == 1 else chunk)
    watch.retain(desired_topic(prefix_of("pi-0")), to_bytes(signed_deploy(packed, load_private_key(private), "damaged-1")))
    state = wait_for(partial(_ended, fleet, "pi-0", "damaged-1"), 90, lambda: "pi-0 giving up\n" + fleet.logs())
    assert state["status"] == "failed" and "chunk 1 on the broker does not match the signed manifest" in state["reason"], state
    assert state["active"]["version"] == "config"
    # the bad copy was fetched twice, not in a loop
    assert fleet.devices["pi-0"].log().count("chunk 1 does not match the signed manifest (damaged or forged); it is fetched again") == 1
