// The first screen: the projects in the projects folder, and a form to make one (an image or a sound project).

import { api, el, enc } from "./ui.js";

const TASKS = [["image", "Image project (webcam, photos)"], ["sound", "Sound project (microphone, WAV files)"]];

export async function projectsScreen(screen, crumb) {
  crumb.textContent = "";
  const { projects } = await api("/api/projects");
  const name = el("input", { type: "text", id: "new-project", placeholder: "e.g. recycling", maxlength: 60 });
  const task = el("select", { id: "new-task" }, TASKS.map(([value, label]) => el("option", { value }, label)));
  const create = async (event) => {
    event.preventDefault();
    const made = await api("/api/projects", { method: "POST", json: { name: name.value, task: task.value } });
    location.hash = `#/p/${enc(made.name)}/gather`;
  };
  const samples = (p) => p.classes.reduce((n, c) => n + c.samples.length, 0) + (p.background ? p.background.samples.length : 0);
  screen.replaceChildren(
    el("h1", {}, "Projects"),
    el("form", { class: "card row", onsubmit: create },
      el("label", {}, "New project ", name), task, el("button", { type: "submit", id: "create-project" }, "Create")),
    el("div", { id: "project-list" }, projects.length ? projects.map((p) => el("div", { class: "card row", "data-task": p.task },
      el("a", { href: `#/p/${enc(p.name)}/gather`, class: "project-link" }, el("strong", {}, p.name)),
      el("span", { class: "task-badge" }, p.task),
      el("span", { class: "muted" }, `${p.classes.length} classes, ${samples(p)} ${p.task === "sound" ? "clips" : "samples"}`
        + (p.has_model ? ", trained" : "")))) : el("p", { class: "muted" }, "No projects yet: create one above.")),
  );
}
