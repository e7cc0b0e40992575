"""Edge daemon memory footprint: `edge run` as a real process, one configuration after another, side by side.

Configurations (all without the LLM): `camera` (one camera pipeline on a 640x480 MJPG video paced at 30 fps),
`microphone` (one microphone pipeline: sounddevice on ALSA's file plugin when this machine has ALSA and
PortAudio, else a WAV file paced in real time), `both` (the two together). Each daemon talks to a real
mosquitto and publishes every classification as a state (the busiest a daemon gets), so the figures are
taken under load, after it has reached steady state:

- wait for each pipeline's first state, then `--warmup` seconds;
- sample VmRSS from /proc every 0.25 s for `--seconds`; report the last sample and the largest;
- VmHWM (the kernel's own peak RSS since start, startup included), USS and PSS (from smaps, via psutil);
- which big native libraries are mapped (OpenCV, PortAudio, libsndfile, Pillow): what the config really loaded;
- capture-to-publish latency p50 per pipeline (a subscriber's receive time - the state's capture `ts`), so
  a setting that saves memory but costs latency shows it in the same run.

Configurations are interleaved over `--rounds` rounds; the median of each figure is reported. Then, per
configuration, one `python -X importtime` of what `edge run` imports up to built (not started) pipelines:
import milliseconds grouped by top-level package, and the RSS at that point.

    .venv/bin/python bench/bench_footprint.py --bundle IMAGE_BUNDLE --audio-bundle SOUND_BUNDLE --label before

Without --bundle/--audio-bundle tiny generated ONNX bundles are used (the figures then leave out the
weights of a real model; the output says which ran). Writes bench/results/footprint_<variant>_<label>.json
(--out names the file); an existing results file is never overwritten without --force.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_daemon import _first_per_seq, _percentile, write_shapes_video  # noqa: E402
from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from tests.support.broker import Broker, free_port  # noqa: E402
from tests.support.daemon import camera_pipeline, microphone_pipeline, write_config, write_loud_quiet_wav  # noqa: E402
from tests.support.mqtt_listener import Listener  # noqa: E402
from tests.support.onnx_models import make_audio_bundle, make_color_bundle  # noqa: E402

CONFIGS = ("camera", "microphone", "both")
EVERY = {"heartbeat_s": 0.001, "max_rate_hz": 1000}  # publish every classification as a state

# Native libraries worth knowing about, by a piece of their mapped path in /proc/<pid>/maps.
LIBRARIES = {"opencv": "/cv2/", "portaudio": "libportaudio", "libsndfile": "libsndfile", "pillow": "/PIL/", "onnxruntime": "onnxruntime"}

# What `edge run` imports up to built (not started) pipelines, as the daemon does it: run by
# `python -X importtime -c` so the import costs are this configuration's alone.
IMPORT_PROBE = """
import json, re, sys
from edge.cli.main import build_parser
build_parser()  # edge run builds every sub-command's parser: what they import counts
from edge.config import load_config
import edge.daemon.daemon
from edge.pipelines import build_pipeline
config = load_config(sys.argv[1])
pipelines = [build_pipeline(p) for p in config.active_pipelines]
status = open('/proc/self/status').read()
print(json.dumps({'rss_kb': int(re.search(r'VmRSS:\\s+(\\d+)', status).group(1)),
                  'modules': sorted({m.split('.')[0] for m in sys.modules})}))
"""


# One classifier in a fresh process, one ONNX Runtime thread, 640x480 frames fitted and classified: CPU ms of the
# calling thread per image (thread CPU time: a busy machine slows the wall clock, much less this), with and
# without edge run's fixed mmap threshold. The price of the malloc change, measured where it would show.
INFERENCE_PROBE = """
import statistics, sys, time
import numpy as np
from edge.host.memory import fix_mmap_threshold
if sys.argv[3] == "fixed":
    assert fix_mmap_threshold()
from edge.core.session import load_classifier
classifier = load_classifier(sys.argv[1], variant=sys.argv[2], threads=1)
rng = np.random.default_rng(0)
frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
for frame in frames:
    classifier.predict_image(frame)
spent = []
for i in range(80):
    start = time.thread_time()
    classifier.predict_image(frames[i % 4])
    spent.append((time.thread_time() - start) * 1000)
