"""A source that stops delivering without an error (issue 12 item 12): the supervisor notices from its own
thread, declares it stalled, tries close(), abandons a read that stays blocked, opens a fresh one, and drops
the frame an abandoned read returns late. The hung driver is a stand-in (`HungCameraStandIn`): a FrameSource
whose read() blocks on an Event, as a CSI/GStreamer or libcamera read does when the sensor stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sources import Backoff, SourceSupervisor
from edge.sources import supervisor as supervisor_mod
from edge.sources.base import Frame, FrameSource
from edge.sources.camera import CameraOptions, ImageFolderSource, open_camera_source
from tests.support.onnx_models import color_video
from tests.support.waiting import wait_for


class HungCameraStandIn(FrameSource):
    """Stand-in for a camera driver that hangs: `frames` frames (filled with `number`), then read() blocks until
    `release` is set, and returns one more frame then (the late frame). close() sets `release` only when
    `close_unblocks`, as some drivers do (GStreamer's appsink) and others do not."""

    def __init__(self, number: int, frames: int, stall_timeout_s: float, close_unblocks: bool) -> None:
        self.number = number
        self.frames_left = frames
        self.stall_timeout_s = stall_timeout_s
        self.close_unblocks = close_unblocks
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.closes = 0
        self.description = f"hung camera stand-in {number}"

    def open(self) -> None:
        pass

    def read(self) -> Frame:
        if self.frames_left > 0:
            self.frames_left -= 1
            time.sleep(0.02)
            return Frame(np.full((4, 4, 3), self.number, np.uint8), time.time())
        self.blocked.set()
        self.release.wait()
        return Frame(np.full((4, 4, 3), self.number, np.uint8), time.time())

    def close(self) -> None:
        self.closes += 1
        if self.close_unblocks:
            self.release.set()


class _Rig:
    """A supervisor over stand-ins made by `plan(number)`, recording every item and status."""

    def __init__(self, plan: dict[int, tuple[int, bool]], default: tuple[int, bool] = (10**9, False), stall_s: float = 0.6) -> None:
        self.plan, self.default, self.stall_s = plan, default, stall_s
        self.sources: list[HungCameraStandIn] = []
        self.items: list[int] = []
        self.statuses: list[tuple[str, str]] = []
        self.supervisor = SourceSupervisor("cam", self._make, lambda frame: self.items.append(int(frame.image[0, 0, 0])),
                                           lambda _n, state, detail: self.statuses.append((state, detail)), Backoff(0.05, 0.1, 60))

    def _make(self) -> HungCameraStandIn:
        number = len(self.sources) + 1
        frames, close_unblocks = self.plan.get(number, self.default)
        source = HungCameraStandIn(number, frames, self.stall_s, close_unblocks)
        self.sources.append(source)
        return source

    def states(self) -> list[str]:
        return [state for state, _ in self.statuses]


def test_a_read_blocked_forever_is_declared_stalled_abandoned_and_a_fresh_reader_delivers_and_late_frames_are_dropped() -> None:
    rig = _Rig({1: (5, False)})  # the first camera hangs after 5 frames and close() does not free it
    sup = rig.supervisor
    sup.start()
    try:
        wait_for(lambda: rig.sources and rig.sources[0].blocked.is_set(), 10, "the first read to block")
        first = rig.sources[0]
        assert not sup.stale() and sup.last_item_age() is not None
        wait_for(lambda: sup.stale(), 10, "the source to count as stale")
        failed = wait_for(lambda: [d for s, d in rig.statuses if s == "failed"], 10, "the stall to be reported")
        assert failed[0].startswith("stalled: no frame for") and "stall_timeout_s 0.6" in failed[0]
        wait_for(lambda: len(rig.sources) >= 2 and 2 in rig.items, 10, "a fresh reader to deliver frames of camera 2")
        wait_for(lambda: not sup.stale(), 5, "the source to be fresh again")
        assert first.closes >= 1  # close() was tried on the stuck source from the watching thread
        assert sup.stalls == 1 and sup.abandoned_readers == 1 and sup.state == "running"
        assert rig.states()[:5] == ["starting", "running", "failed", "restarting", "starting"]

        # the hung driver finally returns: its frame must not reach the pipeline
        first.release.set()
        wait_for(lambda: sup.late_items_dropped == 1, 5, "the late frame of the abandoned read to be dropped")
        count = len(rig.items)
        wait_for(lambda: len(rig.items) > count + 3, 5, "camera 2 to keep delivering")
        assert rig.items.count(1) == 5, "a late frame of the abandoned camera 1 reached the pipeline"
    finally:
        sup.stop()
    assert rig.states()[-1] == "stopped"


def test_close_that_unblocks_the_read_leaves_no_thread_behind() -> None:
    rig = _Rig({1: (2, True)})
    sup = rig.supervisor
    sup.start()
    try:
        wait_for(lambda: 2 in rig.items, 10, "the second camera to deliver")
    finally:
        sup.stop()
    assert sup.stalls == 1 and sup.abandoned_readers == 0
    assert rig.sources[0].closes >= 1 and rig.items.count(1) == 2 and sup.late_items_dropped == 1


def test_reads_stuck_for_good_are_capped_and_the_status_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_mod, "MAX_STUCK_READERS", 2)
    rig = _Rig({}, default=(0, False), stall_s=0.3)  # every camera hangs at once, close() never helps
    sup = rig.supervisor
    sup.start()
    try:
        detail = wait_for(lambda: [d for s, d in rig.statuses if s == "failed" and "still blocked" in d], 15, "the cap to be reported")
        assert "systemctl restart edgeteach" in detail[0]
        restarts = sup.restarts
        wait_for(lambda: sup.restarts >= restarts + 3, 10, "three more rounds of the backoff")
        assert len(rig.sources) == 2 and sup.abandoned_readers == 2  # no third thread was started
        assert sup.stale()
    finally:
        sup.stop()
        for source in rig.sources:
            source.release.set()


