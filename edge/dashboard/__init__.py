"""The device's own dashboard, served by `edge run` (docs/dashboard.md): what each pipeline sees or hears, live,
with its decision; health at a glance; the controls (through the same command code as MQTT); the model card;
a chat box when the LLM runs. One module per job: `device` (what the page needs of the daemon), `auth`, `live`
(frames and sound made viewable, only while watched), `models` (bundles to pick, the model card), `chat`,
`app` (thin Starlette routes), `server`; `static/` holds the page (plain ES modules, no CDN, no build step).

It sits below the daemon: the daemon hands it a `Device`, so nothing here imports edge.daemon."""
