"""edge/pipelines/latest.py (the one-slot hand-off) and edge/dashboard/live.py (what a viewer makes of it): the
pipeline's side only swaps a reference; JPEGs are made on the viewer's side, once per frame, at most max_fps."""

from __future__ import annotations

import cv2
import numpy as np

from edge.dashboard.live import FLOOR_DB, FrameThrottle, audio_view, encode_jpeg, live_view
from edge.pipelines.base import Decision
from edge.pipelines.latest import Classified, LatestClassified


def decision(seq: int, label: str = "red", changed: bool = False) -> Decision:
    return Decision(pipeline="cam", label=label, confidence=0.9, scores={"red": 0.9, "blue": 0.1}, ts=1000.0 + seq, seq=seq,
                    model="m", model_sha256="0" * 64, latency_ms=3.0, changed=changed, raw_label=label)


def frame(seq: int) -> Classified:
    image = np.full((48, 64, 3), seq % 256, np.uint8)
    return Classified(decision(seq), image=image)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, image: np.ndarray, mirror: bool) -> bytes:
        self.seen.append(int(image[0, 0, 0]))
        return bytes([int(image[0, 0, 0])])


def test_the_slot_keeps_only_the_newest_and_the_label_changes() -> None:
    holder = LatestClassified(max_changes=3)
    assert holder.get() is None
    for seq, (label, changed) in enumerate([("red", False), ("red", False), ("blue", True), ("blue", False), ("red", True),
                                            ("blue", True), ("red", True)], start=1):
        holder.put(Classified(decision(seq, label, changed)))
    item = holder.get()
    assert item is not None and item.decision.seq == 7  # overwritten each time: no queue behind it
    assert [(c.label, c.ts) for c in holder.changes()] == [("red", 1005.0), ("blue", 1006.0), ("red", 1007.0)]  # the last 3


def test_nothing_is_encoded_while_nobody_watches() -> None:
    holder, encoder = LatestClassified(), CountingEncoder()
    throttle = FrameThrottle(holder, max_fps=5, encode=encoder, clock=Clock())
    for seq in range(1, 101):
        holder.put(frame(seq))
    assert encoder.seen == [] and throttle.encoded == 0
    assert throttle.next_after(0) == (100, bytes([100]))  # a viewer arrives: the newest frame, encoded once
    assert encoder.seen == [100]


def test_viewers_share_one_encoding_per_frame_and_at_most_max_fps() -> None:
    holder, encoder, clock = LatestClassified(), CountingEncoder(), Clock()
    throttle = FrameThrottle(holder, max_fps=5, encode=encoder, clock=clock)
    holder.put(frame(1))
    first = throttle.next_after(0)
    assert first == (1, bytes([1]))
    assert throttle.next_after(0) == first  # a second viewer gets the same JPEG
    assert throttle.next_after(1) is None  # nothing newer yet
    assert throttle.has_newer(0) and not throttle.has_newer(1)
    assert encoder.seen == [1]
    for seq in (2, 3, 4):  # frames keep coming faster than 5 a second
        clock.now += 0.05
        holder.put(frame(seq))
        assert throttle.next_after(1) is None  # within 1/5 s of the last encoding: wait
        assert throttle.has_newer(1)
    clock.now = 0.2
    assert throttle.next_after(1) == (4, bytes([4]))  # then the newest, not the ones in between
    assert encoder.seen == [1, 4]


def test_a_microphone_has_no_picture() -> None:
    holder = LatestClassified()
    holder.put(Classified(decision(1), samples=np.zeros(160, np.float32), sample_rate=16000))
    assert FrameThrottle(holder, max_fps=5, encode=CountingEncoder(), clock=Clock()).next_after(0) is None


def test_the_jpeg_is_downscaled_and_mirrored_as_the_model_saw_it() -> None:
    image = np.zeros((960, 1280, 3), np.uint8)
    image[:, :640] = (0, 0, 255)  # left half red
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(image, mirror=True), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)
    assert decoded[240, 600, 2] > 200 and decoded[240, 40, 2] < 50  # red now on the right


def test_what_a_microphone_tile_draws() -> None:
    rate = 16000
    t = np.arange(rate // 2) / rate
    view = audio_view((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate)
    assert abs(view["level_db"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.2  # RMS of a sine of amplitude 0.5: -9 dBFS
    assert len(view["waveform"]) == 160 and max(view["waveform"]) > 0.49
    edges = np.geomspace(50.0, 8000.0, len(view["spectrum"]) + 1)
    loudest = int(np.argmax(view["spectrum"]))
    assert edges[loudest] <= 1000 < edges[loudest + 1]  # the tone's band
    silent = audio_view(np.zeros(8000, np.float32), rate)
    assert silent["level_db"] == FLOOR_DB and set(silent["spectrum"]) == {FLOOR_DB}


def test_a_tile_before_and_after_the_first_decision() -> None:
    holder = LatestClassified()
    assert live_view("cam", "camera", False, holder)["label"] is None
    holder.put(Classified(decision(3, "blue", True), samples=np.full(1600, 0.1, np.float32), sample_rate=16000))
    view = live_view("cam", "microphone", True, holder)
    assert view["label"] == "blue" and view["seq"] == 3 and view["paused"] is True
    assert view["changes"] == [{"ts": 1003.0, "label": "blue", "confidence": 0.9}]
    assert view["audio"]["level_db"] == -20.0
