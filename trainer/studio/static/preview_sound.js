// 4. Preview, for a sound project: the microphone runs all the time; about four times a second the last
// window (as long as the clips the model classifies) is sent as a WAV to the server, where the exported bundle
// classifies it with the Pi's own code (preview.js's classify), and the bars show its answer. One request in
// flight at most: on a busy server the page sends less often rather than piling clips up.

import { openMic } from "./mic.js";
import { classify, drawBars, showAnswer, variantSwitch } from "./preview.js";
import { el, onLeave, showError } from "./ui.js";
import { encodeWav } from "./wav.js";

const EVERY_MS = 250; // ~4 answers a second: a sound is heard in at least two overlapping windows
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// The window's waveform on `canvas`: what the model is hearing now.
function drawWave(canvas, samples) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#1a73e8";
  ctx.beginPath();
  const step = samples.length / width;
  for (let x = 0; x < width; x += 1) {
    let lo = 0, hi = 0;
    for (let i = Math.floor(x * step); i < Math.floor((x + 1) * step); i += 1) { lo = Math.min(lo, samples[i]); hi = Math.max(hi, samples[i]); }
    ctx.moveTo(x + 0.5, height / 2 - hi * height / 2);
    ctx.lineTo(x + 0.5, height / 2 - lo * height / 2 + 1);
  }
  ctx.stroke();
}

export async function previewSound(name, body, info) {
  const state = { running: true, variant: "fp32", answers: 0 };
  onLeave(() => { state.running = false; });
  const seconds = info.window_samples / info.sample_rate;
  const winner = el("div", { class: "preview-winner", id: "preview-label" }, "…");
  const bars = el("div", { class: "bars", id: "preview-bars" });
  const rate = el("span", { id: "preview-fps", class: "muted" }, "waiting for the microphone");
  const wave = el("canvas", { class: "live-wave", width: 320, height: 80 });
  drawBars(bars, Object.fromEntries(info.labels.map((label) => [label, 0])));
  body.replaceChildren(
    el("p", { class: "muted" }, `Make each sound the model learnt, and others. Every quarter of a second the last `
      + `${seconds.toFixed(1)} s the microphone heard go to the model you download, run by the same code as on the Raspberry Pi.`),
    el("div", { class: "card row preview" }, el("div", {}, wave, el("p", { class: "muted" }, "what the model hears")),
      el("div", { class: "preview-side" }, winner, bars, variantSwitch(info.variants, (v) => { state.variant = v; }), rate)));
  let mic;
  try {
    mic = await openMic();
  } catch (error) {
    showError(`No microphone: ${error.message}. Allow the microphone for this page to preview the model.`);
    return;
  }
  if (mic.context.state === "suspended") { // the page was opened without a click on it: the browser waits for one
    const start = el("button", { id: "preview-start", onclick: async () => { await mic.context.resume(); start.remove(); } }, "Start listening");
    rate.replaceWith(start, rate);
  }
  const windowSamples = Math.round(seconds * mic.rate);
  while (state.running) {
    const started = performance.now();
    const samples = mic.latest(windowSamples);
    drawWave(wave, samples);
    let result;
    try {
      result = await classify(name, state.variant, encodeWav(samples, mic.rate));
    } catch (error) {
      await sleep(1000); // shown by api(); a model being replaced answers again in a moment
      continue;
    }
    if (!state.running) break;
    showAnswer(bars, winner, result);
    state.answers += 1;
    rate.textContent = `${result.ms.toFixed(0)} ms on the server (${result.variant}) · ${mic.rate} Hz microphone`;
    rate.dataset.frames = String(state.answers);
    await sleep(Math.max(0, EVERY_MS - (performance.now() - started)));
  }
}
