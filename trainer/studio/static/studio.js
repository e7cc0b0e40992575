// EdgeTeach Studio's page: plain modern JavaScript modules, no build step, nothing loaded from the internet.
// Every screen is drawn from the server's state (projects, samples, the training job), so a reload loses nothing.
// This file is the router: #/ (projects) and #/p/NAME/TAB; each screen lives in its own module.

import { projectsScreen } from "./projects.js";
import { el, enc, leave } from "./ui.js";

const screen = document.getElementById("screen");
const crumb = document.getElementById("crumb");

// A project's tabs in lesson order: [id in the URL, label, its module, the function it exports that draws it].
// A screen's module is fetched when the screen is first opened, so a fresh page waits only for the projects
// list's modules, not for every screen's (and the microphone's) four levels of imports.
const TABS = [
  ["gather", "1. Gather", "./gather.js", "gatherTab"],
  ["train", "2. Train", "./train.js", "trainTab"],
  ["hood", "3. Under the hood", "./hood.js", "hoodTab"],
  ["preview", "4. Preview", "./preview.js", "previewTab"],
  ["export", "5. Export", "./export.js", "exportTab"],
];
let routed = 0; // which route() call is current: a screen whose module arrives after the page moved on is not drawn

function route() {
  leave();
  routed += 1;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "p" && parts[1]) projectScreen(parts[1], parts[2] || "gather");
  else if (parts[0] === "llm") draw(import("./playground.js"), (m) => m.playgroundScreen(screen, crumb));
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
  await draw(import(current[2]), (m) => m[current[3]](name, body));
}

// Draws with a screen's module once it is loaded, unless the page has moved on meanwhile.
async function draw(loading, drawWith) {
  const mine = routed;
  const module = await loading;
  if (mine === routed) await drawWith(module);
}

route();
