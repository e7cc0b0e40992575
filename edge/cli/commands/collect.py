"""`edge collect camera|microphone DATASET --class NAME`: gather training samples on the device."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Literal, overload

# The tool (OpenCV, PortAudio) is imported by the command that runs, not here: `edge run` builds this parser
# too, and a microphone-only daemon must not load OpenCV for it (docs/raspberry-pi.md).
from edge.core.audio_windows import BACKGROUND_LABEL as BACKGROUND_CLASS

if TYPE_CHECKING:
    from edge.config import CameraPipelineConfig, MicrophonePipelineConfig, PipelineConfig
    from edge.tools.collect import CollectResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="gather training samples from a camera or microphone into DATASET/<class>/",
        description="Teachable Machine's 'Gather samples' on the device. Writes DATASET/<class>/*.jpg or *.wav, the "
        "layout `trainer train DATASET` reads. Stop `edge run` first if it uses the same camera or microphone.",
    )
    sub = parser.add_subparsers(dest="collect_kind", metavar="SOURCE")
    sub.required = True

    cam = sub.add_parser("camera", help="save N frames at an interval after a countdown")
    cam.add_argument("dataset", help="data set folder (created if needed)")
    cam.add_argument("--class", dest="label", required=True, help="class name = the folder the images go to")
    cam.add_argument("--source", default=None,
                     help="camera URI: 0, /dev/video0, csi://0, picamera2://0, rtsp://..., a video file (default 0)")
    cam.add_argument("--count", type=int, default=30, help="images to save (default 30)")
    cam.add_argument("--interval", type=float, default=0.5, help="seconds between images (default 0.5)")
    cam.add_argument("--countdown", type=float, default=3.0, help="seconds before the first image (default 3)")
    cam.add_argument("--mirror", action="store_true", default=None, help="flip left-right (use it when the pipeline has mirror: true)")
    cam.add_argument("--width", type=int, default=None)
    cam.add_argument("--height", type=int, default=None)
    _config_args(cam)
    cam.set_defaults(func=run_camera)

    mic = sub.add_parser("microphone", help="record S seconds into WAV clips after a countdown")
    mic.add_argument("dataset", help="data set folder (created if needed)")
    mic.add_argument("--class", dest="label", default=None, help="class name = the folder the WAV files go to (or --background)")
    mic.add_argument("--background", action="store_true", help=f"shorthand for --class {BACKGROUND_CLASS}")
    mic.add_argument("--device", default=None, help="'default', an index or part of a device name (python -m sounddevice lists them)")
    mic.add_argument("--seconds", type=float, default=5.0, help="seconds to record (default 5; 20 or more for background noise)")
    mic.add_argument("--clip", type=float, default=None, help="split the recording into clips of this many seconds (default: one file)")
    mic.add_argument("--sample-rate", type=int, default=None, help="capture rate in Hz (default: the device's native rate)")
    mic.add_argument("--countdown", type=float, default=3.0, help="seconds before recording starts (default 3)")
    _config_args(mic)
    mic.set_defaults(func=run_microphone)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="take the source from this edge config ...")
    parser.add_argument("--pipeline", default=None, help="... from this pipeline (default: the first of the right kind)")


@overload
def _pipeline_from_config(args: argparse.Namespace, kind: Literal["camera"]) -> CameraPipelineConfig | None: ...


@overload
def _pipeline_from_config(args: argparse.Namespace, kind: Literal["microphone"]) -> MicrophonePipelineConfig | None: ...


def _pipeline_from_config(args: argparse.Namespace, kind: Literal["camera", "microphone"]) -> PipelineConfig | None:
    if not args.config:
        return None
    from edge.config import load_config

    config = load_config(args.config)
    for p in config.pipelines:
        if p.kind == kind and (args.pipeline is None or p.name == args.pipeline):
            return p
    names = ", ".join(p.name for p in config.pipelines if p.kind == kind) or "none"
    from edge.tools.collect import CollectError

    raise CollectError(f"{args.config}: no {kind} pipeline{' named ' + repr(args.pipeline) if args.pipeline else ''} (the {kind} "
                       f"pipelines there: {names})")


def _say(text: str) -> None:
    print(text, flush=True)


def run_camera(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.tools.collect import CollectError, collect_frames

    try:
        p = _pipeline_from_config(args, "camera")
        uri = args.source or (p.source.uri if p else "0")
        mirror = args.mirror if args.mirror is not None else bool(p.mirror if p else False)
        result = collect_frames(
            uri, args.dataset, args.label, count=args.count, interval_s=args.interval, countdown_s=args.countdown, mirror=mirror,
            width=args.width or (p.source.width if p else None), height=args.height or (p.source.height if p else None), say=_say,
        )
    except (CollectError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _report(result, args.count)


def run_microphone(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.tools.collect import CollectError, collect_audio

    label = BACKGROUND_CLASS if args.background else args.label
    if not label:
        print(f"error: name the class with --class NAME, or --background to record into {BACKGROUND_CLASS}", file=sys.stderr)
        return 2
    try:
        p = _pipeline_from_config(args, "microphone")
        device = args.device if args.device is not None else (p.source.device if p else "default")
        rate = args.sample_rate or (p.source.sample_rate if p else None)
        result = collect_audio(args.dataset, label, seconds=args.seconds, clip_s=args.clip, device=device, sample_rate=rate,
                               countdown_s=args.countdown, say=_say)
    except (CollectError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _report(result, None)


def _report(result: CollectResult, wanted: int | None) -> int:
    if result.note:
        print(f"warning: {result.note}", file=sys.stderr)
    print(f"{len(result.files)} file(s) in {result.folder}")
    if not result.files:
        return 1
    return 0
