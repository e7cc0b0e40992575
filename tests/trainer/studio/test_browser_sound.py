"""A sound lesson end to end in a real headless Chromium (Debian's, driven by Playwright) whose microphone is a
fake device playing a generated WAV: make a sound project, record clips of a tone for one class and of a hiss
for the other and the quiet room as background noise, all through the page; train; read the confusion matrix
under the hood; Preview the tone and the hiss live and see each win; download the bundle and check that
`edge predict` on the same sounds agrees with the page. Chromium reads its fake microphone file once per launch,
so each sound is its own browser; the project lives on the server. Screenshots go to docs/img/ for docs/studio.md."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.support.paths import REPO
from tests.trainer.studio.conftest import Running
from tests.trainer.studio.sounds import bursts, hiss, room, tone, wav_bytes, write_wav
from tests.trainer.studio.test_browser import CHROMIUM, playwright  # noqa: F401  (the fixture)

DOCS_IMG = REPO / "docs" / "img"
CLIPS = 6  # per class: enough for a validation split of each
BG = "_background_noise_"
LABELS = {"tone": "whistle", "hiss": "shh"}


def _sounds(folder: Path) -> dict[str, Path]:
    """The fake microphones' files (Chromium loops each): short whistles, short hisses (each again and again over a
    quiet room), and the quiet room alone."""
    return {"tone": write_wav(folder / "tone.wav", bursts(tone(0.3), 4.2)), "hiss": write_wav(folder / "hiss.wav", bursts(hiss(0.3), 4.2)),
            "room": write_wav(folder / "room.wav", room(4.2))}


def _browser(playwright, sound: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={sound}"])


def _wait_files(folder: Path, count: int, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := sorted(folder.glob("*.wav"))) < count:
        assert time.monotonic() < deadline, f"{folder}: {len(found)} of {count} recordings arrived"
        time.sleep(0.1)
    return found


def _record(page, base: str, label: str, studio: Running) -> None:  # type: ignore[no-untyped-def]
    """Records CLIPS one-second clips for the class through the page and waits for them on the server and the page."""
    page.goto(f"{base}/#/p/sounds/gather")
    card = page.locator(f'.class-card[data-class="{label}"]')
    card.locator(".clip-count").fill(str(CLIPS))
    card.locator(".record").click()
    _wait_files(studio.project("sounds") / label, CLIPS)
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"{label}\"] .clip').length === {CLIPS}")
    assert card.locator(".record-status").get_attribute("data-state") == "idle"


def _loudness(path: Path) -> float:
    samples, _ = soundfile.read(str(path), dtype="float32")
    return float(np.sqrt(np.mean(np.square(samples))))


def _preview(page, base: str, variant: str = "fp32") -> str:  # type: ignore[no-untyped-def]
    """The label that wins Preview on this browser's microphone, after several answers agree."""
    page.goto(f"{base}/#/p/sounds/gather")
    page.click("#tab-preview")  # a click on the page: the browser lets its audio start
    page.wait_for_selector("#preview-label")
    if variant != "fp32":
        page.check(f"#variant-{variant}")
    page.wait_for_function(f"""() => {{ const w = document.querySelector('#preview-label'), r = document.querySelector('#preview-fps');
      return w && w.dataset.variant === '{variant}' && r && Number(r.dataset.frames) >= 8; }}""", timeout=60_000)
    time.sleep(1.0)  # the window is now all microphone, none of the silence before it opened
    first = page.get_attribute("#preview-label", "data-label")
    time.sleep(1.0)
    assert page.get_attribute("#preview-label", "data-label") == first  # a steady answer, not a flicker
    return str(first)


