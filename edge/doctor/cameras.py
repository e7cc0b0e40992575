"""Cameras: V4L2 devices and access to them, picamera2, and each camera pipeline's source, opened and read
once unless the running service holds it."""

from __future__ import annotations

import glob
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from edge.doctor.base import CheckResult, DoctorOptions, active_pipelines
from edge.doctor.machine import is_raspberry_pi

if TYPE_CHECKING:
    from edge.config import CameraPipelineConfig, EdgeConfig

T = TypeVar("T")


def _call_with_timeout(fn: Callable[[], T], timeout_s: float) -> T:
    """Runs fn in a daemon thread; raises TimeoutError when it does not return in time (a wedged camera
    driver must not hang the doctor)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="doctor-probe")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def _access_problem(path: str) -> str | None:
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} exists but this user ({_user()}) may not open it"
    return None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def check_cameras(config: EdgeConfig | None) -> list[CheckResult]:
    devices = _video_devices()
    camera_pipelines = [p for p in active_pipelines(config) if p.kind == "camera"]
    rows: list[CheckResult] = []
    if devices:
        blocked = [d for d in devices if _access_problem(d)]
        if blocked:
            rows.append(CheckResult("cameras", "warn", f"found {', '.join(devices)}; no access to {', '.join(blocked)} as {_user()}",
                                    f"add the user to the video group: `sudo usermod -aG video {_user()}` (then log in again)"))
        else:
            rows.append(CheckResult("cameras", "ok", f"found {', '.join(devices)}"))
    else:
        rows.append(CheckResult("cameras", "warn" if camera_pipelines else "skip", "no V4L2 camera (/dev/video*)",
                                "plug in a USB camera or enable the Pi camera; files, streams "
                                "and picamera2:// need none" if camera_pipelines else ""))
    if is_raspberry_pi() or any(p.source.uri.startswith("picamera2://") for p in camera_pipelines):
        rows.append(_check_picamera2(required=any(p.source.uri.startswith("picamera2://") for p in camera_pipelines)))
    return rows


def _check_picamera2(required: bool, camera_num: int | None = None, name: str = "picamera2") -> CheckResult:
    try:
        from picamera2 import Picamera2
    except Exception as exc:
        return CheckResult(name, "fail" if required else "warn", f"cannot import picamera2 ({exc})",
                           "`sudo apt install python3-picamera2` and a venv made with --system-site-packages "
                           "(deploy/install.sh does both on a Pi)")
    try:
        cameras = list(Picamera2.global_camera_info())
    except Exception as exc:
        return CheckResult(name, "fail" if required else "warn", f"libcamera cannot list cameras ({exc})",
                           "check the ribbon cable and `rpicam-hello --list-cameras`")
    models = ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras))
    if not cameras:
        return CheckResult(name, "fail" if required else "warn", "picamera2 found no camera",
                           "check the ribbon cable (contacts facing the right way, both ends locked) and `rpicam-hello --list-cameras`")
    if camera_num is not None and camera_num >= len(cameras):
        return CheckResult(name, "fail", f"picamera2://{camera_num} asked for, but the cameras are {models}",
                           f"use picamera2://0{' to ' + str(len(cameras) - 1) if len(cameras) > 1 else ''}, or connect the second camera")
    return CheckResult(name, "ok", models if camera_num is None else f"picamera2://{camera_num}: {cameras[camera_num].get('Model', '?')}")


def _busy_fix(path: str) -> str:
    return (f"another program holds {path}: the running edgeteach service does (`sudo systemctl stop edgeteach`, or run "
            f"`edge doctor --no-open`); find others with `sudo fuser -v {path}`")


def check_camera_source(index: int, pipeline: CameraPipelineConfig, options: DoctorOptions) -> CheckResult:
    from edge.sources.base import SourceError
    from edge.sources.camera import CameraOptions, open_camera_source, parse_camera_uri, redact

    name = f"camera {pipeline.name}"
    where = f"pipelines[{index}].source.uri"
    uri = pipeline.source.uri
    try:
        target = parse_camera_uri(uri)
    except SourceError as exc:
        return CheckResult(name, "fail", str(exc), f"fix {where} in the config")
    if target.kind in ("index", "device"):
        path = f"/dev/video{target.value}" if target.kind == "index" else str(target.value)
        if not os.path.exists(path):
            present = ", ".join(_video_devices()) or "none"
            return CheckResult(name, "fail", f"{path} does not exist (cameras here: {present})",
                               f"plug the camera in and check `v4l2-ctl --list-devices`, or set {where} to a camera that exists")
        problem = _access_problem(path)
        if problem:
            return CheckResult(name, "fail", problem,
                               f"add the user to the video group: `sudo usermod -aG video {_user()}` (the service "
                               "user edgeteach already is)")
    elif target.kind in ("file", "folder"):
        if not os.path.exists(str(target.value)):
            return CheckResult(name, "fail", f"{target.value} does not exist", f"copy the video/images there or fix {where}")
    elif target.kind == "stream":
        parsed = urlparse(str(target.value))
        port = parsed.port or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}.get(parsed.scheme, 0)
        if parsed.hostname and port:
            try:
                with socket.create_connection((parsed.hostname, port), timeout=options.mqtt_timeout_s):
                    pass
            except OSError as exc:
                return CheckResult(name, "fail", f"{redact(uri)}: cannot reach {parsed.hostname}:{port} ({exc})",
                                   "check the camera's address and that it is on the network (`ping`), and the URL's port")
        return CheckResult(name, "ok", f"{redact(uri)} reachable (the stream itself is not opened by the doctor)")
    if target.kind == "picamera2":
        return _check_picamera2(required=True, camera_num=int(target.value), name=name)
    if not options.open_sources:
        why = "edgeteach.service is running and holds it; --open to try anyway" if options.service_holds_sources else "--no-open"
        return CheckResult(name, "ok", f"{target.describe()} present (not opened: {why})")
    opening = replace(CameraOptions.from_config(pipeline.source), loop=False, realtime=False,
                      stall_timeout_s=min(5.0, options.source_timeout_s))
    source = open_camera_source(uri, opening)

    def grab() -> tuple[int, int]:
        source.open()
        try:
            frame = source.read()
            return int(frame.image.shape[1]), int(frame.image.shape[0])
        finally:
            source.close()

    try:
        width, height = _call_with_timeout(grab, options.source_timeout_s)
    except Exception as exc:
        path = f"/dev/video{target.value}" if target.kind == "index" else str(target.value)
        if target.kind in ("index", "device", "csi"):
            fix = _busy_fix(path)
        elif target.kind == "folder":
            fix = f"put .jpg or .png images in {target.value}, or fix {where}"
        else:
            fix = f"check the file plays (`ffprobe {target.value}`) or fix {where}"
        if target.kind == "csi":
            fix = "check the CSI cable and `nvgstcapture-1.0`; OpenCV needs GStreamer (JetPack's python3-opencv); " + fix
        return CheckResult(name, "fail", f"{target.describe()}: cannot read a frame ({exc})", fix)
    return CheckResult(name, "ok", f"{target.describe()}: read a {width}x{height} frame")
