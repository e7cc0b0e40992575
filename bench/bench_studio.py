"""The Studio in a real headless Chromium (Debian's, driven by Playwright), against issue 14's two targets:

1. Page load: from navigation start to the projects list drawn (a MutationObserver marks the first
   `.project-link`, timed with performance.now(), whose zero is navigation start): index.html, every ES module,
   the CSS and the /api/projects answer. Cold: a fresh browser context per load (nothing cached; after one untimed
   load, so the browser's own start is not counted); warm: reloads in one context. Median and p95 over --loads,
   and for cold loads where the time goes (when the last module arrived, when /api/projects was asked).
   Target: < 300 ms (cold median).
2. Preview rate for images: the Preview tab with a fake webcam (Chromium's --use-file-for-fake-video-capture),
   frames answered per second in the real page, counted from the responses over --seconds, for fp32 and then
   int8 in the same run. Target: >= 10 Hz. Beside it, the same frame posted straight to the API (no browser) gives
   the server's own time per frame, so a slow rate can be told apart from a slow model.

The project is made through the Studio's own API (two classes of webcam-like frames, --samples each) and trained
by it (EfficientNet-Lite0, --epochs). Writes bench/results/studio_<label>.json (bench/results_io.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from trainer.studio.app import create_app  # noqa: E402
from trainer.studio.limits import StudioLimits  # noqa: E402
from trainer.studio.server import StudioServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
PAGE_LOAD_MS_MAX = 300.0  # issue 14
PREVIEW_HZ_MIN = 10.0
SIZE = (320, 240)
COLOURS = {"red": ((30, 30, 220), (255, 255, 255)), "blue": ((200, 60, 20), (0, 230, 255))}  # BGR field, shape

# when the projects list is first drawn, in ms from navigation start
MARK = """new MutationObserver((_, seen) => {
  if (document.querySelector('.project-link')) { window.__drawn = performance.now(); seen.disconnect(); }
}).observe(document, { childList: true, subtree: true });"""


# the page's own files (ES modules, CSS): how many, when the last arrived, and when /api/projects was asked
WHERE = """() => {
  const entries = performance.getEntriesByType('resource');
  const files = entries.filter((e) => /\\.(js|css)$/.test(new URL(e.name).pathname));
  const api = entries.find((e) => new URL(e.name).pathname === '/api/projects');
  return [files.length, Math.max(...files.map((e) => e.responseEnd)), api.startTime];
}"""


def picture(label: str, shift: int = 0) -> np.ndarray:
    """A BGR webcam-like frame: a red field with a white disc, or a blue field with a yellow square."""
    w, h = SIZE
    field, shape = COLOURS[label]
    image = np.full((h, w, 3), field, np.uint8)
    cx, cy = w // 2 + shift, h // 2
    if label == "red":
        cv2.circle(image, (cx, cy), 60, shape, -1)
    else:
        cv2.rectangle(image, (cx - 50, cy - 50), (cx + 50, cy + 50), shape, -1)
    return image


def write_y4m(path: Path, image: np.ndarray, frames: int = 30) -> Path:
    """A YUV4MPEG2 clip of one still image: what Chromium's fake webcam plays in a loop."""
    h, w = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return path


class Api:
    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={"X-Studio": "1", "Content-Type": content_type})
            reply = conn.getresponse()
            data = json.loads(reply.read())
        finally:
            conn.close()
        if reply.status >= 300:
            raise SystemExit(f"{method} {path}: {reply.status} {data}")
        return data

    def post(self, path: str, value: object) -> Any:
        return self.call("POST", path, json.dumps(value).encode())


