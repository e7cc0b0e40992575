"""Dashboard benchmark: does an open dashboard slow the classifier down? Side by side in one run.

`edge run` as a real process with one camera pipeline on a 640x480 MJPG video read as fast as it decodes (so
the pipeline runs flat out and any cost the dashboard adds shows as fewer classified frames), its dashboard on
127.0.0.1. Rounds alternate between nobody watching and one viewer that does what the dashboard's page does in a
browser: pulls the MJPEG stream (a real HTTP client reading every part) and polls /api/live four times a second
and /api/overview once a second. Throughput = classified frames per second over the round, from the daemon's
own /metrics. Adjacent pairs, alternating which goes first, so slow drifts of the machine's load cancel; the
median of the pair ratios (watched / unwatched) is the figure. Target: >= 0.95x. On a shared machine the wall-clock
rate mostly follows the other jobs, so the run also reports classified frames per CPU-second of the daemon, which
isolates what the dashboard itself costs.

    .venv/bin/python bench/bench_dashboard.py [--bundle TRAINED_IMAGE_BUNDLE] [--variant int8] [--rounds 5] [--label quiet]

Writes bench/results/dashboard_<variant>[_tiny]_<label>.json (never over an existing file; see results_io).
Without --bundle a tiny generated ONNX bundle is used: then decoding the video, not the model, bounds the
pipeline, which makes the dashboard's share of the CPU (JPEG encoding, HTTP) stand out more, not less.
"""

from __future__ import annotations

import argparse
import http.client
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_daemon import write_shapes_video  # noqa: E402
from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from tests.support.broker import Broker, free_port  # noqa: E402
from tests.support.daemon import DaemonProcess, camera_pipeline, health_metrics, metric_value, write_config  # noqa: E402
from tests.support.onnx_models import make_color_bundle  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

TARGET_RATIO = 0.95


