// 1. Gather: classes (in their order, which is the model's), their samples, photo and folder uploads, and
// hold-to-record from the webcam with an optional countdown.

import { backgroundCard, SOUND_HELP, soundClassCard } from "./sound.js";
import { api, el, enc, onLeave, projectUrl, redraw, showError } from "./ui.js";

let camera = null; // {stream, video}: at most one open webcam on the page

const IMAGE_NAME = /\.(jpe?g|png|bmp|webp|gif)$/i; // what `trainer train` reads; the server checks each file again
const MAX_FOLDER_FILES = 2000; // files taken from one dropped or picked folder (a class holds at most 2,000)
const MAX_FOLDER_DEPTH = 8; // sub-folders walked below a dropped folder
const COUNTDOWNS = [0, 3, 5]; // seconds before recording starts

export async function gatherTab(name, body) {
  const project = await api(projectUrl(name));
  const newClass = el("input", { type: "text", id: "new-class", placeholder: "class name, e.g. paper", maxlength: 60 });
  const addClass = async (event) => {
    event.preventDefault();
    await api(`${projectUrl(name)}/classes`, { method: "POST", json: { name: newClass.value } });
    redraw();
  };
  const sound = project.task === "sound"; // microphone clips and a background recording (sound.js)
  body.replaceChildren(
    el("p", { class: "muted" }, sound ? SOUND_HELP : "Make one class per thing the model should tell apart, then give each class examples: "
      + "hold the webcam button, or drop photos on the class. Each sample is saved as soon as it is taken."),
    ...project.classes.map((c, i) => (sound ? soundClassCard : classCard)(name, c, i, project.classes.map((k) => k.name), project.recording)),
    sound ? backgroundCard(name, project) : null,
    el("form", { class: "card row", onsubmit: addClass }, el("label", {}, "Add a class ", newClass),
      el("button", { type: "submit", id: "add-class" }, "Add class")),
  );
}

// Moves a class one place up (-1) or down (+1); the server keeps the order in studio.json and the next training
// gives the model's labels in this order.
async function moveClass(project, order, index, step) {
  const next = [...order];
  [next[index], next[index + step]] = [next[index + step], next[index]];
  await api(`${projectUrl(project)}/class-order`, { method: "PUT", json: { classes: next } });
  redraw();
}

function isImage(file) { return IMAGE_NAME.test(file.name) || (file.type || "").startsWith("image/"); }

// The files under dropped entries (files and folders, walked to MAX_FOLDER_DEPTH), at most MAX_FOLDER_FILES.
async function filesFromEntries(entries) {
  const found = [];
  const walk = async (entry, depth) => {
    if (found.length >= MAX_FOLDER_FILES) return;
    if (entry.isFile) { found.push(await new Promise((ok, fail) => entry.file(ok, fail))); return; }
    if (!entry.isDirectory || depth >= MAX_FOLDER_DEPTH) return;
    const reader = entry.createReader();
    for (;;) { // readEntries hands a folder's entries over in batches, until an empty one
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length || found.length >= MAX_FOLDER_FILES) break;
      for (const child of batch) await walk(child, depth + 1);
    }
  };
  for (const entry of entries) await walk(entry, 0);
  return found.slice(0, MAX_FOLDER_FILES);
}

function classCard(project, cls, index, order) {
  const base = `${projectUrl(project)}/classes/${enc(cls.name)}`;
  const count = el("span", { class: "muted count" }, `${cls.samples.length} samples`);
  const thumbs = el("div", { class: "thumbs" });
  const addThumb = (sample) => {
    const box = el("div", { class: "thumb" },
      el("img", { src: `${base}/samples/${enc(sample)}?size=thumb`, alt: sample, loading: "lazy" }),
      el("button", { title: "delete this sample", onclick: async () => {
        await api(`${base}/samples/${enc(sample)}`, { method: "DELETE" });
        box.remove(); cls.samples = cls.samples.filter((s) => s !== sample); count.textContent = `${cls.samples.length} samples`;
      } }, "×"));
    thumbs.prepend(box);
  };
  cls.samples.slice(-60).forEach(addThumb);
  const saved = (sample) => { cls.samples.push(sample); addThumb(sample); count.textContent = `${cls.samples.length} samples`; };
  const upload = async (blob, filename) => {
    const data = await api(`${base}/samples?filename=${enc(filename)}`, { method: "POST", body: blob });
    saved(data.name);
  };
  const progress = el("p", { class: "muted upload-progress", hidden: true });
  // One file after the other (the server decodes each); images only, the rest counted and named in the summary.
  const uploadFiles = async (fileList) => {
    const all = [...fileList];
    const images = all.filter(isImage);
    let failed = 0;
    for (const [i, file] of images.entries()) {
      if (images.length > 1) { progress.hidden = false; progress.textContent = `Uploading ${i + 1} of ${images.length}…`; }
      await upload(file, file.name).catch(() => { failed += 1; });
    }
    if (images.length > 1 || all.length > images.length) {
      const skipped = all.length - images.length;
      progress.hidden = false;
      progress.textContent = `Added ${images.length - failed} of ${images.length} images`
        + (failed ? ` (${failed} refused)` : "") + (skipped ? `; ${skipped} other file(s) skipped (not images)` : "") + ".";
    }
  };

  const files = el("input", { type: "file", accept: "image/*", multiple: true, class: "files", onchange: () => uploadFiles(files.files) });
  // a whole folder (and its sub-folders): the browser asks once, then hands over every file in it
  const folder = el("input", { type: "file", webkitdirectory: true, multiple: true, class: "folder",
    onchange: () => uploadFiles([...folder.files].slice(0, MAX_FOLDER_FILES)) });
  const drop = el("div", { class: "drop" }, "Drop photos or folders here, or choose photos ", files, " or a whole folder ", folder);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    // the entries must be taken while the drop event lasts; a folder is only reachable through them
    const entries = [...(e.dataTransfer.items || [])].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
    uploadFiles(entries.length ? await filesFromEntries(entries) : e.dataTransfer.files);
  });

  const rename = el("input", { type: "text", value: cls.name, class: "rename", maxlength: 60 });
  const webcamSlot = el("div", { class: "webcam" });
  const move = (step, label, text) => el("button", { class: "plain move", title: label, "aria-label": label,
    disabled: index + step < 0 || index + step >= order.length, onclick: () => moveClass(project, order, index, step) }, text);
  return el("div", { class: "card class-card", "data-class": cls.name },
    el("div", { class: "row" }, el("h2", {}, cls.name), count,
      el("span", { class: "spacer" }), move(-1, "move this class up", "↑"), move(1, "move this class down", "↓")),
    thumbs,
    el("div", { class: "row" },
      el("button", { class: "plain webcam-open", onclick: () => openWebcam(webcamSlot, upload) }, "Webcam"),
      rename,
      el("button", { class: "plain", onclick: async () => { await api(base, { method: "PATCH", json: { name: rename.value } }); redraw(); } }, "Rename"),
      el("button", { class: "danger", onclick: async () => {
        if (confirm(`Delete class ${cls.name} and its ${cls.samples.length} samples?`)) { await api(base, { method: "DELETE" }); redraw(); }
      } }, "Delete class")),
    drop, progress, webcamSlot);
}

