"""What every check returns and takes. Each check returns rows of (status, name, detail, fix). `fail` means
something the configured service NEEDS is broken (the command exits non-zero); `warn` is worth knowing but
the service can run; `skip` means the check does not apply here (no such hardware, feature off)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from edge.config import EdgeConfig, PipelineConfig

Status = Literal["ok", "warn", "fail", "skip"]

DEFAULT_CONFIG = Path("/etc/edgeteach/config.yaml")
STATE_DIR = Path("/var/lib/edgeteach")


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorOptions:
    config_path: Path | None = None
    config_explicit: bool = False  # a config named on the command line must exist
    mqtt_timeout_s: float = 3.0
    open_sources: bool | None = None  # open cameras and grab a frame; None: yes unless edgeteach.service runs (it holds them)
    service_holds_sources: bool = False  # set by run_checks when it decided not to open them for that reason
    source_timeout_s: float = 8.0


def active_pipelines(config: EdgeConfig | None) -> list[PipelineConfig]:
    """The enabled pipelines of the config (none without one)."""
    return [] if config is None else config.active_pipelines
