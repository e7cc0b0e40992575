"""End to end in a real headless Chromium (Debian's, driven by Playwright) with fake webcams: make an image
project, gather webcam samples for two classes from two fake videos, train, read the confusion matrix under
the hood, preview each webcam live (fp32 and int8, checked against `edge predict` on the frames the page sent),
download the bundle zip, and check `edge predict` on the unzipped bundle names a frame of each video.
Each screen is saved to docs/img/ for docs/studio.md, so the pictures there are what the page really shows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.paths import REPO
from tests.trainer.studio.conftest import Running

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = REPO / "docs" / "img"
SIZE = (320, 240)
SAMPLES = 8  # per class: enough for a validation split of each


def frame(label: str) -> np.ndarray:
    """A BGR frame of each fake video: a red field with a white disc, or a blue field with a yellow square."""
    w, h = SIZE
    if label == "red":
        image = np.full((h, w, 3), (30, 30, 220), np.uint8)
        cv2.circle(image, (w // 2, h // 2), 60, (255, 255, 255), -1)
    else:
        image = np.full((h, w, 3), (200, 60, 20), np.uint8)
        cv2.rectangle(image, (w // 2 - 50, h // 2 - 50), (w // 2 + 50, h // 2 + 50), (0, 230, 255), -1)
    return image


def write_y4m(path: Path, image: np.ndarray, frames: int = 30) -> Path:
    """A YUV4MPEG2 clip (what Chromium's --use-file-for-fake-video-capture reads) of one still image."""
    h, w = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U, then V: 4:2:0 planar
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return path


@pytest.fixture()
def playwright() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh dev")
    sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/setup.sh dev (installs Playwright)")
    with sync_api.sync_playwright() as p:
        yield p


def _browser(playwright, video: Path):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"])


def _gather(page, base: str, label: str, studio: Running) -> None:  # type: ignore[no-untyped-def]
    """Opens the class's webcam and holds the record button until SAMPLES frames are saved on the server."""
    page.goto(f"{base}/#/p/colours/gather")
    card = page.locator(f'.class-card[data-class="{label}"]')
    card.locator(".webcam-open").click()
    page.wait_for_function("() => { const v = document.querySelector('.webcam video'); return v && v.videoWidth > 0; }")
    hold = card.locator(".hold")
    hold.dispatch_event("pointerdown")
    folder = studio.project("colours") / label
    deadline = time.monotonic() + 60
    while len(list(folder.glob("*.jpg"))) < SAMPLES:
        assert time.monotonic() < deadline, "webcam frames did not arrive"
        time.sleep(0.1)
    hold.dispatch_event("pointerup")
    time.sleep(2.0)  # frames already taken (at most one or two) finish uploading
    count = len(list(folder.glob("*.jpg")))
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"{label}\"] .thumb').length >= {count}")
    time.sleep(1.5)  # a button that kept recording would add ~9 frames meanwhile
    assert len(list(folder.glob("*.jpg"))) == count  # released: no more frames


def _preview(page, base: str, label: str, studio: Running, tmp_path: Path, screenshot: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    """Preview with this browser's fake webcam: `label` wins with the fp32 model and with the int8 one, and
    `edge predict` on the very frame the page sent gives the answer the page drew."""
    bundle = studio.project("colours") / ".studio" / "model"
    flight = {"now": 0, "most": 0}  # Preview requests sent and not yet answered: the page waits for each answer

    def sent(request) -> None:  # type: ignore[no-untyped-def]
        if "/preview?" in request.url:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])

    def done(request) -> None:  # type: ignore[no-untyped-def]
        if "/preview?" in request.url:
            flight["now"] -= 1

    page.on("request", sent)
    page.on("response", lambda response: done(response.request))  # headers are in before the page can send again
    page.on("requestfailed", done)
    page.goto(f"{base}/#/p/colours/preview")
    page.wait_for_selector("#preview-video")
    for variant in ("fp32", "int8"):
        if variant == "int8":
            page.check("#variant-int8")
        with page.expect_response(lambda r, v=variant: f"/preview?variant={v}" in r.url and r.request.method == "POST") as answer:
            pass  # the next frame the page sends with this variant
        shown = answer.value.json()
        assert (shown["label"], shown["variant"]) == (label, variant), shown
        page.wait_for_function(f"""() => {{ const w = document.querySelector('#preview-label');
          return w.dataset.variant === '{variant}' && w.dataset.label === '{label}'
            && document.querySelector('#preview-bars .bar-row.win').dataset.label === '{label}'; }}""")
        sent = tmp_path / f"preview-{label}-{variant}.jpg"
        sent.write_bytes(answer.value.request.post_data_buffer)
        out = subprocess.run([sys.executable, "-m", "edge.cli", "predict", str(bundle), str(sent), "--json", "--variant", variant],
                             capture_output=True, text=True, timeout=120, check=True)
        predicted = json.loads(out.stdout)
        assert predicted["label"] == label and predicted["scores"] == pytest.approx(shown["scores"], abs=1e-5), (predicted, shown)
        if screenshot and variant == "fp32":
            page.screenshot(path=str(screenshot), full_page=True)
    assert page.locator("#preview-bars .bar-row").count() == 2
    assert "frames/s" in page.inner_text("#preview-fps")
    assert flight["most"] == 1, flight


