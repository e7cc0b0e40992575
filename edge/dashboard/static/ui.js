// Shared pieces of the dashboard: building DOM nodes, the API client, number and time formats.

export { el } from "./core/dom.js"; // shared with the trainer's Studio (edge/core/static/dom.js)

export function showError(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

// Every change carries X-Dashboard: 1 (the server refuses changes without it: edge/dashboard/auth.py).
// A refused command answers its reason in "error": the same text an MQTT requester would get.
export async function api(path, { method = "GET", json } = {}) {
  const headers = { "X-Dashboard": "1" };
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const response = await fetch(path, { method, headers, body, cache: "no-store" });
  if (response.status === 401) { location.href = "/login"; throw new Error("sign in first"); }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  return response;
}

export const getJson = async (path) => (await api(path)).json();
export const enc = encodeURIComponent;
export const pipeUrl = (name) => `/api/pipelines/${enc(name)}`;
export const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "-" : `${(100 * x).toFixed(0)} %`);
export const num = (x, digits = 1) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits));
export const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
export const mb = (bytes) => (bytes ? `${(bytes / 1048576).toFixed(0)} MB` : "-");
