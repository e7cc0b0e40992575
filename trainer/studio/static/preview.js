// 4. Preview: the trained model tried live. For a picture project the webcam runs in the page; the centred square
// of the video, at the size the model takes, goes to the server as a JPEG, where the exported bundle classifies it
// with the Pi's own code. The next frame leaves only when the answer is back: at most one request in flight, so the
// page slows down by itself on a busy server instead of piling frames up.
// Sound projects are previewed by preview_sound.js (the microphone), drawn with the pieces exported here:
// drawBars (a bar per class from a scores object), showAnswer (bars and winner), variantSwitch (fp32/int8) and
// classify (one request).

import { api, el, onLeave, pct, projectUrl, showError } from "./ui.js";

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// One bar per class in `container` from {label: probability}, the most likely marked; returns the winning label.
// Rows are made once and then only resized, so calling it for every frame costs little.
export function drawBars(container, scores) {
  const labels = Object.keys(scores);
  const best = labels.reduce((a, b) => (scores[b] > scores[a] ? b : a), labels[0]);
  const same = container.childElementCount === labels.length
    && [...container.children].every((row, i) => row.dataset.label === labels[i]);
  if (!same) {
    container.replaceChildren(...labels.map((label) => el("div", { class: "bar-row", "data-label": label },
      el("span", { class: "bar-label" }, label), el("div", { class: "bar" }, el("div", { class: "fill" })), el("span", { class: "value" }))));
  }
  for (const row of container.children) {
    const p = scores[row.dataset.label];
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = pct(p);
    row.classList.toggle("win", row.dataset.label === best);
  }
  container.dataset.label = best;
  return best;
}

// The fp32/int8 choice: int8 is the smaller, faster copy the Pi runs; comparing the two shows what rounding costs.
export function variantSwitch(variants, onChange, chosen = "fp32") {
  const option = (variant, text) => el("label", { class: "variant" },
    el("input", { type: "radio", name: "variant", value: variant, id: `variant-${variant}`, checked: variant === chosen,
      disabled: !variants.includes(variant), onchange: () => onChange(variant) }), ` ${text}`);
  return el("fieldset", { class: "variants", id: "variant-switch" }, el("legend", {}, "Model"),
    option("fp32", "full (fp32)"), option("int8", "small (int8, faster on a Pi)"),
    variants.includes("int8") ? null : el("span", { class: "muted" }, " this model has no int8 copy: train it again to make one"));
}

// One answer on the page: the bars, and the winner with its confidence (its label and variant kept as data-*
// attributes for the browser tests).
export function showAnswer(bars, winner, result) {
  drawBars(bars, result.scores);
  winner.textContent = `${result.label} ${pct(result.confidence)}`;
  winner.dataset.label = result.label;
  winner.dataset.variant = result.variant;
}

// One frame or clip classified by the project's model: {label, confidence, scores, variant, ms}. Sent as bytes
// rather than a Blob, so the request body shows in the browser's devtools (and to the browser test).
export async function classify(name, variant, blob) {
  return api(`${projectUrl(name)}/preview?variant=${variant}`, { method: "POST", body: await blob.arrayBuffer(), type: blob.type });
}

export async function previewTab(name, body) {
  let info;
  try {
    info = await api(`${projectUrl(name)}/preview`);
  } catch (error) {
    body.replaceChildren(el("p", { id: "preview-none" }, `${error.message}. `, el("a", { href: `#/p/${encodeURIComponent(name)}/train` }, "Go to 2. Train")));
    return;
  }
  if (info.task !== "image") {
    try {
      const sound = await import("./preview_sound.js");
      await sound.previewSound(name, body, info);
    } catch (error) {
      body.replaceChildren(el("p", {}, `The sound preview could not start: ${error.message}`));
    }
    return;
  }
  await webcamPreview(name, body, info);
}

async function webcamPreview(name, body, info) {
  const state = { running: true, variant: "fp32", stream: null, frames: 0, times: [] };
  onLeave(() => { state.running = false; if (state.stream) state.stream.getTracks().forEach((t) => t.stop()); });
  const [height, width] = info.input_size;
  const video = el("video", { autoplay: true, muted: true, playsinline: true, id: "preview-video" });
  const canvas = el("canvas", { width, height });
  const winner = el("div", { class: "preview-winner", id: "preview-label" }, "…");
  const bars = el("div", { class: "bars", id: "preview-bars" });
  const rate = el("span", { id: "preview-fps", class: "muted" }, "waiting for the webcam");
  drawBars(bars, Object.fromEntries(info.labels.map((label) => [label, 0])));
  body.replaceChildren(
    el("p", { class: "muted" }, "Show the camera each thing the model learnt, and things it did not. The model that answers "
      + "is the one you download, run by the same code as on the Raspberry Pi."),
    el("div", { class: "card row preview" }, video,
      el("div", { class: "preview-side" }, winner, bars, variantSwitch(info.variants, (v) => { state.variant = v; }), rate)));
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    showError(`No webcam: ${error.message}. Allow the camera for this page to preview the model.`);
    return;
  }
  if (!state.running) { state.stream.getTracks().forEach((t) => t.stop()); return; }
  video.srcObject = state.stream;

  // the centred square of the video at the model's size (what the gather screen saves, and the model's own crop)
  const grab = () => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return Promise.resolve(null);
    const side = Math.min(w, h);
    canvas.getContext("2d").drawImage(video, (w - side) / 2, (h - side) / 2, side, side, 0, 0, width, height);
    return new Promise((done) => canvas.toBlob(done, "image/jpeg", 0.9));
  };
  while (state.running) {
    const frame = await grab();
    if (!frame) { await sleep(50); continue; }
    let result;
    try {
      result = await classify(name, state.variant, frame);
    } catch (error) {
      await sleep(1000); // shown by api(); a model being replaced answers again in a moment
      continue;
    }
    if (!state.running) break;
    showAnswer(bars, winner, result);
    // answers per second over the last two seconds
    const now = performance.now();
    state.frames += 1;
    state.times.push(now);
    while (state.times.length > 2 && now - state.times[0] > 2000) state.times.shift();
    const span = (now - state.times[0]) / 1000;
    const fps = span > 0 ? (state.times.length - 1) / span : 0;
    rate.textContent = `${fps.toFixed(1)} frames/s · ${result.ms.toFixed(0)} ms on the server (${result.variant})`;
    rate.dataset.frames = String(state.frames);
  }
}
