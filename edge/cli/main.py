"""`edge` command line. Each sub-command lives in its own module with `register(subparsers)`; this file
only wires them up, so the logic stays testable without the CLI."""

from __future__ import annotations

import argparse
import sys

from edge.core import clikit

# Modules that provide `register(subparsers: argparse._SubParsersAction) -> None`.
COMMAND_MODULES = [
    "edge.cli.commands.predict",
    "edge.cli.commands.config",
    "edge.cli.commands.collect",
    "edge.cli.commands.run",
    "edge.cli.commands.llm",
    "edge.cli.commands.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    return clikit.build_parser("edge", "EdgeTeach on the device: live classifiers over MQTT and a local LLM.", COMMAND_MODULES)


def main(argv: list[str] | None = None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
