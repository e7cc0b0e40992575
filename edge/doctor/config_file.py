"""The config file: present, readable by this user, valid."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from edge.doctor.base import DEFAULT_CONFIG, CheckResult, DoctorOptions, active_pipelines

if TYPE_CHECKING:
    from edge.config import EdgeConfig


def check_config(options: DoctorOptions) -> tuple[list[CheckResult], EdgeConfig | None]:
    path = options.config_path
    if path is None:
        return [CheckResult("config", "warn", f"no config given and none at {DEFAULT_CONFIG}; broker, bundles and sources are not checked",
                            "pass one: `edge doctor -c edge.yaml` (start from `edge config example`)")], None
    if not path.exists() and not options.config_explicit:
        return [CheckResult("config", "warn", f"no config at {path}; broker, bundles and sources are not checked",
                            "install one with `sudo deploy/install.sh`, or pass `-c FILE`")], None
    from edge.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        fix = f"edit {path} and run `edge config check {path}` until it passes"
        if any("Permission denied" in line for line in exc.errors):
            fix = ("run the doctor as the service user, who can read it: "
                   f"`sudo -u edgeteach {sys.argv[0] if sys.argv else 'edge'} doctor -c {path}`")
        return [CheckResult("config", "fail", "; ".join(exc.errors), fix)], None
    pipelines = active_pipelines(config)
    return [CheckResult("config", "ok",
                        f"{path}: device_id {config.device_id}, {len(pipelines)} active pipeline(s), llm "
                        f"{'on' if config.llm.enabled else 'off'}")], config
