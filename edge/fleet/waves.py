"""Rollout waves and the abort threshold (AWS IoT Jobs' rollout rate and abort criteria, in their simplest form):
a fraction of the devices at a time, and no further wave once too many of the devices tried have failed."""

from __future__ import annotations

import math
from collections.abc import Sequence


def parse_fraction(text: str) -> float:
    """"20%" or "0.2" -> 0.2; raises ValueError saying what is accepted."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not a share: give a percentage such as 20% (or a fraction such as 0.2)") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{text!r} is not between 0% and 100%")
    return value


def plan_waves(devices: Sequence[str], wave: float | None) -> list[list[str]]:
    """The devices in waves of ceil(wave x N) (at least one device each); one wave when `wave` is None or 100%."""
    ordered = sorted(devices)
    if not ordered:
        return []
    size = len(ordered) if wave is None or wave <= 0 else max(1, math.ceil(wave * len(ordered)))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def should_abort(failed: int, attempted: int, abort_above: float | None) -> bool:
    """Whether the share of failed devices among those attempted so far is above `abort_above`."""
    return abort_above is not None and attempted > 0 and failed / attempted > abort_above
