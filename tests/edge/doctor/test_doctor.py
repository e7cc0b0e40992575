"""`edge doctor`: each broken dependency shows up as a FAIL row with its fix, and a healthy setup passes.

Real parts throughout: a real Mosquitto (the `broker` fixture) and a closed port, real ONNX bundles loaded
and run by ONNX Runtime, real OpenCV opening a real video clip, real PortAudio device queries."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile
import yaml

from edge.cli import main as edge_main
from edge.doctor import CheckResult, DoctorOptions, decode_throttled, exit_code, format_table, run_checks
from tests.support.broker import Broker, free_port
from tests.support.onnx_models import make_audio_bundle, make_bundle


def write_config(path: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {"device_id": "doctor-test", "health": {"enabled": False}}
    data.update(sections)
    path.write_text(yaml.safe_dump(data))
    return path


def mqtt_at(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "discovery": {"enabled": False}}


def doctor(config: Path) -> list[CheckResult]:
    return run_checks(DoctorOptions(config_path=config, config_explicit=True, mqtt_timeout_s=3.0))


def row(rows: list[CheckResult], name: str) -> CheckResult:
    matches = [r for r in rows if r.name == name]
    assert matches, f"no check named {name!r} in {[r.name for r in rows]}"
    return matches[0]


def test_missing_broker_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = free_port()  # nothing listens here
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(closed))

    code = edge_main(["doctor", "-c", str(config), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    mqtt = next(c for c in report["checks"] if c["name"] == "mqtt")
    assert mqtt["status"] == "fail"
    assert f"nothing listens on 127.0.0.1:{closed}" in mqtt["detail"]
    assert "mosquitto" in mqtt["fix"] and "systemctl" in mqtt["fix"]


def test_healthy_config_against_a_real_broker_passes(broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path / "bundles" / "desk", ["cat", "dog"])
    sounds = make_audio_bundle(tmp_path / "bundles" / "sounds")
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), np.full((48, 64, 3), 90, np.uint8))
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, np.zeros(16000, dtype=np.float32), 16000)
    config = write_config(
        tmp_path / "edge.yaml",
        mqtt=mqtt_at(broker.port),
        pipelines=[
            {"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": str(frames)}},
            {"name": "room", "kind": "microphone", "bundle": str(sounds), "source": {"file": str(clip)}},
        ],
    )

    code = edge_main(["doctor", "-c", str(config)])

    out = capsys.readouterr().out
    rows = doctor(config)
    assert row(rows, "mqtt").status == "ok", out
    assert f"connected to 127.0.0.1:{broker.port}" in row(rows, "mqtt").detail
    assert row(rows, "bundle desk").status == "ok" and "2 labels" in row(rows, "bundle desk").detail
    assert row(rows, "camera desk").status == "ok" and "64x48 frame" in row(rows, "camera desk").detail
    assert row(rows, "microphone room").status == "ok"
    assert code == 0, out
    assert "FAIL" not in out


def test_a_broker_open_to_anyone_is_a_warning(broker: Broker, tmp_path: Path) -> None:
    """The tests' broker lets anonymous clients in, as an unconfigured Mosquitto on a network would: anyone
    could command the device (issue 12 item 6). The installer's closed broker: tests/e2e/test_deploy_broker.py."""
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(broker.port))
    rows = doctor(config)
    access = row(rows, "mqtt access")
    assert row(rows, "mqtt").status == "ok"
    assert access.status == "warn" and "without an account" in access.detail
    assert "deploy/install.sh" in access.fix and "allow_anonymous false" in access.fix


def test_broker_outage_turns_the_check_red(broker: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(broker.port))
    assert row(doctor(config), "mqtt").status == "ok"
    broker.stop()
    mqtt = row(doctor(config), "mqtt")
    assert mqtt.status == "fail" and "connection refused" in mqtt.detail


