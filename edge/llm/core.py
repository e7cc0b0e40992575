"""What HTTP and MQTT share: the model (loaded in the background), its worker, metrics and the sensor
context, and `admit()`, the one path by which any request reaches the model."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from edge.config.llm import LlmSettings
from edge.llm.engine import Engine, ModelLoadError, PromptTooLong, SamplingParams, model_display_name
from edge.llm.metrics import LlmMetrics
from edge.llm.requests import ChatRequest, RequestError
from edge.llm.sensors import SensorContext, with_sensor_context
from edge.llm.worker import Job, QueueFullError, Sink, Worker

log = logging.getLogger(__name__)


# A token is rarely longer than a few characters (BPE vocabularies top out near 16 for text; runs of
# spaces in code vocabularies reach more), so a prompt of more than this many characters per token of
# context cannot fit, and is refused before the tokenizer spends CPU on it (up to 1 MiB per request).
MAX_CHARS_PER_TOKEN = 32


def max_prompt_chars(context_size: int) -> int:
    """The longest prompt, in characters, that is worth tokenizing for a context of `context_size` tokens."""
    return context_size * MAX_CHARS_PER_TOKEN


class NotReadyError(RequestError):
    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message, status=503, code="model_not_ready")
        self.retry_after_s = retry_after_s


@dataclass
class Admitted:
    job: Job
    sensor_context: str | None  # exactly what was added to the system prompt


class LlmCore:
    def __init__(self, settings: LlmSettings, sensors: SensorContext | None = None) -> None:
        self.settings = settings
        self.sensors = sensors
        self.metrics = LlmMetrics()
        self.model_name = model_display_name(settings)
        self.engine: Engine | None = None
        self.worker: Worker | None = None
        self.load_error: str | None = None
        self.loaded = threading.Event()  # set when the model is ready OR failed (see load_error)
        self.metrics.gauges["edgeteach_llm_queue_depth"] = ("Requests waiting for the model.",
                                                            lambda: self.worker.depth if self.worker else 0)
        self.metrics.gauges["edgeteach_llm_busy"] = ("1 while a request is generating.",
                                                     lambda: 1 if self.worker and self.worker.busy else 0)
        self.metrics.gauges["edgeteach_llm_model_loaded"] = ("1 once the model is loaded.", lambda: 1 if self.ready else 0)

    @property
    def ready(self) -> bool:
        return self.worker is not None

    def load(self) -> None:
        """Loads the model and starts the worker; on failure records `load_error` (for /health) and
        re-raises ModelLoadError."""
        try:
            engine = Engine.load(self.settings)
        except ModelLoadError as exc:
            self.load_error = str(exc)
            self.loaded.set()
            raise
        self.engine = engine
        worker = Worker(engine, self.settings.queue_size, self.metrics)
        worker.start()
        self.worker = worker
        self.loaded.set()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def sensor_summary(self) -> str | None:
        return self.sensors.summary() if self.sensors is not None else None

    def admit(self, request: ChatRequest, api: str, sink: Sink) -> Admitted:
        """Prepares and queues a request. Raises RequestError (400 too long, 429 queue full, 503 not
        ready) without queuing anything."""
        if self.worker is None or self.engine is None:
            self.metrics.count_request(api, "not_ready")
            if self.load_error:  # its text names files: the log has it, the client gets what to do
                raise NotReadyError("the model failed to load (the server's log says why); fix it and restart the "
                                    "LLM server", retry_after_s=60)
            raise NotReadyError("the model is still loading; retry in a few seconds")
        # Cheapest refusals first: tokenizing a long prompt costs CPU on the caller's thread, so a full queue
        # (429) and a prompt that cannot fit by its length alone (400) are answered before any tokenizing.
        # The queue can still fill between here and submit(); submit() then refuses as well.
        if self.worker.full:
            self.metrics.count_request(api, "queue_full")
            raise self.worker.queue_full_error()
        injected = self.sensor_summary() if request.sensor_context else None
        messages = with_sensor_context(request.messages, injected)
        chars = sum(len(m["content"]) for m in messages)
        limit = max_prompt_chars(self.engine.context_size)
        if chars > limit:
            self.metrics.count_request(api, "bad_request")
            raise RequestError(f"the prompt is {chars} characters; a context of {self.engine.context_size} tokens holds at "
                               f"most about {limit}: shorten the messages or raise llm.context_size",
                               status=400, code="context_length_exceeded", param="messages")
        if injected:
            log.debug("sensor context added to the system prompt:\n%s", injected)
        try:
            prepared = self.engine.prepare(messages)
        except PromptTooLong as exc:
            self.metrics.count_request(api, "bad_request")
            raise RequestError(str(exc), status=400, code="context_length_exceeded", param="messages") from None
        params = SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                                seed=request.seed, stop=request.stop)
        job = Job(prepared=prepared, params=params, sink=sink, api=api, timeout_s=self.settings.request_timeout_s, sensor_context=injected)
        try:
            self.worker.submit(job)
        except QueueFullError:
            self.metrics.count_request(api, "queue_full")
            raise
        return Admitted(job=job, sensor_context=injected)
