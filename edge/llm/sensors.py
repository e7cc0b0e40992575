"""Live classifier states (the daemon's retained `<prefix>/<pipeline>/state` messages) as prompt text.

What makes this LLM different from any other local LLM server: asked "what do you see?", it can answer
from what the device's own camera and microphone classifiers decide right now.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import unicodedata
from collections.abc import Iterable
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

# Anyone on the broker can publish a state: what reaches the prompt is bounded and plain.
MAX_LABEL_CHARS = 64  # longer labels are cut
MAX_STATES = 64  # pipelines remembered when no allow-list is given
PIPELINE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def clean_label(value: object) -> str | None:
    """The label as it may enter a prompt: a string without control or format characters (newlines,
    line/paragraph separators, ...), at most MAX_LABEL_CHARS characters; None when it cannot be one."""
    if not isinstance(value, str):
        return None
    if any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in value):
        return None  # a newline or an escape sequence in a class label is an injection attempt, not a label
    label = value.strip()[:MAX_LABEL_CHARS].strip()
    return label or None


@dataclass
class SensorState:
    pipeline: str
    label: str
    confidence: float | None
    ts: float  # Unix seconds of the reading (the payload's ts, else when it arrived)
    kind: str | None = None


def finite_number(value: object) -> float | None:
    """A JSON number as a finite float, else None: not a bool, not NaN/inf, and not an integer too large for a
    float (`1` followed by 400 digits is valid JSON; float() of it raises OverflowError)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class SensorContext:
    """Keeps the newest state per pipeline. `on_state` is an MQTT handler; the rest is thread-safe.

    The pipeline is named by the topic, never by the payload; with `pipelines` given (the device
    config's pipeline names) states of any other pipeline are ignored. Labels are checked
    (`clean_label`), `ts` is clamped to now (a reading from the future would never age out), and at
    most MAX_STATES pipelines are kept."""

    def __init__(self, topic_prefix: str, max_age_s: float = 600.0, kinds: dict[str, str] | None = None,
                 pipelines: Iterable[str] | None = None) -> None:
        self.topic_prefix = topic_prefix.rstrip("/")
        self.max_age_s = max_age_s
        self.kinds = dict(kinds or {})  # pipeline name -> "camera" | "microphone", from the device config
        self.pipelines = frozenset(pipelines) if pipelines is not None else None  # None: any well-formed name
        self._lock = threading.Lock()
        self._states: dict[str, SensorState] = {}

    @property
    def topic_filter(self) -> str:
        return f"{self.topic_prefix}/+/state"

    def on_state(self, topic: str, payload: bytes) -> None:
        rest = topic[len(self.topic_prefix) + 1:] if topic.startswith(self.topic_prefix + "/") else ""
        pipeline, _, leaf = rest.partition("/")
        if leaf != "state" or not PIPELINE_NAME.fullmatch(pipeline) or (self.pipelines is not None and pipeline not in self.pipelines):
            log.debug("ignoring state on %r: not a state of a configured pipeline", topic[:200])
            return
        if not payload:  # a retained state cleared: the pipeline is gone
            with self._lock:
                self._states.pop(pipeline, None)
            return
        try:
            data = json.loads(payload)
            label = clean_label(data["label"])
        except (ValueError, KeyError, TypeError, RecursionError):
            log.debug("ignoring state on %s: not JSON with a 'label' (%r)", topic, payload[:80])
            return
        if label is None:
            log.warning("ignoring state on %s: its label is not a plain string (control characters or empty)", topic)
            return
        now = time.time()
        confidence = data.get("confidence")
        ts = data.get("ts")
        confidence, ts = finite_number(confidence), finite_number(ts)
        kind = self.kinds.get(pipeline) or (pipeline if pipeline in VERBS else None)
        state = SensorState(
            pipeline=pipeline,
            label=label,
            confidence=min(1.0, max(0.0, confidence)) if confidence is not None else None,
            ts=min(ts, now) if ts is not None else now,
            kind=kind if kind in VERBS else None,
        )
        with self._lock:
            if pipeline not in self._states and len(self._states) >= MAX_STATES:
                log.warning("ignoring state on %s: already %d pipelines known", topic, MAX_STATES)
                return
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
