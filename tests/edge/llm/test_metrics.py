"""The LLM's Prometheus metrics (no model): request counters, throughput and time-to-first-token buckets."""

from __future__ import annotations

from edge.llm.engine import Generation, Timings
from edge.llm.metrics import LlmMetrics


def test_metrics_exposition() -> None:
    metrics = LlmMetrics()
    metrics.count_request("http", "ok")
    metrics.count_request("mqtt", "queue_full")
    timings = Timings(prompt_n=20, prompt_ms=100.0, predicted_n=11, predicted_ms=200.0, ttft_ms=300.0)
    metrics.observe_generation(Generation("x", "stop", None, 20, 11, timings), 0.5)
    text = metrics.render("tiny")
    assert 'edgeteach_llm_requests_total{api="http",outcome="ok"} 1' in text
    assert 'edgeteach_llm_requests_total{api="mqtt",outcome="queue_full"} 1' in text
    assert 'edgeteach_llm_prompt_tokens_per_second{model="tiny"} 200' in text
    assert 'edgeteach_llm_generation_tokens_per_second{model="tiny"} 50' in text
    assert 'edgeteach_llm_time_to_first_token_seconds_bucket{model="tiny",le="0.25"} 0' in text
    assert 'edgeteach_llm_time_to_first_token_seconds_bucket{model="tiny",le="0.5"} 1' in text
