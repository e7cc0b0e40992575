// One tile per pipeline: what it sees or hears with its decision (live.js data), its figures, the controls,
// the model card and the timeline of label changes. A tile is built once and then updated in place, so the
// MJPEG picture keeps streaming and a half-edited control keeps its value.
import { el, api, getJson, enc, pipeUrl, pct, clock, showError } from "./ui.js";
import { figures } from "./health.js";
import { level, waveform, spectrogramColumn } from "./sound.js";

const tiles = new Map();

function media(name, kind) {
  if (kind === "camera") {
    // Set after the page is built: an MJPEG stream never "finishes loading".
    const img = el("img", { class: "live", alt: `what ${name} sees` });
    queueMicrotask(() => { img.src = `${pipeUrl(name)}/stream.mjpg`; });
    return { node: img };
  }
  const meter = el("div", { class: "meter-fill" });
  const wave = el("canvas", { class: "wave", width: 480, height: 60 });
  const spec = el("canvas", { class: "spec", width: 480, height: 120 });
  return { node: el("div", { class: "sound" }, el("div", { class: "meter" }, meter), wave, spec), meter, wave, spec };
}

async function send(tile, command, args) {
  tile.message.textContent = "…";
  tile.message.className = "message";
  try {
    const reply = await (await api(`/api/command/${command}`, { method: "POST", json: { pipeline: tile.name, ...args } })).json();
    tile.message.textContent = `${command}: done`;
    return reply;
  } catch (error) {
    tile.message.textContent = error.message;  // the command code's own words: what was wrong and how to fix it
    tile.message.className = "message error";
    return null;
  }
}

async function snapshot(tile) {
  try {
    const blob = await (await api(`${pipeUrl(tile.name)}/snapshot`, { method: "POST" })).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: `${tile.name}-${Date.now()}.jpg` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    tile.message.textContent = error.message;
    tile.message.className = "message error";
  }
}

const TASKS = { camera: "image", microphone: "audio" };

// The bundles of models_dir this pipeline can run, the running one selected.
async function fillBundles(tile) {
  try {
    const { bundles } = await getJson("/api/models");
    const fitting = bundles.filter((b) => b.task === null || b.task === TASKS[tile.kind]);
    const chosen = tile.bundles.value;
    tile.bundles.replaceChildren(...fitting.map((b) => el("option", { value: b.path }, b.path)));
    const running = fitting.find((b) => tile.running && (b.path === tile.running || b.path.endsWith(`/${tile.running}`)));
    tile.bundles.value = chosen && fitting.some((b) => b.path === chosen) ? chosen : (running ? running.path : "");
  } catch (error) { showError(error.message); }
}

function controls(tile, kind) {
  tile.pause = el("button", { class: "pause", onclick: () => send(tile, tile.paused ? "resume" : "pause", {}) }, "Pause");
  tile.threshold = el("input", { type: "number", class: "threshold", min: 0, max: 1, step: 0.05 });
  tile.method = el("select", { class: "smoothing" }, ["none", "moving_average", "n_of_m"].map((m) => el("option", { value: m }, m)));
  tile.window = el("input", { type: "number", class: "window", min: 1, max: 100, step: 1, title: "window (moving average) or m (n of m)" });
  const apply = el("button", { class: "plain apply", onclick: () => {
    const smoothing = { method: tile.method.value };
    if (tile.method.value === "moving_average") smoothing.window = Number(tile.window.value);
    if (tile.method.value === "n_of_m") { smoothing.m = Number(tile.window.value); smoothing.n = Math.ceil(Number(tile.window.value) / 2); }
    send(tile, "set", { threshold: Number(tile.threshold.value), smoothing });
  } }, "Apply");
  tile.bundles = el("select", { class: "bundles", onfocus: () => fillBundles(tile) });
  const reload = el("button", { class: "plain reload", onclick: () => send(tile, "reload", { bundle: tile.bundles.value }) }, "Load");
  return el("div", { class: "controls" },
    el("div", { class: "row" }, tile.pause,
      kind === "camera" ? el("button", { class: "plain snapshot", onclick: () => snapshot(tile) }, "Snapshot") : null),
    el("div", { class: "row" }, el("label", {}, "threshold ", tile.threshold), el("label", {}, "smoothing ", tile.method),
      tile.window, apply),
    el("div", { class: "row" }, el("label", {}, "model ", tile.bundles), reload),
    tile.message);
}

