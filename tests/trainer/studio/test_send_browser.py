"""Send to devices in a real headless Chromium (Debian's, driven by Playwright): the Export tab of a Studio with
fleet settings lists the two real daemons, the teacher ticks them, sends, and watches every row reach activated
(then healthy) as the devices report it; a reload picks the finished rollout up from the server. The screen is
saved as docs/img/studio-send.png for docs/studio.md.
Without fleet settings the tab keeps the commands and says how to turn sending on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.trainer.studio.conftest import Running
from tests.trainer.studio.sendfleet import DEVICES, Classroom, classroom, trained_project
from tests.trainer.studio.test_browser import CHROMIUM, DOCS_IMG, playwright  # noqa: F401 (a fixture)


@pytest.fixture()
def room(tmp_path: Path, broker: Broker) -> Iterator[Classroom]:
    yield from classroom(tmp_path, broker)


def test_send_from_the_export_tab(room: Classroom, playwright) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"http://127.0.0.1:{room.server.port}/#/p/colours/export")
        for name in DEVICES:  # the device table, refreshed from the broker
            page.wait_for_selector(f'#send-devices tr[data-device="{name}"]', timeout=30000)
            page.locator(f'#send-devices tr[data-device="{name}"] input.pick').check()
        assert page.locator("#deploy").is_visible()  # the commands stay below the card
        page.locator("#send").click()
        # every row reaches activated, then healthy (the health gate passed); each step shown as it comes
        for name in DEVICES:
            row = f'#send-rows tr[data-device="{name}"]'
            page.wait_for_function(f"() => {{ const r = document.querySelector('{row}'); return r && "
                                   "['activated', 'healthy'].includes(r.dataset.status); }", timeout=120000)
        page.wait_for_function("() => { const s = document.querySelector('#send-state'); return s && s.dataset.running === 'no'; }",
                               timeout=120000)
        assert "every device is healthy" in page.locator("#send-state").inner_text()
        assert "null" not in page.locator("#send-progress").inner_text()
        for name in DEVICES:
            assert page.locator(f'#send-rows tr[data-device="{name}"] td.step').inner_text() == "activated, healthy"
        page.wait_for_function(f"() => [...document.querySelectorAll('#send-devices tr[data-device]')].every("
                               f"r => r.textContent.includes('{room.sha256[:12]}'))", timeout=30000)
        page.screenshot(path=str(DOCS_IMG / "studio-send.png"), full_page=True)

        page.reload()  # the rollout is kept on the server
        page.wait_for_selector('#send-rows tr[data-device="pi-a"][data-status="healthy"]', timeout=30000)
    finally:
        browser.close()


def test_without_fleet_settings_the_export_tab_keeps_the_commands(studio: Running, playwright) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    trained_project(studio.client, studio.root)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{studio.server.port}/#/p/colours/export")
        page.wait_for_selector("#send-off")
        assert "--fleet-host" in page.inner_text("#send-off")
        assert "scp -r colours-model" in page.inner_text("#deploy")
        assert page.locator("#send-card").count() == 0
    finally:
        browser.close()
