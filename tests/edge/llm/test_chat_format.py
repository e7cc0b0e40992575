"""Chat formats (no model): EdgeTeach's own formats where llama-cpp-python's would lose a message."""

from __future__ import annotations

from edge.llm.chat_format import OWN_FORMATS


def test_gemma_format_keeps_the_system_prompt() -> None:
    # llama-cpp-python's "gemma" format drops system messages, and with them the sensor context.
    prompt = OWN_FORMATS["gemma"]([{"role": "system", "content": "SENSORS"}, {"role": "user", "content": "Hi"}]).text
    assert prompt == "<start_of_turn>user\nSENSORS\n\nHi<end_of_turn>\n<start_of_turn>model\n"
