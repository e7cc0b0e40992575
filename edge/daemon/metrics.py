"""The daemon's Prometheus metrics: the families `/metrics` serves (`render_metrics`), from the figures the
daemon gathers, written in the text exposition format 0.0.4 by prometheus_client."""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NAMESPACE = "edgeteach"

Value = float | int | bool | None


class _Families:
    """Families in the order first added, each with its samples; a None value (unknown, e.g. no thermal
    sensor) adds no sample, and a family left without samples is not exposed: absent beats a fake 0."""

    def __init__(self) -> None:
        self._families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(self, name: str, value: Value, help: str, kind: str = "gauge", **labels: str) -> None:
        if value is None:
            return
        full = f"{NAMESPACE}_{name}"
        family = self._families.get(full)
        if family is None:
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = self._families[full] = family_type(full, help, labels=sorted(labels))
        family.add_metric([labels[key] for key in sorted(labels)], float(value))

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class DaemonCollector(Collector):
    """One scrape's figures as a prometheus_client collector (the values were read when it was made)."""

    def __init__(self, loop_ok: bool, loop_age_s: float, mqtt: dict[str, Any], pipelines: dict[str, dict[str, Any]],
                 running: Container[str], process: dict[str, Any], reloads_ok: int, reloads_failed: int) -> None:
        self.loop_ok, self.loop_age_s, self.mqtt, self.pipelines, self.running = loop_ok, loop_age_s, mqtt, pipelines, running
        self.process, self.reloads_ok, self.reloads_failed = process, reloads_ok, reloads_failed

    def collect(self) -> Iterator[Metric]:
        m = _Families()
        mqtt, process = self.mqtt, self.process
        m.add("up", 1, "the daemon answers")
        m.add("main_loop_healthy", self.loop_ok, "1 while the main loop ticks (systemd watchdog pings only then)")
        m.add("main_loop_age_seconds", self.loop_age_s, "seconds since the main loop last ticked")
        m.add("mqtt_connected", mqtt["connected"], "1 while connected to the broker")
        m.add("mqtt_queue_pending", mqtt["pending"], "QoS 1 messages not yet acknowledged by the broker")
        m.add("mqtt_queue_limit", mqtt["queue_limit"], "bound of that queue (mqtt.queue_limit)")
        m.add("mqtt_queue_bytes", mqtt.get("pending_bytes"), "payload bytes of those messages")
        m.add("mqtt_queue_max_bytes", mqtt.get("queue_max_bytes"), "bound of those bytes (mqtt.queue_max_bytes)")
        m.add("mqtt_queue_overflow_total", mqtt["overflowed"], "QoS 1 messages refused because the queue was full (count or bytes)",
              "counter")
        m.add("mqtt_oversized_total", mqtt.get("oversized"), "incoming messages over the maximum packet size, dropped on arrival",
              "counter")
        m.add("mqtt_dropped_offline_total", mqtt["dropped_offline"], "QoS 0 messages dropped while disconnected", "counter")
        m.add("mqtt_published_total", mqtt["published"], "messages accepted for publishing", "counter")
        m.add("mqtt_connects_total", mqtt["connects"], "successful connections to the broker", "counter")
        m.add("mqtt_disconnects_total", mqtt["disconnects"], "unexpected connection losses", "counter")
        m.add("commands_total", mqtt["commands_handled"], "MQTT commands carried out", "counter")
        m.add("commands_failed_total", mqtt["commands_failed"], "MQTT commands answered with an error", "counter")
        for name, s in self.pipelines.items():
            labels = {"pipeline": name}
            m.add("pipeline_running", name in self.running, "1 when the pipeline was built and started", **labels)
            m.add("frames_in_total", s.get("frames_in"), "frames or audio windows captured", "counter", **labels)
            m.add("frames_classified_total", s.get("frames_classified"), "frames or windows classified", "counter", **labels)
            m.add("frames_dropped_total", s.get("frames_dropped"), "stale frames skipped to stay live", "counter", **labels)
            m.add("fps", s.get("fps"), "classifications per second, recent", **labels)
            m.add("latency_p50_ms", s.get("latency_p50_ms"), "capture-to-decision latency, median", **labels)
            m.add("latency_p95_ms", s.get("latency_p95_ms"), "capture-to-decision latency, 95th percentile", **labels)
            m.add("queue_size", s.get("queue_size"), "items waiting between capture and inference", **labels)
            m.add("source_restarts_total", s.get("source_restarts"), "source restarts after failure or end", "counter", **labels)
            m.add("source_up", s.get("source_state") == "running", "1 while the source delivers", **labels)
            m.add("source_last_frame_age_seconds", s.get("last_frame_age_s"), "seconds since the source's last frame or audio block",
                  **labels)
            m.add("source_stalls_total", s.get("source_stalls"), "times the source stopped delivering without an error and was "
                  "restarted", "counter", **labels)
            m.add("paused", s.get("paused", False), "1 while paused by command", **labels)
            m.add("states_published_total", s.get("states_published"), "state messages published", "counter", **labels)
            m.add("events_published_total", s.get("events_published"), "change events published", "counter", **labels)
            m.add("events_dropped_total", s.get("events_dropped"), "change events the MQTT queue refused", "counter", **labels)
        m.add("process_cpu_percent", process["cpu_percent"], "process CPU since the last scrape (100 = one core)")
        m.add("process_resident_memory_bytes", process["rss_bytes"], "resident set size")
        m.add("soc_temperature_celsius", process["soc_temperature_c"], "hottest thermal zone (absent where unreadable)")
        m.add("config_reloads_total", self.reloads_ok, "SIGHUP config reloads applied", "counter")
        m.add("config_reloads_failed_total", self.reloads_failed, "SIGHUP config reloads refused", "counter")
        return iter(m)


def render_metrics(loop_ok: bool, loop_age_s: float, mqtt: dict[str, Any], pipelines: dict[str, dict[str, Any]], running: Container[str],
                   process: dict[str, Any], reloads_ok: int, reloads_failed: int) -> str:
    """Every family of /metrics: the main loop, the MQTT connection and commands, each pipeline (`running`:
    the names built and started), the process and the SIGHUP reloads. A registry of its own per scrape (never
    prometheus_client's global one: several daemons may run in one process, as in the tests)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(loop_ok, loop_age_s, mqtt, pipelines, running, process, reloads_ok, reloads_failed))
    return generate_latest(registry).decode()