def train_project(api: Api, samples: int, epochs: int) -> float:
    """Makes and trains the project `colours` through the Studio's API; returns the training's seconds."""
    api.post("/api/projects", {"name": "colours"})
    for label in COLOURS:
        api.post("/api/projects/colours/classes", {"name": label})
        for i in range(samples):
            ok, jpeg = cv2.imencode(".jpg", picture(label, shift=8 * i - 4 * samples))
            assert ok
            api.call("POST", f"/api/projects/colours/classes/{label}/samples?filename=s.jpg", jpeg.tobytes(), "image/jpeg")
    started = time.monotonic()
    api.post("/api/projects/colours/train", {"epochs": epochs, "batch_size": 8})
    while (job := api.call("GET", "/api/projects/colours/train")["job"])["state"] not in ("done", "failed", "cancelled"):
        time.sleep(0.5)
    if job["state"] != "done":
        raise SystemExit(f"training did not finish: {job}")
    return time.monotonic() - started


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 1), "p95": round(float(np.percentile(values, 95)), 1),
            "min": round(min(values), 1), "max": round(max(values), 1), "runs": [round(v, 1) for v in values]}


def page_loads(playwright: Any, base: str, loads: int) -> dict[str, Any]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    cold: list[float] = []
    warm: list[float] = []
    files, modules, asked = [], [], []  # where a cold load's time goes
    try:
        # one untimed load first: the browser's own start (its first renderer process) is not the page's time
        context = browser.new_context()
        context.new_page().goto(base)
        context.close()
        for _ in range(loads):  # cold: a new context each time, so nothing comes from the cache
            context = browser.new_context()
            context.add_init_script(MARK)
            page = context.new_page()
            page.goto(base)
            page.wait_for_function("() => window.__drawn !== undefined")
            cold.append(float(page.evaluate("window.__drawn")))
            count, done, api_start = page.evaluate(WHERE)
            files.append(count)
            modules.append(float(done))
            asked.append(float(api_start))
            context.close()
        context = browser.new_context()
        context.add_init_script(MARK)
        page = context.new_page()
        page.goto(base)
        page.wait_for_function("() => window.__drawn !== undefined")
        for _ in range(loads):  # warm: the same tab reloaded
            page.reload()
            page.wait_for_function("() => window.__drawn !== undefined")
            warm.append(float(page.evaluate("window.__drawn")))
        context.close()
    finally:
        browser.close()
    return {"cold": summary(cold), "warm": summary(warm),
            "cold_breakdown": {"static_files": max(files), "last_module_or_css_ms_median": round(statistics.median(modules), 1),
                               "projects_request_sent_ms_median": round(statistics.median(asked), 1)}}


def preview_rates(playwright: Any, base: str, video: Path, seconds: float) -> dict[str, Any]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"])
    answers: list[tuple[float, str]] = []
    out: dict[str, Any] = {}
    try:
        page = browser.new_page()

        def answered(response: Any) -> None:
            if "/preview?variant=" in response.url and response.request.method == "POST" and response.ok:
                answers.append((time.monotonic(), response.url.rsplit("=", 1)[1]))

        page.on("response", answered)
        page.goto(f"{base}/#/p/colours/preview")
        for variant in ("fp32", "int8"):
            page.check(f"#variant-{variant}")
            with page.expect_response(lambda r, v=variant: f"/preview?variant={v}" in r.url):
                pass
            page.wait_for_timeout(1000)  # settle: the first answers after a switch load the model
            start = time.monotonic()
            page.wait_for_timeout(seconds * 1000)  # Playwright delivers the response events meanwhile
            end = time.monotonic()
            n = sum(1 for t, v in answers if v == variant and start <= t < end)
            out[variant] = {"frames": n, "seconds": round(end - start, 2), "hz": round(n / (end - start), 2),
                            "label_shown": page.get_attribute("#preview-label", "data-label")}
    finally:
        browser.close()
    return out


