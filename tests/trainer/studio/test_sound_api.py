"""Sound projects over real HTTP: the task chosen when a project is made (or read from a hand-made folder's
files), WAV uploads checked (format, channels, rate, length, decoded in full) and saved under names the
Studio makes, the `_background_noise_` recordings, waveform thumbnails, and a sound training through the
trainer's own sound job with every epoch reported."""

from __future__ import annotations

import io
import json
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core.bundle import load_bundle
from tests.trainer.studio.client import Client, Reply
from tests.trainer.studio.conftest import Running, files_under, jpeg
from tests.trainer.studio.sounds import hiss, room, tone, wav_bytes
from trainer.studio.limits import CLIP_SECONDS, SOUND_DEFAULTS, StudioLimits
from trainer.studio.waveform import COLUMNS, peaks

BG = "_background_noise_"


def _sound_project(c: Client, name: str = "sounds", classes: tuple[str, ...] = ("whistle", "shh")) -> None:
    assert c.post("/api/projects", {"name": name, "task": "sound"}).status == 201
    for label in classes:
        assert c.post(f"/api/projects/{name}/classes", {"name": label}).status == 201


def _upload(c: Client, project: str, label: str, data: bytes, filename: str = "clip.wav") -> Reply:
    return c.post(f"/api/projects/{project}/classes/{label}/samples?filename={filename}", body=data)


def test_the_task_is_chosen_when_a_project_is_made(studio: Running, tmp_path: Path) -> None:
    c = studio.client
    before = files_under(tmp_path)
    for bad in ("video", "", 3, ["sound"]):
        reply = c.post("/api/projects", {"name": "p", "task": bad})
        assert reply.status == 400 and "'image' or 'sound'" in reply.json()["error"], (bad, reply.body)
    assert files_under(tmp_path) == before  # a refused task makes no folder
    made = c.post("/api/projects", {"name": "sounds", "task": "sound"}).json()
    assert made["task"] == "sound" and made["background"] == {"name": BG, "samples": []}
    assert made["recording"]["clip_seconds"] == CLIP_SECONDS == 1.0  # the window the sound trainer's bundles classify
    assert json.loads((studio.project("sounds") / "studio.json").read_text()) == {"task": "sound"}
    plain = c.post("/api/projects", {"name": "photos"}).json()
    assert plain["task"] == "image" and "background" not in plain
    # the Advanced panel of a sound project starts from the sound trainer's defaults
    assert {k: c.get("/api/projects/sounds/train").json()["defaults"][k] for k in SOUND_DEFAULTS} == SOUND_DEFAULTS
    assert c.get("/api/projects/photos/train").json()["defaults"]["epochs"] != SOUND_DEFAULTS["epochs"]
    listed = {p["name"]: p["task"] for p in c.get("/api/projects").json()["projects"]}
    assert listed == {"sounds": "sound", "photos": "image"}


def test_a_folder_made_by_hand_gets_its_task_from_its_files(studio: Running) -> None:
    for label, data in (("yes", wav_bytes(tone(1.0))), ("no", wav_bytes(hiss(1.0)))):
        (studio.root / "words" / label).mkdir(parents=True)
        (studio.root / "words" / label / "take1.wav").write_bytes(data)
    (studio.root / "words" / BG).mkdir()
    (studio.root / "words" / BG / "room.wav").write_bytes(wav_bytes(room(3.0)))
    (studio.root / "pics" / "red").mkdir(parents=True)
    (studio.root / "pics" / "red" / "a.jpg").write_bytes(jpeg((0, 0, 255)))
    words = studio.client.get("/api/projects/words").json()
    assert words["task"] == "sound"
    assert [(k["name"], k["samples"]) for k in words["classes"]] == [("no", ["take1.wav"]), ("yes", ["take1.wav"])]
    assert words["background"]["samples"] == ["room.wav"]
    assert studio.client.get("/api/projects/pics").json()["task"] == "image"


@pytest.mark.parametrize(("subtype", "rate", "channels"), [
    ("PCM_16", 16000, 1), ("PCM_U8", 8000, 1), ("PCM_24", 44100, 2), ("PCM_32", 48000, 1), ("FLOAT", 22050, 2)])
