"""Issue 12 item 1, safe on a shared classroom network: the real daemon against a real Mosquitto. `cmd/reload`
loads bundles only from inside `models_dir`: a valid bundle in a world-writable folder elsewhere (or reached
through a symlink from inside) is refused and the running model stays; a missing folder, a folder that is not
a bundle and a path outside give one and the same reply, so the reply tells nothing about the device's files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.daemon.commands import RELOAD_PATH_REFUSED
from tests.support.broker import Broker
from tests.support.daemon import DaemonCommands, DaemonProcess, camera_pipeline, write_color_video, write_config
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle

pytestmark = pytest.mark.timeout(180)

PREFIX = "edgeteach/testdev"
STATE = f"{PREFIX}/cam/state"


@pytest.fixture()
def listener(broker: Broker) -> Iterator[Listener]:
    listener = Listener(broker.host, broker.port)
    yield listener
    listener.close()


def test_reload_only_loads_bundles_inside_models_dir(tmp_path: Path, broker: Broker, listener: Listener) -> None:
    models = tmp_path / "models"
    colors = make_color_bundle(models / "colors")
    public = tmp_path / "public"  # e.g. a shared upload folder anyone on the device can write to
    outside = make_color_bundle(public / "red-green", labels=("red", "green"))
    os.chmod(public, 0o777)
    (models / "not-a-bundle").mkdir()
    (models / "shortcut").symlink_to(outside, target_is_directory=True)
    video = write_color_video(tmp_path / "colors.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)
    etc = tmp_path / "etc"
    etc.mkdir()
    config = write_config(etc / "edge.yaml", broker.host, broker.port,
                          [camera_pipeline("cam", colors, str(video), source={"uri": str(video), "loop": True})],
                          models_dir=str(models))
    daemon = DaemonProcess(config)
    commands = DaemonCommands(broker.host, broker.port, PREFIX)
    try:
        old_sha = listener.wait_topic(STATE, timeout=30)[-1].json()["model_sha256"]

        refused = {
            "outside": str(outside),
            "dot-dot": str(models / ".." / "public" / "red-green"),
            "symlink out": str(models / "shortcut"),
            "missing": str(models / "missing"),
            "not a bundle": str(models / "not-a-bundle"),
        }
        replies = {why: commands("reload", {"pipeline": "cam", "bundle": path}) for why, path in refused.items()}
        for why, reply in replies.items():
            assert reply["ok"] is False, (why, reply)
        assert {reply["error"] for reply in replies.values()} == {f"cam: {RELOAD_PATH_REFUSED}"}, replies
        log = daemon.log()
        assert "outside models_dir" in log and "no such folder" in log and "not a bundle" in log, log[-3000:]

        # the old model is still the one publishing
        n = len(listener.on(STATE))
        later = listener.wait_topic(STATE, count=n + 2, timeout=10)[-1].json()
        assert later["model_sha256"] == old_sha
        assert set(later["scores"]) == {"red", "green", "blue"}

        # the same bundle copied inside models_dir (here named relative to it) is loaded
        shutil.copytree(outside, models / "red-green")
        reply = commands("reload", {"pipeline": "cam", "bundle": "red-green"})
        assert reply["ok"], reply
        new = listener.wait_topic(STATE, timeout=10, where=lambda m: set(m.json()["scores"]) == {"red", "green"})[-1].json()
        assert new["model_sha256"] == reply["model_sha256"] != old_sha
    finally:
        commands.close()
        daemon.stop()
