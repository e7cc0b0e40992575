"""Frame and audio sources behind one interface each, and the supervisor that restarts them."""

from __future__ import annotations

from edge.sources.base import AudioBlock, AudioSource, Frame, FrameSource, SourceEnded, SourceError
from edge.sources.camera import open_camera_source, parse_camera_uri
from edge.sources.microphone import SoundDeviceSource, SoundFileSource
from edge.sources.supervisor import Backoff, SourceSupervisor

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