def test_wav_formats_the_trainer_reads_are_kept(studio: Running, subtype: str, rate: int, channels: int) -> None:
    c = studio.client
    _sound_project(c)
    data = wav_bytes(tone(0.8, rate), rate, subtype, channels)
    reply = _upload(c, "sounds", "whistle", data, "../../my%20take.wav")
    assert reply.status == 201, reply.body
    name = reply.json()["name"]
    assert re.fullmatch(r"my_take_[0-9a-f]{8}\.wav", name), name  # the server's name: no path from the browser
    saved = studio.project("sounds") / "whistle" / name
    assert saved.read_bytes() == data
    info = soundfile.info(str(saved))
    assert (info.samplerate, info.channels) == (rate, channels)
    assert c.get("/api/projects/sounds").json()["classes"][1]["samples"] == [name]
    assert c.get(f"/api/projects/sounds/classes/whistle/samples/{name}").body == data  # played back by the page


def test_bad_sounds_get_a_clear_4xx_and_nothing_is_written(studio: Running) -> None:
    c = studio.client
    _sound_project(c)
    flac = io.BytesIO()
    soundfile.write(flac, tone(1.0), 16000, format="FLAC")
    garbled = bytearray(wav_bytes(tone(1.0)))
    garbled[20:36] = b"\xff" * 16  # the format chunk: no longer a sample format anyone knows
    cases = {
        "a JPEG": (jpeg((0, 0, 255)), 415, "not a WAV file"),
        "text": (b"hello\n" * 100, 415, "not a WAV file"),
        "a FLAC file": (flac.getvalue(), 415, "not a WAV file"),
        "a RIFF/WAVE header over nothing": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 30, 415, "WAV"),
        "a broken format chunk": (bytes(garbled), 415, "WAV"),
        "mu-law samples": (wav_bytes(tone(1.0), subtype="ULAW"), 415, "8, 16, 24 or 32-bit PCM or float"),
        "three channels": (wav_bytes(tone(1.0), channels=3), 415, "3 channel(s)"),
        "96 kHz": (wav_bytes(tone(1.0, 96000), 96000), 415, "96000 Hz"),
        "4 kHz": (wav_bytes(tone(1.0, 4000), 4000), 415, "4000 Hz"),
        "31 s in a class": (wav_bytes(tone(31.0, 8000), 8000), 413, "at most 30 s"),
        "20 ms": (wav_bytes(tone(0.02)), 400, "at least 50 ms"),
        "empty": (b"", 400, "empty"),
    }
    for what, (data, status, words) in cases.items():
        reply = _upload(c, "sounds", "whistle", data)
        assert reply.status == status and words in reply.json()["error"], (what, reply.status, reply.body)
    # the background takes longer recordings, up to its own bound
    too_long = _upload(c, "sounds", BG, wav_bytes(room(121.0, 8000), 8000))
    assert too_long.status == 413 and "at most 120 s" in too_long.json()["error"]
    # a `../` class name, a class that does not exist, and the background of an image project
    c.post("/api/projects", {"name": "photos"})
    for path in ("sounds/classes/..%2F..%2Fescape", "sounds/classes/..", "sounds/classes/nope", f"photos/classes/{BG}"):
        reply = c.post(f"/api/projects/{path}/samples", body=wav_bytes(tone(1.0)))
        assert reply.status in (404, 405), (path, reply.status, reply.body)
    # nothing at all was written: no sample, no temporary file, not even the background folder
    assert sorted(files_under(studio.project("sounds"))) == ["shh", "studio.json", "whistle"]


def test_a_sound_over_the_byte_bound_is_refused(studio: Running) -> None:
    c = studio.client
    _sound_project(c)
    limit = StudioLimits().max_sound_bytes
    reply = _upload(c, "sounds", BG, b"RIFF" + b"\x00" * limit)
    assert reply.status == 413 and f"{limit} bytes" in reply.json()["error"]
    assert not (studio.project("sounds") / BG).exists()


