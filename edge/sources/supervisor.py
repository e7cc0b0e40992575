"""Keeps one source running: restarts it with exponential backoff when it fails, ends or stalls, and reports
every state change, so a dead camera is visible (and recovers) while the rest of the daemon carries on.

Why two kinds of thread: a camera driver can block in read() forever without an error (a CSI/GStreamer
pipeline or libcamera that stops delivering). Such a thread cannot be killed, so it must not be the one that
notices. Each open of a source gets its own *reader* thread (open, read, hand items on); the supervisor's own
thread only watches it: when no item came for the source's `stall_timeout_s`, the source is declared failed
("stalled"), `close()` is tried from the watching thread to unblock the read, and a reader still stuck after
that is abandoned (a daemon thread, never joined forever) while a fresh one opens the source again after the
usual backoff. Items are handed on under a lock that also marks which reader is current, so a late frame
from an abandoned reader is dropped, never classified."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

WATCH_INTERVAL_S = 0.1  # how often the supervisor looks at its reader: the stall detection's resolution
# A source with a read timeout of its own (a microphone's queue, FFmpeg's stream timeout) fails with its own,
# more precise error at stall_timeout_s; the supervisor steps in only this much later, for reads that block.
STALL_GRACE_S = 1.0
CLOSE_WAIT_S = 2.0  # how long close() may take when called to unblock a stuck read (it may block as well)
READER_EXIT_WAIT_S = 1.0  # after close(), how long a reader gets to come out of read() before it is abandoned
MAX_STUCK_READERS = 4  # abandoned readers still alive; beyond this no new one is started (each holds a thread)


@dataclass
class _Attempt:
    """One open of the source, run by one reader thread."""

    number: int
    source: Source | None = None
    outcome: str = FAILED
    detail: str = ""
    running: bool = False  # has delivered at least one item
    last_activity: float = field(default_factory=time.monotonic)  # when it started, then its last item
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class SourceSupervisor:
    """Runs `factory()`'s source in its own thread and hands every item (Frame or AudioBlock) to `on_item`.

    `on_item` is called with the supervisor's delivery lock held (that is what keeps late items of an
    abandoned reader out), so it must be quick: the pipelines only drop the item into a mailbox or ring."""

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
        self.stalls = 0  # times the source was declared stalled
        self.abandoned_readers = 0  # reader threads left blocked in a driver (they end if the driver ever returns)
        self.late_items_dropped = 0  # items that arrived from an abandoned reader
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # state and detail
        self._deliver = threading.Lock()  # which attempt is current; held while an item is handed on
        self._current: _Attempt | None = None
        self._stuck: list[threading.Thread] = []
        self._attempts = 0
        self._stall_timeout_s: float | None = None  # the source's own, known once it is built
        self._last_item_at = time.monotonic()
        self._delivered = False  # has handed on at least one item since start()

    # -- what the daemon reads -------------------------------------------------------------------------

    @property
    def stall_timeout_s(self) -> float | None:
        """The running source's stall timeout (None: this source is never declared stalled)."""
        return self._stall_timeout_s

    def last_item_age(self) -> float | None:
        """Seconds since the last item was handed on (since the start before the first one); None when stopped.
        It does not reset when the source restarts: a camera that keeps stalling stays stale."""
        if not self.alive:
            return None
        return time.monotonic() - self._last_item_at

    def stale(self) -> bool:
        """True when the source has delivered nothing for longer than its stall timeout after it had worked, or
        after a stall. A source that never opened (a wrong URL, a missing file) is not stale: it is `failed`,
        with its reason, and restarting the daemon would not fix it."""
        age, timeout = self.last_item_age(), self._stall_timeout_s
        worked_or_hung = self._delivered or self.stalls > 0
        return worked_or_hung and age is not None and timeout is not None and age > timeout

    # -- lifecycle -------------------------------------------------------------------------------------

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
        self._last_item_at = time.monotonic()
        self._delivered = False
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

    # -- the watching thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            started = time.monotonic()
            self._stuck = [t for t in self._stuck if t.is_alive()]
            if len(self._stuck) >= MAX_STUCK_READERS:
                # Every stalled open left a thread blocked in the driver; opening again would only add one more.
                outcome, detail = FAILED, (f"{len(self._stuck)} earlier reads are still blocked in the camera/microphone driver; "
                                           "not opening it again until they return. Check the device (cable, `dmesg`) and restart "
                                           "the service: sudo systemctl restart edgeteach")
            else:
                self._set(STARTING, "" if first else f"restart {self.restarts}")
                first = False
                outcome, detail = self._run_attempt()
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

    def _run_attempt(self) -> tuple[str, str]:
        """Starts a reader and watches it until it ends, stalls or the supervisor stops; returns (outcome, detail)."""
        self._attempts += 1
        attempt = _Attempt(self._attempts)
        with self._deliver:
            self._current = attempt
        attempt.thread = threading.Thread(target=self._read, args=(attempt,), name=f"source-{self.name}-read{attempt.number}",
                                          daemon=True)
        attempt.thread.start()
        while not attempt.done.wait(WATCH_INTERVAL_S):
            if self._stop.is_set():
                # A working reader sees the stop after its current read; only a stuck one needs forcing.
                attempt.thread.join(READER_EXIT_WAIT_S)
                if attempt.thread.is_alive():
                    self._abandon(attempt, "stopping")
                return STOPPED, ""
            timeout = self._stall_timeout_s if attempt.source is not None else None
            idle = time.monotonic() - attempt.last_activity
            if timeout is not None and idle > timeout + STALL_GRACE_S:
                self.stalls += 1
                what = "no frame" if isinstance(attempt.source, FrameSource) else "no audio"
                when = "since the last one" if attempt.running else "since opening started"
                self._abandon(attempt, "stalled")
                return FAILED, (f"stalled: {what} for {idle:.1f} s {when} and no error from the driver (stall_timeout_s "
                                f"{timeout:g}); restarting it. If this repeats, check the cable or ribbon, the power supply and "
                                "`dmesg`")
        with self._deliver:
            if self._current is attempt:
                self._current = None
        return attempt.outcome, attempt.detail

    def _abandon(self, attempt: _Attempt, why: str) -> None:
        """Makes `attempt` no longer current (its items are dropped from now on), tries close() to unblock its
        read, and leaves its thread behind if that did not help."""
        if self._deliver.acquire(timeout=CLOSE_WAIT_S):
            try:
                self._current = None
            finally:
                self._deliver.release()
        else:  # on_item itself is stuck; the attribute write alone still makes the reader's next check fail
            self._current = None
        source = attempt.source
        if source is not None:
            closer = threading.Thread(target=self._close, args=(source,), name=f"source-{self.name}-close", daemon=True)
            closer.start()
            closer.join(CLOSE_WAIT_S)
        if attempt.thread is not None:
            attempt.thread.join(READER_EXIT_WAIT_S)
            if attempt.thread.is_alive():
                self.abandoned_readers += 1
                self._stuck.append(attempt.thread)
                log.warning("%s: the source's read is still blocked after close() (%s); leaving that thread behind "
                            "(%d left so far)", self.name, why, self.abandoned_readers)

    def _close(self, source: Source) -> None:
        try:
            source.close()
        except Exception:
            log.exception("%s: closing the source failed", self.name)

    # -- the reader thread -----------------------------------------------------------------------------

    def _read(self, attempt: _Attempt) -> None:
        source: Source | None = None
        try:
            source = self.factory()
            self._stall_timeout_s = source.stall_timeout_s
            attempt.last_activity = time.monotonic()  # the stall clock starts once the source exists
            attempt.source = source
            source.open()
            while not self._stop.is_set():
                item = source.read()
                if not self._hand_on(attempt, item, source):
                    break
        except SourceEnded as exc:
            attempt.outcome, attempt.detail = ENDED, str(exc)
        except SourceError as exc:
            attempt.outcome, attempt.detail = FAILED, str(exc)
        except Exception as exc:  # a backend bug must become a restart, never a dead thread
            if self._current is attempt:
                log.exception("%s: unexpected source error", self.name)
            attempt.outcome, attempt.detail = FAILED, f"{exc.__class__.__name__}: {exc}"
        finally:
            if source is not None:
                self._close(source)  # also after an abandonment: close() is safe to call twice
            attempt.done.set()

    def _hand_on(self, attempt: _Attempt, item: Any, source: Source) -> bool:
        """Hands `item` to the pipeline if `attempt` is still the current one; False when it was abandoned."""
        with self._deliver:
            if self._current is not attempt:
                self.late_items_dropped += 1
                log.info("%s: dropped an item from an abandoned read (the driver returned late)", self.name)
                return False
            now = time.monotonic()
            attempt.last_activity = self._last_item_at = now
            self._delivered = True
            if not attempt.running:
                attempt.running = True
                self._set(RUNNING, source.description)
            try:
                self.on_item(item)
            except Exception:
                log.exception("%s: pipeline failed to take an item; carrying on", self.name)
        return True
