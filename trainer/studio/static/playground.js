// The LLM playground (#/llm): "which model is easier to trick?". Two panes, each a local model with its own
// temperature and seed; one prompt; both answers stream in at once (JSON lines from POST /api/llm/ask, read
// as they arrive). The models, the trick prompts and the bounds come from GET /api/llm.

import { api, el, onLeave, showError } from "./ui.js";

const PANES = 2;

export async function playgroundScreen(screen, crumb) {
  crumb.textContent = "/ LLM playground";
  const info = await api("/api/llm");
  const intro = el("p", { class: "muted" }, "Two language models running on this computer answer the same prompt side by side. "
    + "Pick a trick prompt (or write your own), press Ask both, and compare: which model is easier to trick?");
  if (!info.llama_cpp || info.models.length === 0) {
    const why = !info.llama_cpp
      ? "llama-cpp-python is not installed on the Studio's computer: run scripts/setup.sh llm there."
      : `No models yet: put .gguf files in the folder ${info.folder} on the Studio's computer (for example with `
        + "`edge llm pull ... --dir` that folder) and reload this page.";
    screen.replaceChildren(el("h1", {}, "LLM playground"), intro, el("p", { class: "card", id: "llm-empty" }, why));
    return;
  }

  const limits = info.limits;
  const system = el("textarea", { id: "llm-system", class: "llm-input", rows: 2, maxlength: limits.max_system_chars,
    placeholder: "Optional: instructions both models get before the prompt (a system prompt)" });
  const prompt = el("textarea", { id: "llm-prompt", class: "llm-input", rows: 3, maxlength: limits.max_prompt_chars, placeholder: "Your prompt" });
  const tests = el("p", { id: "llm-tests", class: "muted" });
  const tricks = el("div", { class: "row tricks" }, info.tricks.map((trick, i) => el("button", {
    class: "plain", type: "button", "data-trick": i, onclick: () => {
      prompt.value = trick.prompt;
      system.value = trick.system;
      tests.textContent = `${trick.title}: ${trick.tests}`;
    },
  }, trick.title)));
  const maxTokens = el("input", { type: "number", id: "llm-max-tokens", min: 1, max: limits.max_tokens, value: limits.default_max_tokens });
  const ask = el("button", { id: "llm-ask", type: "button" }, "Ask both");
  const stop = el("button", { id: "llm-stop", type: "button", class: "danger", hidden: true }, "Stop");
  const note = el("p", { id: "llm-note", class: "muted", hidden: true });
  const panes = [...Array(PANES).keys()].map((i) => pane(i, info, limits));

  let controller = null;
  onLeave(() => controller && controller.abort()); // another screen: the server stops both answers
  stop.addEventListener("click", () => controller && controller.abort());
  ask.addEventListener("click", async () => {
    const question = { prompt: prompt.value, system: system.value, max_tokens: parseInt(maxTokens.value, 10),
      panes: panes.map((p) => p.settings()) };
    controller = new AbortController();
    ask.disabled = true;
    stop.hidden = false;
    note.hidden = true;
    panes.forEach((p) => p.clear());
    try {
      await stream(question, controller.signal, (event) => {
        if (event.event === "plan" && event.note) { note.textContent = event.note; note.hidden = false; }
        else if (event.event === "error" && event.pane === null) showError(event.message);
        else if (event.pane !== undefined && event.pane !== null) panes[event.pane].show(event);
      });
    } catch (error) {
      if (error.name !== "AbortError") showError(error.message);
    } finally {
      panes.forEach((p) => p.finish());
      ask.disabled = false;
      stop.hidden = true;
      controller = null;
    }
  });

  screen.replaceChildren(el("h1", {}, "LLM playground"), intro,
    el("div", { class: "card" },
      el("h2", {}, "Trick prompts"), tricks, tests,
      el("label", { class: "field" }, "System prompt ", system),
      el("label", { class: "field" }, "Prompt ", prompt),
      el("div", { class: "row" }, el("label", {}, "Longest answer (tokens) ", maxTokens), ask, stop), note),
    el("div", { class: "panes" }, panes.map((p) => p.node)));
}

// One pane: its model and sampling settings, the streamed answer, and a line of figures when it is done.
function pane(i, info, limits) {
  const choice = el("select", { class: "llm-model", id: `llm-model-${i}` },
    info.models.map((m) => el("option", { value: m.name }, `${m.name} (${m.size_mb} MB)`)));
  choice.selectedIndex = Math.min(i, info.models.length - 1); // two different models when there are two
  const temperature = el("input", { type: "number", class: "llm-temperature", min: 0, max: limits.max_temperature, step: 0.1, value: 0 });
  const seed = el("input", { type: "number", class: "llm-seed", min: 0, max: limits.max_seed, step: 1, value: 0 });
  const text = el("div", { class: "llm-text", id: `llm-text-${i}` });
  const status = el("p", { class: "muted llm-status" });
  const node = el("section", { class: "card llm-pane", id: `llm-pane-${i}` },
    el("div", { class: "row" }, choice),
    el("div", { class: "row" }, el("label", { title: "0: always the most likely word; higher: more surprising answers" },
      "Temperature ", temperature), el("label", { title: "the same seed and settings give the same answer" }, "Seed ", seed)),
    text, status);
  return {
    node,
    settings: () => ({ model: choice.value, temperature: parseFloat(temperature.value), seed: parseInt(seed.value, 10) }),
    clear() { text.textContent = ""; status.textContent = "Waiting…"; node.dataset.state = "waiting"; },
    show(event) {
      if (event.event === "loading") status.textContent = `Loading ${event.model}…`;
      else if (event.event === "start") { status.textContent = "Answering…"; node.dataset.state = "answering"; }
      else if (event.event === "text") text.append(event.text);
      else if (event.event === "error") { status.replaceChildren(el("span", { class: "error" }, event.message)); node.dataset.state = "error"; }
      else if (event.event === "done") {
        const cut = event.stopped ? " (stopped)" : event.finish_reason === "length" ? " (reached the longest answer)" : "";
        status.textContent = `${event.tokens} tokens, ${event.tokens_per_s.toFixed(1)} tokens/s, first word after `
          + `${Math.round(event.first_token_ms)} ms${cut}`;
        node.dataset.state = "done";
      }
    },
    finish() { if (node.dataset.state === "waiting" || node.dataset.state === "answering") { status.textContent = "Stopped."; node.dataset.state = "stopped"; } },
  };
}

// POSTs the question and calls onEvent with each JSON line as it arrives; an error answer (4xx) throws its message.
async function stream(question, signal, onEvent) {
  const response = await fetch("/api/llm/ask", { method: "POST", signal, body: JSON.stringify(question),
    headers: { "X-Studio": "1", "Content-Type": "application/json" } });
  if (response.status === 401) { location.href = "/login"; return; }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) onEvent(JSON.parse(line));
  }
}
