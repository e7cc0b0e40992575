// 5. Export: the bundle as a zip, and the commands that put it on a Raspberry Pi.

import { api, el, projectUrl } from "./ui.js";

export async function exportTab(name, body) {
  let report;
  try { report = await api(`${projectUrl(name)}/report`); } catch (error) { body.replaceChildren(el("p", {}, error.message)); return; }
  body.replaceChildren(el("div", { class: "card" },
    el("h2", {}, "Download the model"),
    el("p", {}, el("a", { class: "button", id: "download", href: `${projectUrl(name)}/bundle.zip`, download: true }, "Download model (.zip)")),
    el("p", { class: "muted" }, "The zip holds the model bundle: the ONNX models (full and int8), the class names and the training report."),
    el("h2", {}, "Put it on a Raspberry Pi"),
    el("pre", { id: "deploy" }, report.deploy.join("\n"))));
}
