// EdgeTeach Studio's page: plain modern JavaScript modules, no build step, nothing loaded from the internet.
// Every screen is drawn from the server's state (projects, samples, the training job), so a reload loses nothing.
// This file is the router: #/ (projects) and #/p/NAME/TAB; each screen lives in its own module.

import { exportTab } from "./export.js";
import { gatherTab } from "./gather.js";
import { hoodTab } from "./hood.js";
import { playgroundScreen } from "./playground.js";
import { previewTab } from "./preview.js";
import { projectsScreen } from "./projects.js";
import { trainTab } from "./train.js";
import { el, enc, leave } from "./ui.js";

const screen = document.getElementById("screen");
const crumb = document.getElementById("crumb");

// A project's tabs in lesson order: [id in the URL, label, the function that draws it].
const TABS = [
  ["gather", "1. Gather", gatherTab],
  ["train", "2. Train", trainTab],
  ["hood", "3. Under the hood", hoodTab],
  ["preview", "4. Preview", previewTab],
  ["export", "5. Export", exportTab],
];

function route() {
  leave();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "p" && parts[1]) projectScreen(parts[1], parts[2] || "gather");
  else if (parts[0] === "llm") playgroundScreen(screen, crumb);
  else projectsScreen(screen, crumb);
}
window.addEventListener("hashchange", route);

async function projectScreen(name, tab) {
  crumb.textContent = `/ ${name}`;
  const current = TABS.find(([id]) => id === tab) || TABS[0];
  const nav = el("nav", { class: "tabs" }, TABS.map(([id, label]) =>
    el("a", { href: `#/p/${enc(name)}/${id}`, class: id === current[0] ? "on" : "", id: `tab-${id}` }, label)));
  const body = el("section", { id: `screen-${current[0]}` });
  screen.replaceChildren(el("h1", {}, name), nav, body);
  await current[2](name, body);
}

route();
