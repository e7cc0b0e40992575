// 3. Under the hood: the trainer's report (accuracy, per class, confusion matrix, curves) and a vocabulary.
// A click on a cell of the confusion matrix shows the validation samples in it: the mistakes to look at.

import { curves } from "./charts.js";
import { api, el, enc, pct, projectUrl } from "./ui.js";

const VOCABULARY = [
  ["Validation samples", "Samples kept aside while training (15 % of each class) and used only to check the model: they show how it does on pictures it has never learnt from."],
  ["Accuracy", "Of the validation samples, the share the model named correctly."],
  ["Precision", "Of the samples the model called this class, the share that really were."],
  ["Recall", "Of the samples that really are this class, the share the model found."],
  ["Confusion matrix", "Rows: the true class. Columns: what the model said. Everything off the diagonal is a mistake."],
  ["Loss", "How wrong the model's confidence is, averaged; it should fall as the epochs go by."],
  ["int8", "A smaller, faster copy of the model for the Pi; its accuracy is shown next to the full one's."],
];

// The samples of one cell: thumbnails (pictures) or a player (sounds), each from the sample routes.
async function showCell(name, sound, truth, said, slot) {
  const cell = await api(`${projectUrl(name)}/confusion?true=${enc(truth)}&predicted=${enc(said)}`);
  const samples = `${truth} sample${cell.total === 1 ? "" : "s"}`;
  const what = truth === said ? `${samples} the model got right` : `${samples} the model called ${said}`;
  const items = cell.samples.map((s) => {
    const url = `${projectUrl(name)}/classes/${enc(s.class)}/samples/${enc(s.sample)}`;
    if (!s.exists) return el("div", { class: "thumb gone", title: `${s.file}: deleted since the training` }, el("span", { class: "muted" }, s.sample));
    if (sound) return el("div", { class: "clip" }, el("audio", { controls: true, preload: "none", src: url }), el("a", { href: url }, s.sample));
    return el("a", { class: "thumb", href: url, target: "_blank", title: s.file }, el("img", { src: `${url}?size=thumb`, alt: s.file, loading: "lazy" }));
  });
  const more = cell.total > cell.samples.length ? ` (the first ${cell.samples.length} shown)` : "";
  slot.replaceChildren(el("h3", {}, `${cell.total} ${what}${more}`),
    cell.total ? el("div", { class: "thumbs cell-samples", id: "cell-samples" }, items)
      : el("p", { class: "muted", id: "cell-samples" }, "None in this cell."),
    truth === said ? "" : el("p", { class: "muted" }, "What do these have in common? More samples like them in "
      + `${truth}, or clearer ones in ${said}, can help the next training.`));
}

export async function hoodTab(name, body) {
  let report;
  try { report = await api(`${projectUrl(name)}/report`); } catch (error) { body.replaceChildren(el("p", {}, error.message)); return; }
  const project = await api(projectUrl(name));
  const cellSlot = el("div", { id: "cell" }, el("p", { class: "muted" }, "Click a number to see those validation samples."));
  const m = report.fp32;
  const perClass = el("table", { id: "per-class" }, el("tr", {}, ["class", "validation samples", "accuracy", "precision", "recall"].map((h) => el("th", {}, h))),
    report.labels.map((label) => el("tr", {}, el("td", {}, label), el("td", {}, String(m.support[label] ?? 0)), el("td", {}, pct(m.per_class[label])),
      el("td", {}, pct(m.precision[label])), el("td", {}, pct(m.recall[label])))));
  const confusion = el("table", { class: "confusion", id: "confusion" },
    el("tr", {}, el("th", {}, "true \\ predicted"), report.labels.map((l) => el("th", {}, l))),
    report.labels.map((label, i) => el("tr", {}, el("th", {}, label), m.confusion_matrix[i].map((v, j) => {
      const peak = Math.max(1, ...m.confusion_matrix.flat());
      const shade = Math.round(255 - (180 * v) / peak);
      const td = el("td", { style: `background: rgb(${shade}, ${shade + 20 > 255 ? 255 : shade + 20}, 255)`, class: `cell ${i === j ? "hit" : "miss"}`,
        "data-true": label, "data-predicted": report.labels[j], tabindex: 0, role: "button",
        title: `true ${label}, the model said ${report.labels[j]}: click to see them` }, String(v));
      const open = () => { confusion.querySelectorAll("td.chosen").forEach((c) => c.classList.remove("chosen")); td.classList.add("chosen");
        showCell(name, project.task === "sound", label, report.labels[j], cellSlot); };
      td.addEventListener("click", open);
      td.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      return td;
    }))));
  body.replaceChildren(
    el("div", { class: "card" }, el("h2", {}, "Accuracy"),
      el("p", {}, Object.entries(report.accuracy).map(([v, a]) => `${v}: ${pct(a)}`).join(" · "), el("span", { class: "muted" }, ` on ${m.n} validation samples`)),
      el("h2", {}, "Per class"), perClass),
    el("div", { class: "card" }, el("h2", {}, "Confusion matrix"), confusion, cellSlot),
    el("div", { class: "card" }, el("h2", {}, "Accuracy and loss per epoch"), ...(report.history.length ? curves(report.history) : [])),
    el("div", { class: "card" }, el("h2", {}, "Vocabulary"), el("dl", { class: "vocab", id: "vocabulary" }, VOCABULARY.flatMap(([t, d]) => [el("dt", {}, t), el("dd", {}, d)]))),
  );
}

