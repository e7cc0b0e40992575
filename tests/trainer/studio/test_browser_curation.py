"""The Studio's curation in a real headless Chromium (Debian's, through Playwright): a whole folder uploaded to a
class (images only), the countdown over the video before a recording, classes reordered, the Advanced panel's
backbone and fine-tune choices, and a click on a confusion-matrix cell showing the misclassified pictures.
Screenshots go to docs/img/ for docs/studio.md."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest

from tests.trainer.studio.conftest import Running, jpeg
from tests.trainer.studio.test_browser import DOCS_IMG, _browser, frame, playwright, write_y4m  # noqa: F401  (a fixture)
from tests.trainer.studio.test_curation_api import make_project_with_a_mistake, wait_trained
from trainer.image.backbones import BUILDERS


def _thumbs(page, label: str) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate(f"() => document.querySelectorAll('.class-card[data-class=\"{label}\"] .thumbs .thumb').length"))


def test_folders_countdown_and_order_in_chromium(studio: Running, playwright, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    c = studio.client
    c.post("/api/projects", {"name": "pets"})
    for name in ("cats", "dogs"):
        c.post("/api/projects/pets/classes", {"name": name})
    base = f"http://127.0.0.1:{studio.server.port}"
    browser = _browser(playwright, write_y4m(tmp_path / "red.y4m", frame("red")))
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(f"{base}/#/p/pets/gather")
    page.wait_for_selector('.class-card[data-class="dogs"]')

    # a whole folder, sub-folders included: its pictures are added, anything else is skipped and said so
    photos = tmp_path / "dog-photos"
    (photos / "garden").mkdir(parents=True)
    for i, path in enumerate([photos / "a.jpg", photos / "b.jpg", photos / "garden" / "c.jpg"]):
        path.write_bytes(jpeg((40 * i, 120, 200)))
    cv2.imwrite(str(photos / "garden" / "d.png"), frame("blue"))
    (photos / "notes.txt").write_text("not a picture\n")
    card = page.locator('.class-card[data-class="dogs"]')
    card.locator("input.folder").set_input_files(str(photos))
    progress = card.locator(".upload-progress")
    page.wait_for_function("(p) => /Added 4 of 4 images; 1 other/.test(p.textContent)", arg=progress.element_handle())
    assert len(list((studio.project("pets") / "dogs").iterdir())) == 4 and _thumbs(page, "dogs") == 4

    # the countdown: shown big on the video, nothing recorded until it ends, then a recording of the set length
    cats = page.locator('.class-card[data-class="cats"]')
    cats.locator(".webcam-open").click()
    page.wait_for_function("() => { const v = document.querySelector('.webcam video'); return v && v.videoWidth > 0; }")
    cats.locator("select.countdown").select_option("3")
    cats.locator("input.seconds").fill("1")
    assert cats.locator(".hold").inner_text() == "Record"
    folder = studio.project("pets") / "cats"
    cats.locator(".hold").dispatch_event("pointerdown")
    cats.locator(".hold").dispatch_event("pointerup")  # a click: the countdown goes on without holding
    page.wait_for_function("() => document.querySelector('.countdown-number')?.textContent === '2'")
    page.screenshot(path=str(DOCS_IMG / "studio-countdown.png"))
    assert not cats.locator(".countdown-number").is_hidden()
    assert list(folder.iterdir()) == []  # counting down: nothing taken yet
    page.wait_for_function("() => document.querySelector('.hold')?.classList.contains('recording')", timeout=10_000)
    page.wait_for_function("() => { const h = document.querySelector('.hold'); return h && !h.classList.contains('recording'); }",
                           timeout=10_000)
    assert cats.locator(".countdown-number").is_hidden()
    page.wait_for_function("() => document.querySelectorAll('.class-card[data-class=\"cats\"] .thumbs .thumb').length > 0")
    time.sleep(1.5)  # the recording ended by itself: no more frames arrive
    taken = len(list(folder.iterdir()))
    time.sleep(1.0)
    assert 0 < taken == len(list(folder.iterdir()))

    # reorder: dogs moved up is first on the page and in studio.json
    page.click('.class-card[data-class="dogs"] button[aria-label="move this class up"]')
    page.wait_for_function("() => document.querySelector('.class-card')?.dataset.class === 'dogs'")
    assert page.eval_on_selector_all(".class-card", "cards => cards.map(c => c.dataset.class)") == ["dogs", "cats"]
    assert json.loads((studio.project("pets") / "studio.json").read_text())["classes"] == ["dogs", "cats"]
    assert page.locator('.class-card[data-class="dogs"] button[aria-label="move this class up"]').is_disabled()
    page.screenshot(path=str(DOCS_IMG / "studio-folders-order.png"), full_page=True)
    browser.close()


@pytest.mark.slow
def test_advanced_backbone_and_confusion_samples_in_chromium(studio: Running, playwright, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    planted = make_project_with_a_mistake(studio)
    base = f"http://127.0.0.1:{studio.server.port}"
    browser = _browser(playwright, write_y4m(tmp_path / "red.y4m", frame("red")))
    page = browser.new_page(viewport={"width": 1100, "height": 900})

    # the Advanced panel: the trainer's backbones, fine-tune depths, and where the training runs
    page.goto(f"{base}/#/p/colours/train")
    page.click("#advanced summary")
    assert page.eval_on_selector_all("#set-backbone option", "os => os.map(o => o.value)") == list(BUILDERS)
    assert page.eval_on_selector_all("#set-fine_tune option", "os => os.map(o => o.value)") == ["0", "1", "2"]
    assert "CPU" in page.inner_text("#device")
    page.fill("#set-epochs", "12")
    page.fill("#set-batch_size", "8")
    page.select_option("#set-backbone", "efficientnet_lite1")
    page.screenshot(path=str(DOCS_IMG / "studio-advanced-backbone.png"), full_page=True)
    page.click("#train")
    job = wait_trained(studio.client, "colours")
    assert (job["settings"]["backbone"], job["settings"]["fine_tune"]) == ("efficientnet_lite1", 0)
    report = json.loads((studio.project("colours") / ".studio" / "model" / "report.json").read_text())
    assert report["backbone"] == "efficientnet_lite1" and report["labels"] == ["red", "blue"]

    # under the hood: a click on (true red, said blue) shows the blue picture filed under red
    page.click("#tab-hood")
    page.click('#confusion td[data-true="red"][data-predicted="blue"]')
    page.wait_for_selector("#cell-samples img")
    assert page.eval_on_selector_all("#cell-samples img", "imgs => imgs.map(i => i.alt)") == [f"red/{planted.name}"]
    page.wait_for_function("() => [...document.querySelectorAll('#cell-samples img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "1 red sample the model called blue" in page.inner_text("#cell")
    page.screenshot(path=str(DOCS_IMG / "studio-confusion-samples.png"), full_page=True)
    # a diagonal cell: the ones it got right
    page.click('#confusion td[data-true="blue"][data-predicted="blue"]')
    page.wait_for_function("() => /blue samples? the model got right/.test(document.querySelector('#cell')?.textContent)")
    assert page.locator("#cell-samples img").count() == report["metrics"]["fp32"]["confusion_matrix"][1][1]
    browser.close()
