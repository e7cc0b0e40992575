#!/usr/bin/env bash
# The whole loop on built-in data: generate samples, train, export a bundle, evaluate it, print the report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh edge trainer
exec .venv/bin/trainer demo --out "${DEMO_OUT:-demo-out}" "$@"
