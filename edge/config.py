"""The device's one YAML config, validated into typed models.

Errors are for people editing a YAML file on a Pi over SSH: each one names the key path as it appears in
the file (`pipelines[0].threshold`), the line, the bad value and what to write instead. Unknown keys are
refused (a typo would otherwise silently fall back to a default) with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import re
import socket
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from edge.llm.config import LlmSettings
from edge.mqtt.settings import MqttSettings

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # safe as one MQTT topic level and as a Prometheus label
# Topic levels the device itself publishes or listens on right under its prefix (edge.mqtt.topics, the LLM's
# llm/...). A pipeline with one of these names would mix its state/event/status with them: a pipeline named
# `cmd` would even have its own messages matched by the `cmd/+` command subscription.
RESERVED_NAMES = ("cmd", "llm", "stats", "status")
PROVIDERS = ("cpu", "cuda", "tensorrt")


class ConfigError(ValueError):
    """An unusable config. `errors` holds one friendly line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {line}" for line in errors)
        super().__init__(f"{source}: {len(errors)} problem{'s' if len(errors) != 1 else ''} in the config:\n{lines}")


def sanitise_device_id(raw: str) -> str:
    """Hostnames may hold dots and capitals; MQTT topic levels and HA object ids are safest in [a-z0-9_-]."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", raw.strip().lower()).strip("-")
    return cleaned[:64] or "edgeteach"


def default_device_id() -> str:
    return sanitise_device_id(socket.gethostname().split(".")[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HealthSettings(_Strict):
    enabled: bool = Field(True, description="serve /healthz and Prometheus /metrics over HTTP")
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes it to the network")
    port: int = Field(8321, ge=1, le=65535, description="a TCP port")


class SmoothingSettings(_Strict):
    method: Literal["none", "moving_average", "n_of_m"] = Field(
        "moving_average", description="none, moving_average (mean of the last `window` score vectors) or n_of_m (a label must win n of the last m readings)"
    )
    window: int = Field(3, ge=1, le=1000, description="readings averaged by moving_average")
    n: int = Field(3, ge=1, le=1000, description="n_of_m: readings that must agree")
    m: int = Field(3, ge=1, le=1000, description="n_of_m: readings looked at")

    @model_validator(mode="after")
    def _n_within_m(self) -> "SmoothingSettings":
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) cannot exceed m ({self.m}): a label cannot win more readings than are looked at; set n <= m")
        return self


class PublishSettings(_Strict):
    heartbeat_s: float = Field(30.0, gt=0, le=86400, description="republish the state at least this often even when unchanged (seconds)")
    max_rate_hz: float = Field(2.0, gt=0, le=1000, description="state messages per second at most")
    event_qos: Literal[0, 1, 2] = Field(1, description="MQTT QoS of change events (1 keeps them through a broker outage)")
    state_qos: Literal[0, 1, 2] = Field(0, description="MQTT QoS of state messages (0: a stale state is not worth replaying)")
    retain_state: bool = Field(True, description="retain the state so new subscribers see it at once")


class CameraSource(_Strict):
    uri: str = Field(
        "0",
        description="0 or /dev/video0 or v4l2:///dev/video0 (webcam), csi://0 (Jetson), picamera2://0 (Raspberry Pi), "
        "rtsp://..., http(s)://..., file:///clip.mp4 or a path to a video file or a folder of images",
    )
    loop: bool = Field(False, description="video files and image folders: start again at the end without a restart")
    realtime: bool = Field(True, description="video files and image folders: deliver frames at the file's own frame rate (as a camera would)")
    width: Optional[int] = Field(None, ge=16, le=8192, description="requested capture width in pixels (camera default when empty)")
    height: Optional[int] = Field(None, ge=16, le=8192, description="requested capture height in pixels")
    fps: Optional[float] = Field(None, gt=0, le=1000, description="requested capture frame rate (also the pace of image folders)")
    backoff_initial_s: float = Field(0.5, gt=0, le=3600, description="first wait before restarting a source that failed or ended")
    backoff_max_s: float = Field(30.0, gt=0, le=86400, description="longest wait between restarts (the wait doubles up to this)")
    healthy_after_s: float = Field(10.0, gt=0, le=86400, description="a source running this long counts as healthy and the backoff starts again from backoff_initial_s")
    stall_timeout_s: float = Field(20.0, gt=0, le=3600, description="no frame for this long counts as a failure (network streams)")

    @field_validator("uri", mode="before")
    @classmethod
    def _uri_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class MicrophoneSource(_Strict):
    device: Union[int, str] = Field("default", description="input device: 'default', an index or (part of) a name as `python -m sounddevice` lists")
    sample_rate: Optional[int] = Field(None, ge=4000, le=384000, description="capture rate in Hz; empty = the device's native rate (resampled to the model's)")
    channels: int = Field(1, ge=1, le=32, description="channels captured (mixed down to mono)")
    file: Optional[str] = Field(None, description="read this WAV/FLAC file instead of a device (testing, demos)")
    loop: bool = Field(False, description="file: start again at the end without a restart")
    realtime: bool = Field(True, description="file: deliver samples at real-time pace")
    block_s: float = Field(0.1, gt=0, le=5, description="seconds of audio per block handed to the pipeline")
    backoff_initial_s: float = Field(0.5, gt=0, le=3600, description="first wait before restarting a source that failed or ended")
    backoff_max_s: float = Field(30.0, gt=0, le=86400, description="longest wait between restarts")
    healthy_after_s: float = Field(10.0, gt=0, le=86400, description="running this long resets the backoff")
    stall_timeout_s: float = Field(5.0, gt=0, le=3600, description="no audio for this long counts as a failure")


class _PipelineBase(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN, description="unique name, used in MQTT topics: letters, digits, _ and - only")
    enabled: bool = Field(True, description="false keeps the pipeline in the file but does not run it")
    bundle: str = Field(..., min_length=1, description="path to a bundle folder made by `trainer train` (relative to this config file)")
    variant: Literal["fp32", "int8"] = Field("fp32", description="fp32 or int8 (smaller and faster on a Pi)")
    threads: int = Field(0, ge=0, le=256, description="ONNX Runtime threads; 0 = all cores")
    providers: list[Literal["cpu", "cuda", "tensorrt"]] = Field(
        default_factory=lambda: ["cpu"], min_length=1, description="execution providers in order of preference (cuda/tensorrt on Jetson); CPU is always the fallback"
    )
    threshold: float = Field(
        0.6, ge=0, le=1, description="a confidence; below it the decided label is `unknown_label`"
    )
    unknown_label: str = Field("unknown", min_length=1, description="label published when nothing is confident enough")
    smoothing: SmoothingSettings = Field(default_factory=SmoothingSettings)
    min_hold_s: float = Field(1.0, ge=0, le=3600, description="a decided label is kept at least this many seconds, so a state does not flicker")
    publish: PublishSettings = Field(default_factory=PublishSettings)

    @field_validator("name", mode="after")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(
                f"{name!r} is reserved: {', '.join(RESERVED_NAMES)} are the device's own topics under "
                f"edgeteach/<device_id>/, so a pipeline named so would collide with them; pick another name"
            )
        return name


class CameraPipeline(_PipelineBase):
    kind: Literal["camera"] = "camera"
    source: CameraSource = Field(default_factory=CameraSource)
    mirror: bool = Field(False, description="flip frames left-right before classifying (as Teachable Machine's webcam)")
    max_fps: Optional[float] = Field(None, gt=0, le=1000, description="classify at most this many frames per second (saves CPU); empty = as fast as possible")


class MicrophonePipeline(_PipelineBase):
    kind: Literal["microphone"] = "microphone"
    source: MicrophoneSource = Field(default_factory=MicrophoneSource)
    hop_s: Optional[float] = Field(None, gt=0, le=60, description="seconds between classified windows; empty = the bundle's hop_samples")


PipelineConfig = Annotated[Union[CameraPipeline, MicrophonePipeline], Field(discriminator="kind")]


class EdgeConfig(_Strict):
    device_id: str = Field(default_factory=default_device_id, description="this device's name in MQTT topics (default: the hostname)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    pipelines: list[PipelineConfig] = Field(default_factory=list, description="camera and microphone classifiers")

    @field_validator("device_id", mode="before")
    @classmethod
    def _device_id(cls, value: Any) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return sanitise_device_id(str(value))
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def active_pipelines(self) -> list[Union[CameraPipeline, MicrophonePipeline]]:
        return [p for p in self.pipelines if p.enabled]


# ---------------------------------------------------------------------------------------------------
# Loading and friendly errors


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the discriminator's value ('camera') into the location of union members; the user
    never wrote that key, so it is dropped from the path we show."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part in ("camera", "microphone") and i > 0 and isinstance(loc[i - 1], int):
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's internal names for union branches / validators
        out.append(part)
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes or container types an annotation may hold (Optional/Union/Annotated peeled)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is Union:
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _field_at(root: type[BaseModel], loc: tuple[Any, ...], data: Any) -> tuple[Optional[type[BaseModel]], Optional[FieldInfo]]:
    """Walks the models along an error location (using the input data to pick the union member) and
    returns (the model holding the last key, that key's FieldInfo)."""
    model: Any = root
    node: Any = data
    info: Optional[FieldInfo] = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None, None
        holder = model
        info = model.model_fields.get(part)
        node = node.get(part) if isinstance(node, dict) else None
        if info is None:
            return holder, None
        if i == len(loc) - 1:
            return holder, info
        model = None
        for candidate in _unwrap(info.annotation):
            origin = typing.get_origin(candidate)
            if origin in (list, tuple):
                members = [m for arg in typing.get_args(candidate) for m in _unwrap(arg)]
                next_node = node[loc[i + 1]] if isinstance(node, list) and isinstance(loc[i + 1], int) and loc[i + 1] < len(node) else None
                kind = next_node.get("kind", "camera") if isinstance(next_node, dict) else "camera"
                for member in members:
                    if isinstance(member, type) and issubclass(member, BaseModel):
                        tag = member.model_fields.get("kind")
                        if tag is None or tag.default == kind:
                            model = member
                            break
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
            if model is not None:
                break
    return None, info


def _bounds(info: FieldInfo) -> tuple[Any, Any]:
    low = high = None
    for meta in info.metadata:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else (getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else low)
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else (getattr(meta, "lt", None) if getattr(meta, "lt", None) is not None else high)
    return low, high


LineMap = dict[tuple[Any, ...], int]


def yaml_lines(text: str) -> LineMap:
    """Maps key paths to 1-based line numbers, so errors can say where to look."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: LineMap = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                lines[path + (index,)] = value.start_mark.line + 1
                walk(value, path + (index,))

    if root is not None:
        walk(root, ())
    return lines


def problem_at(loc: tuple[Any, ...], lines: LineMap, message: str) -> str:
    """One problem line: the key path as written in the file, the line of the deepest key that exists in
    the file (a missing key points at its parent), then the message."""
    where = ""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            where = f" (line {lines[loc[:cut]]})"
            break
    return f"{_format_path(loc)}{where}: {message}"


def _friendly(error: dict[str, Any], data: Any, lines: LineMap) -> str:
    loc = _strip_tags(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    value = error.get("input")
    holder, info = _field_at(EdgeConfig, loc, data)
    note = f" ({info.description})" if info is not None and info.description else ""
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = sorted(holder.model_fields) if holder is not None else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        listing = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return problem_at(loc, lines, f"unknown key '{key}'; {hint}{listing}")
    if kind == "missing":
        return problem_at(loc, lines, f"required but missing; add it{note}")
    if kind == "union_tag_not_found":
        return problem_at(loc, lines, "no `kind`; add `kind: camera` or `kind: microphone`")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", value)
        return problem_at(loc + ("kind",), lines, f"{tag!r} is not a pipeline kind; write `kind: camera` or `kind: microphone`")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than") and info is not None:
        low, high = _bounds(info)
        if low is not None and high is not None:
            rule = f"must be between {low} and {high}"
        else:
            rule = error["msg"].replace("Input should be", "must be")
        return problem_at(loc, lines, f"{value!r} is not allowed: {rule}{note}")
    if kind == "value_error":
        return problem_at(loc, lines, str(error.get("msg", "")).removeprefix("Value error, "))
    message = str(error.get("msg", "invalid")).replace("Input should be", "must be").replace("String should", "must")
    shown = value if not isinstance(value, (dict, list)) else type(value).__name__
    return problem_at(loc, lines, f"{shown!r} is not allowed: {message[0].lower() + message[1:] if message else message}{note}")


# Rules that span several keys are checked on the raw data, not in pydantic validators: a validator on a
# list or a model only runs once everything inside it is valid, so its problem would show up only after the
# user fixed the others, and `edge config check` promises every problem at once.


def pipeline_entries(data: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) of each pipeline written as a mapping, whatever else is wrong with the data."""
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, list):
        return []
    return [(index, entry) for index, entry in enumerate(pipelines) if isinstance(entry, dict)]


