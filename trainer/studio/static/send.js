// Send to devices (Export tab): the fleet's devices, a target (ticked devices or a group), waves, and the live
// progress of the rollout the server runs (trainer/studio/send.py keeps it, so a reloaded page picks it up).

import { api, el, onLeave, projectUrl } from "./ui.js";

const STEPS = { waiting: "waiting", accepted: "accepted", downloading: "downloading", verifying: "verifying",
  activated: "activated", healthy: "activated, healthy", failed: "failed", rolled_back: "rolled back" };

const fmt = (x, unit = "") => (x === null || x === undefined ? "-" : `${x}${unit}`);

// The card, or the commands' hint when the Studio has no fleet settings (GET /api/fleet says which).
export async function sendCard(name) {
  const fleet = await api("/api/fleet");
  if (!fleet.enabled) {
    return el("p", { class: "muted", id: "send-off" }, `Send to devices over the network: ${fleet.setup}`);
  }
  if (!fleet.here) {
    return el("p", { class: "muted", id: "send-off" }, "Sending to devices is done on the Studio's own computer (the teacher's).");
  }
  const deviceRows = el("tbody");
  const groupPick = el("select", { id: "send-group" }, el("option", { value: "" }, "the ticked devices"));
  const wave = el("input", { id: "send-wave", type: "number", min: 0, max: 100, value: 100, size: 4 });
  const abort = el("input", { id: "send-abort", type: "number", min: 0, max: 100, value: "", size: 4, placeholder: "never" });
  const progressBox = el("div", { id: "send-progress" });
  const sendButton = el("button", { id: "send", onclick: () => start("send") }, "Send");
  const backButton = el("button", { id: "rollback", class: "danger", onclick: () => start("rollback") }, "Roll back");
  const ticked = new Set();

  function target() {
    if (groupPick.value) return { group: groupPick.value };
    return { devices: [...ticked] };
  }

  async function start(kind) {
    const body = target();
    if (!body.group && !body.devices.length) { progressBox.replaceChildren(el("p", { class: "muted" }, "Tick devices or pick a group first.")); return; }
    if (kind === "send") {
      body.wave = wave.value === "" ? null : Number(wave.value);
      body.abort_above = abort.value === "" ? null : Number(abort.value);
    }
    const url = kind === "send" ? `${projectUrl(name)}/send` : "/api/fleet/rollback";
    try { showRollout((await api(url, { method: "POST", json: body })).rollout); } catch { /* shown by api() */ }
  }

  function showDevices(devices) {
    const groups = [...new Set(devices.map((d) => d.group).filter(Boolean))].sort();
    const chosen = groupPick.value;
    groupPick.replaceChildren(el("option", { value: "" }, "the ticked devices"),
      ...groups.map((g) => el("option", { value: g, selected: g === chosen }, `group ${g}`)));
    deviceRows.replaceChildren(...devices.map((d) => el("tr", { "data-device": d.id },
      el("td", {}, el("label", {}, el("input", { type: "checkbox", class: "pick", checked: ticked.has(d.id),
        onchange: (e) => { if (e.target.checked) ticked.add(d.id); else ticked.delete(d.id); } }), ` ${d.id}`)),
      el("td", {}, d.online === false ? "offline" : d.online ? "online" : "?"),
      el("td", {}, fmt(d.group)), el("td", {}, d.model), el("td", {}, fmt(d.status)),
      el("td", {}, fmt(d.fps)), el("td", {}, d.temperature_c === null ? "-" : `${Math.round(d.temperature_c)} °C`))));
  }

  function showRollout(rollout) {
    if (!rollout) { progressBox.replaceChildren(); return; }
    const what = rollout.kind === "deploy" ? `Sending ${rollout.project}` : "Rolling back";
    const to = rollout.group ? `group ${rollout.group}` : `${rollout.devices.length} device(s)`;
    let state = "running";
    if (rollout.error) state = `stopped: ${rollout.error}`;
    else if (rollout.outcome) state = rollout.outcome.ok ? "done: every device is healthy" : (rollout.outcome.aborted ? `aborted after wave ${rollout.outcome.waves_done}` : "done, with failures");
    sendButton.disabled = backButton.disabled = rollout.running;
    progressBox.replaceChildren(...[
      el("p", { id: "send-state", "data-running": rollout.running ? "yes" : "no" }, `${what} to ${to}: ${state}`),
      rollout.message ? el("p", { class: "muted" }, rollout.message) : null,
      el("table", { id: "send-rows" }, el("tr", {}, el("th", {}, "device"), el("th", {}, "step"), el("th", {}, "why")),
        ...rollout.devices.map((d) => el("tr", { "data-device": d.id, "data-status": d.status },
          el("td", {}, d.id),
          el("td", { class: "step" }, d.status === "downloading" && d.percent !== null ? `downloading ${Math.round(d.percent)} %` : (STEPS[d.status] || d.status)),
          el("td", {}, d.reason || "")))),
      rollout.outcome && rollout.outcome.skipped_offline.length
        ? el("p", { class: "muted" }, `Offline now, updated when back: ${rollout.outcome.skipped_offline.join(", ")}`) : null,
    ].filter(Boolean)); // replaceChildren would show a null as the text "null"
  }

  let stopped = false;
  async function refresh() {
    if (stopped) return;
    try {
      const [devices, rollout] = await Promise.all([api("/api/fleet/devices"), api("/api/fleet/rollout")]);
      showDevices(devices.devices);
      showRollout(rollout.rollout);
    } catch { /* the broker is away: api() showed why; try again on the next tick */ }
  }
  const timer = setInterval(refresh, 1000);
  onLeave(() => { stopped = true; clearInterval(timer); });
  await refresh();

  return el("div", { class: "card send-card", id: "send-card" },
    el("h2", {}, "Send to devices"),
    el("p", { class: "muted" }, "The devices on the class's broker. Tick some, or pick a group; the model is signed with your key and each device checks it before using it."),
    el("table", { id: "send-devices" },
      el("thead", {}, el("tr", {}, ...["device", "online", "group", "model", "status", "fps", "temp"].map((h) => el("th", {}, h)))), deviceRows),
    el("p", { class: "send-options" },
      el("label", {}, "Send to ", groupPick), " ",
      el("label", {}, "in waves of ", wave, " %"), " ",
      el("label", {}, "stop when more than ", abort, " % fail")),
    el("p", {}, sendButton, " ", backButton),
    progressBox);
}

