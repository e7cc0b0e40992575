"""Chat messages -> prompt text, the way the model was trained to read them.

Resolved once at load: the GGUF's own Jinja chat template when it has one (SmolLM2-Instruct does), else a
named format. We format and tokenize ourselves (instead of `create_chat_completion`) so that the prompt's
token count is known BEFORE a request is queued: a too-long prompt is refused at once with a clear 400,
and the response can report exact prompt timings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass
class FormattedPrompt:
    text: str
    stop: list[str]
    added_special: bool  # the template already wrote BOS itself: do not add another


Formatter = Callable[[list[Message]], FormattedPrompt]


class ChatFormatError(ValueError):
    pass


def _gemma(messages: list[Message]) -> FormattedPrompt:
    """Gemma turns. Gemma has no system role: like Google's own Gemma 3 template, the system text goes
    in front of the first user turn (llama-cpp-python's "gemma" format drops it, and with it our sensor
    context)."""
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    parts: list[str] = []
    first_user = True
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        content = str(m.get("content") or "")
        if role == "user" and first_user and system:
            content = f"{system}\n\n{content}"
            first_user = False
        elif role == "user":
            first_user = False
        turn = "model" if role == "assistant" else "user"
        parts.append(f"<start_of_turn>{turn}\n{content}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return FormattedPrompt("".join(parts), stop=["<end_of_turn>"], added_special=False)


def _chatml(messages: list[Message]) -> FormattedPrompt:
    text = "".join(f"<|im_start|>{m.get('role')}\n{m.get('content') or ''}<|im_end|>\n" for m in messages)
    return FormattedPrompt(text + "<|im_start|>assistant\n", stop=["<|im_end|>"], added_special=False)


OWN_FORMATS: dict[str, Formatter] = {"gemma": _gemma, "chatml": _chatml}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _llama_cpp_format(name: str) -> Formatter | None:
    """llama-cpp-python's registered formats are module functions `format_<name>`; wrap one."""
    from llama_cpp import llama_chat_format

    wanted = _normalise(name)
    for attr in dir(llama_chat_format):
        if attr.startswith("format_") and _normalise(attr[len("format_"):]) == wanted:
            fn = getattr(llama_chat_format, attr)

            def formatter(messages: list[Message], fn: Any = fn) -> FormattedPrompt:
                result = fn(messages=messages)
                stop = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
                return FormattedPrompt(result.prompt, stop=stop, added_special=bool(result.added_special))

            return formatter
    return None


def resolve_formatter(chat_format: str | None, metadata: dict[str, str], eos: str, bos: str) -> tuple[str, Formatter]:
    """Returns (a name for logs and /v1/models, the formatter). `chat_format` None means: the GGUF's
    template, else a default chosen from the model's architecture."""
    template = metadata.get("tokenizer.chat_template")
    if chat_format in (None, "", "template", "auto"):
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            jinja = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

            def from_template(messages: list[Message]) -> FormattedPrompt:
                result = jinja(messages=cast("list[ChatCompletionRequestMessage]", messages))
                stop = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
                return FormattedPrompt(result.prompt, stop=[s for s in stop if s], added_special=True)

            return "gguf-template", from_template
        if chat_format == "template":
            raise ChatFormatError("llm.chat_format is 'template' but this GGUF has no chat template; name a format (chatml, gemma, ...)")
        arch = metadata.get("general.architecture", "")
        chosen = "gemma" if arch.startswith("gemma") else "chatml"
        log.warning("the GGUF has no chat template; using the '%s' chat format (architecture %r). Set llm.chat_format to override.", chosen,
                    arch or "unknown")
        return chosen, OWN_FORMATS[chosen]
    assert chat_format is not None  # None was answered above
    key = _normalise(chat_format)
    for name, fn in OWN_FORMATS.items():
        if _normalise(name) == key:
            return name, fn
    found = _llama_cpp_format(chat_format)
    if found is None:
        raise ChatFormatError(
            f"llm.chat_format: unknown chat format {chat_format!r}; use one of chatml, gemma, llama-2, llama-3, mistral-instruct, zephyr, "
            "or leave it empty to use the GGUF's own template"
        )
    return chat_format, found