def duplicate_name_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """Pipeline names become MQTT topic levels and metric labels, so two pipelines cannot share one."""
    first: dict[str, int] = {}
    problems: list[str] = []
    for index, entry in pipeline_entries(data):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(problem_at(("pipelines", index, "name"), lines,
                                       f"two pipelines are named {name!r} (also pipelines[{first[name]}]); names must be unique "
                                       "because they become MQTT topics — rename one"))
        else:
            first[name] = index
    return problems


def _number(value: Any) -> Optional[float]:
    """A YAML value as pydantic would read it into a float, or None (pydantic reports it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def reconnect_delay_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """The reconnect backoff doubles from the min delay up to the max; a min above the max is a typo."""
    mqtt = data.get("mqtt")
    if not isinstance(mqtt, dict) or not ({"reconnect_min_delay", "reconnect_max_delay"} & mqtt.keys()):
        return []
    fields = MqttSettings.model_fields
    low = _number(mqtt.get("reconnect_min_delay", fields["reconnect_min_delay"].default))
    high = _number(mqtt.get("reconnect_max_delay", fields["reconnect_max_delay"].default))
    if low is None or high is None or low <= high:
        return []
    key = "reconnect_min_delay" if "reconnect_min_delay" in mqtt else "reconnect_max_delay"
    return [problem_at(("mqtt", key), lines,
                       f"reconnect_min_delay ({low:g} s) is above reconnect_max_delay ({high:g} s); the wait between reconnects "
                       "starts at the min and doubles up to the max, so set min <= max")]


CROSS_KEY_CHECKS = (duplicate_name_problems, reconnect_delay_problems)


def validate_config(data: Any, text: str = "") -> tuple[Optional[EdgeConfig], list[str]]:
    """(the config, []) for valid YAML data, else (None or a config, every problem as one friendly line)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [f"the top level must be a mapping of keys (device_id:, mqtt:, pipelines: ...), got a {type(data).__name__}"]
    lines = yaml_lines(text) if text else {}
    config: Optional[EdgeConfig] = None
    problems: list[str] = []
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_friendly(err, data, lines) for err in exc.errors())
    for check in CROSS_KEY_CHECKS:
        problems.extend(check(data, lines))
    return config, problems


