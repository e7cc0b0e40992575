// EdgeTeach Studio's page: plain modern JavaScript, no build step, nothing loaded from the internet.
// Every screen is drawn from the server's state (projects, samples, the training job), so a reload loses nothing.

const screen = document.getElementById("screen");
const crumb = document.getElementById("crumb");
let pollTimer = null;
let camera = null; // {stream, video}
// the SVG namespace: an XML name that is never fetched
const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// Every change carries X-Studio: 1 (the server refuses changes without it: see trainer/studio/auth.py).
async function api(path, { method = "GET", json, body } = {}) {
  const headers = { "X-Studio": "1" };
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) { location.href = "/login"; throw new Error("sign in first"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const error = new Error(data.error || `${response.status} ${response.statusText}`); showError(error.message); throw error; }
  return data;
}

const enc = encodeURIComponent;
const projectUrl = (name) => `/api/projects/${enc(name)}`;
const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "-" : `${(100 * x).toFixed(1)} %`);

// ---- routing: #/ (projects) and #/p/NAME/TAB ------------------------------------------------------------
function route() {
  clearInterval(pollTimer);
  stopCamera();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "p" && parts[1]) projectScreen(parts[1], parts[2] || "gather");
  else projectsScreen();
}
window.addEventListener("hashchange", route);

// ---- projects ---------------------------------------------------------------------------------------------
async function projectsScreen() {
  crumb.textContent = "";
  const { projects } = await api("/api/projects");
  const name = el("input", { type: "text", id: "new-project", placeholder: "e.g. recycling", maxlength: 60 });
  const create = async (event) => {
    event.preventDefault();
    const made = await api("/api/projects", { method: "POST", json: { name: name.value } });
    location.hash = `#/p/${enc(made.name)}/gather`;
  };
  screen.replaceChildren(
    el("h1", {}, "Projects"),
    el("form", { class: "card row", onsubmit: create },
      el("label", {}, "New image project ", name), el("button", { type: "submit", id: "create-project" }, "Create")),
    el("div", { id: "project-list" }, projects.length ? projects.map((p) => el("div", { class: "card row" },
      el("a", { href: `#/p/${enc(p.name)}/gather`, class: "project-link" }, el("strong", {}, p.name)),
      el("span", { class: "muted" }, `${p.classes.length} classes, ${p.classes.reduce((n, c) => n + c.samples.length, 0)} samples`
        + (p.has_model ? ", trained" : "")))) : el("p", { class: "muted" }, "No projects yet: create one above.")),
  );
}

// ---- one project: tabs ----------------------------------------------------------------------------------
const TABS = [["gather", "1. Gather"], ["train", "2. Train"], ["hood", "3. Under the hood"], ["export", "4. Export"]];

async function projectScreen(name, tab) {
  crumb.textContent = `/ ${name}`;
  const nav = el("nav", { class: "tabs" }, TABS.map(([id, label]) =>
    el("a", { href: `#/p/${enc(name)}/${id}`, class: id === tab ? "on" : "", id: `tab-${id}` }, label)));
  const body = el("section", { id: `screen-${tab}` });
  screen.replaceChildren(el("h1", {}, name), nav, body);
  const draw = { gather: gatherTab, train: trainTab, hood: hoodTab, export: exportTab }[tab] || gatherTab;
  await draw(name, body);
}

