"""Camera backends behind FrameSource, in picamera2's plug-in shape: `base` (URI parsing, `CameraTarget`,
`CameraOptions`, the chooser `open_camera_source`) and one module per backend: `opencv` (webcams, streams,
files, Jetson CSI through GStreamer), `picamera2` (Raspberry Pi) and `folder` (image folders). A new backend
is a module here and one branch in `base.open_camera_source`.
"""

from __future__ import annotations

from edge.sources.base import SourceEnded, SourceError
from edge.sources.camera.base import STREAM_SCHEMES, CameraOptions, CameraTarget, open_camera_source, parse_camera_uri, redact
from edge.sources.camera.folder import ImageFolderSource
from edge.sources.camera.opencv import STREAM_TIMEOUT_MS, OpenCvSource, csi_pipeline, gstreamer_available
from edge.sources.camera.picamera2 import Picamera2Source

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
