"""`edge config check FILE`, `edge config schema` and `edge config example` (the logic is in edge.tools.config_check)."""

from __future__ import annotations

import argparse
import json
import sys

from edge.config import ConfigError, config_schema, example_config_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="check a config file, print its JSON Schema or an example")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="validate a YAML config and open its bundles; prints a summary or every problem (exit 1)",
        description="Reports every problem at once, each with its key path and line: the file's keys and values, "
        "duplicate or reserved pipeline names, and what the file points at (each enabled pipeline's bundle, loaded "
        "and run once in ONNX Runtime, and mqtt.password_file).",
    )
    check.add_argument("file", help="the YAML config (e.g. /etc/edgeteach/config.yaml), or - to read it from standard input")
    check.add_argument("--no-bundles", action="store_true", help="do not open the bundles the pipelines name (e.g. on a workstation)")
    check.set_defaults(func=run_check)
    schema = sub.add_parser("schema", help="print the JSON Schema of the config (for editors)")
    schema.set_defaults(func=run_schema)
    example = sub.add_parser("example", help="print a commented example config")
    example.set_defaults(func=run_example)


def run_check(args: argparse.Namespace) -> int:
    from edge.tools.config_check import check_config, summary

    report = check_config(args.file, open_bundles=not args.no_bundles)
    if not report.ok or report.config is None:
        print(str(ConfigError(report.source, report.problems)), file=sys.stderr)
        return 1
    print(f"{report.source}: OK")
    print(summary(report.config))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_schema(), indent=2))
    return 0


def run_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_config_text())
    return 0