@pytest.mark.slow
def test_a_sound_lesson_in_chromium(studio: Running, playwright, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    base = f"http://127.0.0.1:{studio.server.port}"
    sounds = _sounds(tmp_path)
    DOCS_IMG.mkdir(exist_ok=True)
    project = studio.project("sounds")

    browser = _browser(playwright, sounds["tone"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base)
    page.fill("#new-project", "sounds")
    page.select_option("#new-task", "sound")
    page.screenshot(path=str(DOCS_IMG / "studio-sound-projects.png"), full_page=True)
    page.click("#create-project")
    for label in LABELS.values():
        page.wait_for_selector("#new-class")
        page.fill("#new-class", label)
        page.click("#add-class")
        page.wait_for_selector(f'.class-card[data-class="{label}"]')
    assert json.loads((project / "studio.json").read_text())["task"] == "sound"
    _record(page, base, "whistle", studio)
    # a closed tab loses nothing already recorded: each clip was sent as it ended, not at the end of the series
    card = page.locator('.class-card[data-class="whistle"]')
    card.locator(".clip-count").fill("20")
    card.locator(".record").click()
    _wait_files(project / "whistle", CLIPS + 2)
    assert card.locator(".record-status").get_attribute("data-state") == "recording"  # they came while it recorded
    browser.close()  # mid-series
    time.sleep(1.0)
    kept = sorted((project / "whistle").glob("*.wav"))
    assert CLIPS + 2 <= len(kept) < CLIPS + 20
    assert all(soundfile.info(str(p)).duration == 1.0 for p in kept)

    browser = _browser(playwright, sounds["hiss"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    _record(page, base, "shh", studio)
    # a WAV file dropped on the class is uploaded; a file that is not a WAV is refused with a message on the page
    page.evaluate("""async (bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], "dropped.wav", { type: "audio/wav" }));
      document.querySelector('.class-card[data-class="shh"] .drop')
        .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", list(wav_bytes(hiss(1.0, seed=9))))
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"shh\"] .clip').length === {CLIPS + 1}")
    assert len(list((project / "shh").glob("dropped_*.wav"))) == 1
    (tmp_path / "notes.wav").write_text("not a recording\n")
    page.locator('.class-card[data-class="shh"] input.files').set_input_files(str(tmp_path / "notes.wav"))
    page.wait_for_selector("#message:not([hidden])")
    assert "not a WAV file" in page.inner_text("#message")
    # a clip deleted from its waveform's cross goes from the page and the folder
    doomed = page.locator('.class-card[data-class="shh"] .clip').first
    name = doomed.get_attribute("data-sample")
    doomed.locator(".delete").click()
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"shh\"] .clip').length === {CLIPS}")
    assert not (project / "shh" / str(name)).exists() and len(list((project / "shh").glob("*.wav"))) == CLIPS
    browser.close()

    browser = _browser(playwright, sounds["room"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(f"{base}/#/p/sounds/gather")
    page.fill(".background-seconds", "6")
    page.select_option("#background .countdown", "3")
    page.click("#record-background")
    page.wait_for_selector('#background .record-status[data-state="counting"]')  # time to leave the room quiet
    assert not (project / BG).exists()
    page.wait_for_selector('#background .record-status[data-state="recording"]', timeout=10_000)
    [background] = _wait_files(project / BG, 1)
    page.wait_for_function("() => document.querySelectorAll('#background .clip').length === 1")
    # ▶ plays the recording itself (not its waveform), fetched from the Studio
    with page.expect_request(lambda r: r.url.endswith(f"/samples/{background.name}")) as played:
        page.click("#background .clip .play")
    reply = played.value.response()
    assert reply is not None and reply.status in (200, 206)  # a media element may ask for a range of the file
    assert abs(soundfile.info(str(background)).duration - 6.0) < 0.01
    # what the microphones really sent: the tone and the hiss are loud, the room is quiet (none is silence)
    loud = [_loudness(p) for label in LABELS.values() for p in (project / label).glob("mic_*.wav")]
    assert len(loud) >= 2 * CLIPS + 2 and min(loud) > 0.05, loud
    assert 0.001 < _loudness(background) < 0.03
    page.wait_for_function("() => [...document.querySelectorAll('.clip img')].every((i) => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(DOCS_IMG / "studio-sound-gather.png"), full_page=True)

    page.click("#tab-train")
    assert page.input_value("#set-epochs") == "45"  # the sound trainer's own default
    assert page.locator("#set-backbone").count() == 0  # the sound trainer's own network: no image backbone to pick
    page.click("#advanced summary")
    page.fill("#set-epochs", "15")  # a sound model learns from scratch: more, smaller steps than the default's batches
    page.fill("#set-batch_size", "4")
    page.click("#train")
    page.wait_for_selector('#train-status[data-state="done"]', timeout=240_000)
    assert page.locator("#train-chart svg").count() == 2
    page.screenshot(path=str(DOCS_IMG / "studio-sound-train.png"), full_page=True)

    page.click("#tab-hood")
    page.wait_for_selector("#confusion")
    cells = [[int(td.inner_text()) for td in row.locator("td").all()] for row in page.locator("#confusion tr").all()[1:]]
    report = json.loads((project / ".studio" / "model" / "report.json").read_text())
    assert cells == report["metrics"]["fp32"]["confusion_matrix"] and len(cells) == 3
    page.screenshot(path=str(DOCS_IMG / "studio-sound-hood.png"), full_page=True)

    page.click("#tab-export")
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "sounds-model.zip"
    download.value.save_as(saved)
    assert "edge predict sounds-model clip.wav" in page.inner_text("#deploy")
    assert _preview(page, base) == BG  # the quiet room: "nothing happening"
    browser.close()

    heard = {}
    for kind, label in LABELS.items():
        browser = _browser(playwright, sounds[kind])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        heard[kind] = _preview(page, base)
        assert heard[kind] == label, (kind, heard)
        if kind == "tone":
            assert _preview(page, base, "int8") == label
            page.screenshot(path=str(DOCS_IMG / "studio-sound-preview.png"), full_page=True)
        browser.close()

    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "unzipped")
    for kind, label in LABELS.items():
        out = subprocess.run([sys.executable, "-m", "edge.cli", "predict", str(tmp_path / "unzipped" / "sounds-model"),
                              str(sounds[kind]), "--json"], capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(out.stdout)["label"] == heard[kind] == label, out.stdout
