"""Runs one pipeline from a YAML config in this process and prints JSON lines (decisions, statuses,
final stats). Tests start it as a subprocess when the environment must differ (ALSA config for the
file-plugin microphone must be in place before PortAudio initialises).

    python -m tests.support.run_pipeline CONFIG.yaml SECONDS
"""

from __future__ import annotations

import json
import sys
import time

from edge.config import load_config
from edge.pipelines import build_pipeline
from edge.pipelines.base import Decision


def main(argv: list[str]) -> int:
    config = load_config(argv[0])
    seconds = float(argv[1])
    out = sys.stdout

    def on_decision(d: Decision) -> None:
        out.write(json.dumps({"type": "decision", "changed": d.changed, **d.to_payload()}) + "\n")
        out.flush()

    def on_status(name: str, state: str, detail: str) -> None:
        out.write(json.dumps({"type": "status", "pipeline": name, "state": state, "detail": detail}) + "\n")
        out.flush()

    pipelines = [build_pipeline(cfg, on_decision, on_status) for cfg in config.active_pipelines]
    for p in pipelines:
        p.start()
    time.sleep(seconds)
    for p in pipelines:
        p.stop()
        out.write(json.dumps({"type": "stats", **p.stats()}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
