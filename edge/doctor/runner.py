"""Running every check in order, each guarded so one broken check cannot hide the others (it becomes a
`fail` row naming the exception), and the report: a table for people, JSON for scripts, the exit code."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from edge.doctor.base import CheckResult, DoctorOptions, active_pipelines
from edge.doctor.broker import check_broker
from edge.doctor.bundles import check_bundle
from edge.doctor.cameras import check_camera_source, check_cameras
from edge.doctor.client_id import check_client_id
from edge.doctor.config_file import check_config
from edge.doctor.dashboard import check_dashboard
from edge.doctor.llm import check_llm
from edge.doctor.machine import check_packages, check_providers, check_python, is_raspberry_pi
from edge.doctor.microphones import check_microphone_source, check_microphones
from edge.doctor.resources import check_disk, check_memory, check_services, check_temperature, check_throttling


def _guard(name: str, fn: Callable[[], Iterable[CheckResult] | CheckResult]) -> list[CheckResult]:
    try:
        result = fn()
    except Exception as exc:  # a broken check must not hide the others
        return [CheckResult(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                            "report this with the output of `edge doctor --json`")]
    return [result] if isinstance(result, CheckResult) else list(result)


def service_active(unit: str = "edgeteach.service") -> bool:
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return False
    try:
        return subprocess.run(["systemctl", "is-active", "--quiet", unit], timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_checks(options: DoctorOptions) -> list[CheckResult]:
    if options.open_sources is None:
        # A camera streams to one program at a time: opening it under the running service would only
        # report "busy" for a camera that works.
        active = service_active()
        options = replace(options, open_sources=not active, service_holds_sources=active)
    rows: list[CheckResult] = []
    rows += _guard("python", check_python)
    config_rows, config = check_config(options)
    pipelines = active_pipelines(config)
    needs_portaudio = any(p.kind == "microphone" and not p.source.file for p in pipelines)
    rows += _guard("packages", lambda: check_packages(needs_portaudio))
    rows += config_rows
    rows += _guard("onnxruntime providers", lambda: check_providers(config))
    rows += _guard("cameras", lambda: check_cameras(config))
    rows += _guard("microphones", lambda: check_microphones(config))
    if config is not None:
        mqtt_rows = _guard("mqtt", lambda: check_broker(config, options.mqtt_timeout_s))
        rows += mqtt_rows
        if mqtt_rows and mqtt_rows[0].status == "ok":  # watched only on a broker that answers
            rows += _guard("mqtt client id", lambda: check_client_id(config, options.mqtt_timeout_s))
        for index, pipeline in enumerate(config.pipelines):
            if not pipeline.enabled:
                continue
            rows += _guard(f"bundle {pipeline.name}", partial(check_bundle, index, pipeline))
            if pipeline.kind == "camera":
                rows += _guard(f"camera {pipeline.name}", partial(check_camera_source, index, pipeline, options))
            else:
                rows += _guard(f"microphone {pipeline.name}", partial(check_microphone_source, index, pipeline))
    rows += _guard("llm", lambda: check_llm(config))
    rows += _guard("dashboard", lambda: check_dashboard(config))
    rows += _guard("memory", check_memory)
    rows += _guard("disk", check_disk)
    rows += _guard("temperature", check_temperature)
    if is_raspberry_pi() or shutil.which("vcgencmd"):
        rows += _guard("throttling", check_throttling)
    rows += _guard("service", lambda: check_services(config))
    return rows


def exit_code(rows: list[CheckResult]) -> int:
    return 1 if any(row.status == "fail" for row in rows) else 0


def as_json(rows: list[CheckResult], config_path: Path | None) -> dict[str, Any]:
    return {
        "ok": exit_code(rows) == 0,
        "config": str(config_path) if config_path else None,
        "failures": sum(row.status == "fail" for row in rows),
        "warnings": sum(row.status == "warn" for row in rows),
        "checks": [asdict(row) for row in rows],
    }


def format_table(rows: list[CheckResult], color: bool = False) -> str:
    labels = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}
    colors = {"ok": "\033[32m", "warn": "\033[33m", "fail": "\033[31;1m", "skip": "\033[2m"}
    width = max([len(row.name) for row in rows] + [5])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for row in rows:
        label = f"{labels[row.status]:<6}"
        if color:
            label = f"{colors[row.status]}{label}\033[0m"
        lines.append(f"{label}  {row.name:<{width}}  {row.detail}")
        if row.fix and row.status in ("fail", "warn"):
            lines.append(f"{'':<6}  {'':<{width}}  fix: {row.fix}")
    failures = sum(row.status == "fail" for row in rows)
    warnings = sum(row.status == "warn" for row in rows)
    if failures:
        lines.append(f"\n{failures} problem(s) to fix (FAIL) and {warnings} warning(s): the service cannot work as configured "
                     "until each FAIL is fixed.")
    elif warnings:
        lines.append(f"\nNo problems; {warnings} warning(s) worth a look.")
    else:
        lines.append("\nAll checks passed.")
    return "\n".join(lines)
