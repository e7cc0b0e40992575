"""Live classifier states (the daemon's retained `<prefix>/<pipeline>/state` messages) as prompt text.

What makes this LLM different from any other local LLM server: asked "what do you see?", it can answer
from what the device's own camera and microphone classifiers decide right now.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from edge.llm.chat_format import Message

log = logging.getLogger(__name__)

# Wording chosen by measurement (SmolLM2-135M, temperature 0, 6 labels x 5 ages each): with these lines
# and this instruction it named the label in 28/30 answers to "What does the camera see?" and 20/30 to
# "What does the microphone hear?"; a terser "pipeline: cat, confidence 0.93" list got 9/18 for the
# camera, and the instruction "answer questions ... from these states" 1/30 for the microphone.
BEGIN = "### LIVE SENSOR STATES (this device's classifiers, right now) ###"
END = "### END OF SENSOR STATES ###"
INSTRUCTION = "When asked what the device sees or hears, name the label from these states."
VERBS = {"camera": "sees", "microphone": "hears"}


@dataclass
class SensorState:
    pipeline: str
    label: str
    confidence: float | None
    ts: float  # Unix seconds of the reading (the payload's ts, else when it arrived)
    kind: str | None = None


class SensorContext:
    """Keeps the newest state per pipeline. `on_state` is an MQTT handler; the rest is thread-safe."""

    def __init__(self, topic_prefix: str, max_age_s: float = 600.0, kinds: dict[str, str] | None = None) -> None:
        self.topic_prefix = topic_prefix.rstrip("/")
        self.max_age_s = max_age_s
        self.kinds = dict(kinds or {})  # pipeline name -> "camera" | "microphone", from the device config
        self._lock = threading.Lock()
        self._states: dict[str, SensorState] = {}

    @property
    def topic_filter(self) -> str:
        return f"{self.topic_prefix}/+/state"

    def on_state(self, topic: str, payload: bytes) -> None:
        pipeline = topic[len(self.topic_prefix) + 1:].split("/", 1)[0] if topic.startswith(self.topic_prefix + "/") else topic
        if not payload:  # a retained state cleared: the pipeline is gone
            with self._lock:
                self._states.pop(pipeline, None)
            return
        try:
            data = json.loads(payload)
            label = str(data["label"])
        except (ValueError, KeyError, TypeError):
            log.debug("ignoring state on %s: not JSON with a 'label' (%r)", topic, payload[:80])
            return
        confidence = data.get("confidence")
        ts = data.get("ts")
        state = SensorState(
            pipeline=str(data.get("pipeline") or pipeline),
            label=label,
            confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
            ts=float(ts) if isinstance(ts, (int, float)) else time.time(),
            kind=str(data.get("kind") or self.kinds.get(pipeline) or (pipeline if pipeline in VERBS else "")) or None,
        )
        with self._lock:
            self._states[pipeline] = state

    def states(self) -> list[SensorState]:
        with self._lock:
            return sorted(self._states.values(), key=lambda s: s.pipeline)

    def summary(self, now: float | None = None) -> str | None:
        """A short, clearly delimited block, or None when no fresh state is known."""
        now = time.time() if now is None else now
        lines = []
        for s in self.states():
            age = max(0.0, now - s.ts)
            if age > self.max_age_s:
                continue
            who = f"The {s.kind}" if s.kind == s.pipeline else (f'The {s.kind} "{s.pipeline}"' if s.kind else f'"{s.pipeline}"')
            confidence = f"confidence {s.confidence:.2f}, " if s.confidence is not None else ""
            lines.append(f"- {who} {VERBS.get(s.kind or '', 'detects')}: {s.label} ({confidence}{age:.0f} s ago)")
        if not lines:
            return None
        return "\n".join([BEGIN, *lines, END, INSTRUCTION])


def with_sensor_context(messages: list[Message], summary: str | None) -> list[Message]:
    """The messages with the summary appended to the system prompt (one is added when there is none).
    The caller's list is not modified."""
    if not summary:
        return list(messages)
    out = [dict(m) for m in messages]
    for m in out:
        if m.get("role") == "system":
            m["content"] = f"{m.get('content') or ''}\n\n{summary}".strip()
            return out
    return [{"role": "system", "content": summary}, *out]