def test_background_recordings_waveforms_and_deleting(studio: Running) -> None:
    c = studio.client
    _sound_project(c)
    loud = _upload(c, "sounds", "whistle", wav_bytes(tone(1.0))).json()["name"]
    # a minute of 48 kHz stereo: 11.5 MB, over an image's bound but well within a sound's
    background = _upload(c, "sounds", BG, wav_bytes(room(60.0, 48000), 48000, channels=2), "room.wav")
    assert background.status == 201, background.body
    quiet = background.json()["name"]
    assert (studio.project("sounds") / BG / quiet).is_file()
    assert c.get("/api/projects/sounds").json()["background"]["samples"] == [quiet]
    # the background is not a class: the page cannot rename or delete it as one
    assert c.request("PATCH", f"/api/projects/sounds/classes/{BG}", json_body={"name": "x"}).status == 404
    assert c.request("DELETE", f"/api/projects/sounds/classes/{BG}").status == 404

    def bars(label: str, name: str) -> list[tuple[float, float]]:
        reply = c.get(f"/api/projects/sounds/classes/{label}/samples/{name}?size=thumb")
        assert reply.status == 200 and reply.headers["content-type"].startswith("image/svg+xml")
        assert len(reply.body) < 4000  # a thumbnail, not the recording
        path = ET.fromstring(reply.body).find("{http://www.w3.org/2000/svg}path")
        assert path is not None
        spans = re.findall(r"M[\d.]+ ([\d.]+)V([\d.]+)", path.get("d", ""))
        return [(float(top), float(bottom)) for top, bottom in spans]

    loud_bars, quiet_bars = bars("whistle", loud), bars(BG, quiet)
    assert len(loud_bars) == len(quiet_bars) == COLUMNS
    height = lambda spans: np.mean([bottom - top for top, bottom in spans])  # noqa: E731
    assert height(loud_bars) > 5 * height(quiet_bars)  # full scale: the tone fills it, the room barely shows
    assert c.request("DELETE", f"/api/projects/sounds/classes/{BG}/samples/{quiet}").status == 200
    assert c.get("/api/projects/sounds").json()["background"]["samples"] == []
    assert c.request("DELETE", f"/api/projects/sounds/classes/whistle/samples/{loud}").status == 200
    assert not list((studio.project("sounds") / "whistle").iterdir())


def test_peaks_follow_the_clip() -> None:
    clip = np.concatenate([np.zeros(800, np.float32), np.full(800, 0.5, np.float32)])
    cols = peaks(clip, columns=4)
    assert cols.tolist() == [[0, 0], [0, 0], [0.5, 0.5], [0.5, 0.5]]
    assert peaks(np.array([2.0, -3.0]), columns=80).tolist() == [[1, 1], [-1, -1]]  # clipped, one column a sample
    assert peaks(np.zeros(0)).shape == (0, 2)


def _wait(c: Client, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/projects/{name}/train").json()["job"]
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"training of {name} still {job}")


@pytest.mark.slow
def test_a_sound_project_trains_with_the_sound_trainer(studio: Running) -> None:
    c = studio.client
    _sound_project(c)
    for i in range(5):
        assert _upload(c, "sounds", "whistle", wav_bytes(tone(1.0, pitch=400 + 40 * i, seed=i))).status == 201
        assert _upload(c, "sounds", "shh", wav_bytes(hiss(1.0, seed=i))).status == 201
    assert _upload(c, "sounds", BG, wav_bytes(room(10.0))).status == 201
    # the classes' order on the page is the order of the model's labels, for sound as for images
    assert c.request("PUT", "/api/projects/sounds/class-order", json_body={"classes": ["whistle", "shh"]}).status == 200
    reply = c.post("/api/projects/sounds/train", {"epochs": 3, "batch_size": 8, "lr": 0.003})
    assert reply.status == 200, reply.body
    job = _wait(c, "sounds")
    assert job["state"] == "done", job
    assert [row["epoch"] for row in job["history"]] == [1, 2, 3]  # each epoch streamed as it ended
    bundle = load_bundle(studio.project("sounds") / ".studio" / "model")
    assert bundle.task == "audio" and bundle.labels == ("whistle", "shh", BG)  # the background after the listed ones
    report = c.get("/api/projects/sounds/report").json()  # Under the hood: the same shape as for images
    assert set(report["labels"]) == {"whistle", "shh", BG} and len(report["fp32"]["confusion_matrix"]) == 3
    assert [row["epoch"] for row in report["history"]] == [1, 2, 3]
    assert any("clip.wav" in line for line in report["deploy"])
    with zipfile.ZipFile(io.BytesIO(c.get("/api/projects/sounds/bundle.zip").body)) as archive:
        assert "sounds-model/manifest.json" in archive.namelist()