def test_a_source_without_a_stall_timeout_is_never_stale() -> None:
    source = HungCameraStandIn(1, 0, 0.1, False)
    source.stall_timeout_s = None  # as a source that opts out of stall detection
    sup = SourceSupervisor("mic", lambda: source, lambda item: None)
    sup.start()
    try:
        wait_for(lambda: source.blocked.is_set(), 5, "the read to block")
        time.sleep(0.5)
        assert not sup.stale() and sup.state == "starting" and sup.stalls == 0
    finally:
        sup.stop(0.5)
        source.release.set()


def test_slow_slideshows_get_a_longer_stall_timeout(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    assert ImageFolderSource(str(tmp_path), CameraOptions(fps=0.05, stall_timeout_s=10)).stall_timeout_s == 60
    assert ImageFolderSource(str(tmp_path), CameraOptions(fps=5, stall_timeout_s=10)).stall_timeout_s == 10
    assert ImageFolderSource(str(tmp_path), CameraOptions(fps=0.05, realtime=False, stall_timeout_s=10)).stall_timeout_s == 10
    video = color_video(tmp_path / "slow.avi", [(0, 0, 255)], frames_each=2, fps=1)
    source = open_camera_source(str(video), CameraOptions(stall_timeout_s=2))
    with source:
        assert source.stall_timeout_s == 3.0  # three intervals of the file's 1 fps


def test_opencv_close_during_a_read_waits_for_the_read_instead_of_freeing_under_it(tmp_path: Path) -> None:
    """close() from the supervisor's thread while read() runs: releasing the capture under the read would free
    what it uses; the read must finish on a live capture and release it afterwards."""
    video = color_video(tmp_path / "v.avi", [(0, 0, 255)], frames_each=4, fps=2)
    source = open_camera_source(str(video), CameraOptions(loop=True, realtime=True))
    source.open()
    source.read()  # the pacer now holds the next read for 0.5 s, inside read()
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(_read_or_error(source)))
    reader.start()
    wait_for(lambda: source._reading, 5, "the read to be under way (in the pacer's 0.5 s wait)")  # type: ignore[attr-defined]
    source.close()
    reader.join(5)
    assert isinstance(got[0], Frame), got
    with pytest.raises(Exception, match="closed"):
        source.read()


def _read_or_error(source: FrameSource) -> object:
    try:
        return source.read()
    except Exception as exc:
        return exc


class _NoCameraHere(HungCameraStandIn):
    def open(self) -> None:
        from edge.sources.base import SourceError

        raise SourceError("no camera here")


def test_a_source_that_never_opens_is_failed_but_not_stale() -> None:
    """A wrong URL is a config problem shown as `failed`; only a source that worked or hung counts as stale."""
    sup = SourceSupervisor("cam", lambda: _NoCameraHere(1, 0, 0.2, False), lambda item: None, backoff=Backoff(0.05, 0.1, 60))
    sup.start()
    try:
        wait_for(lambda: sup.restarts >= 3 and (sup.last_item_age() or 0) > 0.5, 10, "restarts past the stall timeout")
        assert not sup.stale() and sup.last_error == "no camera here" and sup.stalls == 0
    finally:
        sup.stop()


class _UnpluggedAfterThreeFrames(HungCameraStandIn):
    def read(self) -> Frame:
        from edge.sources.base import SourceError

        if self.frames_left == 0:
            raise SourceError("unplugged")
        return super().read()


def test_a_source_that_worked_and_then_keeps_failing_is_stale() -> None:
    made: list[HungCameraStandIn] = []

    def factory() -> HungCameraStandIn:
        made.append(_UnpluggedAfterThreeFrames(1, 3, 0.3, False) if not made else _NoCameraHere(2, 0, 0.3, False))
        return made[-1]

    sup = SourceSupervisor("cam", factory, lambda item: None, backoff=Backoff(0.05, 0.1, 60))
    sup.start()
    try:
        wait_for(lambda: sup.stale(), 10, "the silent camera to count as stale")
        assert sup.stalls == 0 and sup.last_error == "no camera here"
    finally:
        sup.stop()


class _TimesOutByItself(HungCameraStandIn):
    """Like a microphone whose read() gives up on its own with a precise error, a little after stall_timeout_s."""

    def read(self) -> Frame:
        from edge.sources.base import SourceError

        if self.frames_left > 0:
            return super().read()
        time.sleep(self.stall_timeout_s + 0.5)  # type: ignore[operator]
        raise SourceError("no audio for 0.5 s (stream stopped); unplugged?")


def test_a_source_that_reports_its_own_timeout_is_not_declared_stalled_over_it() -> None:
    statuses: list[tuple[str, str]] = []
    made: list[HungCameraStandIn] = []

    def factory() -> HungCameraStandIn:
        made.append(_TimesOutByItself(len(made) + 1, 2, 0.3, False))
        return made[-1]

    sup = SourceSupervisor("mic", factory, lambda item: None, lambda _n, state, detail: statuses.append((state, detail)),
                           Backoff(0.05, 0.1, 60))
    sup.start()
    try:
        failed = wait_for(lambda: [d for s, d in statuses if s == "failed"], 10, "the source's own failure")
    finally:
        sup.stop()
    assert failed[0].startswith("no audio for") and sup.stalls == 0 and sup.abandoned_readers == 0
