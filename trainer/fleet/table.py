"""The devices as a table (`trainer fleet ls`, and live during `deploy` and `rollback`)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from edge.fleet.controller import DeviceView

COLUMNS = ("device", "online", "group", "model", "job", "status", "fps", "temp")


def row(view: DeviceView) -> tuple[str, ...]:
    state, progress = view.state, view.progress
    status: str = state.status if state is not None else "-"
    job = state.job_id if state is not None and state.job_id else "-"
    if progress is not None and state is not None and progress.job_id == state.job_id and state.status == "accepted":
        # the retained state skips the download's steps; the progress topic has them
        status = f"downloading {progress.percent or 0:.0f}%" if progress.status == "downloading" else progress.status
    if state is not None and state.reason and status in ("failed", "rolled_back"):
        status = f"{status}: {state.reason}"
    online = {True: "yes", False: "no", None: "?"}[view.online]
    fps = f"{view.fps:.1f}" if view.fps is not None else "-"
    temp = f"{view.temperature_c:.0f}C" if view.temperature_c is not None else "-"
    return (view.device_id, online, view.group or "-", view.model, job, status[:70], fps, temp)


def render(views: dict[str, DeviceView]) -> str:
    rows = [COLUMNS, *(row(views[name]) for name in sorted(views))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip() for r in rows)


class LiveReport:
    """The rollout's `report` callback: on a terminal the whole table redrawn (at most twice a second); elsewhere
    (a log, a CI job) one line per device whose status changed."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self._last: dict[str, str] = {}
        self._drawn_at = 0.0

    def __call__(self, message: str, views: dict[str, DeviceView]) -> None:
        if message:
            print(message, file=self.out, flush=True)
        if self.tty:
            if time.monotonic() - self._drawn_at >= 0.5 or message:
                self._drawn_at = time.monotonic()
                print("\033[2J\033[H" + render(views), file=self.out, flush=True)
            return
        for name in sorted(views):
            cells = row(views[name])
            line = f"{name}: {cells[5]} ({cells[3]})"
            if self._last.get(name) != line:
                self._last[name] = line
                print(line, file=self.out, flush=True)