function stopCamera() {
  if (camera) camera.stream.getTracks().forEach((t) => t.stop());
  camera = null;
}

// Hold-to-record: while the button is held, a centred square of the video is taken `fps` times a second
// and each frame is sent as a JPEG at once (a closed tab loses nothing already taken). With a countdown, a
// click counts down on the video (time to step back into the picture) and then records for `seconds`.
async function openWebcam(slot, upload) {
  stopCamera();
  document.querySelectorAll(".webcam").forEach((w) => w.replaceChildren());
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    showError(`No webcam: ${error.message}. Allow the camera for this page, or upload photos instead.`);
    return;
  }
  const video = el("video", { autoplay: true, muted: true, playsinline: true });
  video.srcObject = stream;
  camera = { stream, video };
  onLeave(stopCamera);
  const fps = el("input", { type: "number", min: 1, max: 24, value: 6, class: "fps" });
  const canvas = el("canvas", { width: 224, height: 224 });
  const grab = () => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return;
    const side = Math.min(w, h);
    canvas.getContext("2d").drawImage(video, (w - side) / 2, (h - side) / 2, side, side, 0, 0, 224, 224);
    canvas.toBlob((blob) => blob && upload(blob, "webcam.jpg").catch(() => {}), "image/jpeg", 0.9);
  };
  let timer = null;
  let counting = null; // the countdown's interval, while it runs
  let until = null; // the timeout that ends a counted-down recording
  const hold = el("button", { class: "hold" }, "Hold to record");
  const countdown = el("select", { class: "countdown", onchange: () => { stop(); label(); } },
    COUNTDOWNS.map((s) => el("option", { value: s }, s ? `${s} s` : "none")));
  const seconds = el("input", { type: "number", min: 1, max: 30, value: 3, class: "seconds" });
  const secondsField = el("label", { class: "field", hidden: true }, "then record for (seconds) ", seconds);
  const big = el("div", { class: "countdown-number", hidden: true, "aria-live": "assertive" });
  const delay = () => Number(countdown.value) || 0;
  const label = () => { hold.textContent = delay() ? "Record" : "Hold to record"; secondsField.hidden = !delay(); };
  const record = () => { hold.classList.add("recording"); grab();
    timer = setInterval(grab, 1000 / Math.min(24, Math.max(1, Number(fps.value) || 6))); };
  const stop = () => {
    clearInterval(timer); clearInterval(counting); clearTimeout(until);
    timer = counting = until = null; big.hidden = true; hold.classList.remove("recording", "counting");
  };
  onLeave(stop);
  const start = (e) => {
    e.preventDefault();
    if (timer || counting) { if (delay()) stop(); return; } // a second click stops a counted-down recording
    if (!delay()) { record(); return; }
    let left = delay();
    big.textContent = String(left); big.hidden = false; hold.classList.add("counting");
    counting = setInterval(() => {
      left -= 1;
      if (left > 0) { big.textContent = String(left); return; }
      clearInterval(counting); counting = null; big.hidden = true; hold.classList.remove("counting");
      record();
      until = setTimeout(stop, 1000 * Math.min(30, Math.max(1, Number(seconds.value) || 3)));
    }, 1000);
  };
  hold.addEventListener("pointerdown", start);
  for (const kind of ["pointerup", "pointerleave", "pointercancel"]) hold.addEventListener(kind, () => { if (!delay()) stop(); });
  slot.replaceChildren(el("div", { class: "row" }, el("div", { class: "video-box" }, video, big),
    el("div", {}, hold, el("label", { class: "field" }, "frames per second ", fps),
      el("label", { class: "field" }, "countdown before recording ", countdown), secondsField,
      el("button", { class: "plain", onclick: () => { stop(); stopCamera(); slot.replaceChildren(); } }, "Close webcam"))));
}

