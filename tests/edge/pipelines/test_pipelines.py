"""Pipelines end to end with real ONNX Runtime sessions and real video through OpenCV (and, for the
microphone, real PortAudio through ALSA's file plugin in tests/edge/sources/test_sources.py and below)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config import parse_config
from edge.core.bundle import BundleError, load_bundle
from edge.core.session import Classifier
from edge.pipelines import build_pipeline
from edge.pipelines.base import Decision
from edge.pipelines.postprocess import PostProcessor, PostSettings
from edge.pipelines.vision import VisionPipeline
from tests.support.onnx_models import color_bundle, color_video, tone, tone_bundle
from tests.support.paths import REPO
from tests.support.waiting import wait_for

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


class Recorder:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.statuses: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def decision(self, d: Decision) -> None:
        with self.lock:
            self.decisions.append(d)

    def status(self, name: str, state: str, detail: str) -> None:
        with self.lock:
            self.statuses.append((name, state, detail))

    def states(self, name: str) -> list[str]:
        with self.lock:
            return [s for n, s, _ in self.statuses if n == name]


def camera_cfg(name: str, bundle: Path, uri: str, **extra: Any) -> Any:
    source = {"uri": uri, "backoff_initial_s": 0.1, "backoff_max_s": 0.8, **extra.pop("source", {})}
    entry = {"name": name, "kind": "camera", "bundle": str(bundle), "smoothing": {"method": "none"}, "min_hold_s": 0, "source": source,
             **extra}
    return parse_config({"pipelines": [entry]}).pipelines[0]


# -- post-processing (pure) ---------------------------------------------------------------------------

def _run(post: PostProcessor, readings: list[list[float]], dt: float = 0.1) -> list[tuple[str, bool]]:
    return [(o.label, o.changed) for o in (post.update(np.array(r), i * dt) for i, r in enumerate(readings))]


def test_threshold_gives_unknown_label() -> None:
    post = PostProcessor(["a", "b"], PostSettings(threshold=0.7, method="none", min_hold_s=0))
    assert _run(post, [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]) == [("a", True), ("unknown", True), ("b", True)]
    out = post.update(np.array([0.55, 0.45]), 1.0)
    assert out.label == "unknown" and out.confidence == pytest.approx(0.55) and out.raw_label == "a"


def test_moving_average_suppresses_a_single_outlier() -> None:
    post = PostProcessor(["a", "b"], PostSettings(threshold=0.5, method="moving_average", window=3, min_hold_s=0))
    labels = [label for label, _ in _run(post, [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])]
    assert labels == ["a", "a", "a", "a"]  # one outlier frame cannot flip the average
    post2 = PostProcessor(["a", "b"], PostSettings(threshold=0.5, method="none", min_hold_s=0))
    assert [label for label, _ in _run(post2, [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])] == ["a", "a", "b", "a"]


def test_n_of_m_needs_agreement() -> None:
    post = PostProcessor(["a", "b"], PostSettings(threshold=0.5, method="n_of_m", n=3, m=3, min_hold_s=0))
    a, b = [0.9, 0.1], [0.1, 0.9]
    # first reading: no agreement yet -> unknown; then a wins 3 of 3; b must win 3 in a row to take over
    assert _run(post, [a, a, a, b, b, a, b, b, b]) == [
        ("unknown", True), ("unknown", False), ("a", True), ("a", False), ("a", False), ("a", False), ("a", False), ("a", False), ("b",
                                                                                                                                   True),
    ]


def test_min_hold_defers_a_change_until_the_hold_expires() -> None:
    post = PostProcessor(["a", "b"], PostSettings(threshold=0.5, method="none", min_hold_s=1.0))
    a, b = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    assert post.update(a, 0.0).changed
    assert post.update(b, 0.5).label == "a"  # held
    out = post.update(b, 1.0)
    assert out.label == "b" and out.changed
    assert post.update(a, 1.2).label == "b"  # flicker back is held too


def test_postprocess_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="n <= m"):
        PostSettings(method="n_of_m", n=4, m=3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        PostSettings(threshold=1.5)


# -- vision pipeline ----------------------------------------------------------------------------------

def test_vision_classifies_a_generated_video_and_reports_changes(tmp_path: Path) -> None:
    bundle = color_bundle(tmp_path / "colors")
    video = color_video(tmp_path / "rb.avi", [RED, BLUE, RED], frames_each=12, fps=60)
    rec = Recorder()
    pipe = build_pipeline(camera_cfg("cam", bundle, str(video), source={"realtime": True}), rec.decision, rec.status)
    pipe.start()
    try:
        wait_for(lambda: "ended" in rec.states("cam"), 10, "the video to end")
    finally:
        pipe.stop()
    changes = [d.label for d in rec.decisions if d.changed]
    assert changes[:3] == ["red", "blue", "red"], changes
    d = rec.decisions[0]
    assert d.pipeline == "cam" and d.model_sha256 == load_bundle(bundle).sha256() and d.seq == 1
    assert set(d.scores) == {"red", "blue"} and d.latency_ms >= 0 and d.ts <= time.time()
    assert [d.seq for d in rec.decisions] == list(range(1, len(rec.decisions) + 1))
    stats = pipe.stats()
    assert stats["frames_in"] >= 36 and stats["frames_classified"] == len(rec.decisions)
    assert stats["frames_in"] == stats["frames_classified"] + stats["frames_dropped"] + stats["queue_size"]


class SlowClassifier(Classifier):
    """A real ONNX Runtime session made slow, as a big model on a Pi is."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(0.08)
        return super().run(batch)


