"""The live half of `trainer demo` end to end with tiny real bundles (training is tested elsewhere):
sample video rendered, private mosquitto started, `edge run` as a process with a camera pipeline on the
video and a microphone pipeline on a WAV file, MQTT messages of both printed, clean stop."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.support.onnx_models import make_audio_bundle, make_bundle
from trainer.demo.live import LiveDemoOptions, run_live_demo


def test_live_demo_runs_the_daemon_on_a_sample_video_and_sound_and_prints_mqtt_messages(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", ["circle", "square", "triangle"], size=16)
    sound_bundle = make_audio_bundle(tmp_path / "sound-bundle")
    # 1 s loud tone, 1 s near silence: the tiny sound bundle's two classes (loud, quiet).
    t = np.arange(16000) / 16000
    wav = tmp_path / "sounds.wav"
    sf.write(str(wav), np.concatenate([0.5 * np.sin(2 * np.pi * 1000 * t), 0.001 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32), 16000)
    out = io.StringIO()
    options = LiveDemoOptions(bundle=bundle, workdir=tmp_path / "live", seconds=6, seconds_per_class=1.0, sound_bundle=sound_bundle,
                              sound_file=wav)
    result = run_live_demo(options, out=out)
    text = out.getvalue()
    assert result.exit_code == 0 and result.stopped_in_s is not None and result.stopped_in_s < 5
    assert result.states >= 2 and result.events  # the first decision is an event too
    assert set(result.labels_by_pipeline) == {"shapes", "sounds"}, text
    # The microphone pipeline decided real labels of its bundle ("unknown" while windows disagree is allowed).
    assert result.labels_by_pipeline["sounds"] & {"loud", "quiet"} and result.labels_by_pipeline["sounds"] <= {"loud", "quiet", "unknown"}
    # ... and followed the looped file: loud first (its first second), then back and forth. Measured on
    # every run: loud, quiet, loud, quiet, loud.
    sounds = [e["label"] for e in result.events if e.get("pipeline") == "sounds" and e["label"] != "unknown"]
    assert sounds[:2] == ["loud", "quiet"] and sum(a != b for a, b in zip(sounds, sounds[1:])) >= 2, sounds
    # The camera pipeline decided a label of its bundle on the sample video, not only "unknown".
    assert result.labels_by_pipeline["shapes"] - {"unknown"} and result.labels_by_pipeline["shapes"] <= {"circle", "square", "triangle",
                                                                                                         "unknown"}
    assert result.offline_seen  # the clean stop's retained `offline` was shown last
    assert "started mosquitto on 127.0.0.1:" in text
    assert "shapes/state" in text and "sounds/state" in text and "status" in text
    assert "sample sound" in text
    assert (tmp_path / "live" / "sample.avi").stat().st_size > 10_000
