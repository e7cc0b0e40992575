"""The device's one YAML config, validated into typed models: one module per section (`mqtt`, `health`, `llm`,
`pipelines`), the whole file and its loading (`edge`), friendly errors (`errors`) and the rules that span
several keys (`rules`). Imports nothing from `edge` outside this package, so every layer may read it.

The public names are re-exported here: `from edge.config import EdgeConfig, load_config`.
"""

from __future__ import annotations

from edge.config.base import StrictModel
from edge.config.edge import (
    EdgeConfig,
    config_schema,
    default_device_id,
    example_config_text,
    load_config,
    load_config_text,
    parse_config,
    parse_yaml,
    read_config_text,
    resolve_path,
    resolve_paths,
    sanitise_device_id,
    validate_config,
)
from edge.config.errors import ConfigError, LineMap, problem_at, yaml_lines
from edge.config.health import HealthSettings
from edge.config.llm import LlmSettings
from edge.config.mqtt import DiscoverySettings, MqttSettings, TlsSettings
from edge.config.pipelines import (
    NAME_PATTERN,
    PROVIDERS,
    RESERVED_NAMES,
    CameraPipelineConfig,
    CameraSourceConfig,
    MicrophonePipelineConfig,
    MicrophoneSourceConfig,
    PipelineConfig,
    PipelineConfigBase,
    PublishSettings,
    SmoothingSettings,
)
from edge.config.rules import pipeline_entries

__all__ = [
    "NAME_PATTERN",
    "PROVIDERS",
    "RESERVED_NAMES",
    "CameraPipelineConfig",
    "CameraSourceConfig",
    "ConfigError",
    "DiscoverySettings",
    "EdgeConfig",
    "HealthSettings",
    "LineMap",
    "LlmSettings",
    "MicrophonePipelineConfig",
    "MicrophoneSourceConfig",
    "MqttSettings",
    "PipelineConfig",
    "PipelineConfigBase",
    "PublishSettings",
    "SmoothingSettings",
    "StrictModel",
    "TlsSettings",
    "config_schema",
    "default_device_id",
    "example_config_text",
    "load_config",
    "load_config_text",
    "parse_config",
    "parse_yaml",
    "pipeline_entries",
    "problem_at",
    "read_config_text",
    "resolve_path",
    "resolve_paths",
    "sanitise_device_id",
    "validate_config",
    "yaml_lines",
]
