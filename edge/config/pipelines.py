"""The `pipelines:` entries: a camera or a microphone source, the bundle that classifies it, how a reading
becomes a decision (smoothing, threshold, hold) and how decisions are published."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.config.base import StrictModel

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # safe as one MQTT topic level and as a Prometheus label
# Topic levels the device itself publishes or listens on right under its prefix (edge.mqtt.topics, the LLM's
# llm/...). A pipeline with one of these names would mix its state/event/status with them: a pipeline named
# `cmd` would even have its own messages matched by the `cmd/+` command subscription.
RESERVED_NAMES = ("cmd", "llm", "stats", "status")
MAX_LABEL_CHARS = 64  # like the labels sensor context accepts (edge.llm): one readable word or phrase
PROVIDERS = ("cpu", "cuda", "tensorrt")
Provider = Literal["cpu", "cuda", "tensorrt"]


def _default_providers() -> list[Provider]:
    return ["cpu"]


class SmoothingSettings(StrictModel):
    method: Literal["none", "moving_average", "n_of_m"] = Field(
        "moving_average",
        description="none, moving_average (mean of the last `window` score vectors) or n_of_m (a label must win n of the last m readings)"
    )
    window: int = Field(3, ge=1, le=1000, description="readings averaged by moving_average")
    n: int = Field(3, ge=1, le=1000, description="n_of_m: readings that must agree")
    m: int = Field(3, ge=1, le=1000, description="n_of_m: readings looked at")

    @model_validator(mode="after")
    def _n_within_m(self) -> SmoothingSettings:
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) cannot exceed m ({self.m}): a label cannot win more readings than are looked at; set n <= m")
        return self


class PublishSettings(StrictModel):
    heartbeat_s: float = Field(30.0, gt=0, le=86400, description="republish the state at least this often even when unchanged (seconds)")
    max_rate_hz: float = Field(2.0, gt=0, le=1000, description="state messages per second at most")
    event_qos: Literal[0, 1, 2] = Field(1, description="MQTT QoS of change events (1 keeps them through a broker outage)")
    state_qos: Literal[0, 1, 2] = Field(0, description="MQTT QoS of state messages (0: a stale state is not worth replaying)")
    retain_state: bool = Field(True, description="retain the state so new subscribers see it at once")


class CameraSourceConfig(StrictModel):
    uri: str = Field(
        "0",
        description="0 or /dev/video0 or v4l2:///dev/video0 (webcam), csi://0 (Jetson), picamera2://0 (Raspberry Pi), "
        "rtsp://..., http(s)://..., file:///clip.mp4 or a path to a video file or a folder of images",
    )
    loop: bool = Field(False, description="video files and image folders: start again at the end without a restart")
    realtime: bool = Field(True,
                           description="video files and image folders: deliver frames at the file's own frame rate (as a camera would)")
    width: int | None = Field(None, ge=16, le=8192, description="requested capture width in pixels (camera default when empty)")
    height: int | None = Field(None, ge=16, le=8192, description="requested capture height in pixels")
    fps: float | None = Field(None, gt=0, le=1000, description="requested capture frame rate (also the pace of image folders)")
    backoff_initial_s: float = Field(0.5, gt=0, le=3600, description="first wait before restarting a source that failed or ended")
    backoff_max_s: float = Field(30.0, gt=0, le=86400, description="longest wait between restarts (the wait doubles up to this)")
    healthy_after_s: float = Field(10.0, gt=0, le=86400,
                                   description="a source running this long counts as healthy and the backoff starts "
                                   "again from backoff_initial_s")
    stall_timeout_s: float = Field(10.0, gt=0, le=3600,
                                   description="no frame for this long (a camera that hangs without an error, a silent stream) and "
                                   "the source is declared stalled and restarted, and /healthz answers 503; files and folders "
                                   "paced in real time get at least three frame intervals")

    @field_validator("uri", mode="before")
    @classmethod
    def _uri_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class MicrophoneSourceConfig(StrictModel):
    device: int | str = Field("default",
                              description="input device: 'default', an index or (part of) a name as `python -m sounddevice` lists")
    sample_rate: int | None = Field(None, ge=4000, le=384000,
                                    description="capture rate in Hz; empty = the device's native rate (resampled to the model's)")
    channels: int = Field(1, ge=1, le=32, description="channels captured (mixed down to mono)")
    file: str | None = Field(None, description="read this WAV/FLAC file instead of a device (testing, demos)")
    loop: bool = Field(False, description="file: start again at the end without a restart")
    realtime: bool = Field(True, description="file: deliver samples at real-time pace")
    block_s: float = Field(0.1, gt=0, le=5, description="seconds of audio per block handed to the pipeline")
    backoff_initial_s: float = Field(0.5, gt=0, le=3600, description="first wait before restarting a source that failed or ended")
    backoff_max_s: float = Field(30.0, gt=0, le=86400, description="longest wait between restarts")
    healthy_after_s: float = Field(10.0, gt=0, le=86400, description="running this long resets the backoff")
    stall_timeout_s: float = Field(5.0, gt=0, le=3600,
                                   description="microphones: no audio for this long and the source is declared stalled and "
                                   "restarted, and /healthz answers 503 (sound files are never declared stalled)")


class PipelineConfigBase(StrictModel):
    name: str = Field(..., pattern=NAME_PATTERN, description="unique name, used in MQTT topics: letters, digits, _ and - only")
    enabled: bool = Field(True, description="false keeps the pipeline in the file but does not run it")
    bundle: str = Field(..., min_length=1, description="path to a bundle folder made by `trainer train` (relative to this config file)")
    variant: Literal["fp32", "int8"] = Field("fp32", description="fp32 or int8 (smaller and faster on a Pi)")
    threads: int = Field(0, ge=0, le=256, description="ONNX Runtime threads; 0 = all cores")
    providers: list[Provider] = Field(
        default_factory=_default_providers, min_length=1,
        description="execution providers in order of preference (cuda/tensorrt on Jetson); CPU is always the fallback"
    )
    threshold: float = Field(
        0.6, ge=0, le=1, description="a confidence; below it the decided label is `unknown_label`"
    )
    unknown_label: str = Field("unknown", min_length=1, max_length=MAX_LABEL_CHARS,
                               description="label published when nothing is confident enough (<= 64 characters, no control characters)")
    smoothing: SmoothingSettings = Field(default_factory=SmoothingSettings)
    min_hold_s: float = Field(1.0, ge=0, le=3600,
                              description="a decided label is kept at least this many seconds, so a state does not flicker")
    publish: PublishSettings = Field(default_factory=PublishSettings)

    @field_validator("unknown_label", mode="after")
    @classmethod
    def _printable_label(cls, label: str) -> str:
        # It goes out in every state message and into Home Assistant; a newline or escape code would garble logs and UIs.
        if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in label):
            raise ValueError("must not contain control characters (newlines, tabs, escape codes); use plain text like 'unknown'")
        return label

    @field_validator("name", mode="after")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(
                f"{name!r} is reserved: {', '.join(RESERVED_NAMES)} are the device's own topics under "
                f"edgeteach/<device_id>/, so a pipeline named so would collide with them; pick another name"
            )
        return name


class CameraPipelineConfig(PipelineConfigBase):
    kind: Literal["camera"] = "camera"
    source: CameraSourceConfig = Field(default_factory=CameraSourceConfig)
    mirror: bool = Field(False, description="flip frames left-right before classifying (as Teachable Machine's webcam)")
    max_fps: float | None = Field(None, gt=0, le=1000,
                                  description="classify at most this many frames per second (saves CPU); empty = as fast as possible")


class MicrophonePipelineConfig(PipelineConfigBase):
    kind: Literal["microphone"] = "microphone"
    source: MicrophoneSourceConfig = Field(default_factory=MicrophoneSourceConfig)
    hop_s: float | None = Field(None, gt=0, le=60, description="seconds between classified windows; empty = the bundle's hop_samples")


PipelineConfig = Annotated[CameraPipelineConfig | MicrophonePipelineConfig, Field(discriminator="kind")]

TASK_FOR_KIND = {"camera": "image", "microphone": "audio"}  # the bundle task each kind of pipeline runs


def bundle_task_mismatch(kind: str, task: str) -> str | None:
    """The bundle task a `kind` pipeline needs when a bundle of `task` cannot drive it; None when it can.
    The one check behind `edge config check`, `edge doctor` and loading (start and reload)."""
    want = TASK_FOR_KIND[kind]
    return want if task != want else None
