"""`edge` command line. Each sub-command lives in its own module with `register(subparsers)`; this file
only wires them up, so the logic stays testable without the CLI."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that provide `register(subparsers: argparse._SubParsersAction) -> None`.
COMMAND_MODULES = [
    "edge.commands.predict",
    "edge.commands.config",
    "edge.commands.collect",
    "edge.commands.run",
    "edge.commands.llm",
    "edge.commands.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="EdgeTeach on the device: live classifiers over MQTT and a local LLM.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
