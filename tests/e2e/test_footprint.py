"""`edge run` loads only what its config uses (issue 17): a microphone-only daemon never maps OpenCV (nor Pillow),
a camera-only one never maps PortAudio. Checked on the real process, once it classifies, from the native
libraries in its /proc/<pid>/maps: what it really carries in memory, whoever imported it (a parser of another
sub-command, a re-export of a package `__init__`, a helper module of the shared core).

Each test also checks the library its own source needs is mapped, so a maps check that sees nothing cannot pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.alsa import AlsaFileMicrophone
from tests.support.broker import Broker, free_port
from tests.support.daemon import DaemonProcess, camera_pipeline, microphone_pipeline, write_color_video, write_config
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_audio_bundle, make_color_bundle

PREFIX = "edgeteach/testdev"
OPENCV = "/cv2/"  # opencv-python's cv2.abi3.so, or Debian's python3-opencv under dist-packages/cv2/
PORTAUDIO = "libportaudio"
PILLOW = "/PIL/"


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture()
def microphone(tmp_path: Path) -> Iterator[AlsaFileMicrophone]:
    """A real microphone through sounddevice/PortAudio: ALSA's file plugin fed with quiet and loud seconds."""
    mic = AlsaFileMicrophone(tmp_path, rate=16000).start()
    t = np.arange(16000) / 16000
    mic.loop(np.concatenate([0.001 * np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32))
    try:
        yield mic
    finally:
        mic.stop()


def run_until_classifying(config: Path, broker: Broker, pipeline: str, env: dict[str, str] | None = None) -> tuple[DaemonProcess, str]:
    """Starts the daemon, waits for the pipeline's first state, returns it with the maps read at that moment."""
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/{pipeline}/state",))
    daemon = DaemonProcess(config, env=env)
    try:
        listener.wait_topic(f"{PREFIX}/{pipeline}/state", timeout=60)
        assert daemon.alive(), daemon.log()
        return daemon, mapped(daemon.pid)
    except BaseException:
        daemon.stop()
        raise
    finally:
        listener.close()


def test_a_microphone_only_daemon_does_not_load_opencv(tmp_path: Path, broker: Broker, microphone: AlsaFileMicrophone) -> None:
    mic = microphone_pipeline("mic", make_audio_bundle(tmp_path / "loudness"), tmp_path / "unused.wav")
    mic["source"] = {"device": "default"}
    # health on, as in a device's default config: its web server must not pull OpenCV in either
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [mic], health_port=free_port())
    daemon, maps = run_until_classifying(config, broker, "mic", env=microphone.env())
    try:
        assert PORTAUDIO in maps, "the microphone runs on PortAudio, yet the maps do not show it: the check is blind"
        assert OPENCV not in maps, "a microphone-only daemon loaded OpenCV:\n" + "\n".join(
            line for line in maps.splitlines() if OPENCV in line)
        assert PILLOW not in maps, "a microphone-only daemon loaded Pillow"
    finally:
        daemon.stop()


def test_a_camera_only_daemon_does_not_load_portaudio(tmp_path: Path, broker: Broker) -> None:
    video = write_color_video(tmp_path / "colors.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)
    cam = camera_pipeline("cam", make_color_bundle(tmp_path / "colors"), str(video))
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [cam], health_port=free_port())
    daemon, maps = run_until_classifying(config, broker, "cam")
    try:
        assert OPENCV in maps, "the camera reads the video through OpenCV, yet the maps do not show it: the check is blind"
        assert PORTAUDIO not in maps, "a camera-only daemon loaded PortAudio (sounddevice)"
        assert PILLOW not in maps, "the camera pipeline loaded Pillow (it fits frames with OpenCV)"
    finally:
        daemon.stop()