@pytest.mark.slow
def test_a_lesson_in_chromium(studio: Running, playwright, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{studio.server.port}"
    videos = {label: write_y4m(tmp_path / f"{label}.y4m", frame(label)) for label in ("red", "blue")}
    DOCS_IMG.mkdir(exist_ok=True)

    # one browser per fake webcam (Chromium reads its fake video once per launch): the project lives on the server
    browser = _browser(playwright, videos["red"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base)
    page.fill("#new-project", "colours")
    page.click("#create-project")
    for label in ("red", "blue"):
        page.wait_for_selector("#new-class")
        page.fill("#new-class", label)
        page.click("#add-class")
        page.wait_for_selector(f'.class-card[data-class="{label}"]')
    assert sorted(p.name for p in studio.project("colours").iterdir() if p.is_dir()) == ["blue", "red"]
    _gather(page, base, "red", studio)
    browser.close()

    browser = _browser(playwright, videos["blue"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    _gather(page, base, "blue", studio)
    page.screenshot(path=str(DOCS_IMG / "studio-gather.png"), full_page=True)

    # photos through the file picker (several at once); a file that is not an image is refused on the page
    red = studio.project("colours") / "red"
    had = len(list(red.iterdir()))
    photos = [tmp_path / "red-photo-1.png", tmp_path / "red-photo-2.png"]
    for photo in photos:
        cv2.imwrite(str(photo), frame("red"))
    (tmp_path / "notes.jpg").write_text("not a picture\n")
    page.locator('.class-card[data-class="red"] input.files').set_input_files([*map(str, photos), str(tmp_path / "notes.jpg")])
    page.wait_for_selector("#message:not([hidden])")
    assert "not an image" in page.inner_text("#message")
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"red\"] .thumb').length == {had + 2}")
    assert len(list(red.iterdir())) == had + 2
    # drag and drop: a file dropped on the class (made in the page, as a file dragged from the desktop arrives)
    page.evaluate("""async () => {
      const canvas = Object.assign(document.createElement("canvas"), { width: 64, height: 64 });
      const ctx = canvas.getContext("2d"); ctx.fillStyle = "#dc1e1e"; ctx.fillRect(0, 0, 64, 64);
      const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
      const dt = new DataTransfer(); dt.items.add(new File([blob], "dropped.png", { type: "image/png" }));
      document.querySelector('.class-card[data-class="red"] .drop')
        .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""")
    page.wait_for_function(f"() => document.querySelectorAll('.class-card[data-class=\"red\"] .thumb').length == {had + 3}")
    assert len(list(red.glob("dropped_*.png"))) == 1

    page.click("#tab-train")
    page.click("#advanced summary")
    page.fill("#set-epochs", "6")
    page.fill("#set-batch_size", "8")
    page.screenshot(path=str(DOCS_IMG / "studio-advanced.png"), full_page=True)
    page.click("#train")
    page.wait_for_selector('#train-status[data-state="running"]', timeout=60_000)
    page.reload()  # the job lives on the server: the page picks it up again
    page.wait_for_selector('#train-status[data-state="done"]', timeout=180_000)
    assert page.locator("#train-chart svg").count() == 2
    assert "epoch 6:" in page.inner_text("#last-epoch")
    page.screenshot(path=str(DOCS_IMG / "studio-train.png"), full_page=True)

    page.click("#tab-hood")
    page.wait_for_selector("#confusion")
    cells = [[int(td.inner_text()) for td in row.locator("td").all()] for row in page.locator("#confusion tr").all()[1:]]
    report = json.loads((studio.project("colours") / ".studio" / "model" / "report.json").read_text())
    assert cells == report["metrics"]["fp32"]["confusion_matrix"] and len(cells) == 2
    assert page.locator("#per-class tr").count() == 3
    assert page.locator("#vocabulary dt").count() >= 5 and "[object" not in page.inner_text("main")
    page.screenshot(path=str(DOCS_IMG / "studio-hood.png"), full_page=True)

    _preview(page, base, "blue", studio, tmp_path, DOCS_IMG / "studio-preview.png")

    page.click("#tab-export")
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "colours-model.zip"
    download.value.save_as(saved)
    assert "scp -r colours-model" in page.inner_text("#deploy")
    page.screenshot(path=str(DOCS_IMG / "studio-export.png"), full_page=True)
    page.goto(f"{base}/#/")
    page.wait_for_selector(".project-link")
    page.screenshot(path=str(DOCS_IMG / "studio-projects.png"), full_page=True)
    browser.close()
    browser = _browser(playwright, videos["red"])  # the other fake webcam: the other label wins
    _preview(browser.new_page(viewport={"width": 1100, "height": 800}), base, "red", studio, tmp_path)
    browser.close()

    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "unzipped")
    bundle = tmp_path / "unzipped" / "colours-model"
    for label in ("red", "blue"):
        picture = tmp_path / f"{label}.png"
        cv2.imwrite(str(picture), frame(label))
        out = subprocess.run([sys.executable, "-m", "edge.cli", "predict", str(bundle), str(picture), "--json"],
                             capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(out.stdout)["label"] == label, out.stdout
