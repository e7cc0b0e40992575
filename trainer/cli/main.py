"""`trainer` command line. Each sub-command lives in its own module with `register(subparsers)`; this file
only wires them up, so the logic stays testable without the CLI."""

from __future__ import annotations

import argparse
import sys

from edge.core import clikit

# Modules that provide `register(subparsers: argparse._SubParsersAction) -> None`.
COMMAND_MODULES = [
    "trainer.cli.commands.train",
    "trainer.cli.commands.evaluate",
    "trainer.cli.commands.import_tm",
    "trainer.cli.commands.demo",
    "trainer.cli.commands.studio",
    "trainer.cli.commands.fleet",
]


def build_parser() -> argparse.ArgumentParser:
    return clikit.build_parser("trainer", "EdgeTeach trainer: folders of images or sounds in, a checked ONNX bundle out.", COMMAND_MODULES)


def main(argv: list[str] | None = None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
