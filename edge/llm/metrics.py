"""Prometheus metrics of the LLM server, rendered in the text exposition format (no client library)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from edge.llm.engine import Generation

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTCOMES = ("ok", "cancelled", "timeout", "queue_full", "bad_request", "unauthorized", "not_ready", "error")


class LlmMetrics:
    """Thread-safe counters. `gauges` callbacks are read at scrape time (queue depth, busy, loaded)."""

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

    def render(self, model: str) -> str:
        label = f'model="{_escape(model)}"'
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}")

        with self._lock:
            requests = dict(self.requests)
            metric(
                "edgeteach_llm_requests_total", "counter", "Chat requests by API (http, mqtt) and outcome.",
                [(f'api="{api}",outcome="{outcome}"', n) for (api, outcome), n in sorted(requests.items())]
                or [('api="http",outcome="ok"', 0)],
            )
            metric("edgeteach_llm_prompt_tokens_total", "counter", "Prompt tokens evaluated.", [(label, self.prompt_tokens)])
            metric("edgeteach_llm_prompt_seconds_total", "counter", "Seconds spent evaluating prompts.", [(label, self.prompt_seconds)])
            metric("edgeteach_llm_generation_tokens_total", "counter", "Tokens generated after the first of each answer.", [(label,
                                                                                                                             self.generation_tokens)])
            metric("edgeteach_llm_generation_seconds_total", "counter", "Seconds spent generating those tokens.", [(label,
                                                                                                                    self.generation_seconds)])
            metric("edgeteach_llm_prompt_tokens_per_second", "gauge", "Average prompt throughput since start.",
                   [(label, self.prompt_tokens / self.prompt_seconds if self.prompt_seconds else 0.0)])
            metric("edgeteach_llm_generation_tokens_per_second", "gauge", "Average generation throughput since start.",
                   [(label, self.generation_tokens / self.generation_seconds if self.generation_seconds else 0.0)])
            lines.append("# HELP edgeteach_llm_time_to_first_token_seconds Time from request accepted to first "
                         "token (queue wait included).")
            lines.append("# TYPE edgeteach_llm_time_to_first_token_seconds histogram")
            # Already cumulative: an observation is counted in every bucket whose bound it is under.
            for bound, n in zip(TTFT_BUCKETS, self.ttft_bucket_counts):
                lines.append(f'edgeteach_llm_time_to_first_token_seconds_bucket{{{label},le="{bound:g}"}} {n}')
            lines.append(f'edgeteach_llm_time_to_first_token_seconds_bucket{{{label},le="+Inf"}} {self.ttft_count}')
            lines.append(f"edgeteach_llm_time_to_first_token_seconds_sum{{{label}}} {self.ttft_sum:g}")
            lines.append(f"edgeteach_llm_time_to_first_token_seconds_count{{{label}}} {self.ttft_count}")
            gauges = dict(self.gauges)
        for name, (help_text, read) in sorted(gauges.items()):
            metric(name, "gauge", help_text, [(label, float(read()))])
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
