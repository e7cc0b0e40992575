"""`edge llm compare`: the same prompt to two (or more) models, answers side by side — the course's
"which model is easier to trick?" exercise. Models are loaded one after the other, so a Pi only ever
holds one in memory."""

from __future__ import annotations

import gc
import itertools
import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from edge.config.llm import LlmSettings
from edge.llm.client import Answer, LocalChat
from edge.llm.engine import Engine


@dataclass
class CompareResult:
    model: str
    path: str
    chat_format: str
    load_s: float
    answer: Answer


def compare_models(models: list[str], prompt: str, system: str | None = None, max_tokens: int = 128,
                   temperature: float = 0.0, seed: int | None = 0, threads: int = 0, context_size: int = 2048,
                   chat_format: str | None = None) -> list[CompareResult]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    results = []
    for path in models:
        settings = LlmSettings(model=path, max_tokens=max_tokens, temperature=temperature, threads=threads,
                               context_size=context_size, chat_format=chat_format)
        started = time.monotonic()
        engine = Engine.load(settings)
        load_s = time.monotonic() - started
        answer = LocalChat(engine).stream(messages, lambda _text: None, max_tokens=max_tokens, temperature=temperature, seed=seed)
        results.append(CompareResult(engine.name, path, engine.chat_format, load_s, answer))
        close = getattr(engine.llama, "close", None)
        if close is not None:
            close()
        del engine
        gc.collect()
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