def test_wrong_credentials_are_reported_as_such(tmp_path: Path) -> None:
    # Started as root, mosquitto drops to its own user before reading the password file: the file must
    # sit outside pytest's private (0700) tmp folders.
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        passwd = Path(shared) / "passwd"
        passwd.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), "edge", "right-password"], check=True, capture_output=True)
        passwd.chmod(0o644)
        _check_wrong_password(tmp_path, passwd)


def _check_wrong_password(tmp_path: Path, passwd: Path) -> None:
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=f"password_file {passwd}\n")
    # allow_anonymous stays true (the fixture's config); a user with a wrong password is still refused.
    broker.start()
    try:
        config = write_config(tmp_path / "edge.yaml", mqtt={**mqtt_at(broker.port), "username": "edge", "password": "wrong"})
        mqtt = row(doctor(config), "mqtt")
        assert mqtt.status == "fail", mqtt
        assert "refused" in mqtt.detail
        assert "mqtt.username" in mqtt.fix and "mosquitto_passwd" in mqtt.fix
    finally:
        broker.stop()


def test_corrupt_bundle_fails_with_the_fix(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "desk", ["cat", "dog"])
    with open(bundle / "model.onnx", "r+b") as handle:  # a damaged copy: bytes flipped in the middle
        handle.seek(40)
        handle.write(b"\xff" * 16)
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": str(tmp_path)}}])

    check = row(doctor(config), "bundle desk")

    assert check.status == "fail"
    assert "SHA-256" in check.detail
    assert "copy the bundle again" in check.fix


def test_missing_bundle_says_where_to_copy_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": "models/desk", "source": {"uri": str(tmp_path)}}])
    check = row(doctor(config), "bundle desk")
    assert check.status == "fail"
    assert str(tmp_path / "models" / "desk") in check.detail  # resolved next to the config, as the daemon does
    assert "scp -r" in check.fix


def test_audio_bundle_on_a_camera_pipeline_is_refused(tmp_path: Path) -> None:
    bundle = make_audio_bundle(tmp_path / "sounds")
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": str(tmp_path)}}])
    check = row(doctor(config), "bundle desk")
    assert check.status == "fail" and "audio bundle" in check.detail and "image bundle" in check.fix


def test_missing_camera_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path / "desk", ["cat", "dog"])
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": "/dev/video99"}}])

    code = edge_main(["doctor", "-c", str(config)])

    out = capsys.readouterr().out
    assert code == 1
    camera = row(doctor(config), "camera desk")
    assert camera.status == "fail"
    assert "/dev/video99 does not exist" in camera.detail
    assert "v4l2-ctl --list-devices" in camera.fix and "pipelines[0].source.uri" in camera.fix
    assert "/dev/video99 does not exist" in out and "fix: plug the camera in" in out


def test_camera_source_from_a_real_clip_is_opened(shared_dir: Path, tmp_path: Path) -> None:
    clips = sorted((shared_dir / "video").glob("*.mp4"))
    if not clips:
        pytest.skip(f"no .mp4 clip in {shared_dir / 'video'}")
    bundle = make_bundle(tmp_path / "desk", ["cat", "dog"])
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": str(clips[0])}}])
    camera = row(doctor(config), "camera desk")
    assert camera.status == "ok", camera
    assert "read a " in camera.detail and "frame" in camera.detail


def test_missing_microphone_fails_with_the_fix(tmp_path: Path) -> None:
    bundle = make_audio_bundle(tmp_path / "sounds")
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "room", "kind": "microphone", "bundle": str(bundle),
                                      "source": {"device": "NoSuchMicrophone"}}])
    rows = doctor(config)
    mic = row(rows, "microphone room")
    assert mic.status == "fail"
    assert "NoSuchMicrophone" in mic.detail
    assert "arecord -l" in mic.fix and "pipelines[0].source.device" in mic.fix
    assert row(rows, "bundle room").status == "ok"


