"""Daemon main-loop tick, without a broker: a failing part of the tick is logged and the loop goes on."""

from __future__ import annotations

from typing import Any

import pytest

from edge.config.edge import EdgeConfig
from edge.daemon.daemon import Daemon


class _Notifier:
    def __init__(self) -> None:
        self.pings = 0

    def watchdog_interval(self) -> float | None:
        return 0.0

    def watchdog(self) -> bool:
        self.pings += 1
        return True


class _ExplodingLlm:
    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> None:
        self.polls += 1
        raise OSError("fork refused: out of memory")


def test_a_raising_llm_poll_does_not_end_the_tick(caplog: pytest.LogCaptureFixture) -> None:
    notifier = _Notifier()
    daemon = Daemon(EdgeConfig(device_id="unit"), notifier=notifier)  # type: ignore[arg-type]
    llm = _ExplodingLlm()
    daemon.llm = llm  # type: ignore[assignment]
    ticks: list[Any] = []
    daemon.publisher.tick = lambda: ticks.append(1)  # type: ignore[method-assign]
    daemon.publish_stats = lambda: ticks.append("stats")  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="edge.daemon.daemon"):
        daemon._tick()
        daemon._tick()
    assert llm.polls == 2
    assert ticks.count(1) == 2 and "stats" in ticks  # the rest of the tick still ran, both times
    assert notifier.pings == 2  # and the watchdog is still fed
    assert any("LLM" in r.getMessage() and r.exc_info for r in caplog.records), caplog.text


class _PipelineWhoseStatsFail:
    """Stand-in for a pipeline broken enough that it cannot report its counters."""

    name, kind, paused = "cam", "camera", False

    def stats(self) -> dict[str, Any]:
        raise RuntimeError("/secret/path/model.onnx vanished")


def test_healthz_is_503_for_a_pipeline_that_cannot_report_and_says_nothing_of_the_exception_text() -> None:
    daemon = Daemon(EdgeConfig(device_id="unit"), notifier=_Notifier())  # type: ignore[arg-type]
    daemon._loop_running = True
    assert daemon.healthz()[0] is True
    daemon.registry._pipelines["cam"] = _PipelineWhoseStatsFail()  # type: ignore[assignment]
    ok, body = daemon.healthz()
    assert ok is False and body["stale_sources"] == ["cam"] and body["sources"]["cam"]["state"] == "unknown"
    assert "secret" not in str(body)
