#!/usr/bin/env bash
# The whole loop on built-in data: generate image and sound samples, train (or reuse), export the bundles,
# evaluate them, print the reports, then run both live in the device daemon on a sample video and a sample
# sound file and print its MQTT messages (~20 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh edge trainer
exec .venv/bin/trainer demo --out "${DEMO_OUT:-demo-out}" "$@"
