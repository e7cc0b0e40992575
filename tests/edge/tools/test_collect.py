"""`edge collect`: frames from a (video-file) camera and clips from a real PortAudio microphone land in
DATASET/<class>/ as JPEG/WAV, never overwriting earlier samples."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from edge.cli import main as edge_main
from edge.tools.collect import BACKGROUND_CLASS, CollectError, class_folder, collect_frames, split_clips
from tests.support.alsa import PCM_NAME, AlsaFileMicrophone
from tests.support.onnx_models import color_video, tone
from tests.support.paths import REPO


def test_frames_from_a_video_after_a_countdown(tmp_path: Path) -> None:
    video = color_video(tmp_path / "red.avi", [(0, 0, 255)], frames_each=60, fps=30)
    said: list[str] = []
    started = time.monotonic()
    result = collect_frames(str(video), tmp_path / "data", "red", count=4, interval_s=0.2, countdown_s=0.5, say=said.append)
    elapsed = time.monotonic() - started
    assert result.note == "" and len(result.files) == 4
    assert [p.parent for p in result.files] == [tmp_path / "data" / "red"] * 4
    assert elapsed >= 0.5 + 3 * 0.2 - 0.05  # countdown, then one frame per interval
    assert said[0] == "starting in 1 ..." and said[-1].startswith("4/4 ")
    image = cv2.imread(str(result.files[0]))
    assert image.shape == (48, 64, 3) and image[..., 2].mean() > 200  # red, as recorded
    # a second session adds to the class, it does not overwrite
    again = collect_frames(str(video), tmp_path / "data", "red", count=2, interval_s=0.0, countdown_s=0, say=said.append)
    assert len(list((tmp_path / "data" / "red").glob("*.jpg"))) == 6 and not set(again.files) & set(result.files)


def test_frames_from_the_real_video_fixture_via_cli(tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = shared_dir / "video" / "bottle-detection.mp4"
    argv = ["collect", "camera", str(tmp_path / "ds"), "--class", "bottle", "--source", str(clip), "--count", "3", "--interval", "0.1",
            "--countdown", "0", "--mirror"]
    assert edge_main(argv) == 0
    files = sorted((tmp_path / "ds" / "bottle").glob("*.jpg"))
    assert len(files) == 3 and cv2.imread(str(files[0])).shape == (360, 640, 3)
    assert "3 file(s) in" in capsys.readouterr().out


def test_a_short_video_saves_what_it_has_and_says_so(tmp_path: Path) -> None:
    video = color_video(tmp_path / "short.avi", [(255, 0, 0)], frames_each=5, fps=50)
    result = collect_frames(str(video), tmp_path / "d", "blue", count=10, interval_s=0.0, countdown_s=0, say=lambda s: None)
    assert len(result.files) == 5 and "saved 5 of 10" in result.note


def test_bad_class_name_and_dead_camera_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CollectError, match="cannot be a folder name"):
        class_folder(tmp_path, "a/b")
    with pytest.raises(CollectError, match="cannot be a folder name"):
        class_folder(tmp_path, "..")
    assert edge_main(["collect", "camera", str(tmp_path), "--class", "x", "--source", "/dev/video99", "--countdown", "0"]) == 1
    err = capsys.readouterr().err
    assert "no such device" in err and "stop it first" in err


def test_split_clips_drops_a_short_tail() -> None:
    assert [c.size for c in split_clips(np.zeros(25, np.float32), 10, 1.0)] == [10, 10, 5]  # half a clip is kept
    assert [c.size for c in split_clips(np.zeros(24, np.float32), 10, 1.0)] == [10, 10]  # less is dropped
    assert [c.size for c in split_clips(np.zeros(24, np.float32), 10, None)] == [24]


def test_microphone_clips_through_sounddevice_and_alsa(tmp_path: Path) -> None:
    dataset = tmp_path / "sounds"
    with AlsaFileMicrophone(tmp_path, rate=48000) as mic:
        mic.loop(tone(1000, 0.1, 48000, amplitude=0.4))
        base = [sys.executable, "-m", "edge.cli", "collect", "microphone", str(dataset), "--device", PCM_NAME, "--countdown", "0"]
        clips = subprocess.run([*base, "--class", "whistle", "--seconds", "2", "--clip", "0.5"], env=mic.env(), cwd=REPO,
                               capture_output=True, text=True, timeout=60)
        mic.loop(None)  # silence: the background class
        background = subprocess.run([*base, "--background", "--seconds", "3"], env=mic.env(), cwd=REPO, capture_output=True, text=True,
                                    timeout=60)
    assert clips.returncode == 0, clips.stderr
    assert background.returncode == 0, background.stderr
    files = sorted((dataset / "whistle").glob("*.wav"))
    assert len(files) == 4
    for path in files:
        audio, rate = soundfile.read(path, dtype="float32")
        assert rate == 48000 and audio.size == 24000  # native rate, exact length
        nonzero = audio[audio != 0]
        crossings = np.sum(np.diff(np.signbit(nonzero).astype(int)) != 0)
        assert abs(crossings / 0.5 - 2000) < 60 and abs(float(np.abs(audio).max()) - 0.4) < 0.02
    (noise,) = sorted((dataset / BACKGROUND_CLASS).glob("*.wav"))
    info = soundfile.info(noise)
    assert info.samplerate == 48000 and info.frames == 3 * 48000
    assert "recording 3 s from microphone" in background.stdout


def test_camera_source_taken_from_the_daemon_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    color_video(tmp_path / "blue.avi", [(255, 0, 0)], frames_each=20, fps=50)
    config = tmp_path / "edge.yaml"
    config.write_text(
        "pipelines:\n  - {name: mic, kind: microphone, bundle: b}\n"
        "  - {name: desk, kind: camera, bundle: b, mirror: true, source: {uri: blue.avi}}\n",  # relative to the config
        encoding="utf-8",
    )
    base = ["collect", "camera", str(tmp_path / "ds"), "--class", "blue", "--count", "2", "--interval", "0", "--countdown", "0", "--config",
            str(config)]
    assert edge_main(base) == 0
    assert len(list((tmp_path / "ds" / "blue").glob("*.jpg"))) == 2
    assert edge_main([*base, "--pipeline", "door"]) == 1
    assert "no camera pipeline named 'door' (the camera pipelines there: desk)" in capsys.readouterr().err
