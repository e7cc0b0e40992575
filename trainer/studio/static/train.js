// 2. Train: the Advanced panel, the Train button, and live progress polled from the server's job.

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

export async function trainTab(name, body) {
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
  body.replaceChildren(advanced, el("div", { class: "card" }, el("div", { class: "row" }, trainButton, cancel), status, chart));
  show(job);
}

