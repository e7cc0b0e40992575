// 5. Export: the bundle as a zip, the commands that put it on a Raspberry Pi, and (when the Studio has fleet
// settings) "Send to devices" (send.js).

import { api, el, projectUrl } from "./ui.js";
import { sendCard } from "./send.js";

export async function exportTab(name, body) {
  let report;
  try { report = await api(`${projectUrl(name)}/report`); } catch (error) { body.replaceChildren(el("p", {}, error.message)); return; }
  let send;
  try { send = await sendCard(name); } catch (error) { send = el("p", { class: "muted" }, error.message); }
  const card = el("div", { class: "card" },
    el("h2", {}, "Download the model"),
    el("p", {}, el("a", { class: "button", id: "download", href: `${projectUrl(name)}/bundle.zip`, download: true }, "Download model (.zip)")),
    el("p", { class: "muted" }, "The zip holds the model bundle: the ONNX models (full and int8), the class names and the training report."),
    el("h2", {}, "Put it on a Raspberry Pi"),
    el("pre", { id: "deploy" }, report.deploy.join("\n")));
  // the card first when sending is on; otherwise the commands, then how to turn sending on
  body.replaceChildren(...(send.id === "send-card" ? [send, card] : [card, send]));
}
