"""Sub-commands of the `trainer` CLI: thin argument parsing over library code."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any


def option_defaults(options: type, *names: str) -> dict[str, Any]:
    """The defaults of an options dataclass, by field name: the CLI takes its defaults (and the "default N" of its
    help) from the dataclass the library runs with, so each is defined once."""
    found = {f.name: f.default for f in fields(options) if f.name in names and f.default is not MISSING}
    missing = set(names) - set(found)
    if missing:
        raise KeyError(f"{options.__name__} has no plain default for {sorted(missing)}")
    return found
