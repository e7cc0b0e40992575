"""The device's dashboard (issue 15) against the real `edge run`: a daemon on a sample video and a sample sound with
a private Mosquitto, its page driven in a real headless Chromium (Debian's, through Playwright). The page must
show the label the MQTT messages say, pause through the same command code as MQTT, refuse a wrong password with
401, and show a corrupt bundle's refusal while the old model keeps running. Screens go to docs/img/ for
docs/dashboard.md, so the pictures there are what the page really shows."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.daemon import (
    DaemonProcess,
    camera_pipeline,
    microphone_pipeline,
    write_color_video,
    write_config,
    write_loud_quiet_wav,
)
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model
from tests.support.mqtt_listener import Listener, Seen
from tests.support.onnx_models import make_audio_bundle, make_color_bundle
from tests.support.paths import REPO
from tests.support.waiting import wait_for

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = REPO / "docs" / "img"
PREFIX = "edgeteach/testdev"
PASSWORD = "class-secret-42"
SEGMENT_S = 3.0  # each colour (and each sound) lasts this long: the label holds still long enough to be compared
SHOWN_WITHIN_MS = 2000  # the bound between an MQTT message and the page showing the same label
REFUSED = "new bundle refused, the old model keeps running"


class Setup:
    def __init__(self, root: Path, broker: Broker, daemon: DaemonProcess, listener: Listener, port: int) -> None:
        self.root, self.broker, self.daemon, self.listener, self.port = root, broker, daemon, listener, port
        self.base = f"http://127.0.0.1:{port}"

    def events(self, pipeline: str) -> list[Seen]:
        return self.listener.on(f"{PREFIX}/{pipeline}/event")

    def states(self, pipeline: str) -> list[Seen]:
        return self.listener.on(f"{PREFIX}/{pipeline}/state")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh")
    root = tmp_path_factory.mktemp("dashboard")
    broker = Broker(workdir=root, port=free_port()).start()
    models = root / "models"
    colors = make_color_bundle(models / "colours")
    (colors / "report.html").write_text("<!doctype html><title>report</title><h1>Training report</h1>")
    broken = shutil.copytree(colors, models / "broken")
    (broken / "model.onnx").write_bytes(b"not an onnx model")  # its SHA-256 no longer matches the manifest
    sound = make_audio_bundle(models / "loudness")
    video = write_color_video(root / "colours.avi", ["red", "green", "blue"], seconds_each=SEGMENT_S, fps=10)
    wav = write_loud_quiet_wav(root / "sound.wav", ("quiet", "loud"), seconds_each=SEGMENT_S)
    password_file = root / "dashboard-password"
    password_file.write_text(PASSWORD + "\n")
    port = free_port()
    config = write_config(root / "edge.yaml", broker.host, broker.port,
                          [camera_pipeline("cam", colors, str(video)), microphone_pipeline("mic", sound, wav)],
                          dashboard={"enabled": True, "port": port, "password_file": str(password_file)}, models_dir=str(models))
    listener = Listener(broker.host, broker.port)
    daemon = DaemonProcess(config)
    s = Setup(root, broker, daemon, listener, port)
    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=30)
        wait_for(lambda: _status(f"{s.base}/login") == 200, 30, "the dashboard never answered")
        yield s
    finally:
        print(daemon.log()[-4000:])
        daemon.stop()
        listener.close()
        broker.stop()


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """One Playwright for the module (its sync API cannot be started twice at once)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh dev")
    sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/setup.sh dev (installs Playwright)")
    with sync_api.sync_playwright() as p:
        yield p


def _new_page(playwright: Any) -> Any:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    return browser.new_context(viewport={"width": 1280, "height": 900}).new_page()


@pytest.fixture(scope="module")
def page(setup: Setup, playwright: Any) -> Iterator[Any]:
    """A signed-in page of the dashboard in headless Chromium."""
    page = _new_page(playwright)
    page.goto(setup.base, wait_until="domcontentloaded")
    page.wait_for_url("**/login")
    DOCS_IMG.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "dashboard-login.png"))
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector('.tile[data-pipeline="cam"] .label')
    yield page
    page.context.browser.close()


def _label_shown(page: Any, pipeline: str, label: str) -> None:
    shown = "([p, l]) => { const n = document.querySelector(`.label[data-pipeline=\"${p}\"]`); return n && n.textContent === l; }"
    page.wait_for_function(shown, arg=[pipeline, label], timeout=SHOWN_WITHIN_MS)


def _next_event(setup: Setup, pipeline: str, after: int, timeout: float = 4 * SEGMENT_S) -> Seen:
    return setup.listener.wait_for(lambda m: m.topic == f"{PREFIX}/{pipeline}/event", timeout, count=after + 1,
                                   what=f"event {after + 1} of {pipeline}")[after]


def test_a_wrong_password_gets_401(setup: Setup) -> None:
    form = urllib.parse.urlencode({"password": "not-the-password"}).encode()
    assert _status(f"{setup.base}/login", form) == 401
    assert _status(f"{setup.base}/api/live") == 401  # no session cookie: nothing is shown
    assert _status(f"{setup.base}/api/command/pause", b"{}", {"x-dashboard": "1", "content-type": "application/json"}) == 401
    # a page on another site reaching the device through DNS rebinding names that site in Host: refused
    assert _status(f"{setup.base}/login", headers={"Host": "evil.example"}) == 400


