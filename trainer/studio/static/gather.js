// 1. Gather: classes, their samples, photo uploads and hold-to-record from the webcam.

import { backgroundCard, SOUND_HELP, soundClassCard } from "./sound.js";
import { api, el, enc, onLeave, projectUrl, redraw, showError } from "./ui.js";

let camera = null; // {stream, video}: at most one open webcam on the page

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

function classCard(project, cls) {
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
  const uploadFiles = async (files) => { for (const file of files) await upload(file, file.name).catch(() => {}); };

  const files = el("input", { type: "file", accept: "image/*", multiple: true, class: "files", onchange: () => uploadFiles(files.files) });
  const drop = el("div", { class: "drop" }, "Drop photos here, or ", files);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadFiles(e.dataTransfer.files); });

  const rename = el("input", { type: "text", value: cls.name, class: "rename", maxlength: 60 });
  const webcamSlot = el("div", { class: "webcam" });
  return el("div", { class: "card class-card", "data-class": cls.name },
    el("div", { class: "row" }, el("h2", {}, cls.name), count),
    thumbs,
    el("div", { class: "row" },
      el("button", { class: "plain webcam-open", onclick: () => openWebcam(webcamSlot, upload) }, "Webcam"),
      rename,
      el("button", { class: "plain", onclick: async () => { await api(base, { method: "PATCH", json: { name: rename.value } }); redraw(); } }, "Rename"),
      el("button", { class: "danger", onclick: async () => {
        if (confirm(`Delete class ${cls.name} and its ${cls.samples.length} samples?`)) { await api(base, { method: "DELETE" }); redraw(); }
      } }, "Delete class")),
    drop, webcamSlot);
}

function stopCamera() {
  if (camera) camera.stream.getTracks().forEach((t) => t.stop());
  camera = null;
}

// Hold-to-record: while the button is held, a centred square of the video is taken `fps` times a second
// and each frame is sent as a JPEG at once (a closed tab loses nothing already taken).
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
  const hold = el("button", { class: "hold" }, "Hold to record");
  const start = (e) => { e.preventDefault(); if (timer) return; hold.classList.add("recording"); grab();
    timer = setInterval(grab, 1000 / Math.min(24, Math.max(1, Number(fps.value) || 6))); };
  const stop = () => { clearInterval(timer); timer = null; hold.classList.remove("recording"); };
  hold.addEventListener("pointerdown", start);
  for (const kind of ["pointerup", "pointerleave", "pointercancel"]) hold.addEventListener(kind, stop);
  slot.replaceChildren(el("div", { class: "row" }, video,
    el("div", {}, hold, el("label", { class: "field" }, "frames per second ", fps),
      el("button", { class: "plain", onclick: () => { stop(); stopCamera(); slot.replaceChildren(); } }, "Close webcam"))));
}

