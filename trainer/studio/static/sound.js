// 1. Gather, for a sound project: per class, clips of a set length recorded from the microphone (one or several
// in a row, after an optional countdown) or WAV files dropped on it; and the background-noise recording the
// trainer mixes in and learns as "nothing happening". Each clip is made into a WAV in the page (wav.js) and sent
// as soon as it is recorded, so a closed tab loses nothing already recorded. Waveforms are small SVGs made by
// the server (?size=thumb), so a class of 60 clips does not fetch 60 recordings.

import { openMic } from "./mic.js";
import { api, el, enc, projectUrl, redraw, showError } from "./ui.js";
import { encodeWav } from "./wav.js";

const WAV_NAME = /\.wav$/i;
const COUNTDOWNS = [0, 3, 5]; // seconds before recording starts
const MAX_CLIPS = 50; // clips one press records in a row
const SHOWN = 60; // waveforms drawn per class (the newest)

export const SOUND_HELP = "Make one class per sound the model should tell apart, then record examples of each with the "
  + "microphone (or drop WAV files on the class), and record the room with nothing happening under Background noise. "
  + "Each clip is saved as soon as it is recorded.";

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const counted = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// Moves a class one place up (-1) or down (+1): the order of the model's labels from the next training
// (kept by the server in studio.json, as for image projects).
async function moveClass(project, order, index, step) {
  const next = [...order];
  [next[index], next[index + step]] = [next[index + step], next[index]];
  await api(`${projectUrl(project)}/class-order`, { method: "PUT", json: { classes: next } });
  redraw();
}
let busy = false; // one recording at a time on the page: there is one microphone

async function countdown(seconds, show) {
  for (let left = seconds; left > 0; left -= 1) { show(`${left}…`); await sleep(1000); }
}

// A strip of waveforms with play and delete for each sample; returns {strip, add(sample)}.
function waveforms(base, samples, onChange) {
  const strip = el("div", { class: "clips" });
  const add = (sample) => {
    const url = `${base}/samples/${enc(sample)}`;
    const box = el("div", { class: "clip", "data-sample": sample },
      el("img", { src: `${url}?size=thumb`, alt: `waveform of ${sample}`, loading: "lazy" }),
      el("button", { class: "play", title: "play this clip", onclick: () => new Audio(url).play().catch((e) => showError(`Cannot play: ${e.message}`)) }, "▶"),
      el("button", { class: "delete", title: "delete this clip", onclick: async () => {
        await api(url, { method: "DELETE" });
        box.remove(); onChange(-1, sample);
      } }, "×"));
    strip.prepend(box);
  };
  samples.slice(-SHOWN).forEach(add);
  return { strip, add };
}

// WAV files dropped on `zone` or picked in it, sent one after the other (the server checks each).
function wavDrop(upload) {
  const send = async (files) => {
    const wavs = [...files].filter((f) => WAV_NAME.test(f.name) || /^audio\/(x-)?wav/.test(f.type));
    if (wavs.length < files.length) showError(`${files.length - wavs.length} file(s) skipped: only WAV files are taken`);
    for (const file of wavs) await upload(file, file.name).catch(() => {});
  };
  const picker = el("input", { type: "file", accept: ".wav,audio/wav", multiple: true, class: "files", onchange: () => send(picker.files) });
  const zone = el("div", { class: "drop" }, "Drop WAV files here, or ", picker);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); send(e.dataTransfer.files); });
  return zone;
}

// Records `clips` clips of `seconds` each in a row, handing each to `save` as soon as it ends.
async function recordClips({ seconds, clips, delay, status, save, label }) {
  if (busy) { showError("Another recording is running: wait for it to end."); return; }
  busy = true;
  try {
    const mic = await openMic();
    await countdown(delay, (text) => { status.textContent = `Recording in ${text}`; status.dataset.state = "counting"; });
    for (let i = 1; i <= clips; i += 1) {
      status.dataset.state = "recording";
      const samples = await mic.record(Math.round(seconds * mic.rate), (f) => {
        status.textContent = `${label} ${clips > 1 ? `${i} of ${clips} ` : ""}… ${Math.round(100 * f)} %`;
      });
      save(encodeWav(samples, mic.rate)); // not awaited: the next clip starts at once
    }
    status.textContent = clips > 1 ? `Recorded ${clips} clips.` : "Recorded.";
  } catch (error) {
    showError(`No microphone: ${error.message}. Allow the microphone for this page, or drop WAV files instead.`);
    status.textContent = "";
  } finally {
    busy = false;
    status.dataset.state = "idle";
  }
}

const numberField = (cls, value, min, max, step) => el("input", { type: "number", class: cls, value, min, max, step });
const delaySelect = () => el("select", { class: "countdown" }, COUNTDOWNS.map((s) => el("option", { value: s }, s ? `${s} s` : "none")));

