"""Pipelines end to end with real ONNX Runtime sessions and real video through OpenCV (and, for the
microphone, real PortAudio through ALSA's file plugin in tests/test_sources.py and below)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from edge.config import parse_config
from edge.pipelines import build_pipeline
from edge.pipelines.base import Decision
from edge.pipelines.postprocess import PostProcessor, PostSettings
from edge.pipelines.vision import VisionPipeline
from edge.runtime.bundle import BundleError, load_bundle
from edge.runtime.session import Classifier
from tests.support.tiny_models import color_bundle, color_video, tone_bundle

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


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
    entry = {"name": name, "kind": "camera", "bundle": str(bundle), "smoothing": {"method": "none"}, "min_hold_s": 0, "source": source, **extra}
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
        ("unknown", True), ("unknown", False), ("a", True), ("a", False), ("a", False), ("a", False), ("a", False), ("a", False), ("b", True),
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
        assert wait_for(lambda: "ended" in rec.states("cam"), 10)
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

    def predict_image(self, rgb: np.ndarray) -> np.ndarray:
        time.sleep(0.08)
        return super().predict_image(rgb)


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
        assert wait_for(lambda: "ended" in rec.states("slow"), 10)
        played_s = time.monotonic() - started
        time.sleep(0.2)
    finally:
        pipe.stop()
    stats = pipe.stats()
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
        assert wait_for(lambda: len(rec.decisions) >= 3)
        pipe.pause()
        time.sleep(0.15)
        count = len(rec.decisions)
        time.sleep(0.4)
        assert pipe.paused and len(rec.decisions) == count
        assert pipe.stats()["frames_skipped_paused"] > 0
        jpeg = pipe.snapshot_jpeg()
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (48, 64, 3) and image[..., 2].mean() > 200  # red
        pipe.resume()
        assert wait_for(lambda: len(rec.decisions) > count + 2)
    finally:
        pipe.stop()
    assert rec.states("cam")[-1] == "stopped"