def test_the_page_shows_the_label_mqtt_says(setup: Setup, page: Any) -> None:
    """Each label change published on MQTT is on the page within 2 s, for the camera and for the microphone."""
    for pipeline, changes in (("cam", 3), ("mic", 2)):
        seen = len(setup.events(pipeline))
        for index in range(seen, seen + changes):
            event = _next_event(setup, pipeline, index).json()
            _label_shown(page, pipeline, event["label"])
    page.wait_for_function("() => document.querySelectorAll('.tile[data-pipeline=\"cam\"] .timeline li').length >= 3")
    page.click('.tile[data-pipeline="cam"] details.about summary')  # the model card, open for the picture
    page.screenshot(path=str(DOCS_IMG / "dashboard.png"), full_page=True)
    card = page.text_content('.tile[data-pipeline="cam"] .model-card') or ""
    assert "red, green, blue" in card
    state = setup.states("cam")[-1].json()
    assert state["model_sha256"][:12] in card
    report = page.request.get(f"{setup.base}/api/pipelines/cam/report.html")
    assert report.status == 200 and "Training report" in report.text()
    assert "default-src 'none'" in report.headers["content-security-policy"]  # a bundle's HTML runs no script here


def test_pause_from_the_page_reaches_mqtt(setup: Setup, page: Any) -> None:
    tile = page.locator('.tile[data-pipeline="cam"]')
    before = len(setup.states("cam"))
    tile.locator("button.pause").click()
    setup.listener.wait_for(lambda m: m.topic == f"{PREFIX}/cam/state" and m.json().get("paused") is True, 10, count=1,
                            what="a cam state with paused: true")
    assert any(m.json().get("paused") is True for m in setup.states("cam")[before:])
    page.wait_for_function("() => document.querySelector('.tile[data-pipeline=\"cam\"] button.pause')?.textContent === 'Resume'")
    tile.screenshot(path=str(DOCS_IMG / "dashboard-paused.png"))
    tile.locator("button.pause").click()
    resumed = len(setup.states("cam"))
    setup.listener.wait_for(lambda m: m.topic == f"{PREFIX}/cam/state" and "paused" not in m.json(), 10,
                            count=len([m for m in setup.states("cam")[:resumed] if "paused" not in m.json()]) + 1,
                            what="a cam state without paused after Resume")


def test_a_corrupt_bundle_is_refused_and_the_old_model_keeps_running(setup: Setup, page: Any) -> None:
    tile = page.locator('.tile[data-pipeline="cam"]')
    old = setup.states("cam")[-1].json()
    page.wait_for_selector('.tile[data-pipeline="cam"] select.bundles option[value="broken"]', state="attached")
    tile.locator("select.bundles").select_option("broken")
    tile.locator("button.reload").click()
    page.wait_for_selector('.tile[data-pipeline="cam"] .message.error')
    message = tile.locator(".message").inner_text()
    assert REFUSED in message and "SHA-256" in message, message
    tile.screenshot(path=str(DOCS_IMG / "dashboard-refused.png"))
    count = len(setup.states("cam"))
    later = setup.listener.wait_for(lambda m: m.topic == f"{PREFIX}/cam/state", 15, count=count + 2, what="cam states after the refusal")
    newest = later[-1].json()
    assert newest["model_sha256"] == old["model_sha256"] and newest["seq"] > old["seq"]  # the old model, still classifying
    assert "/broken" not in newest["model"]


def test_on_a_phone_screen(setup: Setup, page: Any) -> None:
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(setup.base, wait_until="domcontentloaded")  # the session cookie of the signed-in page
    phone.wait_for_selector('.tile[data-pipeline="mic"] .label')
    phone.wait_for_function(
        "() => { const l = document.querySelector('.tile[data-pipeline=\"mic\"] .label'); return l && l.textContent !== '…'; }")
    wide = phone.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 390, f"the page is {wide} px wide on a 390 px phone: it scrolls sideways"
    phone.screenshot(path=str(DOCS_IMG / "dashboard-phone.png"), full_page=True)
    phone.close()


@pytest.mark.timeout(240)
def test_chat_streams_the_llm_answer_and_shows_its_sensor_context(tmp_path: Path, broker: Broker, playwright: Any) -> None:
    """A daemon running its LLM (a real GGUF through llama.cpp): the page's chat box gets an answer streamed from
    the LLM's HTTP API and shows the sensor context the LLM was given (the camera's live state, via MQTT)."""
    model = require_model(SMOLLM2)
    bundle = make_color_bundle(tmp_path / "colours")
    video = write_color_video(tmp_path / "colours.avi", ["green"], seconds_each=2.0, fps=10)
    port, llm_port = free_port(), free_port()
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [camera_pipeline("cam", bundle, str(video))],
                          dashboard={"enabled": True, "port": port},
                          llm={"enabled": True, "model": str(model), "port": llm_port, "threads": 1, "context_size": 512,
                               "max_tokens": 16, "temperature": 0.0})
    daemon = DaemonProcess(config)
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{llm_port}/health") == 200, 120, "the LLM child never answered /health")
        page = _new_page(playwright)
        try:
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_selector("#chat:not([hidden]) input.question")
            page.wait_for_function("() => document.querySelector('.label[data-pipeline=\"cam\"]')?.textContent === 'green'")
            page.fill("#chat input.question", "What does the camera see?")
            page.click("#chat button[type=submit]")
            page.wait_for_selector("#chat details.context:not([hidden])", timeout=120_000)
            answer = page.inner_text("#chat .answer")
            context = page.text_content("#chat details.context pre") or ""
            assert answer.strip() and "[" not in answer[:1], answer  # text, not an error in brackets
            assert "cam" in context and "green" in context, context
            page.click("#chat details.context summary")
            page.screenshot(path=str(DOCS_IMG / "dashboard-chat.png"), full_page=True)
        finally:
            page.context.browser.close()
    finally:
        if daemon.alive():
            print(daemon.log()[-3000:])
        daemon.stop()