def test_slow_model_classifies_the_newest_frame_and_counts_drops(tmp_path: Path) -> None:
    bundle = color_bundle(tmp_path / "colors")
    # 60 red frames then 60 blue at 60 fps: a model at ~12 fps sees only some of them
    video = color_video(tmp_path / "rb.avi", [RED, BLUE], frames_each=60, fps=60)
    cfg = camera_cfg("slow", bundle, str(video), source={"backoff_initial_s": 30})  # no restart within the test
    rec = Recorder()
    pipe = VisionPipeline(cfg, rec.decision, rec.status, classifier=SlowClassifier(load_bundle(bundle)))
    started = time.monotonic()
    pipe.start()
    try:
        wait_for(lambda: "ended" in rec.states("slow"), 10, "the video to end")
        played_s = time.monotonic() - started
        # the model catches up: the frame left in the mailbox is classified, nothing is pending
        wait_for(lambda: pipe.stats()["queue_size"] == 0, 5, "the last frame to be classified")
    finally:
        pipe.stop()
    stats = pipe.stats()
    assert stats["frames_in"] == stats["frames_classified"] + stats["frames_dropped"], stats  # every frame accounted for
    assert stats["frames_dropped"] > 40, stats
    assert stats["frames_classified"] < 40
    # the capture never waited: the file played at its own pace (2 s), not at the model's (120 x 80 ms)
    assert stats["frames_in"] == 120 and played_s < 6.0  # a waiting capture would need >= 9.6 s
    # newest-frame semantics: within one model period after the colour switch, the decision follows
    assert [d.label for d in rec.decisions if d.changed][:2] == ["red", "blue"]
    # latency stays around one inference, it does not grow with a queue
    assert max(d.latency_ms for d in rec.decisions) < 1000


