"""Where things are, for tests at any depth of tests/: the repository root and the tests folder (tests/data
holds files that ship with the repository)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
