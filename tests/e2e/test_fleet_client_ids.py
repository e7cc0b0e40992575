"""Classroom mode (issue 16): `edge doctor`'s client-id row against real daemons and a real Mosquitto. Two devices
cloned from one SD card (same device_id, so the same client id) knock each other off the broker: reported. One
device alone: fine. No device running: nothing to say."""

from __future__ import annotations

from pathlib import Path

from edge.config import load_config
from edge.doctor.client_id import check_client_id
from tests.support.broker import Broker
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mqtt_listener import retained
from tests.support.waiting import wait_for


def _device(tmp_path: Path, broker: Broker, folder: str) -> Path:
    (tmp_path / folder).mkdir()
    return write_config(tmp_path / folder / "edge.yaml", broker.host, broker.port, [], device_id="pi-07",
                        mqtt={"discovery": {"enabled": False}, "stats_interval": 60})  # no stats in the window: status only


def test_two_devices_with_one_client_id_are_reported_and_one_alone_is_fine(tmp_path: Path, broker: Broker) -> None:
    first_config = _device(tmp_path, broker, "first")
    config = load_config(first_config)
    assert check_client_id(config, 5).status == "skip"

    first = DaemonProcess(first_config)
    second: DaemonProcess | None = None
    try:
        def online() -> bool:
            seen = retained(broker.host, broker.port, "edgeteach/pi-07/status")
            return seen is not None and seen.payload == b"online"

        wait_for(online, 60, lambda: "pi-07 online\n" + first.log())
        alone = check_client_id(config, 5)
        assert alone.status == "ok" and "edgeteach-pi-07" in alone.detail, alone

        clone = second = DaemonProcess(_device(tmp_path, broker, "second"))  # the cloned card
        wait_for(lambda: "MQTT connected" in clone.log(), 60, lambda: "the clone connecting\n" + clone.log())
        clash = check_client_id(config, 5)
        assert clash.status == "warn" and "edgeteach-pi-07" in clash.detail and "hostnamectl" in clash.fix, clash
    finally:
        first.stop()
        if second is not None:
            second.stop()
