// The chat box, shown when the device runs its LLM: the answer streams in as the model writes it, then the
// sensor context the LLM was given is shown under it.
import { el, api } from "./ui.js";

const history = [];

export function drawChat(section) {
  if (section.dataset.ready) return;
  section.dataset.ready = "1";
  const log = el("div", { class: "chat-log", "aria-live": "polite" });
  const input = el("input", { type: "text", class: "question", maxlength: 2000, placeholder: "Ask the device…" });
  const button = el("button", { type: "submit" }, "Ask");
  const form = el("form", { class: "row", onsubmit: async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    button.disabled = true;
    history.push({ role: "user", content: question });
    log.append(el("p", { class: "you" }, question));
    const answer = el("p", { class: "answer" });
    const context = el("details", { class: "context", hidden: true }, el("summary", {}, "sensor context given to the LLM"), el("pre"));
    log.append(answer, context);
    let text = "";
    try {
      const response = await api("/api/chat", { method: "POST", json: { messages: history.slice(-20) } });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 1);
          if (line.text) { text += line.text; answer.textContent = text; }
          if (line.error) { answer.classList.add("error"); answer.textContent = `${text} [${line.error}]`; }
          if (line.done && line.sensor_context) { context.querySelector("pre").textContent = line.sensor_context; context.hidden = false; }
        }
      }
      history.push({ role: "assistant", content: text });
    } catch (error) {
      answer.classList.add("error");
      answer.textContent = error.message;
      history.pop();
    } finally {
      button.disabled = false;
    }
  } }, input, button);
  section.replaceChildren(el("h2", {}, "Ask the device"), log, form);
}
