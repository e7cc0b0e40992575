// 2. Train: the Advanced panel (numbers, and for images the backbone and fine-tune depth), the Train button,
// where the training runs, and live progress polled from the server's job.

import { curves } from "./charts.js";
import { api, el, enc, onLeave, projectUrl } from "./ui.js";

const ADVANCED = [
  ["epochs", "Epochs", 1, "How many times the model looks at every sample while it learns. More can help, "
    + "but too many and it learns your samples by heart instead of the idea (watch the validation curve)."],
  ["batch_size", "Batch size", 1, "How many samples it looks at before each small correction. "
    + "Smaller batches make more, noisier corrections; the default suits most projects."],
  ["lr", "Learning rate", 0.0001, "How big each correction is. Too big and it never settles; too small "
    + "and it needs many more epochs. Change it in small steps (0.001 -> 0.0005)."],
];

const BACKBONE_HELP = "The pretrained network that looks at each picture before your classes are learnt. "
  + "A fast one trains sooner and runs more pictures per second on the Pi; an accurate one tells similar things "
  + "apart better but is bigger and slower. Start with the default; try another if similar classes get confused.";
const FINE_TUNE_HELP = "0 (the default, as Teachable Machine): the pretrained network stays as it is and only the small "
  + "classifier on top learns, so the network looks at each sample once and every epoch takes a moment. "
  + "1 or 2: its last blocks learn your pictures too. That can help with things unlike everyday photos, but on a "
  + "computer without a graphics card each epoch then takes many times longer, and with few samples it may learn them by heart.";

// The backbone and fine-tune fields, from the trainer's own list (GET /api/train-choices).
function modelFields(choices, last, inputs) {
  inputs.backbone = el("select", { id: "set-backbone" }, choices.backbones.map((b) =>
    el("option", { value: b.name, selected: b.name === (last.backbone || choices.default_backbone) },
      b.description ? `${b.name}: ${b.description}` : b.name)));
  inputs.fine_tune = el("select", { id: "set-fine_tune" }, Array.from({ length: choices.fine_tune_max + 1 }, (_, n) =>
    el("option", { value: n, selected: n === (last.fine_tune ?? choices.default_fine_tune) }, n ? `last ${n} block${n > 1 ? "s" : ""}` : "none (head only)")));
  return [el("label", { class: "field" }, "Backbone ", inputs.backbone, el("span", { class: "muted" }, BACKBONE_HELP)),
    el("label", { class: "field" }, "Fine-tune the backbone ", inputs.fine_tune, el("span", { class: "muted" }, FINE_TUNE_HELP))];
}

export async function trainTab(name, body) {
  const [{ job, defaults }, project, choices] = await Promise.all([api(`${projectUrl(name)}/train`), api(projectUrl(name)),
    api("/api/train-choices")]);
  const last = job ? job.settings : defaults;
  const inputs = {};
  const images = project.task !== "sound"; // the sound trainer has its own network: no backbone to choose
  const advanced = el("details", { class: "card", id: "advanced" }, el("summary", {}, "Advanced"),
    ADVANCED.map(([key, label, step, help]) => {
      inputs[key] = el("input", { type: "number", id: `set-${key}`, step, min: step, value: last[key] });
      return el("label", { class: "field" }, `${label} `, inputs[key], el("span", { class: "muted" }, help));
    }), images ? modelFields(choices, last, inputs) : []);
  const status = el("p", { id: "train-status" });
  const chart = el("div", { id: "train-chart" });
  const trainButton = el("button", { id: "train", onclick: async () => {
    const settings = { epochs: parseInt(inputs.epochs.value, 10), batch_size: parseInt(inputs.batch_size.value, 10),
      lr: parseFloat(inputs.lr.value) };
    if (images) Object.assign(settings, { backbone: inputs.backbone.value, fine_tune: parseInt(inputs.fine_tune.value, 10) });
    const data = await api(`${projectUrl(name)}/train`, { method: "POST", json: settings });
    show(data.job);
  } }, "Train model");
  const cancel = el("button", { class: "danger", id: "cancel", onclick: async () => show((await api(`${projectUrl(name)}/train/cancel`, { method: "POST" })).job) }, "Cancel");
  let pollTimer = null;
  onLeave(() => clearInterval(pollTimer));
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
  body.replaceChildren(advanced, el("div", { class: "card" }, el("div", { class: "row" }, trainButton, cancel),
    el("p", { class: "muted", id: "device" }, choices.device), status, chart));
  show(job);
}

