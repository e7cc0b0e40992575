// 3. Under the hood: the trainer's report (accuracy, per class, confusion matrix, curves) and a vocabulary.

import { curves } from "./charts.js";
import { api, el, pct, projectUrl } from "./ui.js";

const VOCABULARY = [
  ["Validation samples", "Samples kept aside while training (15 % of each class) and used only to check the model: they show how it does on pictures it has never learnt from."],
  ["Accuracy", "Of the validation samples, the share the model named correctly."],
  ["Precision", "Of the samples the model called this class, the share that really were."],
  ["Recall", "Of the samples that really are this class, the share the model found."],
  ["Confusion matrix", "Rows: the true class. Columns: what the model said. Everything off the diagonal is a mistake."],
  ["Loss", "How wrong the model's confidence is, averaged; it should fall as the epochs go by."],
  ["int8", "A smaller, faster copy of the model for the Pi; its accuracy is shown next to the full one's."],
];

export async function hoodTab(name, body) {
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

