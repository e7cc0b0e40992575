"""Process and board figures for `stats` and `/metrics`: CPU, memory, SoC temperature."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import psutil

_process = psutil.Process(os.getpid())
_process.cpu_percent(None)  # the first reading is always 0; prime it so the next one means something


def process_stats() -> dict[str, float | int | None]:
    memory = _process.memory_info()
    return {
        "cpu_percent": round(_process.cpu_percent(None), 1),  # since the previous call; 100 = one core
        "rss_bytes": int(memory.rss),
        "threads": _process.num_threads(),
        "soc_temperature_c": soc_temperature(),
    }


def soc_temperature() -> float | None:
    """The hottest thermal zone in °C (the SoC on a Pi or Jetson), None where the kernel exposes none
    (containers, most x86 VMs)."""
    hottest: float | None = None
    for path in glob.glob("/sys/class/thermal/thermal_zone*/temp"):
        try:
            millidegrees = int(Path(path).read_text().strip())
        except (OSError, ValueError):
            continue
        celsius = millidegrees / 1000.0
        if -40.0 < celsius < 150.0 and (hottest is None or celsius > hottest):
            hottest = celsius
    return round(hottest, 1) if hottest is not None else None
