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

# Bugs a fuzz run found in code other parts of the project own, each with the texts that identify it in a log
# or an "internal error" reply, while it is open: only these turn the last assertion into an xfail naming
# them; any other traceback fails the test. Add the input that found it to the corpus (corpus_mqtt_cases /
# corpus_http_cases) so this short run hits it, and remove the entry when the bug is fixed. Empty: the five
# found so far are fixed (211cb1f, 87436cb, 5d0e211) and their inputs are in the corpus.
KNOWN_BUGS: dict[str, tuple[str, ...]] = {}


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
    # for open known bugs, which make this an xfail naming them until they are fixed.
    problems = [t for found in result["tracebacks"].values() for t in found] + mqtt["internal_error_replies"]
    unknown = [p for p in problems if not any(text in p for texts in KNOWN_BUGS.values() for text in texts)]
    assert not unknown, report + "\n\n" + "\n\n".join(unknown[:3])
    known = [bug for bug, texts in KNOWN_BUGS.items() if any(text in p for p in problems for text in texts)]
    if known:
        pytest.xfail("known bugs found by the fuzz (no other traceback): " + " | ".join(known))
    assert checks["no_traceback_in_logs"] and mqtt["internal_error_reply_count"] == 0, report
