"""Issue 12, "Done when": a short network fuzz run through bench/fuzz_network.py's own code. 500 random MQTT
payloads (commands, LLM requests, states) and 500 malformed HTTP requests against a real `edge run` daemon
and a real `edge llm serve` (test GGUF) on a real Mosquitto; afterwards both are alive, a ping and
`/v1/models` answer, the pipelines are resumed, RSS is within 10 % of its value after the warm-up, and
neither log holds a traceback. The bench runs the same with 10,000 + 10,000 (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz_network import COMMANDS, FuzzOptions, format_report, run_fuzz
from tests.support.broker import Broker
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model

pytestmark = pytest.mark.timeout(300)

MQTT_CASES = 500
HTTP_CASES = 500

# Bugs this fuzz found in code other parts of issue 12 own, by the text that identifies them in a log or a
# reply. Only these may turn the last assertion into an xfail; any other traceback fails the test. Remove an
# entry when its bug is fixed (the test then passes, or fails if the bug is still there under another text).
KNOWN_BUGS = {
    "edge/daemon/commands.py CommandHandler._parse: a command payload holding an integer of more than 4300 digits "
    "(e.g. {\"id\": 111...1} with 5000 digits on <prefix>/cmd/ping) makes json.loads raise ValueError, which _parse "
    "does not catch: a logged traceback and an 'internal error: ValueError: ...' reply":
        "Exceeds the limit (4300 digits)",
    "edge/llm/http_api.py:131 and the daemon's health app (uvicorn h11): a POST with 'Transfer-Encoding: chunked' and an "
    "invalid chunk size (body 'zz\\r\\nhello\\r\\n0\\r\\n\\r\\n'): uvicorn answers 400 itself, then the app's own "
    "411/404 response raises h11 LocalProtocolError (state MUST_CLOSE), logged as 'Exception in ASGI application'":
        "can't handle event type Response when role=SERVER and state=MUST_CLOSE",
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
    assert len(http["per_kind"]) == 13 and set(http["per_target"]) == {"llm", "health"}, report
    assert mqtt["outcomes"].get("sync daemon answered") == MQTT_CASES // 50, report
    assert mqtt["outcomes"].get("sync llm answered") == MQTT_CASES // 50, report
    assert mqtt["replies"].get("command reply (broadcast)", 0) > 0 and mqtt["replies"].get("reply on a response topic", 0) > 0, report
    assert http["refused"] == 0 and http["server_errors_5xx"] == 0, report

    assert checks["ping_answers"] and checks["v1_models_answers"], report
    assert checks["pipelines_resumed"], report
    assert checks["rss_within_10_percent"], report

    # Last, so that every check above has run: no traceback in either log and no "internal error" reply,
    # except for the known bugs, which make this an xfail naming them until they are fixed.
    problems = [t for found in result["tracebacks"].values() for t in found] + mqtt["internal_error_replies"]
    unknown = [p for p in problems if not any(text in p for text in KNOWN_BUGS.values())]
    assert not unknown, report + "\n\n" + "\n\n".join(unknown[:3])
    known = [bug for bug, text in KNOWN_BUGS.items() if any(text in p for p in problems)]
    if known:
        pytest.xfail("the fuzz hit known bugs (no other traceback): " + " | ".join(known))
    assert checks["no_traceback_in_logs"], report
