"""One loaded GGUF model: prompt preparation (thread-safe) and generation (one caller at a time).

A `Llama` object is not thread-safe; only the worker thread calls `generate`. `prepare` only reads the
vocabulary, so HTTP and MQTT threads call it to refuse too-long prompts before queuing them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.config.llm import LlmSettings
from edge.core.bundle import sha256_file  # one SHA-256 of a file for bundles and GGUF models
from edge.llm.chat_format import Formatter, Message, resolve_formatter

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says why and what to do."""


class PromptTooLong(ValueError):
    def __init__(self, prompt_tokens: int, context_size: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context holds {context_size} "
            f"(prompt + answer); shorten the messages or raise llm.context_size"
        )


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class PreparedPrompt:
    messages: list[Message]
    text: str
    tokens: list[int]
    stop: list[str]


@dataclass
class Timings:
    """Like llama-server's `timings`. prompt_n counts the prompt tokens actually evaluated (a prefix
    shared with the previous request is reused from the KV cache); predicted_n counts every sampled token
    including the end-of-turn token; predicted_per_second is the decode rate after the first token."""

    prompt_n: int = 0
    prompt_cached_n: int = 0
    prompt_ms: float = 0.0
    prompt_per_second: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    predicted_per_second: float = 0.0
    queue_ms: float = 0.0
    ttft_ms: float = 0.0  # queue_ms + prompt_ms: what a client waits for its first token

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" | "length" (OpenAI's values)
    stopped_by: str | None  # None, "cancelled" (client went away) or "timeout"
    prompt_tokens: int
    completion_tokens: int
    timings: Timings


StopCheck = Callable[[], str | None]  # returns a reason to stop now, or None


def model_display_name(settings: LlmSettings) -> str:
    if settings.model_name:
        return settings.model_name
    return Path(settings.model or "model").name.removesuffix(".gguf")


class Engine:
    def __init__(self, llama: Any, settings: LlmSettings, chat_format: str, formatter: Formatter) -> None:
        self.llama = llama
        self.settings = settings
        self.chat_format = chat_format
        self._formatter = formatter
        self.name = model_display_name(settings)
        self.path = str(settings.model)
        self.context_size = int(llama.n_ctx())
        self._add_bos = bool(llama._model.add_bos_token()) and llama.token_bos() != -1

    @classmethod
    def load(cls, settings: LlmSettings) -> Engine:
        if not settings.model:
            raise ModelLoadError("no model: set llm.model in the config (a .gguf file) or pass --model PATH")
        path = Path(settings.model).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist; download one with `edge llm pull REPO FILE` or fix llm.model")
        if settings.model_sha256:
            started = time.monotonic()
            actual = sha256_file(path)
            if actual != settings.model_sha256:
                raise ModelLoadError(
                    f"model file {path} has SHA-256 {actual}, but llm.model_sha256 expects {settings.model_sha256}; "
                    "the file is corrupt or a different model: download it again or update model_sha256"
                )
            log.info("model SHA-256 verified in %.1f s", time.monotonic() - started)
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelLoadError(f"llama-cpp-python is not installed ({exc}); run scripts/setup.sh llm (builds it, ~8 minutes)") from None
        threads = settings.threads or (os.cpu_count() or 1)
        started = time.monotonic()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=settings.context_size,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=settings.gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {path}: {exc}; is it a GGUF file this llama.cpp version supports?") from None
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        eos = llama._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = llama._model.token_get_text(bos_id) if bos_id != -1 else ""
        name, formatter = resolve_formatter(settings.chat_format, dict(llama.metadata), eos, bos)
        engine = cls(llama, settings, name, formatter)
        log.info("loaded %s in %.1f s: context %d, %d threads, %d GPU layers, chat format %s",
                 path.name, time.monotonic() - started, engine.context_size, threads, settings.gpu_layers, name)
        return engine

    # -- any thread --------------------------------------------------------------------------------

    def prepare(self, messages: list[Message]) -> PreparedPrompt:
        """Formats and tokenizes; raises PromptTooLong when not even one answer token would fit."""
        formatted = self._formatter(messages)
        tokens = self.llama.tokenize(formatted.text.encode("utf-8"), add_bos=False, special=True)
        if self._add_bos and not formatted.added_special and (not tokens or tokens[0] != self.llama.token_bos()):
            tokens = [self.llama.token_bos(), *tokens]
        if len(tokens) >= self.context_size:
            raise PromptTooLong(len(tokens), self.context_size)
        return PreparedPrompt(messages=messages, text=formatted.text, tokens=tokens, stop=list(formatted.stop))

    def max_answer_tokens(self, prepared: PreparedPrompt) -> int:
        return self.context_size - len(prepared.tokens)

    # -- worker thread only ------------------------------------------------------------------------

    def generate(self, prepared: PreparedPrompt, params: SamplingParams, on_text: Callable[[str], None],
                 should_stop: StopCheck) -> Generation:
        from llama_cpp import Llama, StoppingCriteriaList

        llama = self.llama
        sampled = 0
        first_at: float | None = None
        last_at: float | None = None
        stopped_by: str | None = None

        # Called by llama-cpp-python right after each token is sampled: our clock for time-to-first-token
        # and decode speed, our token counter, and the place a cancelled request stops between tokens.
        def per_token(_ids: Any, _logits: Any) -> bool:
            nonlocal sampled, first_at, last_at, stopped_by
            now = time.perf_counter()
            sampled += 1
            if first_at is None:
                first_at = now
            last_at = now
            reason = should_stop()
            if reason:
                stopped_by = reason
                return True
            return False

        cached = min(Llama.longest_token_prefix(llama._input_ids.tolist(), prepared.tokens), len(prepared.tokens) - 1)
        max_tokens = max(1, min(params.max_tokens, self.max_answer_tokens(prepared)))
        started = time.perf_counter()
        pieces: list[str] = []
        finish_reason = "length"
        stream = llama.create_completion(
            prompt=prepared.tokens,
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=[*prepared.stop, *params.stop],
            stopping_criteria=StoppingCriteriaList([per_token]),
            stream=True,
        )
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                if choice["text"]:
                    pieces.append(choice["text"])
                    on_text(choice["text"])
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        finally:
            stream.close()
        if stopped_by is not None:
            finish_reason = "length"  # OpenAI has no value for "cut short"; stopped_by says why
        prompt_ms = ((first_at or time.perf_counter()) - started) * 1000.0
        predicted_ms = ((last_at - first_at) * 1000.0) if (first_at is not None and last_at is not None) else 0.0
        prompt_n = len(prepared.tokens) - cached
        # At the length limit llama-cpp-python samples one token more before it checks the limit and
        # drops it: that one is work done (it stays in the rate) but not part of the answer.
        answered = min(sampled, max_tokens)
        timings = Timings(
            prompt_n=prompt_n,
            prompt_cached_n=cached,
            prompt_ms=prompt_ms,
            prompt_per_second=prompt_n / prompt_ms * 1000.0 if prompt_ms > 0 else 0.0,
            predicted_n=answered,
            predicted_ms=predicted_ms,
            predicted_per_second=(sampled - 1) / predicted_ms * 1000.0 if sampled > 1 and predicted_ms > 0 else 0.0,
        )
        return Generation(
            text="".join(pieces),
            finish_reason=finish_reason,
            stopped_by=stopped_by,
            prompt_tokens=len(prepared.tokens),
            completion_tokens=answered,
            timings=timings,
        )