// ---- 1. gather: classes, samples, uploads, webcam ---------------------------------------------------------
async function gatherTab(name, body) {
  const project = await api(projectUrl(name));
  const newClass = el("input", { type: "text", id: "new-class", placeholder: "class name, e.g. paper", maxlength: 60 });
  const addClass = async (event) => {
    event.preventDefault();
    await api(`${projectUrl(name)}/classes`, { method: "POST", json: { name: newClass.value } });
    route();
  };
  body.replaceChildren(
    el("p", { class: "muted" }, "Make one class per thing the model should tell apart, then give each class examples: "
      + "hold the webcam button, or drop photos on the class. Each sample is saved as soon as it is taken."),
    ...project.classes.map((c) => classCard(name, c)),
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
      el("button", { class: "plain", onclick: async () => { await api(base, { method: "PATCH", json: { name: rename.value } }); route(); } }, "Rename"),
      el("button", { class: "danger", onclick: async () => {
        if (confirm(`Delete class ${cls.name} and its ${cls.samples.length} samples?`)) { await api(base, { method: "DELETE" }); route(); }
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

// ---- 2. train -----------------------------------------------------------------------------------------------
const ADVANCED = [
  ["epochs", "Epochs", 1, "How many times the model looks at every sample while it learns. More can help, "
    + "but too many and it learns your samples by heart instead of the idea (watch the validation curve)."],
  ["batch_size", "Batch size", 1, "How many samples it looks at before each small correction. "
    + "Smaller batches make more, noisier corrections; the default suits most projects."],
  ["lr", "Learning rate", 0.0001, "How big each correction is. Too big and it never settles; too small "
    + "and it needs many more epochs. Change it in small steps (0.001 -> 0.0005)."],
];

async function trainTab(name, body) {
  const { job, defaults } = await api(`${projectUrl(name)}/train`);
  const last = job ? job.settings : defaults;
  const inputs = {};
  const advanced = el("details", { class: "card", id: "advanced" }, el("summary", {}, "Advanced"),
    ADVANCED.map(([key, label, step, help]) => {
      inputs[key] = el("input", { type: "number", id: `set-${key}`, step, min: step, value: last[key] });
      return el("label", { class: "field" }, `${label} `, inputs[key], el("span", { class: "muted" }, help));
    }));
  const status = el("p", { id: "train-status" });
  const chart = el("div", { id: "train-chart" });
  const trainButton = el("button", { id: "train", onclick: async () => {
    const settings = { epochs: parseInt(inputs.epochs.value, 10), batch_size: parseInt(inputs.batch_size.value, 10),
      lr: parseFloat(inputs.lr.value) };
    const data = await api(`${projectUrl(name)}/train`, { method: "POST", json: settings });
    show(data.job);
  } }, "Train model");
  const cancel = el("button", { class: "danger", id: "cancel", onclick: async () => show((await api(`${projectUrl(name)}/train/cancel`, { method: "POST" })).job) }, "Cancel");
  const show = (j) => {
    const active = j && (j.state === "queued" || j.state === "running");
    trainButton.disabled = active;
    cancel.hidden = !active;
    if (!j) status.textContent = "Not trained yet.";
    else if (j.state === "queued") status.textContent = `Waiting: ${j.ahead} training(s) before yours (place ${j.place} in the queue).`;
    else if (j.state === "running") status.textContent = `Training: ${j.phase}…`;
    else if (j.state === "done") status.replaceChildren(`Trained in ${j.seconds} s. `, el("a", { href: `#/p/${enc(name)}/hood` }, "Look under the hood"), " or ", el("a", { href: `#/p/${enc(name)}/export` }, "export it"), ".");
    else if (j.state === "failed") status.replaceChildren(el("span", { class: "error" }, j.error || "training failed"));
    else status.textContent = "Cancelled.";
    status.dataset.state = j ? j.state : "none";
    chart.replaceChildren(...(j && j.history.length ? curves(j.history) : []));
    clearInterval(pollTimer);
    if (active) pollTimer = setInterval(async () => show((await api(`${projectUrl(name)}/train`)).job), 1000);
  };
  body.replaceChildren(advanced, el("div", { class: "card" }, el("div", { class: "row" }, trainButton, cancel), status, chart));
  show(job);
}

// Accuracy and loss per epoch (training and validation) as two small SVG charts.
function curves(history) {
  const chart = (key, title, top) => {
    const W = 460, H = 220, L = 40, B = 30;
    const n = history.length;
    const x = (i) => L + (n > 1 ? (i / (n - 1)) * (W - L - 10) : 0);
    const y = (v) => H - B - (Math.min(v, top) / top) * (H - B - 10);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", W); svg.setAttribute("height", H); svg.classList.add("chart");
    const ns = (tag, attrs, text) => { const node = document.createElementNS(svg.namespaceURI, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v); if (text) node.textContent = text; return node; };
    svg.append(ns("line", { x1: L, y1: H - B, x2: W - 5, y2: H - B, stroke: "#999" }), ns("line", { x1: L, y1: 10, x2: L, y2: H - B, stroke: "#999" }),
      ns("text", { x: L, y: H - 8, "font-size": 12 }, `epoch 1 … ${n}`), ns("text", { x: 4, y: 16, "font-size": 12 }, String(top)),
      ns("text", { x: W - 170, y: 20, "font-size": 12, fill: "#1a73e8" }, "training"), ns("text", { x: W - 100, y: 20, "font-size": 12, fill: "#e8711a" }, "validation"));
    for (const [field, colour] of [[`train_${key}`, "#1a73e8"], [`val_${key}`, "#e8711a"]]) {
      svg.append(ns("polyline", { fill: "none", stroke: colour, "stroke-width": 2,
        points: history.map((h, i) => `${x(i).toFixed(1)},${y(Number.isFinite(h[field]) ? h[field] : 0).toFixed(1)}`).join(" ") }));
    }
    return el("figure", {}, svg, el("figcaption", { class: "muted" }, title));
  };
  const last = history[history.length - 1];
  const maxLoss = Math.max(1, ...history.flatMap((h) => [h.train_loss, h.val_loss].filter(Number.isFinite)));
  return [el("div", { class: "row" }, chart("accuracy", "Accuracy per epoch", 1), chart("loss", "Loss per epoch", Math.ceil(maxLoss))),
    el("p", { class: "muted", id: "last-epoch" }, `epoch ${last.epoch}: training accuracy ${pct(last.train_accuracy)}, loss ${last.train_loss.toFixed(3)}; `
      + `validation accuracy ${pct(last.val_accuracy)}, loss ${Number.isFinite(last.val_loss) ? last.val_loss.toFixed(3) : "-"}`)];
}

// ---- 3. under the hood ----------------------------------------------------------------------------------------
const VOCABULARY = [
  ["Validation samples", "Samples kept aside while training (15 % of each class) and used only to check the model: they show how it does on pictures it has never learnt from."],
  ["Accuracy", "Of the validation samples, the share the model named correctly."],
  ["Precision", "Of the samples the model called this class, the share that really were."],
  ["Recall", "Of the samples that really are this class, the share the model found."],
  ["Confusion matrix", "Rows: the true class. Columns: what the model said. Everything off the diagonal is a mistake."],
  ["Loss", "How wrong the model's confidence is, averaged; it should fall as the epochs go by."],
  ["int8", "A smaller, faster copy of the model for the Pi; its accuracy is shown next to the full one's."],
];

async function hoodTab(name, body) {
  let report;
  try { report = await api(`${projectUrl(name)}/report`); } catch (error) { body.replaceChildren(el("p", {}, error.message)); return; }
  const m = report.fp32;
  const perClass = el("table", { id: "per-class" }, el("tr", {}, ["class", "validation samples", "accuracy", "precision", "recall"].map((h) => el("th", {}, h))),
    report.labels.map((label) => el("tr", {}, el("td", {}, label), el("td", {}, String(m.support[label] ?? 0)), el("td", {}, pct(m.per_class[label])),
      el("td", {}, pct(m.precision[label])), el("td", {}, pct(m.recall[label])))));
  const confusion = el("table", { class: "confusion", id: "confusion" },
    el("tr", {}, el("th", {}, "true \\ predicted"), report.labels.map((l) => el("th", {}, l))),
    report.labels.map((label, i) => el("tr", {}, el("th", {}, label), m.confusion_matrix[i].map((v, j) => {
      const peak = Math.max(1, ...m.confusion_matrix.flat());
      const shade = Math.round(255 - (180 * v) / peak);
      return el("td", { style: `background: rgb(${shade}, ${shade + 20 > 255 ? 255 : shade + 20}, 255)`, class: i === j ? "hit" : "miss" }, String(v));
    }))));
  body.replaceChildren(
    el("div", { class: "card" }, el("h2", {}, "Accuracy"),
      el("p", {}, Object.entries(report.accuracy).map(([v, a]) => `${v}: ${pct(a)}`).join(" · "), el("span", { class: "muted" }, ` on ${m.n} validation samples`)),
      el("h2", {}, "Per class"), perClass),
    el("div", { class: "card" }, el("h2", {}, "Confusion matrix"), confusion),
    el("div", { class: "card" }, el("h2", {}, "Accuracy and loss per epoch"), ...(report.history.length ? curves(report.history) : [])),
    el("div", { class: "card" }, el("h2", {}, "Vocabulary"), el("dl", { class: "vocab", id: "vocabulary" }, VOCABULARY.flatMap(([t, d]) => [el("dt", {}, t), el("dd", {}, d)]))),
  );
}

// ---- 4. export ------------------------------------------------------------------------------------------------
async function exportTab(name, body) {
  let report;
  try { report = await api(`${projectUrl(name)}/report`); } catch (error) { body.replaceChildren(el("p", {}, error.message)); return; }
  body.replaceChildren(el("div", { class: "card" },
    el("h2", {}, "Download the model"),
    el("p", {}, el("a", { class: "button", id: "download", href: `${projectUrl(name)}/bundle.zip`, download: true }, "Download model (.zip)")),
    el("p", { class: "muted" }, "The zip holds the model bundle: the ONNX models (full and int8), the class names and the training report."),
    el("h2", {}, "Put it on a Raspberry Pi"),
    el("pre", { id: "deploy" }, report.deploy.join("\n"))));
}

// last: every screen above is defined by now (a direct link to a project screen draws it at once)
route();
