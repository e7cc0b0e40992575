"""The LLM playground in a real headless Chromium (Debian's, driven by Playwright, as test_browser.py): open it
from the header, pick two models, click a trick prompt, ask, and see both answers stream into their panes at
once; then Stop. The page is saved to docs/img/studio-playground.png for docs/studio.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gguf_models import ALL, model_path
from tests.support.llm_server import require_model
from tests.support.paths import REPO
from trainer.studio.app import create_app
from trainer.studio.limits import StudioLimits
from trainer.studio.playground import TRICKS
from trainer.studio.server import StudioServer

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = REPO / "docs" / "img"
WAIT_MS = 120_000  # a bound for a failing test only

pytestmark = [pytest.mark.native_llm, pytest.mark.timeout(300)]


@pytest.fixture()
def studio(tmp_path: Path) -> Iterator[tuple[StudioServer, list[str]]]:
    cached = [m for m in ALL if model_path(m) is not None]
    require_model(cached[0] if cached else ALL[0])
    folder = tmp_path / "llm-models"
    folder.mkdir()
    for model in cached:
        (folder / model.filename).symlink_to(model.path)
    server = StudioServer(create_app(tmp_path / "projects", None, StudioLimits(), cache_dir=tmp_path / "cache", llm_models=folder),
                          "127.0.0.1", 0, StudioLimits())
    server.start()
    names = sorted(m.filename for m in cached)
    try:
        yield server, (names if len(names) > 1 else names * 2)
    finally:
        server.stop()


@pytest.fixture()
def page(studio: tuple[StudioServer, list[str]]) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh dev")
    sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/setup.sh dev (installs Playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


def test_two_models_answer_a_trick_prompt_side_by_side(studio: tuple[StudioServer, list[str]], page) -> None:  # type: ignore[no-untyped-def]
    server, names = studio
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.click("#nav-llm")
    page.wait_for_selector("#llm-ask")
    page.select_option("#llm-model-0", names[0])
    page.select_option("#llm-model-1", names[1])
    page.fill("#llm-pane-1 .llm-temperature", "0.7")  # one model twice still differs: other settings
    page.fill("#llm-pane-1 .llm-seed", "7")
    trick = next(i for i, t in enumerate(TRICKS) if t.system)  # the injection: fills the system prompt too
    page.click(f'button[data-trick="{trick}"]')
    assert page.input_value("#llm-prompt") == TRICKS[trick].prompt
    assert page.input_value("#llm-system") == TRICKS[trick].system
    assert TRICKS[trick].tests in page.inner_text("#llm-tests")
    page.fill("#llm-max-tokens", "24")

    # what the page shows, in order: each piece of text and each pane's state, as the page changes
    page.evaluate("""() => {
      window.seen = [];
      let batch = 0;  // one per time the page changed: text read all at once would arrive in a single batch
      new MutationObserver((changes) => { batch += 1; changes.forEach((c) => {
        const pane = c.target.closest('.llm-pane');
        if (!pane) return;
        const text = c.type === 'childList' && c.target.classList.contains('llm-text') && c.addedNodes.length;
        if (text) window.seen.push(['text', pane.id, batch]);
        if (c.type === 'attributes') window.seen.push([pane.dataset.state, pane.id, batch]);
      }); }).observe(document.querySelector('.panes'),
                     { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
    }""")
    # what the page sends: the settings of each pane, and model names, never paths
    with page.expect_request("**/api/llm/ask") as asked:
        page.click("#llm-ask")
    sent = json.loads(asked.value.post_data)
    assert [p["model"] for p in sent["panes"]] == names and sent["max_tokens"] == 24
    assert sent["panes"][1] == {"model": names[1], "temperature": 0.7, "seed": 7}
    page.wait_for_function("""() => document.querySelectorAll('.llm-pane[data-state="done"]').length === 2
                                    && !document.getElementById('llm-ask').disabled""", timeout=WAIT_MS)

    # each answer came in pieces as it was written (streamed), and each pane's first piece before the other pane
    # was done (at once)
    changes = page.evaluate("window.seen")
    seen = [(kind, pane) for kind, pane, _ in changes]
    batches = {pane: {b for kind, p, b in changes if kind == "text" and p == pane} for pane in ("llm-pane-0", "llm-pane-1")}
    for me, other in (("llm-pane-0", "llm-pane-1"), ("llm-pane-1", "llm-pane-0")):
        assert len(batches[me]) >= 2, seen
        assert seen.index(("text", me)) < seen.index(("done", other)), seen
    for i in (0, 1):
        assert "tokens/s" in page.inner_text(f"#llm-pane-{i} .llm-status")
    assert page.is_hidden("#llm-stop") and page.is_hidden("#llm-note")  # both fit in memory: nothing to say
    DOCS_IMG.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "studio-playground.png"), full_page=True)

    # Stop: long answers end there, the panes say so, and the models are free again
    page.fill("#llm-prompt", "Count from 1 to 500, one number per line.")
    page.fill("#llm-max-tokens", "512")
    page.click("#llm-ask")
    page.wait_for_function("() => document.getElementById('llm-text-0').textContent.trim()", timeout=WAIT_MS)
    page.click("#llm-stop")
    page.wait_for_function("() => !document.getElementById('llm-ask').disabled", timeout=WAIT_MS)
    states = [page.get_attribute(f"#llm-pane-{i}", "data-state") for i in (0, 1)]
    assert "stopped" in states and set(states) <= {"stopped", "done"}, states
    page.wait_for_function("async () => !(await (await fetch('/api/llm')).json()).busy", timeout=WAIT_MS)
    assert "[object" not in page.inner_text("main")
