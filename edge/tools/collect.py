"""Teachable Machine's "Gather samples", on the device: frames from a camera or clips from a
microphone, written into `DATASET/<class>/` exactly as `trainer train` reads a data set (one folder
per class; JPEG images, WAV sounds). Files are never overwritten: new samples are added beside old ones.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from edge.core.audio_windows import BACKGROUND_LABEL
from edge.sources.base import SourceEnded, SourceError
from edge.sources.camera import CameraOptions, open_camera_source
from edge.sources.microphone import SoundDeviceSource

BACKGROUND_CLASS = BACKGROUND_LABEL  # the audio trainer's name for the required background class
CLASS_NAME = re.compile(r"^[^/\\\x00]{1,100}$")

Say = Callable[[str], None]


class CollectError(ValueError):
    """Collecting could not start or went wrong; the message says why and what to do."""


@dataclass
class CollectResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0  # audio recorded
    note: str = ""  # why fewer samples than asked, if so


def class_folder(dataset: str | Path, label: str) -> Path:
    name = label.strip()
    if not CLASS_NAME.match(name) or name in (".", "..") or name.startswith("."):
        raise CollectError(f"class name {label!r} cannot be a folder name; use letters, digits, spaces, _ or - (no '/')")
    folder = Path(dataset) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CollectError(f"cannot create {folder} ({exc}); pick a folder you can write to") from exc
    return folder


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _countdown(seconds: float, say: Say) -> None:
    remaining = float(seconds)
    while remaining > 0:
        say(f"starting in {remaining:.0f} ...")
        step = min(1.0, remaining)
        time.sleep(step)
        remaining -= step


def collect_frames(
    uri: str,
    dataset: str | Path,
    label: str,
    count: int = 30,
    interval_s: float = 0.5,
    countdown_s: float = 3.0,
    mirror: bool = False,
    width: int | None = None,
    height: int | None = None,
    say: Say = print,
) -> CollectResult:
    """Opens the camera, counts down (reading on, so the picture is live when it starts), then saves
    the newest frame every `interval_s` until `count` images are written."""
    if count < 1 or interval_s < 0:
        raise CollectError("count must be at least 1 and interval_s not negative")
    folder = class_folder(dataset, label)
    result = CollectResult(folder)
    source = open_camera_source(uri, CameraOptions(width=width, height=height, loop=False, realtime=True))
    try:
        source.open()
    except SourceError as exc:
        raise CollectError(f"{exc} (if `edge run` is using this camera, stop it first: sudo systemctl stop edgeteach)") from exc
    stem = f"{_stamp()}"
    try:
        start = time.monotonic() + max(0.0, countdown_s)
        announced = -1
        next_shot = start
        while len(result.files) < count:
            frame = source.read()
            now = time.monotonic()
            if now < start:
                left = int(np.ceil(start - now))
                if left != announced:
                    say(f"starting in {left} ...")
                    announced = left
                continue
            if now < next_shot:
                continue
            image = cv2.flip(frame.image, 1) if mirror else frame.image
            path = _unique(folder, f"{stem}-{len(result.files) + 1:04d}", ".jpg")
            if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise CollectError(f"cannot write {path}; is the disk full?")
            result.files.append(path)
            say(f"{len(result.files)}/{count} {path.name}")
            next_shot = max(next_shot + interval_s, now)  # never a burst to catch up after a slow frame
    except SourceEnded as exc:
        result.note = f"{exc}; saved {len(result.files)} of {count}"
    except SourceError as exc:
        result.note = f"{exc}; saved {len(result.files)} of {count}"
    finally:
        source.close()
    return result


def split_clips(samples: np.ndarray, rate: int, clip_s: float | None) -> list[np.ndarray]:
    """Cuts a recording into clips of `clip_s` seconds; a last piece shorter than half a clip is dropped
    (too short to be a fair example). Without clip_s the recording stays one file."""
    if not clip_s:
        return [samples]
    n = max(1, int(round(clip_s * rate)))
    clips = [samples[i : i + n] for i in range(0, samples.size, n)]
    return [c for c in clips if c.size >= n / 2]


def collect_audio(
    dataset: str | Path,
    label: str,
    seconds: float = 20.0,
    clip_s: float | None = None,
    device: int | str = "default",
    sample_rate: int | None = None,
    countdown_s: float = 3.0,
    say: Say = print,
) -> CollectResult:
    """Records `seconds` of audio (counted in samples, so it is exact) from a microphone at its native
    rate (or `sample_rate`) and writes WAV files: one, or clips of `clip_s` seconds."""
    import soundfile

    if seconds <= 0:
        raise CollectError("seconds must be positive")
    if clip_s is not None and clip_s <= 0:
        raise CollectError("clip_s must be positive")
    folder = class_folder(dataset, label)
    result = CollectResult(folder)
    _countdown(countdown_s, say)
    source = SoundDeviceSource(device, sample_rate, channels=1, block_s=0.05)
    try:
        source.open()
    except SourceError as exc:
        raise CollectError(f"{exc} (if `edge run` is using this microphone, stop it first)") from exc
    blocks: list[np.ndarray] = []
    have = 0
    try:
        want = int(round(seconds * source.sample_rate))
        say(f"recording {seconds:g} s from {source.description} at {source.sample_rate} Hz ...")
        while have < want:
            block = source.read()
            blocks.append(block.samples)
            have += block.samples.size
    except SourceError as exc:
        result.note = f"{exc}; recorded {have / max(source.sample_rate, 1):.1f} s"
    finally:
        source.close()
    rate = source.sample_rate
    audio = np.concatenate(blocks)[: int(round(seconds * rate))] if blocks else np.zeros(0, np.float32)
    result.seconds = audio.size / rate if rate else 0.0
    stem = _stamp()
    for i, clip in enumerate(split_clips(audio, rate, clip_s), start=1):
        path = _unique(folder, f"{stem}-{i:04d}", ".wav")
        soundfile.write(str(path), clip, rate, subtype="PCM_16")
        result.files.append(path)
        say(f"{path.name} ({clip.size / rate:.1f} s)")
    return result