def parse_config(data: Any, source: str = "config", text: str = "") -> EdgeConfig:
    """Validates already-parsed YAML/JSON data; raises ConfigError with one friendly line per problem."""
    config, problems = validate_config(data, text)
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def resolve_path(value: str, base: Path) -> str:
    """Relative paths in the file mean 'next to this config', not 'wherever the daemon was started'."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path))


def resolve_paths(config: EdgeConfig, base: Path) -> None:
    """Makes the config's relative paths (bundles, video files, WAV files, the GGUF) relative to `base`."""
    if config.llm.model:
        config.llm.model = resolve_path(config.llm.model, base)
    for pipeline in config.pipelines:
        pipeline.bundle = resolve_path(pipeline.bundle, base)
        if isinstance(pipeline, CameraPipeline):
            uri = pipeline.source.uri
            if "://" not in uri and not uri.isdigit() and not uri.startswith("/dev/"):
                pipeline.source.uri = resolve_path(uri, base)
        elif pipeline.source.file:
            pipeline.source.file = resolve_path(pipeline.source.file, base)


def read_config_text(path: str | Path) -> str:
    """The file's text; raises ConfigError saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["no such file; copy the example with `edge config example > edge.yaml` and edit it"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read the file ({exc})"]) from None


def parse_yaml(text: str, source: str) -> Any:
    """The YAML's data; raises ConfigError pointing at the line and column of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}not valid YAML ({problem}); check the indentation (spaces, not tabs) and the colons"]) from None


def load_config_text(text: str, source: str, base: Path) -> EdgeConfig:
    """Validates a config's text; relative paths in it are taken relative to `base`."""
    config = parse_config(parse_yaml(text, source), source, text)
    resolve_paths(config, base)
    return config


def load_config(path: str | Path) -> EdgeConfig:
    """Reads and validates a YAML config file; raises ConfigError naming every problem."""
    return load_config_text(read_config_text(path), str(path), Path(path).resolve().parent)


def config_schema() -> dict[str, Any]:
    """JSON Schema of the config, for editors (VS Code's YAML extension reads it)."""
    schema = EdgeConfig.model_json_schema()
    schema["title"] = "EdgeTeach device config"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def example_config_text() -> str:
    return (Path(__file__).parent / "example-config.yaml").read_text(encoding="utf-8")
