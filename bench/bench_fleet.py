"""Fleet rollout benchmark (issue 16): a ~5 MB bundle rolled out to N real `edge run` daemons over MQTT chunks on
one private Mosquitto, the controller in this process.

Measured: the time from `deploy` to every device healthy (one wave), each device's download time (its first
`downloading` progress to `activated`), the broker's bytes received and sent during the rollout (its $SYS
counters, published every second), and the controller's CPU time (this process: signing, chunk publishing,
watching the devices, and with --http serving the chunks) per device. With --http the devices fetch the chunks
from the controller over HTTP (`trainer fleet deploy --http`); the MQTT chunks are still published, as the fallback.

    .venv/bin/python bench/bench_fleet.py [--devices 20] [--megabytes 5] [--http] [--label loaded]

Writes bench/results/fleet[_http]_<label>.json; an existing results file is never overwritten without --force.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from edge.config.mqtt import MqttSettings  # noqa: E402
from edge.fleet.chunks import pack_bundle  # noqa: E402
from edge.fleet.controller import FleetWatch, HttpOffer, deploy  # noqa: E402
from edge.fleet.signing import generate_keypair, load_private_key  # noqa: E402
from tests.support.broker import Broker, free_port  # noqa: E402
from tests.support.fleet import Fleet, device_config, image_folder, padded_bundle  # noqa: E402
from tests.support.mqtt_listener import Listener  # noqa: E402
from tests.support.onnx_models import make_color_bundle  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402


class SysCounters:
    """The broker's total bytes received and sent ($SYS/broker/bytes/*, retained, refreshed every sys_interval)."""

    def __init__(self, port: int) -> None:
        self.values: dict[str, int] = {}
        self.updates = 0
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("$SYS/broker/bytes/+")
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._cond:
            self.values[message.topic.rsplit("/", 1)[1]] = int(message.payload)
            self.updates += 1
            self._cond.notify_all()

    def fresh(self) -> dict[str, int]:
        """The counters after the next two updates (so they include everything sent until now)."""
        with self._cond:
            target = self.updates + 4
            self._cond.wait_for(lambda: self.updates >= target, 10)
            return dict(self.values)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(devices: int, megabytes: float, work: Path, http: bool) -> dict[str, Any]:
    broker = Broker(workdir=work, port=free_port(), extra_config="sys_interval 1\n").start()
    listener = Listener(broker.host, broker.port, ("edgeteach/+/model/progress", "edgeteach/+/model/state"))
    fleet = Fleet(listener)
    counters = SysCounters(broker.port)
    try:
        private, public = generate_keypair(work / "keys")
        base = make_color_bundle(work / "base")
        camera = image_folder(work / "camera")
        names = [f"pi-{i:02d}" for i in range(devices)]
        for name in names:
            fleet.start(name, device_config(work / "devices", name, broker.host, broker.port, base, camera, public))
        wait_for(lambda: len(fleet.states()) == devices, 600, "every device's state")
        packed = pack_bundle(padded_bundle(work / "big", megabytes), "big", "1")
        watch = FleetWatch(MqttSettings(host=broker.host, port=broker.port)).start()
        try:
            before = counters.fresh()
            cpu0, t0 = time.process_time(), time.monotonic()
            offer = HttpOffer("127.0.0.1", free_port(), bind="127.0.0.1") if http else None
            outcome = deploy(watch, packed, load_private_key(private), group="class-a", wave_timeout_s=900, http=offer)
            elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
            after = counters.fresh()
        finally:
            watch.stop()
        if not outcome.ok:
            raise SystemExit(f"the rollout did not end healthy everywhere: {outcome.results}\n{fleet.logs()}")
        downloads = []
        for name in names:
            steps = {d["status"]: d["ts"] for _, device, d in reversed(fleet.progress(outcome.job_id)) if device == name}
            downloads.append(steps["activated"] - steps["downloading"])
        received = after["received"] - before["received"]
        sent = after["sent"] - before["sent"]
        return {
            "devices": devices,
            "bundle_bytes": packed.manifest.size,
            "chunks": packed.count,
            "chunk_bytes": packed.manifest.chunk_size,
            "rollout_s": round(elapsed, 2),
            "device_download_s_median": round(statistics.median(downloads), 2),
            "device_download_s_max": round(max(downloads), 2),
            "broker_bytes_received": received,
            "broker_bytes_sent": sent,
            "broker_sent_per_device_bytes": round(sent / devices),
            "sent_over_bundle_per_device": round(sent / devices / packed.manifest.size, 3),
            "controller_cpu_s": round(cpu, 3),
            "controller_cpu_ms_per_device": round(1000 * cpu / devices, 1),
            "http_chunk_requests": outcome.http_requests,
        }
    finally:
        counters.close()
        fleet.stop_all()
        listener.close()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--http", action="store_true", help="the devices fetch the chunks over HTTP from the controller")
    add_output_args(parser)
    args = parser.parse_args(argv)
    path = results_path(args, "fleet", "http" if args.http else "")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        figures = run(args.devices, args.megabytes, Path(tmp), args.http)
    result = {"bench": "fleet", "transport": "http" if args.http else "mqtt chunks", "load_before": load_before,
              "load_after": load_average(),
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(), **figures}
    print(f"{'devices':>8} {'bundle MB':>10} {'rollout s':>10} {'download s (median)':>20} {'broker sent MB':>15} "
          f"{'sent/bundle/device':>19} {'controller CPU ms/device':>25}")
    print(f"{figures['devices']:>8} {figures['bundle_bytes'] / 1e6:>10.2f} {figures['rollout_s']:>10.1f} "
          f"{figures['device_download_s_median']:>20.2f} {figures['broker_bytes_sent'] / 1e6:>15.1f} "
          f"{figures['sent_over_bundle_per_device']:>19.3f} {figures['controller_cpu_ms_per_device']:>25.1f}")
    print(f"wrote {write_results(path, result, args.force)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
