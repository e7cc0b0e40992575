#!/usr/bin/env bash
# Runs the whole test suite, installing everything it needs first (idempotent).
# Extra arguments go to pytest, e.g. scripts/test.sh -k mqtt
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh edge trainer llm dev
scripts/fetch-test-models.sh   # real GGUF models for the LLM tests (install time, cached; tests stay offline)
exec .venv/bin/python -m pytest -q -rs "$@"
