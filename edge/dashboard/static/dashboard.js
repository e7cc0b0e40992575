// The dashboard's page: tiles per pipeline refreshed from /api/live (four times a second: decisions, sound)
// and /api/overview (every second: health, figures, model cards); the chat box when the LLM runs.
import { getJson, showError } from "./ui.js";
import { drawHeader } from "./health.js";
import { syncTiles, showLive, showOverview } from "./tiles.js";
import { drawChat } from "./chat.js";

const LIVE_MS = 250;
const OVERVIEW_MS = 1000;

async function overview() {
  try {
    const data = await getJson("/api/overview");
    drawHeader(data);
    syncTiles(document.getElementById("pipelines"), data.kinds);
    showOverview(data);
    const chat = document.getElementById("chat");
    chat.hidden = !data.chat;
    if (data.chat) drawChat(chat);
  } catch (error) { showError(`cannot reach the device: ${error.message}`); }
  setTimeout(overview, OVERVIEW_MS);
}

async function live() {
  try { showLive(await getJson("/api/live")); } catch (error) { showError(`cannot reach the device: ${error.message}`); }
  setTimeout(live, LIVE_MS);
}

overview().then(live);
