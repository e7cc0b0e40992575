"""Keeps one source running: restarts it with exponential backoff when it fails or ends, and reports
every state change, so a dead camera is visible (and recovers) while the rest of the daemon carries on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.core.backoff import Backoff
from edge.sources.base import AudioSource, FrameSource, SourceEnded, SourceError, StatusCallback

log = logging.getLogger(__name__)

# States reported through the StatusCallback (pipeline name, state, detail).
STARTING = "starting"  # opening the device/stream/file
RUNNING = "running"  # data is flowing
ENDED = "ended"  # a file reached its end (a restart follows)
FAILED = "failed"  # could not open, read error or stall (a restart follows)
RESTARTING = "restarting"  # waiting out the backoff before the next open
STOPPED = "stopped"  # stopped on request

Source = FrameSource | AudioSource


class SourceSupervisor:
    """Runs `factory()`'s source in its own thread and hands every item (Frame or AudioBlock) to `on_item`."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Source],
        on_item: Callable[[Any], None],
        on_status: StatusCallback | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.on_item = on_item
        self.on_status = on_status
        self.backoff = backoff or Backoff()
        self.state = STOPPED
        self.detail = ""
        self.restarts = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _set(self, state: str, detail: str = "") -> None:
        with self._lock:
            self.state, self.detail = state, detail
        (log.warning if state in (FAILED, ENDED) else log.info)("%s: source %s%s", self.name, state, f" ({detail})" if detail else "")
        if self.on_status is not None:
            try:
                self.on_status(self.name, state, detail)
            except Exception:  # a broken status consumer must not kill the capture thread
                log.exception("%s: status callback failed", self.name)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            self._set(STARTING, "" if first else f"restart {self.restarts}")
            first = False
            started = time.monotonic()
            source: Source | None = None
            outcome, detail = FAILED, ""
            try:
                source = self.factory()
                source.open()
                running = False
                while not self._stop.is_set():
                    item = source.read()
                    if not running:
                        running = True
                        self._set(RUNNING, getattr(source, "description", ""))
                    try:
                        self.on_item(item)
                    except Exception:
                        log.exception("%s: pipeline failed to take an item; carrying on", self.name)
            except SourceEnded as exc:
                outcome, detail = ENDED, str(exc)
            except SourceError as exc:
                outcome, detail = FAILED, str(exc)
            except Exception as exc:  # a backend bug must become a restart, never a dead thread
                log.exception("%s: unexpected source error", self.name)
                outcome, detail = FAILED, f"{exc.__class__.__name__}: {exc}"
            finally:
                if source is not None:
                    try:
                        source.close()
                    except Exception:
                        log.exception("%s: closing the source failed", self.name)
            if self._stop.is_set():
                break
            self.last_error = detail
            self._set(outcome, detail)
            delay = self.backoff.next_delay(time.monotonic() - started)
            self.restarts += 1
            self._set(RESTARTING, f"in {delay:.1f} s (restart {self.restarts})")
            if self._stop.wait(delay):
                break
        self._set(STOPPED)
