// The first screen: the projects in the projects folder, and a form to make one.

import { api, el, enc } from "./ui.js";

export async function projectsScreen(screen, crumb) {
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