def api_times(api: Api, frame: bytes, rounds: int) -> dict[str, Any]:
    """The same model-sized JPEG posted straight to the API: the server's own time and the round trip."""
    out: dict[str, Any] = {}
    for variant in ("fp32", "int8"):
        api.call("POST", f"/api/projects/colours/preview?variant={variant}", frame, "image/jpeg")  # load the model
        server, trip = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            reply = api.call("POST", f"/api/projects/colours/preview?variant={variant}", frame, "image/jpeg")
            trip.append(1000 * (time.perf_counter() - started))
            server.append(float(reply["ms"]))
        out[variant] = {"server_ms_median": round(statistics.median(server), 1), "round_trip_ms_median": round(statistics.median(trip), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=20, help="page loads of each kind (default 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="Preview seconds counted per variant (default 10)")
    parser.add_argument("--samples", type=int, default=8, help="webcam frames per class for the trained project (default 8)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    parser.add_argument("--api-rounds", type=int, default=30, help="frames posted straight to the API per variant (default 30)")
    add_output_args(parser)
    args = parser.parse_args()
    out_path = results_path(args, "studio")
    if not CHROMIUM.exists():
        raise SystemExit("Debian's chromium is not installed: run scripts/setup.sh dev")
    from playwright.sync_api import sync_playwright

    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        limits = StudioLimits()
        server = StudioServer(create_app(root / "projects", None, limits, cache_dir=root / "cache"), "127.0.0.1", 0, limits)
        server.start()
        try:
            api = Api(server.port)
            base = f"http://127.0.0.1:{server.port}"
            train_s = train_project(api, args.samples, args.epochs)
            video = write_y4m(root / "red.y4m", picture("red"))
            ok, frame = cv2.imencode(".jpg", cv2.resize(picture("red")[:, 40:280], (224, 224), interpolation=cv2.INTER_AREA))
            assert ok
            with sync_playwright() as playwright:
                loads = page_loads(playwright, base, args.loads)
                rates = preview_rates(playwright, base, video, args.seconds)
            direct = api_times(api, frame.tobytes(), args.api_rounds)
        finally:
            server.stop()
    result = {
        "bench": "studio",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "load_avg_at_start": load_start, "load_avg_at_end": load_average()},
        "setup": {"loads": args.loads, "seconds": args.seconds, "api_rounds": args.api_rounds,
                  "samples_per_class": args.samples, "epochs": args.epochs,
                  "training_seconds": round(train_s, 1), "browser": "Debian chromium, headless, Playwright"},
        "page_load_ms": loads,
        "preview": rates,
        "preview_api": direct,
        "targets": {"page_load_ms_max": PAGE_LOAD_MS_MAX, "preview_hz_min": PREVIEW_HZ_MIN,
                    "page_load_ok": loads["cold"]["median"] < PAGE_LOAD_MS_MAX,
                    "preview_ok": all(rates[v]["hz"] >= PREVIEW_HZ_MIN for v in ("fp32", "int8"))},
    }
    print(f"{'measure':44} {'fp32':>10} {'int8':>10}")
    print(f"{'page load, cold, median / p95 (ms)':44} {loads['cold']['median']:>5.0f} / {loads['cold']['p95']:.0f}")
    print(f"{'page load, warm, median / p95 (ms)':44} {loads['warm']['median']:>5.0f} / {loads['warm']['p95']:.0f}")
    where = loads["cold_breakdown"]
    print(f"  cold: {where['static_files']} files, the last in at {where['last_module_or_css_ms_median']:.0f} ms, "
          f"/api/projects asked at {where['projects_request_sent_ms_median']:.0f} ms (medians)")
    print(f"{'Preview in the page (frames/s)':44} {rates['fp32']['hz']:>10.1f} {rates['int8']['hz']:>10.1f}")
    server_ms = direct["fp32"]["server_ms_median"], direct["int8"]["server_ms_median"]
    print(f"{'API alone: server ms per frame (median)':44} {server_ms[0]:>10.1f} {server_ms[1]:>10.1f}")
    print(f"{'API alone: round trip ms (median)':44} {direct['fp32']['round_trip_ms_median']:>10.1f} "
          f"{direct['int8']['round_trip_ms_median']:>10.1f}")
    print(f"load average {load_start} at start, {result['machine']['load_avg_at_end']} at end; targets: "
          f"page load {'met' if result['targets']['page_load_ok'] else 'missed'}, "
          f"Preview {'met' if result['targets']['preview_ok'] else 'missed'}")
    print(f"wrote {write_results(out_path, result, args.force)}")


if __name__ == "__main__":
    main()
