"""The daemon's Prometheus metrics: a writer for the text exposition format 0.0.4 (`MetricsText`) and the
families `/metrics` serves (`render_metrics`), from the figures the daemon gathers."""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class MetricsText:
    """Collects samples and renders the Prometheus text format (HELP/TYPE once per family)."""

    def __init__(self, namespace: str = "edgeteach") -> None:
        self._namespace = namespace
        self._families: dict[str, _Family] = {}

    def add(self, name: str, value: float | int | bool | None, help: str, kind: str = "gauge", **labels: str) -> None:
        if value is None:
            return  # unknown (e.g. no thermal sensor): absent beats a fake 0
        full = f"{self._namespace}_{name}"
        family = self._families.setdefault(full, _Family(full, kind, help))
        family.samples.append((labels, float(value)))

    def render(self) -> str:
        lines: list[str] = []
        for family in self._families.values():
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in family.samples:
                label_text = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in sorted(labels.items()))
                lines.append(f"{family.name}{{{label_text}}} {_format_value(value)}" if label_text else f"{family.name} "
                             f"{_format_value(value)}")
        return "\n".join(lines) + "\n"


def render_metrics(loop_ok: bool, loop_age_s: float, mqtt: dict[str, Any], pipelines: dict[str, dict[str, Any]], running: Container[str],
                   process: dict[str, Any], reloads_ok: int, reloads_failed: int) -> str:
    """Every family of /metrics: the main loop, the MQTT connection and commands, each pipeline (`running`:
    the names built and started), the process and the SIGHUP reloads."""
    m = MetricsText()
    m.add("up", 1, "the daemon answers")
    m.add("main_loop_healthy", loop_ok, "1 while the main loop ticks (systemd watchdog pings only then)")
    m.add("main_loop_age_seconds", loop_age_s, "seconds since the main loop last ticked")
    m.add("mqtt_connected", mqtt["connected"], "1 while connected to the broker")
    m.add("mqtt_queue_pending", mqtt["pending"], "QoS 1 messages not yet acknowledged by the broker")
    m.add("mqtt_queue_limit", mqtt["queue_limit"], "bound of that queue (mqtt.queue_limit)")
    m.add("mqtt_queue_overflow_total", mqtt["overflowed"], "QoS 1 messages dropped because the queue was full", "counter")
    m.add("mqtt_dropped_offline_total", mqtt["dropped_offline"], "QoS 0 messages dropped while disconnected", "counter")
    m.add("mqtt_published_total", mqtt["published"], "messages accepted for publishing", "counter")
    m.add("mqtt_connects_total", mqtt["connects"], "successful connections to the broker", "counter")
    m.add("mqtt_disconnects_total", mqtt["disconnects"], "unexpected connection losses", "counter")
    m.add("commands_total", mqtt["commands_handled"], "MQTT commands carried out", "counter")
    m.add("commands_failed_total", mqtt["commands_failed"], "MQTT commands answered with an error", "counter")
    for name, s in pipelines.items():
        labels = {"pipeline": name}
        m.add("pipeline_running", name in running, "1 when the pipeline was built and started", **labels)
        m.add("frames_in_total", s.get("frames_in"), "frames or audio windows captured", "counter", **labels)
        m.add("frames_classified_total", s.get("frames_classified"), "frames or windows classified", "counter", **labels)
        m.add("frames_dropped_total", s.get("frames_dropped"), "stale frames skipped to stay live", "counter", **labels)
        m.add("fps", s.get("fps"), "classifications per second, recent", **labels)
        m.add("latency_p50_ms", s.get("latency_p50_ms"), "capture-to-decision latency, median", **labels)
        m.add("latency_p95_ms", s.get("latency_p95_ms"), "capture-to-decision latency, 95th percentile", **labels)
        m.add("queue_size", s.get("queue_size"), "items waiting between capture and inference", **labels)
        m.add("source_restarts_total", s.get("source_restarts"), "source restarts after failure or end", "counter", **labels)
        m.add("source_up", s.get("source_state") == "running", "1 while the source delivers", **labels)
        m.add("paused", s.get("paused", False), "1 while paused by command", **labels)
        m.add("states_published_total", s.get("states_published"), "state messages published", "counter", **labels)
        m.add("events_published_total", s.get("events_published"), "change events published", "counter", **labels)
        m.add("events_dropped_total", s.get("events_dropped"), "change events the MQTT queue refused", "counter", **labels)
    m.add("process_cpu_percent", process["cpu_percent"], "process CPU since the last scrape (100 = one core)")
    m.add("process_resident_memory_bytes", process["rss_bytes"], "resident set size")
    m.add("soc_temperature_celsius", process["soc_temperature_c"], "hottest thermal zone (absent where unreadable)")
    m.add("config_reloads_total", reloads_ok, "SIGHUP config reloads applied", "counter")
    m.add("config_reloads_failed_total", reloads_failed, "SIGHUP config reloads refused", "counter")
    return m.render()
