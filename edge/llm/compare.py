"""`edge llm compare`: the same prompt to two (or more) models, answers side by side — the course's
"which model is easier to trick?" exercise. Models are loaded one after the other, so a Pi only ever
holds one in memory.

The steps (`messages`, `load`, `ask`, `unload`) are what the Studio's LLM playground (trainer/studio/playground.py)
uses too, so the terminal and the web page load and ask a model the same way: one generation path."""

from __future__ import annotations

import gc
import itertools
import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from edge.config.llm import LlmSettings
from edge.llm.chat_format import Message
from edge.llm.client import Answer, LocalChat, OnText
from edge.llm.engine import Engine, StopCheck


@dataclass
class CompareResult:
    model: str
    path: str
    chat_format: str
    load_s: float
    answer: Answer


def messages(prompt: str, system: str | None = None) -> list[Message]:
    """The conversation both models get: an optional system prompt, then the user's prompt."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def load(path: str, max_tokens: int, threads: int = 0, context_size: int = 2048, chat_format: str | None = None) -> tuple[Engine, float]:
    """The model loaded (ModelLoadError says why not) and the seconds it took. `max_tokens` is its ceiling."""
    settings = LlmSettings(model=path, max_tokens=max_tokens, threads=threads, context_size=context_size, chat_format=chat_format)
    started = time.monotonic()
    engine = Engine.load(settings)
    return engine, time.monotonic() - started


def ask(engine: Engine, conversation: list[Message], on_text: OnText, max_tokens: int, temperature: float, seed: int | None,
        should_stop: StopCheck | None = None) -> Answer:
    """One answer, streamed to `on_text` piece by piece; `should_stop` is asked after every token (a reason
    ends the answer there). Raises PromptTooLong when the conversation does not fit the context."""
    return LocalChat(engine).stream(conversation, on_text, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                    should_stop=should_stop)


def unload(engine: Engine) -> None:
    """Frees the model's memory now rather than whenever the garbage collector gets to it."""
    close = getattr(engine.llama, "close", None)
    if close is not None:
        close()
    gc.collect()


def compare_models(models: list[str], prompt: str, system: str | None = None, max_tokens: int = 128,
                   temperature: float = 0.0, seed: int | None = 0, threads: int = 0, context_size: int = 2048,
                   chat_format: str | None = None) -> list[CompareResult]:
    conversation = messages(prompt, system)
    results = []
    for path in models:
        engine, load_s = load(path, max_tokens, threads, context_size, chat_format)
        answer = ask(engine, conversation, lambda _text: None, max_tokens, temperature, seed)
        results.append(CompareResult(engine.name, path, engine.chat_format, load_s, answer))
        unload(engine)
        del engine
    return results


def side_by_side(results: list[CompareResult], width: int | None = None) -> str:
    total = width or shutil.get_terminal_size((120, 40)).columns
    col = max(20, (total - 3 * (len(results) - 1)) // max(1, len(results)))

    def wrap(text: str) -> list[str]:
        lines: list[str] = []
        for paragraph in text.strip().splitlines() or [""]:
            lines.extend(textwrap.wrap(paragraph, col) or [""])
        return lines

    columns = []
    for r in results:
        t = r.answer.timings
        head = [Path(r.model).name[:col], f"{t.get('predicted_n', 0)} tokens, {t.get('predicted_per_second', 0):.0f} tok/s, "
                f"first token {t.get('prompt_ms', 0):.0f} ms"[:col], "-" * col]
        columns.append(head + wrap(r.answer.text or "(empty answer)"))
    rows = []
    for cells in itertools.zip_longest(*columns, fillvalue=""):
        rows.append(" | ".join(cell.ljust(col) for cell in cells).rstrip())
    return "\n".join(rows)
