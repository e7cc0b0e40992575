// Health at a glance: the header's pills and each tile's figures, from /api/overview, which carries the very
// payloads of MQTT `stats` and `/healthz`.
import { el, num, mb } from "./ui.js";

const pill = (text, state, title) => el("span", { class: `pill ${state}`, title }, text);

export function drawHeader(overview) {
  const { health, stats } = overview;
  const proc = stats.process || {};
  document.getElementById("device").textContent = overview.device_id;
  document.title = `${overview.device_id}: EdgeTeach`;
  document.getElementById("health").replaceChildren(
    pill(overview.healthy ? "healthy" : "unhealthy", overview.healthy ? "ok" : "bad", "/healthz"),
    pill(health.mqtt_connected ? "MQTT connected" : "MQTT offline", health.mqtt_connected ? "ok" : "bad", "broker connection"),
    pill(`CPU ${num(proc.cpu_percent, 0)} %`, "info", "this process; 100 % = one core"),
    pill(`RAM ${mb(proc.rss_bytes)}`, "info", "resident memory of this process"),
    pill(proc.soc_temperature_c === null || proc.soc_temperature_c === undefined ? "temp -" : `${num(proc.soc_temperature_c)} °C`,
      proc.soc_temperature_c > 80 ? "bad" : "info", "hottest thermal zone"),
  );
}

// One pipeline's figures: the `stats` entry and its /healthz source (reason included when it failed).
export function figures(stats, source, failed) {
  if (failed) return [el("span", { class: "bad source" }, `failed: ${failed}`)];
  const s = stats || {};
  const state = source ? source.state : s.source_state;
  const detail = source && source.detail ? `: ${source.detail}` : "";
  return [
    el("span", { class: `source ${state === "running" ? "ok" : "bad"}` }, `source ${state || "-"}${state === "running" ? "" : detail}`),
    el("span", {}, `${num(s.fps)} fps`),
    el("span", {}, `dropped ${s.frames_dropped ?? "-"}`),
    el("span", { title: "capture to decision" }, `latency p50 ${num(s.latency_p50_ms, 0)} / p95 ${num(s.latency_p95_ms, 0)} ms`),
  ];
}