export function soundClassCard(project, cls, index, order, recording) {
  const base = `${projectUrl(project)}/classes/${enc(cls.name)}`;
  const count = el("span", { class: "muted count" }, counted(cls.samples.length, "clip"));
  const changed = (step, sample) => {
    cls.samples = step > 0 ? [...cls.samples, sample] : cls.samples.filter((s) => s !== sample);
    count.textContent = counted(cls.samples.length, "clip");
  };
  const { strip, add } = waveforms(base, cls.samples, changed);
  const upload = async (blob, filename) => {
    const data = await api(`${base}/samples?filename=${enc(filename)}`, { method: "POST", body: blob });
    add(data.name); changed(1, data.name);
  };
  const seconds = numberField("clip-seconds", recording.clip_seconds, 0.5, recording.max_clip_seconds, 0.5);
  const clips = numberField("clip-count", 8, 1, MAX_CLIPS, 1);
  const delay = delaySelect();
  const status = el("span", { class: "muted record-status", "data-state": "idle" });
  const record = el("button", { class: "record", onclick: async () => {
    record.disabled = true;
    await recordClips({ seconds: Math.min(recording.max_clip_seconds, Math.max(0.5, Number(seconds.value) || recording.clip_seconds)),
      clips: Math.min(MAX_CLIPS, Math.max(1, Math.round(Number(clips.value) || 1))), delay: Number(delay.value) || 0,
      status, label: "Recording clip", save: (wav) => upload(wav, "mic.wav").catch(() => {}) });
    record.disabled = false;
  } }, "Record");
  const rename = el("input", { type: "text", value: cls.name, class: "rename", maxlength: 60 });
  const move = (step, label, text) => el("button", { class: "plain move", title: label, "aria-label": label,
    disabled: index + step < 0 || index + step >= order.length, onclick: () => moveClass(project, order, index, step) }, text);
  return el("div", { class: "card class-card sound", "data-class": cls.name },
    el("div", { class: "row" }, el("h2", {}, cls.name), count,
      el("span", { class: "spacer" }), move(-1, "move this class up", "↑"), move(1, "move this class down", "↓")),
    strip,
    el("div", { class: "row" }, record, el("label", {}, "clips ", clips), el("label", {}, "seconds each ", seconds),
      el("label", {}, "countdown ", delay), status),
    el("div", { class: "row" }, rename,
      el("button", { class: "plain", onclick: async () => { await api(base, { method: "PATCH", json: { name: rename.value } }); redraw(); } }, "Rename"),
      el("button", { class: "danger", onclick: async () => {
        if (confirm(`Delete class ${cls.name} and its ${cls.samples.length} clips?`)) { await api(base, { method: "DELETE" }); redraw(); }
      } }, "Delete class")),
    wavDrop(upload));
}

// The room with nothing happening, recorded in one long take into `_background_noise_`: the trainer learns it
// as its own class (so the model can say "nothing") and mixes it under the other clips.
export function backgroundCard(project, summary) {
  const background = summary.background;
  const recording = summary.recording;
  const base = `${projectUrl(project)}/classes/${enc(background.name)}`;
  let samples = [...background.samples];
  const count = el("span", { class: "muted count" }, counted(samples.length, "recording"));
  const changed = (step, sample) => {
    samples = step > 0 ? [...samples, sample] : samples.filter((s) => s !== sample);
    count.textContent = counted(samples.length, "recording");
  };
  const { strip, add } = waveforms(base, samples, changed);
  const upload = async (blob, filename) => {
    const data = await api(`${base}/samples?filename=${enc(filename)}`, { method: "POST", body: blob });
    add(data.name); changed(1, data.name);
  };
  const seconds = numberField("background-seconds", recording.background_seconds, 2, recording.max_background_seconds, 1);
  const delay = delaySelect();
  const status = el("span", { class: "muted record-status", "data-state": "idle" });
  const record = el("button", { class: "record", id: "record-background", onclick: async () => {
    record.disabled = true;
    await recordClips({ seconds: Math.min(recording.max_background_seconds, Math.max(2, Number(seconds.value) || recording.background_seconds)),
      clips: 1, delay: Number(delay.value) || 0, status, label: "Recording the background",
      save: (wav) => upload(wav, "background.wav").catch(() => {}) });
    record.disabled = false;
  } }, "Record background");
  return el("div", { class: "card class-card sound background", "data-class": background.name, id: "background" },
    el("div", { class: "row" }, el("h2", {}, "Background noise"), count),
    el("p", { class: "muted" }, "Record the room as it is when none of your sounds is made (people talking, a fan, the street): "
      + "the model learns it as \"nothing\" and hears your sounds over it. One recording of 20 seconds is a good start."),
    strip,
    el("div", { class: "row" }, record, el("label", {}, "seconds ", seconds), el("label", {}, "countdown ", delay), status),
    wavDrop(upload));
}
