"""Prometheus metrics of the LLM server: counters kept here, read at scrape time by a prometheus_client
collector and written in the text exposition format by prometheus_client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from edge.llm.engine import Generation

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTCOMES = ("ok", "cancelled", "timeout", "queue_full", "bad_request", "unauthorized", "not_ready", "error")


class LlmMetrics(Collector):
    """Thread-safe counters, and the collector of this server's own registry (never prometheus_client's global
    one: several servers may run in one process, as in the tests). `gauges` callbacks are read at scrape time
    (queue depth, busy, loaded); `model` is the label of every family but the requests'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.prompt_tokens = 0
        self.prompt_seconds = 0.0
        self.generation_tokens = 0
        self.generation_seconds = 0.0
        self.ttft_bucket_counts = [0] * len(TTFT_BUCKETS)
        self.ttft_sum = 0.0
        self.ttft_count = 0
        self.request_seconds_sum = 0.0
        self.request_seconds_count = 0
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.model = ""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def count_request(self, api: str, outcome: str) -> None:
        with self._lock:
            self.requests[(api, outcome)] = self.requests.get((api, outcome), 0) + 1

    def observe_generation(self, result: Generation, duration_s: float) -> None:
        t = result.timings
        ttft = t.ttft_ms / 1000.0
        with self._lock:
            self.prompt_tokens += t.prompt_n
            self.prompt_seconds += t.prompt_ms / 1000.0
            # Decode rate counts the tokens after the first: the first one's time is prompt time.
            self.generation_tokens += max(0, t.predicted_n - 1)
            self.generation_seconds += t.predicted_ms / 1000.0
            if t.predicted_n:
                self.ttft_sum += ttft
                self.ttft_count += 1
                for i, bound in enumerate(TTFT_BUCKETS):
                    if ttft <= bound:
                        self.ttft_bucket_counts[i] += 1
            self.request_seconds_sum += duration_s
            self.request_seconds_count += 1

    def mean_request_seconds(self, default: float) -> float:
        with self._lock:
            return self.request_seconds_sum / self.request_seconds_count if self.request_seconds_count else default

    def collect(self) -> Iterator[Metric]:
        """The families of one scrape, read from the counters now and from `gauges` callbacks."""
        model = [self.model]
        with self._lock:
            requests = CounterMetricFamily("edgeteach_llm_requests_total", "Chat requests by API (http, mqtt) and outcome.",
                                           labels=["api", "outcome"])
            for (api, outcome), n in sorted(self.requests.items()) or [(("http", "ok"), 0)]:
                requests.add_metric([api, outcome], n)
            families: list[Metric] = [requests]
            for name, help_text, value in (
                ("edgeteach_llm_prompt_tokens_total", "Prompt tokens evaluated.", self.prompt_tokens),
                ("edgeteach_llm_prompt_seconds_total", "Seconds spent evaluating prompts.", self.prompt_seconds),
                ("edgeteach_llm_generation_tokens_total", "Tokens generated after the first of each answer.", self.generation_tokens),
                ("edgeteach_llm_generation_seconds_total", "Seconds spent generating those tokens.", self.generation_seconds),
            ):
                counter = CounterMetricFamily(name, help_text, labels=["model"])
                counter.add_metric(model, value)
                families.append(counter)
            for name, help_text, value in (
                ("edgeteach_llm_prompt_tokens_per_second", "Average prompt throughput since start.",
                 self.prompt_tokens / self.prompt_seconds if self.prompt_seconds else 0.0),
                ("edgeteach_llm_generation_tokens_per_second", "Average generation throughput since start.",
                 self.generation_tokens / self.generation_seconds if self.generation_seconds else 0.0),
            ):
                families.append(_gauge(name, help_text, model, value))
            ttft = HistogramMetricFamily("edgeteach_llm_time_to_first_token_seconds",
                                         "Time from request accepted to first token (queue wait included).", labels=["model"])
            # Already cumulative: an observation is counted in every bucket whose bound it is under.
            ttft.add_metric(model, [(floatToGoString(bound), n) for bound, n in zip(TTFT_BUCKETS, self.ttft_bucket_counts)]
                            + [("+Inf", self.ttft_count)], self.ttft_sum)
            families.append(ttft)
            gauges = dict(self.gauges)
        for name, (help_text, read) in sorted(gauges.items()):
            families.append(_gauge(name, help_text, model, float(read())))
        return iter(families)

    def render(self, model: str) -> str:
        """The Prometheus text exposition (format 0.0.4) of this server's registry, `model` as the label."""
        self.model = model
        return generate_latest(self.registry).decode()


def _gauge(name: str, help_text: str, model: list[str], value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text, labels=["model"])
    gauge.add_metric(model, value)
    return gauge
