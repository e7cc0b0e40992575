"""Camera backends behind FrameSource, in picamera2's plug-in shape: `base` (URI parsing, `CameraTarget`,
`CameraOptions`, the chooser `open_camera_source`) and one module per backend: `opencv` (webcams, streams,
files, Jetson CSI through GStreamer), `picamera2` (Raspberry Pi) and `folder` (image folders). A new backend
is a module here and one branch in `base.open_camera_source`.

The backends are loaded on first use (PEP 562): parsing a camera URI (`edge config check`) or choosing a
Pi camera does not load OpenCV; `base.open_camera_source` imports the one backend a URI needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edge.sources.base import SourceEnded, SourceError
from edge.sources.camera.base import STREAM_SCHEMES, CameraOptions, CameraTarget, open_camera_source, parse_camera_uri, redact

if TYPE_CHECKING:
    from edge.sources.camera.folder import ImageFolderSource
    from edge.sources.camera.opencv import STREAM_TIMEOUT_MS, OpenCvSource, csi_pipeline, gstreamer_available
    from edge.sources.camera.picamera2 import Picamera2Source

_BACKENDS = {
    "ImageFolderSource": "edge.sources.camera.folder",
    "STREAM_TIMEOUT_MS": "edge.sources.camera.opencv",
    "OpenCvSource": "edge.sources.camera.opencv",
    "csi_pipeline": "edge.sources.camera.opencv",
    "gstreamer_available": "edge.sources.camera.opencv",
    "Picamera2Source": "edge.sources.camera.picamera2",
}


def __getattr__(name: str) -> object:
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "STREAM_SCHEMES",
    "STREAM_TIMEOUT_MS",
    "CameraOptions",
    "CameraTarget",
    "ImageFolderSource",
    "OpenCvSource",
    "Picamera2Source",
    "SourceEnded",
    "SourceError",
    "csi_pipeline",
    "gstreamer_available",
    "open_camera_source",
    "parse_camera_uri",
    "redact",
]
