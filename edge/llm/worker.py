"""One model, one worker thread: a bounded queue of jobs, run one at a time, each to its end.

A running job is never cut off by a newer one (llama-cpp-python's own server does that); it ends when
its answer is complete, its client went away (`Job.cancel`), or its deadline passed. Results travel to
the caller through the job's `sink`, called on the worker thread: HTTP handlers pass a queue's `put`,
the MQTT interface publishes directly (paho's publish only enqueues, so it never stalls generation).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.llm.engine import Engine, Generation, PreparedPrompt, SamplingParams
from edge.llm.metrics import LlmMetrics
from edge.llm.requests import RequestError

log = logging.getLogger(__name__)


@dataclass
class TextEvent:
    text: str


@dataclass
class DoneEvent:
    result: Generation
    sensor_context: str | None = None  # what was added to the system prompt, for the caller's reply


@dataclass
class ErrorEvent:
    code: str  # "timeout" (still queued at its deadline), "cancelled", "error"
    message: str


Event = TextEvent | DoneEvent | ErrorEvent
Sink = Callable[[Event], None]

_ids = itertools.count(1)


class QueueFullError(RequestError):
    """The queue is full (or the worker is stopping): HTTP 429, or an MQTT error reply, with a Retry-After."""

    def __init__(self, retry_after_s: int, queue_size: int) -> None:
        super().__init__(f"the LLM is busy: {queue_size} request(s) already wait for the model (llm.queue_size); retry "
                         f"in about {retry_after_s} s",
                         status=429, code="queue_full")
        self.retry_after_s = retry_after_s


@dataclass
class Job:
    prepared: PreparedPrompt
    params: SamplingParams
    sink: Sink
    api: str  # "http" or "mqtt", for metrics
    timeout_s: float
    id: int = field(default_factory=lambda: next(_ids))
    accepted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    sensor_context: str | None = None
    _cancel_reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        """Thread-safe: the worker stops this job before its next token (or skips it if still queued)."""
        if self._cancel_reason is None:
            self._cancel_reason = reason

    @property
    def cancelled(self) -> str | None:
        return self._cancel_reason

    @property
    def deadline(self) -> float:
        return self.accepted_at + self.timeout_s


class Worker:
    def __init__(self, engine: Engine, queue_size: int, metrics: LlmMetrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self.queue_size = queue_size
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._run, name="llm-worker", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        current = self._current
        if current is not None:
            current.cancel("shutdown")
        while True:  # answer what still waits, so no client hangs
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.sink(ErrorEvent("shutdown", "the LLM server is shutting down; retry when it is back"))
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the running one)."""
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        return self._current is not None

    def submit(self, job: Job) -> None:
        """Queues the job or raises QueueFullError (with an honest Retry-After estimate)."""
        if self._stopping:
            raise QueueFullError(5, self.queue_size)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise self.queue_full_error() from None

    @property
    def full(self) -> bool:
        """No room for another job now (admission checks this before tokenizing)."""
        return self._stopping or self.depth >= self.queue_size

    def queue_full_error(self) -> QueueFullError:
        """The 429 with an honest Retry-After: the recent mean request time for each job ahead."""
        if self._stopping:
            return QueueFullError(5, self.queue_size)
        retry = max(1, int(round(self.metrics.mean_request_seconds(default=5.0) * (self.depth + 1))))
        return QueueFullError(retry, self.queue_size)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._stopping:
                self._safe_sink(job, ErrorEvent("shutdown", "the LLM server is shutting down; retry when it is back"))
                continue
            self._current = job
            try:
                self._run_job(job)
            except Exception:  # never let one request kill the worker
                log.exception("LLM request %d failed", job.id)
                self.metrics.count_request(job.api, "error")
                self._safe_sink(job, ErrorEvent("error", "generation failed (the server's log has the details)"))
            finally:
                self._current = None

    def _run_job(self, job: Job) -> None:
        job.started_at = time.monotonic()
        queue_ms = (job.started_at - job.accepted_at) * 1000.0
        if job.cancelled:
            log.debug("request %d: client left while queued", job.id)
            self.metrics.count_request(job.api, "cancelled")
            self._safe_sink(job, ErrorEvent("cancelled", "the client went away before the request started"))
            return
        if job.started_at >= job.deadline:
            self.metrics.count_request(job.api, "timeout")
            self._safe_sink(job, ErrorEvent("timeout",
                                            f"waited {queue_ms / 1000:.1f} s in the queue, past llm.request_timeout_s "
                                            f"({job.timeout_s:g} s); retry later"))
            return

        def should_stop() -> str | None:
            if job.cancelled:
                return job.cancelled
            if time.monotonic() > job.deadline:
                return "timeout"
            return None

        def on_text(text: str) -> None:
            self._safe_sink(job, TextEvent(text))

        result = self.engine.generate(job.prepared, job.params, on_text, should_stop)
        result.timings.queue_ms = queue_ms
        result.timings.ttft_ms = queue_ms + result.timings.prompt_ms
        outcome = {"cancelled": "cancelled", "shutdown": "cancelled", "timeout": "timeout"}.get(result.stopped_by or "", "ok")
        self.metrics.count_request(job.api, outcome)
        self.metrics.observe_generation(result, time.monotonic() - job.accepted_at)
        log.debug("request %d (%s): %d prompt + %d answer tokens, ttft %.0f ms, %.1f tok/s, %s%s",
                  job.id, job.api, result.prompt_tokens, result.completion_tokens, result.timings.ttft_ms,
                  result.timings.predicted_per_second, result.finish_reason, f" ({result.stopped_by})" if result.stopped_by else "")
        self._safe_sink(job, DoneEvent(result, job.sensor_context))

    @staticmethod
    def _safe_sink(job: Job, event: Any) -> None:
        try:
            job.sink(event)
        except Exception:  # a broken sink (e.g. MQTT publish error) must not stop generation
            log.exception("request %d: delivering a %s failed", job.id, type(event).__name__)
            job.cancel("cancelled")
