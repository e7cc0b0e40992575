"""The live half of `trainer demo` end to end with a tiny real bundle (training is tested elsewhere):
sample video rendered, private mosquitto started, `edge run` as a process, MQTT messages printed, clean stop."""

from __future__ import annotations

import io
from pathlib import Path

from tests.support.bundles import make_bundle
from trainer.live_demo import LiveDemoOptions, run_live_demo


def test_live_demo_runs_the_daemon_on_a_sample_video_and_prints_mqtt_messages(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", ["circle", "square", "triangle"], size=16)
    out = io.StringIO()
    result = run_live_demo(LiveDemoOptions(bundle=bundle, workdir=tmp_path / "live", seconds=6, seconds_per_class=1.0), out=out)
    text = out.getvalue()
    assert result.exit_code == 0 and result.stopped_in_s is not None and result.stopped_in_s < 5
    assert result.states >= 1 and result.events  # the first decision is an event too
    assert result.offline_seen  # the clean stop's retained `offline` was shown last
    assert "started mosquitto on 127.0.0.1:" in text
    assert "shapes/state" in text and "status" in text
    assert (tmp_path / "live" / "sample.avi").stat().st_size > 10_000
