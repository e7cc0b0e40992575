"""The whole device config (`EdgeConfig`, one YAML file) and how it is read: every problem at once, each
with its key path and line (edge.config.errors), relative paths taken from the file's folder."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from edge.config.base import StrictModel
from edge.config.dashboard import DashboardSettings
from edge.config.errors import ConfigError, friendly_problem, yaml_lines
from edge.config.fleet import FleetSettings
from edge.config.health import HealthSettings
from edge.config.llm import LlmSettings
from edge.config.mqtt import MqttSettings
from edge.config.pipelines import CameraPipelineConfig, MicrophonePipelineConfig, PipelineConfig
from edge.config.rules import CROSS_KEY_CHECKS


def sanitise_device_id(raw: str) -> str:
    """Hostnames may hold dots and capitals; MQTT topic levels and HA object ids are safest in [a-z0-9_-]."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", raw.strip().lower()).strip("-")
    return cleaned[:64] or "edgeteach"


def default_device_id() -> str:
    return sanitise_device_id(socket.gethostname().split(".")[0])


class EdgeConfig(StrictModel):
    device_id: str = Field(default_factory=default_device_id, description="this device's name in MQTT topics (default: the hostname)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    pipelines: list[PipelineConfig] = Field(default_factory=list, description="camera and microphone classifiers")
    models_dir: str | None = Field(
        None, min_length=1,
        description="`cmd/reload` loads bundles only from inside this folder (symlinks resolved); default: the config file's folder",
    )

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
    def active_pipelines(self) -> list[CameraPipelineConfig | MicrophonePipelineConfig]:
        return [p for p in self.pipelines if p.enabled]


def validate_config(data: Any, text: str = "") -> tuple[EdgeConfig | None, list[str]]:
    """(the config, []) for valid YAML data, else (None or a config, every problem as one friendly line)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [f"the top level must be a mapping of keys (device_id:, mqtt:, pipelines: ...), got a {type(data).__name__}"]
    lines = yaml_lines(text) if text else {}
    config: EdgeConfig | None = None
    problems: list[str] = []
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(friendly_problem(err, data, lines, EdgeConfig) for err in exc.errors())
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
    """Makes the config's relative paths (bundles, video files, WAV files, the GGUF, models_dir, the dashboard's
    password_file) relative to `base`; models_dir left out means `base` itself."""
    config.models_dir = resolve_path(config.models_dir, base) if config.models_dir else str(base)
    if config.llm.model:
        config.llm.model = resolve_path(config.llm.model, base)
    config.fleet.public_keys = [resolve_path(key, base) for key in config.fleet.public_keys]
    if config.dashboard.password_file:
        config.dashboard.password_file = resolve_path(config.dashboard.password_file, base)
    for pipeline in config.pipelines:
        pipeline.bundle = resolve_path(pipeline.bundle, base)
        if isinstance(pipeline, CameraPipelineConfig):
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