function build(name, kind) {
  const tile = { name, kind, seq: 0, paused: false, settingsShown: false };
  tile.media = media(name, kind);
  tile.label = el("div", { class: "label", "data-pipeline": name }, "…");
  tile.confidence = el("span", { class: "confidence" });
  tile.bars = el("div", { class: "bars" });
  tile.figures = el("div", { class: "figures row" });
  tile.state = el("span", { class: "badge" });
  tile.card = el("dl", { class: "model-card" });
  tile.report = el("a", { class: "report", target: "_blank", rel: "noopener", href: `${pipeUrl(name)}/report.html`, hidden: true },
    "Training report");
  tile.timeline = el("ol", { class: "timeline" });
  tile.message = el("p", { class: "message", "aria-live": "polite" });
  tile.node = el("article", { class: "card tile", "data-pipeline": name },
    el("h2", {}, name, " ", el("small", {}, kind), " ", tile.state),
    tile.media.node,
    el("div", { class: "decision" }, tile.label, tile.confidence),
    tile.bars, tile.figures, controls(tile, kind),
    el("details", { class: "about" }, el("summary", {}, "Model"), tile.card, tile.report),
    el("details", { class: "changes", open: true }, el("summary", {}, "Label changes"), tile.timeline));
  return tile;
}

export function syncTiles(container, kinds) {
  for (const [name, tile] of tiles) if (!(name in kinds)) { tile.node.remove(); tiles.delete(name); }
  for (const [name, kind] of Object.entries(kinds)) {
    if (!tiles.has(name)) { const tile = build(name, kind); tiles.set(name, tile); container.append(tile.node); }
  }
}

export function showLive(live) {
  for (const [name, view] of Object.entries(live)) {
    const tile = tiles.get(name);
    if (!tile) continue;
    tile.paused = view.paused;
    tile.pause.textContent = view.paused ? "Resume" : "Pause";
    tile.state.textContent = view.paused ? "paused" : "";
    tile.node.classList.toggle("paused", view.paused);
    if (view.label !== null) {
      tile.label.textContent = view.label;
      tile.confidence.textContent = pct(view.confidence);
      tile.bars.replaceChildren(...Object.entries(view.scores).map(([label, score]) => el("div", { class: `bar${label === view.label ? " on" : ""}` },
        el("span", { class: "name" }, label), el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * score).toFixed(1)}%` })),
        el("span", { class: "value" }, pct(score)))));
    }
    tile.timeline.replaceChildren(...view.changes.slice().reverse().map((c) => el("li", {}, el("time", {}, clock(c.ts)), " ", c.label, " ",
      el("small", {}, pct(c.confidence)))));
    if (view.audio && view.seq !== tile.seq) {
      level(tile.media.meter, view.audio.level_db);
      waveform(tile.media.wave, view.audio.waveform);
      spectrogramColumn(tile.media.spec, view.audio.spectrum);
    }
    tile.seq = view.seq;
  }
}

export function showOverview(overview) {
  const pipelines = overview.stats.pipelines || {};
  for (const [name, tile] of tiles) {
    tile.figures.replaceChildren(...figures(pipelines[name], overview.health.sources[name], overview.health.failed_pipelines[name]));
    const card = overview.cards[name];
    if (!card || !card.labels) continue;
    const short = card.sha256 ? card.sha256.slice(0, 12) : "-";
    const rows = [["bundle", card.bundle], ["labels", card.labels.join(", ")], ["variant", card.variant], ["SHA-256", short],
      ["trained", card.created_at || "-"], ["backbone", card.backbone || "-"], ["accuracy", pct(card.accuracy)]];
    tile.card.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: k === "SHA-256" ? "sha" : null, title: k === "SHA-256" ? card.sha256 : null }, v)]));
    tile.report.hidden = !card.has_report;
    if (tile.running !== card.bundle) { tile.running = card.bundle; fillBundles(tile); }
    if (!tile.settingsShown && card.settings) {  // once: then the maker's edits stay until Apply
      tile.threshold.value = card.settings.threshold;
      const smoothing = card.settings.smoothing || { method: "none" };
      tile.method.value = smoothing.method;
      tile.window.value = smoothing.window || smoothing.m || 5;
      tile.settingsShown = true;
    }
  }
}

export const tileNames = () => [...tiles.keys()].map(enc);
