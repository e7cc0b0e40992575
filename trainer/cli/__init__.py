"""`trainer`, the workstation's command line: `main` parses and runs (the `trainer` console script),
`build_parser` wires the sub-commands of `commands/` (each a module with `register(subparsers)`).
`python -m trainer.cli` is the same command."""

from __future__ import annotations

from trainer.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
