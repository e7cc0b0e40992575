#!/usr/bin/env bash
# Lint and types (docs/testing.md, "Lint and types"): ruff (rule set in pyproject's [tool.ruff.lint]) and mypy
# ([tool.mypy]: strict for edge.core, edge.config and edge.mqtt). Exits non-zero on any finding.
# Needs the dev extra (scripts/test.sh installs it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
status=0
.venv/bin/ruff check edge trainer tests bench scripts || status=1
.venv/bin/mypy || status=1
exit "$status"