def test_sound_file_source_is_read(tmp_path: Path) -> None:
    bundle = make_audio_bundle(tmp_path / "sounds")
    clip = tmp_path / "room.wav"
    soundfile.write(clip, np.zeros(8000, dtype=np.float32), 16000)
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "room", "kind": "microphone", "bundle": str(bundle), "source": {"file": str(clip)}}])
    mic = row(doctor(config), "microphone room")
    assert mic.status == "ok" and "16000 Hz" in mic.detail


def test_invalid_config_fails_with_the_key_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("mqtt:\n  prot: 1883\n")
    check = row(doctor(config), "config")
    assert check.status == "fail" and "did you mean 'port'" in check.detail
    assert f"edge config check {config}" in check.fix


def test_llm_model_that_is_not_gguf_fails(tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (scripts/setup.sh llm)")
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>404 not found</html>")  # what a failed download leaves behind
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()), llm={"enabled": True, "model": str(fake)})
    rows = doctor(config)
    assert row(rows, "llm").status in ("ok", "warn")
    model = row(rows, "llm model")
    assert model.status == "fail" and "not a GGUF" in model.detail and "edge llm pull" in model.fix


def test_warnings_do_not_fail_but_failures_do() -> None:
    warn = CheckResult("temperature", "warn", "82.0 °C", "add a heatsink")
    fail = CheckResult("mqtt", "fail", "nothing listens", "start it")
    assert exit_code([warn]) == 0
    assert exit_code([warn, fail]) == 1
    table = format_table([warn, fail])
    assert "fix: add a heatsink" in table and "fix: start it" in table


def test_pi_throttling_bits_are_decoded() -> None:
    # `vcgencmd get_throttled` on a Pi with a weak supply that has also been hot: throttled=0x50005
    assert decode_throttled(0x50005) == ["under-voltage now", "throttled now", "under-voltage has occurred", "throttling has occurred"]
    assert decode_throttled(0) == []


class _StandInPicamera2:
    """Mimics picamera2.Picamera2.global_camera_info(): the list of cameras libcamera found."""

    cameras: list[dict[str, Any]] = []

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return list(_StandInPicamera2.cameras)


@pytest.mark.parametrize("cameras, uri, status, text", [
    ([], "picamera2://0", "fail", "ribbon cable"),
    ([{"Model": "imx708", "Num": 0}], "picamera2://1", "fail", "picamera2://0"),
    ([{"Model": "imx708", "Num": 0}, {"Model": "imx219", "Num": 1}], "picamera2://1", "ok", "imx219"),
])
def test_pi_camera_check_picamera2_standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           cameras: list[dict[str, Any]], uri: str, status: str, text: str) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = _StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(_StandInPicamera2, "cameras", cameras)
    bundle = make_bundle(tmp_path / "desk", ["cat", "dog"])
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": uri}}])
    rows = doctor(config)
    camera = row(rows, "camera desk")
    assert camera.status == status, camera
    assert text in (camera.fix if status == "fail" else camera.detail)
    assert row(rows, "picamera2").status == ("ok" if cameras else "fail")


def test_no_open_checks_the_camera_is_there_without_opening_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()  # an empty folder: opening it would fail, so "ok" proves it was not opened
    bundle = make_bundle(tmp_path / "desk", ["cat", "dog"])
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()),
                          pipelines=[{"name": "desk", "kind": "camera", "bundle": str(bundle), "source": {"uri": str(frames)}}])
    edge_main(["doctor", "-c", str(config), "--no-open", "--json"])
    camera = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "camera desk")
    assert camera["status"] == "ok" and "not opened: --no-open" in camera["detail"]
    assert row(doctor(config), "camera desk").status == "fail"  # opened (no service runs here): the empty folder is caught


def test_llm_generation_check_runs_the_model_in_a_child(tmp_path: Path) -> None:
    from tests.support.gguf_models import SMOLLM2
    from tests.support.llm_server import require_model

    model = require_model(SMOLLM2)
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()), llm={"enabled": True, "model": str(model)})
    rows = doctor(config)
    generation = row(rows, "llm generation")
    assert generation.status == "ok" and re.search(r"\b4 tokens at \d+\.\d tokens/s", generation.detail), generation