def test_bad_bundle_is_refused_at_build_and_on_reload(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        build_pipeline(camera_cfg("cam", tmp_path / "missing", "0"))
    tones = tone_bundle(tmp_path / "tones")
    with pytest.raises(BundleError, match="needs an image bundle"):
        build_pipeline(camera_cfg("cam", tones, "0"))
    bundle = color_bundle(tmp_path / "colors")
    pipe = build_pipeline(camera_cfg("cam", bundle, "0"))
    before = pipe.stats()["model_sha256"]
    corrupt = color_bundle(tmp_path / "corrupt")
    with open(corrupt / "model.onnx", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(BundleError, match="SHA-256"):
        pipe.reload(str(corrupt))
    with pytest.raises(BundleError, match="needs an image bundle"):
        pipe.reload(str(tones))
    assert pipe.stats()["model_sha256"] == before and pipe.stats()["model"] == str(bundle)


def test_set_params_is_validated_and_atomic(tmp_path: Path) -> None:
    pipe = build_pipeline(camera_cfg("cam", color_bundle(tmp_path / "colors"), "0"))
    now = pipe.set_params({"threshold": 0.8, "smoothing": {"method": "n_of_m", "n": 2, "m": 4}, "mirror": True})
    assert now["threshold"] == 0.8 and now["smoothing"]["n"] == 2 and now["smoothing"]["m"] == 4 and now["mirror"] is True
    assert pipe.post.settings.method == "n_of_m"
    with pytest.raises(ValueError, match="threshold"):
        pipe.set_params({"threshold": 1.5, "min_hold_s": 3})
    with pytest.raises(ValueError, match="cannot set bundle"):
        pipe.set_params({"bundle": "/x"})
    with pytest.raises(ValueError, match="n .2. cannot exceed m"):
        pipe.set_params({"smoothing": {"m": 1}})
    assert pipe.params()["threshold"] == 0.8 and pipe.params()["min_hold_s"] == 0  # nothing of the bad calls applied


def test_pause_resume_and_snapshot(tmp_path: Path) -> None:
    bundle = color_bundle(tmp_path / "colors")
    video = color_video(tmp_path / "r.avi", [RED], frames_each=30, fps=30)
    rec = Recorder()
    pipe = build_pipeline(camera_cfg("cam", bundle, str(video), source={"loop": True}), rec.decision, rec.status)
    pipe.start()
    try:
        wait_for(lambda: len(rec.decisions) >= 3, 10, "three decisions")
        pipe.pause()
        # Once the inference thread has skipped a frame it has seen the pause, and whatever it was
        # classifying before has been decided (one thread, one frame at a time).
        wait_for(lambda: pipe.stats()["frames_skipped_paused"] >= 1, 5, "a frame skipped while paused")
        count = len(rec.decisions)
        skipped = pipe.stats()["frames_skipped_paused"]
        # ten more frames arrive and are skipped (30 fps): the marker after which "no decision" means something
        wait_for(lambda: pipe.stats()["frames_skipped_paused"] >= skipped + 10, 5, "ten more frames skipped while paused")
        assert pipe.paused and len(rec.decisions) == count
        jpeg = pipe.snapshot_jpeg()
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (48, 64, 3) and image[..., 2].mean() > 200  # red
        pipe.resume()
        wait_for(lambda: len(rec.decisions) > count + 2, 10, "decisions again after resume")
    finally:
        pipe.stop()
    assert rec.states("cam")[-1] == "stopped"


# -- audio pipeline -----------------------------------------------------------------------------------

def mic_entry(name: str, bundle: Path, source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "kind": "microphone", "bundle": str(bundle), "threshold": 0.5, "smoothing": {"method": "none"}, "min_hold_s": 0,
        "source": {"backoff_initial_s": 0.1, **source}, **extra,
    }


def test_audio_pipeline_from_a_wav_file_resamples_and_follows_the_sound(tmp_path: Path) -> None:
    import soundfile

    bundle = tone_bundle(tmp_path / "tones", sample_rate=16000, window=8000, hop=4000)
    wav = tmp_path / "lowhigh.wav"
    soundfile.write(wav, np.concatenate([tone(300, 1.0, 44100), tone(4000, 1.0, 44100)]), 44100)
    cfg = parse_config({"pipelines": [mic_entry("mic", bundle, {"file": str(wav), "block_s": 0.05, "backoff_initial_s": 30})]}).pipelines[0]
    rec = Recorder()
    pipe = build_pipeline(cfg, rec.decision, rec.status)
    pipe.start()
    try:
        wait_for(lambda: "ended" in rec.states("mic"), 10, "the sound file to end")
        stats = pipe.stats()
    finally:
        pipe.stop()
    assert [d.label for d in rec.decisions if d.changed] == ["low", "high"]
    # 2 s of audio, 0.5 s windows every 0.25 s: the first window once 0.5 s is in, then one per hop
    assert 5 <= len(rec.decisions) <= 7
    assert stats["sample_rate_in"] == 44100 and stats["sample_rate_model"] == 16000
    assert stats["window_s"] == pytest.approx(0.5, abs=1e-3) and stats["hop_s"] == pytest.approx(0.25, abs=1e-3)
    assert rec.decisions[0].extra["rms"] > 0.3


def test_audio_hop_override_and_set_params(tmp_path: Path) -> None:
    bundle = tone_bundle(tmp_path / "tones")
    cfg = parse_config({"pipelines": [mic_entry("mic", bundle, {"file": str(tmp_path / "x.wav")}, hop_s=0.1)]}).pipelines[0]
    pipe = build_pipeline(cfg)
    assert pipe.params()["hop_s"] == 0.1
    assert pipe.set_params({"hop_s": 0.5})["hop_s"] == 0.5
    with pytest.raises(ValueError, match="hop_s"):
        pipe.set_params({"hop_s": -1})
    with pytest.raises(ValueError, match="cannot set mirror"):
        pipe.set_params({"mirror": True})


def _read_lines(proc: Any, sink: list[dict[str, Any]]) -> None:
    import json

    for line in proc.stdout:
        try:
            sink.append(json.loads(line))
        except ValueError:
            pass


def test_microphone_pipeline_for_real_48k_device_resampled_to_16k(tmp_path: Path) -> None:
    """PortAudio captures from ALSA's file plugin at the device's native 48 kHz; the pipeline resamples
    each window to the bundle's 16 kHz. The sound is switched while the daemon-like process listens."""
    import subprocess
    import sys

    from tests.support.alsa import PCM_NAME, AlsaFileMicrophone

    bundle = tone_bundle(tmp_path / "tones", sample_rate=16000, window=8000, hop=4000)
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"pipelines:\n  - name: mic\n    kind: microphone\n    bundle: {bundle}\n    threshold: 0.5\n"
        f"    smoothing: {{method: none}}\n    min_hold_s: 0\n    source: {{device: {PCM_NAME}, block_s: 0.05}}\n",
        encoding="utf-8",
    )
    lines: list[dict[str, Any]] = []
    repo = REPO
    with AlsaFileMicrophone(tmp_path, rate=48000) as mic:
        mic.loop(tone(4000, 0.1, 48000))  # whole periods: loops without a click
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.run_pipeline", str(config), "15"], env=mic.env(), cwd=repo,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
        reader.start()
        try:
            labels = lambda: [d["label"] for d in list(lines) if d["type"] == "decision" and d["changed"]]  # noqa: E731
            wait_for(lambda: labels()[:1] == ["high"], 20, lambda: f"the high tone; labels {labels()}, first lines {lines[:5]}")
            mic.loop(tone(300, 0.1, 48000))
            wait_for(lambda: labels()[:2] == ["high", "low"], 10, lambda: f"the low tone; labels {labels()}")
            mic.loop(tone(4000, 0.1, 48000))
            wait_for(lambda: labels()[:3] == ["high", "low", "high"], 10, lambda: f"the high tone again; labels {labels()}")
        finally:
            proc.terminate()
            proc.wait(10)
    statuses = [d["state"] for d in lines if d["type"] == "status"]
    assert statuses[:2] == ["starting", "running"]
    running = next(d for d in lines if d["type"] == "status" and d["state"] == "running")
    assert PCM_NAME in running["detail"]
    decision = next(d for d in lines if d["type"] == "decision")
    assert decision["model"] == str(bundle) and set(decision["scores"]) == {"low", "high"}


def test_failing_camera_restarts_while_another_pipeline_carries_on(tmp_path: Path) -> None:
    from tests.support.broker import free_port

    bundle = color_bundle(tmp_path / "colors")
    clip = color_video(tmp_path / "short.avi", [RED, BLUE], frames_each=20, fps=30)  # a 1.3 s clip that ends
    dead = f"rtsp://127.0.0.1:{free_port()}/live"  # nothing listens: the camera URL fails
    rec = Recorder()
    good = build_pipeline(camera_cfg("hall", bundle, str(clip), source={"backoff_initial_s": 0.2}), rec.decision, rec.status)
    bad = build_pipeline(camera_cfg("door", bundle, dead, source={"backoff_initial_s": 0.1, "backoff_max_s": 0.4}), rec.decision,
                         rec.status)
    good.start()
    bad.start()
    try:
        wait_for(lambda: bad.stats()["source_restarts"] >= 3, 15, "three restarts of the dead camera")
        wait_for(lambda: rec.states("hall").count("running") >= 2, 15, "the clip to end and run again")
    finally:
        bad.stop()
        good.stop()
    door = rec.states("door")
    assert "running" not in door and door.count("failed") >= 3 and "restarting" in door
    hall = rec.states("hall")
    assert hall[:4] == ["starting", "running", "ended", "restarting"] and "failed" not in hall
    assert good.stats()["source_restarts"] >= 1 and good.stats()["errors"] == 0
    hall_decisions = [d for d in rec.decisions if d.pipeline == "hall"]
    assert len(hall_decisions) > 40 and not [d for d in rec.decisions if d.pipeline == "door"]


def test_vision_pipeline_on_the_real_video_fixture(tmp_path: Path, shared_dir: Path) -> None:
    bundle = color_bundle(tmp_path / "colors")
    clip = shared_dir / "video" / "bottle-detection.mp4"
    rec = Recorder()
    pipe = build_pipeline(camera_cfg("belt", bundle, str(clip), source={"realtime": True}), rec.decision, rec.status)
    pipe.start()
    try:
        wait_for(lambda: len(rec.decisions) >= 20, 15, "20 decisions on the real clip")
        stats = pipe.stats()
    finally:
        pipe.stop()
    assert stats["source_state"] == "running" and 10 < stats["input_fps"] < 45  # paced at the clip's ~30 fps
    assert all(abs(sum(d.scores.values()) - 1) < 1e-4 for d in rec.decisions)
    assert pipe.snapshot_jpeg() is not None
