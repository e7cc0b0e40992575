"""`edge config check FILE`, `edge config schema` and `edge config example`."""

from __future__ import annotations

import argparse
import json
import sys

from edge.config import ConfigError, EdgeConfig, config_schema, example_config_text, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="check a config file, print its JSON Schema or an example")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser("check", help="validate a YAML config; prints a summary or every problem (exit 1)")
    check.add_argument("file", help="the YAML config, e.g. /etc/edgeteach/edge.yaml")
    check.add_argument("--no-bundles", action="store_true", help="do not open the bundles the pipelines name")
    check.set_defaults(func=run_check)
    schema = sub.add_parser("schema", help="print the JSON Schema of the config (for editors)")
    schema.set_defaults(func=run_schema)
    example = sub.add_parser("example", help="print a commented example config")
    example.set_defaults(func=run_example)


def bundle_problems(config: EdgeConfig) -> list[str]:
    """Opens every enabled pipeline's bundle, so a typo in a path shows up now and not at 3 a.m."""
    from edge.runtime.bundle import BundleError, load_bundle

    problems: list[str] = []
    for index, pipeline in enumerate(config.pipelines):
        if not pipeline.enabled:
            continue
        try:
            bundle = load_bundle(pipeline.bundle)
        except BundleError as exc:
            problems.append(f"pipelines[{index}].bundle ({pipeline.name}): {exc}")
            continue
        want = "image" if pipeline.kind == "camera" else "audio"
        if bundle.task != want:
            problems.append(f"pipelines[{index}].bundle ({pipeline.name}): a {pipeline.kind} pipeline needs an {want} bundle, {pipeline.bundle} is an {bundle.task} bundle")
        elif pipeline.variant not in bundle.variants:
            problems.append(f"pipelines[{index}].variant ({pipeline.name}): the bundle has no {pipeline.variant} model (it has: {', '.join(sorted(bundle.variants))})")
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
            key = f"/dev/video{target.value}" if target.kind == "index" else f"{target.kind}:{target.value}" if target.kind != "device" else str(target.value)
            users.setdefault(key, []).append(p.name)
    return [
        f"pipelines {', '.join(names)} all open camera {device}; a camera serves one reader, so all but one will fail — "
        "use one camera pipeline per camera"
        for device, names in users.items()
        if len(names) > 1
    ]


def summary(config: EdgeConfig) -> str:
    lines = [
        f"device_id: {config.device_id}",
        f"mqtt: {config.mqtt.host}:{config.mqtt.port} prefix {config.mqtt.topic_prefix or 'edgeteach/' + config.device_id}",
        f"health: {'http://%s:%d' % (config.health.host, config.health.port) if config.health.enabled else 'off'}",
        f"llm: {'on (' + str(config.llm.model) + ')' if config.llm.enabled else 'off'}",
        f"pipelines: {len(config.pipelines)}",
    ]
    for p in config.pipelines:
        where = p.source.uri if p.kind == "camera" else (p.source.file or f"device {p.source.device}")
        state = "" if p.enabled else " (disabled)"
        lines.append(f"  - {p.name}: {p.kind} {where} -> {p.bundle} [{p.variant}], threshold {p.threshold}, smoothing {p.smoothing.method}{state}")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    problems = [] if args.no_bundles else bundle_problems(config)
    if problems:
        print(str(ConfigError(args.file, problems)), file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    print(summary(config))
    for warning in shared_device_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_schema(), indent=2))
    return 0


def run_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_config_text())
    return 0