class Viewer:
    """One open dashboard: the MJPEG stream read part by part, /api/live at 4 Hz and /api/overview at 1 Hz."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frames = 0
        self.jpeg_bytes = 0
        self.polls = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._stream, daemon=True),
                         threading.Thread(target=self._poll, args=("/api/live", 0.25), daemon=True),
                         threading.Thread(target=self._poll, args=("/api/overview", 1.0), daemon=True)]

    def __enter__(self) -> Viewer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _stream(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/api/pipelines/cam/stream.mjpg")
        response = conn.getresponse()
        assert response.status == 200, response.status
        while not self._stop.is_set():
            line = response.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()  # the blank line before the JPEG
                self.jpeg_bytes += len(response.read(length))
                self.frames += 1
        conn.close()

    def _poll(self, path: str, every_s: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.wait(every_s):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            self.polls += 1
        conn.close()


def classified(health_port: int) -> float:
    value = metric_value(health_metrics(health_port), "frames_classified_total", pipeline="cam")
    return value or 0.0


def started(health_port: int) -> bool:
    try:
        return classified(health_port) > 50
    except OSError:  # its health server is not up yet
        return False


def measure(health_port: int, daemon: psutil.Process, seconds: float) -> tuple[float, float]:
    """(classified frames per second, daemon CPU % ) over `seconds`."""
    start, cpu0 = classified(health_port), daemon.cpu_times()
    began = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    end, cpu1 = classified(health_port), daemon.cpu_times()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100.0
    return (end - start) / elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="an image bundle (default: a tiny generated one)")
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the pipeline")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of rounds (watched, unwatched)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each round")
    parser.add_argument("--stream-fps", type=float, default=5.0, help="dashboard.stream_fps")
    add_output_args(parser)
    args = parser.parse_args(argv)
    out = results_path(args, "dashboard", args.variant, "" if args.bundle else "tiny")
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    bundle = args.bundle.resolve() if args.bundle else make_color_bundle(work / "colours")
    video = write_shapes_video(work / "shapes.avi", seconds=10)
    broker = Broker(workdir=work, port=free_port()).start()
    health_port, port = free_port(), free_port()
    cam = camera_pipeline("cam", bundle, str(video), variant=args.variant, threads=args.threads,
                          source={"uri": str(video), "loop": True, "realtime": False})
    config = write_config(work / "edge.yaml", broker.host, broker.port, [cam], health_port=health_port,
                          dashboard={"enabled": True, "port": port, "stream_fps": args.stream_fps})
    load_at_start = load_average()
    daemon = DaemonProcess(config)
    rows: list[dict[str, Any]] = []
    try:
        wait_for(lambda: started(health_port), 60, "the daemon never classified")
        process = psutil.Process(daemon.pid)
        measure(health_port, process, 2.0)  # warm-up
        for index in range(args.rounds):
            pair: dict[str, Any] = {}
            for watched in ((False, True) if index % 2 == 0 else (True, False)):
                if watched:
                    with Viewer(port) as viewer:
                        fps, cpu = measure(health_port, process, args.seconds)
                    jpeg_kb = viewer.jpeg_bytes / max(1, viewer.frames) / 1024
                    pair["watched"] = {"fps": round(fps, 2), "daemon_cpu_percent": round(cpu, 1),
                                       "stream_fps": round(viewer.frames / args.seconds, 2), "jpeg_kb": round(jpeg_kb, 1),
                                       "polls": viewer.polls}
                else:
                    fps, cpu = measure(health_port, process, args.seconds)
                    pair["unwatched"] = {"fps": round(fps, 2), "daemon_cpu_percent": round(cpu, 1)}
            pair["ratio"] = round(pair["watched"]["fps"] / pair["unwatched"]["fps"], 4)
            # frames per CPU-second of the daemon: what the dashboard costs whatever share of the CPU the machine's
            # other jobs leave the daemon (on a shared box the wall-clock rate mostly measures the neighbours)
            for side in ("watched", "unwatched"):
                pair[side]["frames_per_cpu_s"] = round(pair[side]["fps"] / max(1e-6, pair[side]["daemon_cpu_percent"] / 100.0), 2)
            pair["cpu_ratio"] = round(pair["watched"]["frames_per_cpu_s"] / pair["unwatched"]["frames_per_cpu_s"], 4)
            rows.append(pair)
            print(f"pair {index + 1}: unwatched {pair['unwatched']['fps']:.1f} fps, watched {pair['watched']['fps']:.1f} fps "
                  f"(stream {pair['watched']['stream_fps']:.1f} fps), ratio {pair['ratio']:.3f}, per CPU-second {pair['cpu_ratio']:.3f}")
    finally:
        daemon.stop()
        broker.stop()
    ratios = [r["ratio"] for r in rows]
    cpu_ratios = [r["cpu_ratio"] for r in rows]
    summary = {
        "unwatched_fps": round(statistics.median(r["unwatched"]["fps"] for r in rows), 2),
        "watched_fps": round(statistics.median(r["watched"]["fps"] for r in rows), 2),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_min": min(ratios), "ratio_max": max(ratios),
        "stream_fps": round(statistics.median(r["watched"]["stream_fps"] for r in rows), 2),
        "jpeg_kb": round(statistics.median(r["watched"]["jpeg_kb"] for r in rows), 1),
        "unwatched_cpu_percent": round(statistics.median(r["unwatched"]["daemon_cpu_percent"] for r in rows), 1),
        "watched_cpu_percent": round(statistics.median(r["watched"]["daemon_cpu_percent"] for r in rows), 1),
        "unwatched_frames_per_cpu_s": round(statistics.median(r["unwatched"]["frames_per_cpu_s"] for r in rows), 2),
        "watched_frames_per_cpu_s": round(statistics.median(r["watched"]["frames_per_cpu_s"] for r in rows), 2),
        "cpu_ratio": round(statistics.median(cpu_ratios), 4),
        "cpu_ratio_min": min(cpu_ratios), "cpu_ratio_max": max(cpu_ratios),
    }
    result = {
        "bench": "dashboard", "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": str(args.bundle) if args.bundle else "tiny generated colour bundle", "variant": args.variant, "threads": args.threads,
        "video": "640x480 MJPG, read as fast as it decodes", "round_s": args.seconds, "stream_fps_setting": args.stream_fps,
        "machine": {"cpu_count": psutil.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_start": load_at_start, "load_avg_at_end": load_average()},
        "pairs": rows, "summary": summary,
        "targets": {"ratio_min": TARGET_RATIO}, "ok": summary["ratio"] >= TARGET_RATIO,
    }
    print(f"\n{'':24} {'unwatched':>10} {'one viewer':>11}")
    print(f"{'classified frames/s':24} {summary['unwatched_fps']:>10.1f} {summary['watched_fps']:>11.1f}")
    print(f"{'daemon CPU %':24} {summary['unwatched_cpu_percent']:>10.1f} {summary['watched_cpu_percent']:>11.1f}")
    print(f"{'frames per CPU-second':24} {summary['unwatched_frames_per_cpu_s']:>10.1f} {summary['watched_frames_per_cpu_s']:>11.1f}")
    print(f"{'stream frames/s':24} {'-':>10} {summary['stream_fps']:>11.1f}")
    print(f"ratio (median of {len(ratios)} pairs): {summary['ratio']:.3f}x ({min(ratios):.3f}-{max(ratios):.3f}); "
          f"target >= {TARGET_RATIO}: {'met' if result['ok'] else 'missed'}; per CPU-second {summary['cpu_ratio']:.3f}x "
          f"({min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}); load {load_at_start}")
    print(f"wrote {write_results(out, result, args.force)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
