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


def hottest_thermal_zone() -> tuple[float, str] | None:
    """(°C, the zone's type) of the hottest thermal zone (the SoC on a Pi or Jetson), None where the kernel
    exposes none (containers, most x86 VMs); readings outside -40..150 °C are a broken sensor, not heat."""
    hottest: tuple[float, str] | None = None
    for zone in glob.glob("/sys/class/thermal/thermal_zone*"):
        try:
            celsius = int(Path(zone, "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        if -40.0 < celsius < 150.0 and (hottest is None or celsius > hottest[0]):
            try:
                kind = Path(zone, "type").read_text().strip()
            except OSError:
                kind = Path(zone).name
            hottest = (celsius, kind)
    return hottest


def soc_temperature() -> float | None:
    """The hottest thermal zone in °C, rounded to 0.1; None where the kernel exposes none."""
    hottest = hottest_thermal_zone()
    return round(hottest[0], 1) if hottest is not None else None
