"""The worker with a real model in this process: per-request timeout, while generating and while queued."""

from __future__ import annotations

import queue
import time

import pytest

from edge.config.llm import LlmSettings
from edge.llm.engine import Engine, PromptTooLong, SamplingParams
from edge.llm.metrics import LlmMetrics
from edge.llm.worker import DoneEvent, ErrorEvent, Job, QueueFullError, Worker
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model

pytestmark = [pytest.mark.timeout(120), pytest.mark.native_llm]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(LlmSettings(model=str(require_model(SMOLLM2)), threads=1, context_size=512))


def _last(events: queue.Queue[object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(event, (DoneEvent, ErrorEvent)):
            return event


def test_timeouts_stop_a_running_request_and_expire_a_queued_one(engine: Engine) -> None:
    metrics = LlmMetrics()
    worker = Worker(engine, queue_size=1, metrics=metrics)
    worker.start()
    try:
        prepared = engine.prepare([{"role": "user", "content": "Count from 1 to 300, one number per line."}])
        long_events: queue.Queue[object] = queue.Queue()
        queued_events: queue.Queue[object] = queue.Queue()
        long_job = Job(prepared, SamplingParams(max_tokens=400, temperature=0), long_events.put, "http", timeout_s=1.0)
        queued_job = Job(prepared, SamplingParams(max_tokens=4, temperature=0), queued_events.put, "http", timeout_s=0.5)
        worker.submit(long_job)
        while not worker.busy:  # the worker took it: the queue is empty again
            time.sleep(0.01)
        worker.submit(queued_job)
        with pytest.raises(QueueFullError) as full:  # one running, one waiting: the bound is reached
            worker.submit(Job(prepared, SamplingParams(max_tokens=4), lambda e: None, "http", timeout_s=5))
        assert full.value.retry_after_s >= 1
        done = _last(long_events)
        assert isinstance(done, DoneEvent)
        assert done.result.stopped_by == "timeout" and done.result.finish_reason == "length"
        assert 0 < done.result.completion_tokens < 400
        expired = _last(queued_events)
        assert isinstance(expired, ErrorEvent) and expired.code == "timeout"
        assert "llm.request_timeout_s" in expired.message
        assert metrics.requests == {("http", "timeout"): 2}
    finally:
        worker.stop()


def test_a_prompt_longer_than_the_context_is_refused_before_queuing(engine: Engine) -> None:
    with pytest.raises(PromptTooLong) as info:
        engine.prepare([{"role": "user", "content": "word " * 600}])
    assert info.value.context_size == 512 and info.value.prompt_tokens > 512
