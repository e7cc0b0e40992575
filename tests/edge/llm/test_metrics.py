"""The LLM's Prometheus metrics (no model): request counters, throughput and time-to-first-token buckets,
read back with prometheus_client's own text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edge.llm.engine import Generation, Timings
from edge.llm.metrics import LlmMetrics


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_exposition() -> None:
    metrics = LlmMetrics()
    metrics.count_request("http", "ok")
    metrics.count_request("mqtt", "queue_full")
    timings = Timings(prompt_n=20, prompt_ms=100.0, predicted_n=11, predicted_ms=200.0, ttft_ms=300.0)
    metrics.observe_generation(Generation("x", "stop", None, 20, 11, timings), 0.5)
    text = metrics.render("tiny")
    got = samples(text)
    model = ("model", "tiny")
    assert got["edgeteach_llm_requests_total", frozenset({("api", "http"), ("outcome", "ok")})] == 1
    assert got["edgeteach_llm_requests_total", frozenset({("api", "mqtt"), ("outcome", "queue_full")})] == 1
    assert got["edgeteach_llm_prompt_tokens_per_second", frozenset({model})] == 200
    assert got["edgeteach_llm_generation_tokens_per_second", frozenset({model})] == 50
    assert got["edgeteach_llm_time_to_first_token_seconds_bucket", frozenset({model, ("le", "0.25")})] == 0
    assert got["edgeteach_llm_time_to_first_token_seconds_bucket", frozenset({model, ("le", "0.5")})] == 1
    assert "# TYPE edgeteach_llm_requests_total counter" in text and "_created" not in text


def test_each_instance_has_its_own_registry() -> None:
    one, two = LlmMetrics(), LlmMetrics()  # several servers in one process (the tests) must not collide
    one.count_request("http", "ok")
    assert samples(one.render("a"))["edgeteach_llm_requests_total", frozenset({("api", "http"), ("outcome", "ok")})] == 1
    assert samples(two.render("b"))["edgeteach_llm_requests_total", frozenset({("api", "http"), ("outcome", "ok")})] == 0
