"""The sensor context (no model): the classifiers' retained states summarised into the system prompt."""

from __future__ import annotations

import json
import time

from edge.llm.sensors import BEGIN, END, SensorContext, with_sensor_context


def test_sensor_summary_from_retained_states() -> None:
    ctx = SensorContext("edgeteach/pi", max_age_s=60, kinds={"mic": "microphone"})
    now = time.time()
    ctx.on_state("edgeteach/pi/camera/state", json.dumps({"label": "cat", "confidence": 0.93, "ts": now - 4}).encode())
    ctx.on_state("edgeteach/pi/mic/state", json.dumps({"label": "speech", "confidence": 0.8, "ts": now - 3600}).encode())
    ctx.on_state("edgeteach/pi/desk/state", json.dumps({"label": "cup", "ts": now - 1.2}).encode())
    ctx.on_state("edgeteach/pi/door/state", b"not json")
    summary = ctx.summary(now)
    assert summary is not None
    assert summary.startswith(BEGIN) and END in summary
    assert "- The camera sees: cat (confidence 0.93, 4 s ago)" in summary
    assert '- "desk" detects: cup (1 s ago)' in summary  # kind unknown, no confidence
    assert "speech" not in summary and "door" not in summary  # too old / not a state
    ctx.on_state("edgeteach/pi/camera/state", b"")  # retained state cleared: the pipeline is gone
    ctx.on_state("edgeteach/pi/mic/state", json.dumps({"label": "speech", "confidence": 0.8, "ts": now}).encode())
    assert ctx.summary(now).splitlines()[1:3] == ['- "desk" detects: cup (1 s ago)',
                                                  '- The microphone "mic" hears: speech (confidence 0.80, 0 s ago)']


def test_sensor_context_goes_into_the_system_prompt() -> None:
    user = [{"role": "user", "content": "What do you see?"}]
    added = with_sensor_context(user, "STATES")
    assert added == [{"role": "system", "content": "STATES"}, user[0]]
    merged = with_sensor_context([{"role": "system", "content": "Be brief."}, *user], "STATES")
    assert merged[0] == {"role": "system", "content": "Be brief.\n\nSTATES"}
    assert with_sensor_context(user, None) == user
