// Shared pieces of the Studio's page: building DOM nodes, the API client, number formats, and what a screen
// must stop when the page moves on (a webcam, a poll timer). Every screen module imports from here.

export { el } from "./core/dom.js"; // shared with the device dashboard (edge/core/static/dom.js)

// the SVG namespace: an XML name that is never fetched
export const SVG_NS = "http://www.w3.org/2000/svg";

export function showError(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// Every change carries X-Studio: 1 (the server refuses changes without it: see trainer/studio/auth.py).
export async function api(path, { method = "GET", json, body, type } = {}) {
  const headers = { "X-Studio": "1" };
  if (type) headers["Content-Type"] = type; // bytes (an ArrayBuffer) carry no media type of their own
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) { location.href = "/login"; throw new Error("sign in first"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const error = new Error(data.error || `${response.status} ${response.statusText}`); showError(error.message); throw error; }
  return data;
}

export const enc = encodeURIComponent;
export const projectUrl = (name) => `/api/projects/${enc(name)}`;
export const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "-" : `${(100 * x).toFixed(1)} %`);

// What the current screen must stop when the page moves on (camera streams, timers); run by the router.
const leaving = [];
export function onLeave(stop) { leaving.push(stop); }
export function leave() { while (leaving.length) { try { leaving.pop()(); } catch (error) { console.error(error); } } }

// Draws the current screen again from the server's state (after a change such as a renamed class).
export function redraw() { window.dispatchEvent(new HashChangeEvent("hashchange")); }