print(statistics.median(spent))
"""


def inference_cpu(bundle: Path, variant: str, env: dict[str, str], rounds: int = 3) -> dict[str, float]:
    """Median thread-CPU ms per image, default malloc vs fixed mmap threshold, interleaved over `rounds`."""
    clean = {k: v for k, v in env.items() if not k.startswith("MALLOC_")}
    spent: dict[str, list[float]] = {"default_malloc": [], "fixed_mmap_threshold": []}
    for _ in range(rounds):
        for key, mode in (("default_malloc", "default"), ("fixed_mmap_threshold", "fixed")):
            run = subprocess.run([sys.executable, "-c", INFERENCE_PROBE, str(bundle), variant, mode], cwd=str(REPO), env=clean,
                                 capture_output=True, text=True, timeout=300, check=True)
            spent[key].append(float(run.stdout.strip().splitlines()[-1]))
    return {key: round(statistics.median(values), 2) for key, values in spent.items()}


def proc_status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends, in kB, straight from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[key] = int(value.split()[0])
    return out


def mapped_libraries(pid: int) -> dict[str, bool]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name: piece in maps for name, piece in LIBRARIES.items()}


def alsa_microphone(work: Path) -> Any:
    """An ALSA capture device fed from this process (tests/support/alsa.py), or None where ALSA/PortAudio are
    missing (then the WAV-file microphone is used)."""
    try:
        from tests.support.alsa import AlsaFileMicrophone

        mic = AlsaFileMicrophone(work / "alsa", rate=48000).start()
        t = np.arange(48000) / 48000
        mic.loop(np.concatenate([0.001 * np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32))
        return mic
    except Exception as exc:
        print(f"note: ALSA file microphone unavailable ({exc}); using a WAV file source", file=sys.stderr)
        return None


def pipelines_for(name: str, bundle: Path, audio_bundle: Path, video: Path, wav: Path, variant: str, threads: int,
                  use_alsa: bool) -> list[dict[str, Any]]:
    cam = camera_pipeline("cam", bundle, str(video), variant=variant, threads=threads, publish=EVERY)
    mic = microphone_pipeline("mic", audio_bundle, wav, variant=variant, threads=threads, publish=EVERY)
    if use_alsa:
        mic["source"] = {"device": "default"}
    return {"camera": [cam], "microphone": [mic], "both": [cam, mic]}[name]


def measure(config: Path, names: list[str], env: dict[str, str], seconds: float, warmup: float, listener: Listener,
            work: Path) -> dict[str, Any]:
    """One daemon run: start, steady state, samples, SIGTERM."""
    log_path = work / f"{config.stem}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "-c", str(config)], cwd=str(REPO), env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while not all(listener.on(f"edgeteach/testdev/{n}/state") for n in names):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{config.name}: no state from {names} (log: {log_path}):\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            time.sleep(warmup)
            listener.clear()
            start = time.time()
            first = psutil.Process(process.pid).cpu_times()
            cpu_at_start = first.user + first.system
            samples: list[int] = []
            while time.time() - start < seconds:
                samples.append(proc_status_kb(process.pid)["VmRSS"])
                time.sleep(0.25)
            elapsed = time.time() - start
            cpu = psutil.Process(process.pid).cpu_times()
            cpu_s = cpu.user + cpu.system - cpu_at_start
            status = proc_status_kb(process.pid)
            full = psutil.Process(process.pid).memory_full_info()
            libraries = mapped_libraries(process.pid)
        finally:
            process.terminate()
            process.wait(15)
    result: dict[str, Any] = {
        "rss_mb": round(samples[-1] / 1024, 1),
        "rss_max_mb": round(max(samples) / 1024, 1),
        "hwm_mb": round(status["VmHWM"] / 1024, 1),
        "uss_mb": round(full.uss / 2**20, 1),
        "pss_mb": round(full.pss / 2**20, 1),
        "rss_anon_mb": round(status["RssAnon"] / 1024, 1),
        "rss_file_mb": round(status["RssFile"] / 1024, 1),
        "threads": status["Threads"],
        "libraries": libraries,
    }
    classified = 0
    for n in names:
        states = _first_per_seq([m for m in listener.on(f"edgeteach/testdev/{n}/state") if m.at <= start + elapsed])
        latencies = [(m.at - m.json()["ts"]) * 1000 for m in states]
        classified += len(states)
        result[f"{n}_states_per_s"] = round(len(states) / elapsed, 1)
        result[f"{n}_p50_ms"] = round(_percentile(latencies, 50), 2) if latencies else None
    # the whole daemon's CPU (capture, inference, MQTT) per classification published
    result["cpu_ms_per_state"] = round(cpu_s * 1000 / classified, 2) if classified else None
    return result


def import_costs(config: Path, env: dict[str, str]) -> dict[str, Any]:
    """`python -X importtime` of IMPORT_PROBE: ms per top-level package (self time summed), and the RSS."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORT_PROBE, str(config)], cwd=str(REPO), env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    per_package: dict[str, int] = {}
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        top = name.split(".")[0]
        per_package[top] = per_package.get(top, 0) + int(self_us)
    probe = json.loads(run.stdout.strip().splitlines()[-1])
    slowest = sorted(per_package.items(), key=lambda kv: -kv[1])[:12]
    return {"rss_after_build_mb": round(probe["rss_kb"] / 1024, 1), "total_ms": round(sum(per_package.values()) / 1000),
            "top_ms": {name: round(us / 1000, 1) for name, us in slowest},
            "heavy_imported": [m for m in ("cv2", "sounddevice", "soundfile", "PIL", "onnxruntime", "starlette", "uvicorn",
                                           "prometheus_client", "psutil") if m in probe["modules"]]}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and all(isinstance(r.get(key), (int, float)) for r in runs):
            middle = statistics.median(r[key] for r in runs)
            out[key] = int(middle) if isinstance(value, int) and key == "threads" else round(middle, 1)
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="a trained image bundle (default: a tiny generated one)")
    parser.add_argument("--audio-bundle", type=Path, help="a trained sound bundle (default: a tiny generated one)")
    parser.add_argument("--variant", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per pipeline (0 = the config default: all cores)")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first states before sampling")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of camera,microphone,both")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the daemon (e.g. MALLOC_ARENA_MAX=2), recorded in the results")
    parser.add_argument("--note", default="", help="what this run changes, recorded in the results")
    add_output_args(parser)
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    if not configs or any(c not in CONFIGS for c in configs):
        parser.error(f"--configs takes a subset of {','.join(CONFIGS)}")
    extra_env = dict(item.split("=", 1) for item in args.env)
    out_path = results_path(args, "footprint", args.variant, "tiny" if args.bundle is None else "")
    load_at_start = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle or make_color_bundle(work / "tiny-image")
        audio_bundle = args.audio_bundle or make_audio_bundle(work / "tiny-audio")
        video = write_shapes_video(work / "shapes.avi", seconds=10)
        wav = write_loud_quiet_wav(work / "loud_quiet.wav")
        broker = Broker(workdir=work, port=free_port()).start()
        alsa = alsa_microphone(work) if any(c in ("microphone", "both") for c in configs) else None
        env = {**os.environ, **(alsa.env() if alsa is not None else {}), **extra_env}
        listener = Listener(broker.host, broker.port, ("edgeteach/testdev/+/state",))
        files = {}
        for name in configs:
            pipelines = pipelines_for(name, bundle, audio_bundle, video, wav, args.variant, args.threads, alsa is not None)
            files[name] = write_config(work / f"{name}.yaml", broker.host, broker.port, pipelines, mqtt={"stats_interval": 2})
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        imports: dict[str, Any] = {}
        try:
            for round_no in range(args.rounds):
                for name in configs:
                    names = {"camera": ["cam"], "microphone": ["mic"], "both": ["cam", "mic"]}[name]
                    runs[name].append(measure(files[name], names, env, args.seconds, args.warmup, listener, work))
                    print(f"round {round_no + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
            for name in configs:
                imports[name] = import_costs(files[name], env)
            inference = inference_cpu(bundle, args.variant, env)
        finally:
            listener.close()
            broker.stop()
            if alsa is not None:
                alsa.stop()

    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_start": load_at_start, "load_avg_at_end": load_average()},
        "image_bundle": str(args.bundle) if args.bundle else "tiny generated",
        "audio_bundle": str(args.audio_bundle) if args.audio_bundle else "tiny generated",
        "variant": args.variant,
        "threads": args.threads,
        "microphone": "sounddevice (PortAudio on ALSA's file plugin)" if alsa is not None else "wav file",
        "camera": "shapes.avi 640x480 MJPG at 30 fps, real-time pacing",
        "env": extra_env,
        "note": args.note,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "configs": {name: median_of(runs[name]) for name in configs},
        "runs": runs,
        "imports": imports,
        "inference_cpu_ms_per_image": inference,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = write_results(out_path, result, args.force)

    print(f"\nedge run footprint ({result['variant']}, threads {args.threads or 'default'}, image bundle: {result['image_bundle']}, "
          f"microphone: {result['microphone']}; median of {args.rounds} rounds, load {load_at_start[0]})")
    print(f"{'config':<11} {'RSS MB':>7} {'max':>6} {'HWM':>6} {'USS':>6} {'PSS':>6} {'thr':>4}  {'cam p50':>8} {'mic p50':>8} "
          f"{'CPU ms':>7}  libraries")
    for name in configs:
        c = result["configs"][name]
        libs = ",".join(k for k, v in c["libraries"].items() if v)
        cam = f"{c['cam_p50_ms']:.1f}" if c.get("cam_p50_ms") is not None else "-"
        mic = f"{c['mic_p50_ms']:.1f}" if c.get("mic_p50_ms") is not None else "-"
        print(f"{name:<11} {c['rss_mb']:>7} {c['rss_max_mb']:>6} {c['hwm_mb']:>6} {c['uss_mb']:>6} {c['pss_mb']:>6} {c['threads']:>4}  "
              f"{cam:>8} {mic:>8} {c['cpu_ms_per_state'] or '-':>7}  {libs}")
    print("\nimports up to built pipelines (python -X importtime; ms by package, RSS after building)")
    for name in configs:
        i = imports[name]
        top = ", ".join(f"{k} {v}" for k, v in list(i["top_ms"].items())[:8])
        print(f"{name:<11} {i['rss_after_build_mb']:>6} MB  {i['total_ms']:>5} ms  {top}")
    print(f"\nimage inference, CPU ms per 640x480 frame (1 thread, {args.variant}): default malloc "
          f"{inference['default_malloc']}, fixed mmap threshold {inference['fixed_mmap_threshold']}")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
