"""Frame and audio sources behind one interface each, and the supervisor that restarts them.

The names below are loaded on first use (PEP 562), not when the package is imported: a backend's
native library (OpenCV for cameras, PortAudio for microphones) is then loaded only by a device whose
config uses it, so a microphone-only Pi Zero does not carry OpenCV in memory (docs/raspberry-pi.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.sources.base import AudioBlock, AudioSource, Frame, FrameSource, SourceEnded, SourceError
    from edge.sources.camera import open_camera_source, parse_camera_uri
    from edge.sources.microphone import SoundDeviceSource, SoundFileSource
    from edge.sources.supervisor import Backoff, SourceSupervisor

_WHERE = {
    "AudioBlock": "edge.sources.base",
    "AudioSource": "edge.sources.base",
    "Frame": "edge.sources.base",
    "FrameSource": "edge.sources.base",
    "SourceEnded": "edge.sources.base",
    "SourceError": "edge.sources.base",
    "open_camera_source": "edge.sources.camera",
    "parse_camera_uri": "edge.sources.camera",
    "SoundDeviceSource": "edge.sources.microphone",
    "SoundFileSource": "edge.sources.microphone",
    "Backoff": "edge.sources.supervisor",
    "SourceSupervisor": "edge.sources.supervisor",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AudioBlock",
    "AudioSource",
    "Backoff",
    "Frame",
    "FrameSource",
    "SoundDeviceSource",
    "SoundFileSource",
    "SourceEnded",
    "SourceError",
    "SourceSupervisor",
    "open_camera_source",
    "parse_camera_uri",
]
