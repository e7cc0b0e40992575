"""`edge`, the device's command line: `main` parses and runs (the `edge` console script), `build_parser`
wires the sub-commands of `commands/` (each a module with `register(subparsers)`, thin argument parsing over
the layers below). `python -m edge.cli` is the same command."""

from __future__ import annotations

from edge.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
