"""What `edge config check` knows about a config before the daemon starts.

Beyond the file's own rules (edge.config), it opens what the file points at: each enabled pipeline's bundle
(manifest, checksums, and an ONNX Runtime session built and run once, so a damaged model shows up now and not
at 3 a.m.) and `mqtt.password_file`. Every problem comes out in one run, each with its key path and line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edge.config import (
    ConfigError,
    EdgeConfig,
    LineMap,
    PipelineConfig,
    parse_yaml,
    pipeline_entries,
    problem_at,
    read_config_text,
    resolve_path,
    resolve_paths,
    validate_config,
    yaml_lines,
)
from edge.config.pipelines import bundle_task_mismatch

STDIN = "-"


@dataclass
class CheckReport:
    source: str
    config: EdgeConfig | None  # set only when there is no problem
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_source(path: str) -> tuple[str, str, Path]:
    """(text, name for messages, folder that relative paths are relative to). `-` reads standard input, so
    `edge config example | edge config check -` works; its relative paths are then taken from the current folder."""
    if path == STDIN:
        return sys.stdin.read(), "<stdin>", Path.cwd()
    return read_config_text(path), path, Path(path).resolve().parent


def password_file_problems(data: Any, lines: LineMap) -> list[str]:
    """The daemon reads mqtt.password_file when it connects; a missing or unreadable file would only show up
    as a broker refusal later, so read it now, with the daemon's own reader (same path rules, same message)."""
    from edge.config.mqtt import MqttSettings
    from edge.mqtt.connection import MqttConfigError, read_password

    mqtt = data.get("mqtt") if isinstance(data, dict) else None
    password_file = mqtt.get("password_file") if isinstance(mqtt, dict) else None
    if not isinstance(password_file, str) or not password_file:
        return []
    try:
        read_password(MqttSettings(password_file=password_file))
    except MqttConfigError as exc:
        return [problem_at(("mqtt", "password_file"), lines, str(exc).removeprefix("mqtt.password_file: "))]
    return []


def open_bundle(pipeline: PipelineConfig, path: str) -> tuple[str, str] | None:
    """None when the pipeline's bundle loads and runs, else (the key to blame, what is wrong)."""
    import numpy as np

    from edge.core.bundle import BundleError, load_bundle
    from edge.core.session import Classifier

    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        return "bundle", str(exc)
    want = bundle_task_mismatch(pipeline.kind, bundle.task)
    if want:
        return "bundle", f"a {pipeline.kind} pipeline needs an {want} bundle, {path} is an {bundle.task} bundle"
    if pipeline.variant not in bundle.variants:
        return "variant", f"the bundle has no {pipeline.variant} model (it has: {', '.join(sorted(bundle.variants))})"
    try:
        # CPU only: the point is that the model file loads, matches its manifest and runs. TensorRT would
        # spend minutes compiling an engine here; which providers work is `edge doctor`'s job.
        classifier = Classifier(bundle, variant=pipeline.variant, threads=1, providers=["cpu"])
        shape = [1 if d < 0 else d for d in bundle.input.shape]
        classifier.run(np.zeros(shape, dtype=np.uint8 if bundle.input.dtype == "uint8" else np.float32))
    except BundleError as exc:
        return "bundle", str(exc)
    except Exception as exc:  # onnxruntime raises private exception types when a graph fails to run
        return "bundle", (f"{bundle.model_path(pipeline.variant)}: ONNX Runtime cannot run it ({type(exc).__name__}: {exc}); "
                          "re-export it with `trainer train`")
    return None


def bundle_problems(data: Any, base: Path, lines: LineMap) -> list[str]:
    """Opens the bundle of every enabled pipeline that is itself valid, even when other parts of the file
    are not, so the bundle problems come out together with the others."""
    # Annotated alias: mypy's incremental cache reads it back as a bare union and then rejects the call
    adapter: TypeAdapter[PipelineConfig] = TypeAdapter(PipelineConfig)  # type: ignore[arg-type,unused-ignore]
    problems: list[str] = []
    for index, entry in pipeline_entries(data):
        try:
            pipeline = adapter.validate_python(entry)
        except ValidationError:
            continue  # validate_config reports it
        if not pipeline.enabled:
            continue
        problem = open_bundle(pipeline, resolve_path(pipeline.bundle, base))
        if problem is not None:
            key, message = problem
            problems.append(problem_at(("pipelines", index, key), lines, message))
    return problems


def shared_device_warnings(config: EdgeConfig) -> list[str]:
    """A webcam can be opened by one program at a time: two pipelines on one device means one of them
    fails and keeps restarting. Files and streams can be shared, so they are not flagged."""
    from edge.sources.camera import SourceError, parse_camera_uri

    users: dict[str, list[str]] = {}
    for p in config.active_pipelines:
        if p.kind != "camera":
            continue
        try:
            target = parse_camera_uri(p.source.uri)
        except SourceError:
            continue
        if target.kind in ("index", "device", "csi", "picamera2"):
            key = (f"/dev/video{target.value}" if target.kind == "index"
                   else f"{target.kind}:{target.value}" if target.kind != "device" else str(target.value))
            users.setdefault(key, []).append(p.name)
    return [
        f"pipelines {', '.join(names)} all open camera {device}; a camera serves one reader, so all but one will fail — "
        "use one camera pipeline per camera"
        for device, names in users.items()
        if len(names) > 1
    ]


def check_config(path: str, open_bundles: bool = True) -> CheckReport:
    """Every problem of the config at `path` (or `-`, standard input) and of the files it names."""
    try:
        text, source, base = read_source(path)
        data = parse_yaml(text, source)
    except ConfigError as exc:
        return CheckReport(exc.source, None, exc.errors)
    config, problems = validate_config(data, text)
    lines = yaml_lines(text)
    problems += password_file_problems(data, lines)
    if open_bundles:
        problems += bundle_problems(data, base, lines)
    if problems or config is None:
        return CheckReport(source, None, problems)
    resolve_paths(config, base)
    return CheckReport(source, config, [], shared_device_warnings(config))


def summary(config: EdgeConfig) -> str:
    """What the daemon would run, one line per pipeline, for a person to compare with what they meant."""
    lines = [
        f"device_id: {config.device_id}",
        f"mqtt: {config.mqtt.host}:{config.mqtt.port} prefix {config.mqtt.topic_prefix or 'edgeteach/' + config.device_id}",
        f"health: {f'http://{config.health.host}:{config.health.port}' if config.health.enabled else 'off'}",
        f"llm: {'on (' + str(config.llm.model) + ')' if config.llm.enabled else 'off'}",
        f"pipelines: {len(config.pipelines)}",
    ]
    for p in config.pipelines:
        where = p.source.uri if p.kind == "camera" else (p.source.file or f"device {p.source.device}")
        state = "" if p.enabled else " (disabled)"
        lines.append(f"  - {p.name}: {p.kind} {where} -> {p.bundle} [{p.variant}], threshold {p.threshold}, smoothing "
                     f"{p.smoothing.method}{state}")
    return "\n".join(lines)
