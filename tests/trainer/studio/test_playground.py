"""The LLM playground's logic (trainer/studio/playground.py) on its own: the checks of what the page sends, the
listing of the models folder, the memory plan, and, with the real test GGUFs, two answers at once, one after
the other when memory is short, the bounded engine cache, cancelling and the one-prompt-at-a-time rule."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.gguf_models import ALL, model_path
from tests.support.llm_server import require_model
from trainer.studio.limits import PlaygroundLimits
from trainer.studio.playground import Event, ModelFile, Playground, PlaygroundError, Question, list_models, parse_question

LIMITS = PlaygroundLimits()
WAIT_S = 120  # a bound for a failing test only: answers of a few tokens come in seconds


def _fake_models(folder: Path) -> list[ModelFile]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.gguf", "b.gguf"):
        (folder / name).write_bytes(b"GGUF" + bytes(100))
    return list_models(folder, LIMITS.max_models_listed)


def _body(**fields: object) -> dict[str, object]:
    return {"prompt": "Hi", "max_tokens": 8, "panes": [{"model": "a.gguf", "temperature": 0, "seed": 1}, {"model": "b.gguf"}], **fields}


def test_a_good_question_is_parsed(tmp_path: Path) -> None:
    models = _fake_models(tmp_path)
    question = parse_question(_body(system="Be brief."), models, LIMITS)
    assert question.prompt == "Hi" and question.system == "Be brief." and question.max_tokens == 8
    assert [p.model.path for p in question.panes] == [tmp_path / "a.gguf", tmp_path / "b.gguf"]
    assert question.panes[1].temperature == 0.0 and question.panes[1].seed == 0  # the defaults


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"panes": [{"model": "c.gguf"}, {"model": "a.gguf"}]}, 404, "no model 'c.gguf'"),
    ({"panes": [{"model": "../c.gguf"}, {"model": "a.gguf"}]}, 404, "no model '../c.gguf'"),
    ({"panes": [{"model": "/etc/passwd"}, {"model": "a.gguf"}]}, 404, "choose one from the list"),
    ({"panes": [{"model": "a.gguf"}]}, 400, "a list of 2"),
    ({"panes": "a.gguf"}, 400, "a list of 2"),
    ({"prompt": "x" * (LIMITS.max_prompt_chars + 1)}, 400, f"the most is {LIMITS.max_prompt_chars}"),
    ({"system": "x" * (LIMITS.max_system_chars + 1)}, 400, f"the most is {LIMITS.max_system_chars}"),
    ({"prompt": "   "}, 400, "type a prompt"),
    ({"prompt": 12}, 400, "prompt must be text"),
    ({"max_tokens": 0}, 400, "max_tokens is 0"),
    ({"max_tokens": LIMITS.max_tokens + 1}, 400, f"choose from 1 to {LIMITS.max_tokens}"),
    ({"max_tokens": "12"}, 400, "whole number"),
    ({"max_tokens": 1.5}, 400, "whole number"),
    ({"max_tokens": True}, 400, "whole number"),
    ({"panes": [{"model": "a.gguf", "temperature": 2.5}, {"model": "a.gguf"}]}, 400, "pane 1: temperature is 2.5"),
    ({"panes": [{"model": "a.gguf"}, {"model": "a.gguf", "seed": -1}]}, 400, "pane 2: seed is -1"),
])
def test_bad_questions_are_refused_with_what_to_do(tmp_path: Path, change: dict[str, object], status: int, words: str) -> None:
    models = _fake_models(tmp_path / "models")
    (tmp_path / "c.gguf").write_bytes(b"GGUF")  # a real file beside the folder: still not in the listing
    with pytest.raises(PlaygroundError) as refused:
        parse_question(_body(**change), models, LIMITS)
    assert refused.value.status == status and words in str(refused.value)


def test_the_listing_holds_only_gguf_files_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    _fake_models(folder)
    (folder / "notes.txt").write_text("no")
    (folder / ".hidden.gguf").write_bytes(b"GGUF")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.gguf").write_bytes(b"GGUF")
    (folder / "dir.gguf").mkdir()
    assert [m.name for m in list_models(folder, 10)] == ["a.gguf", "b.gguf"]
    assert [m.name for m in list_models(folder, 1)] == ["a.gguf"]
    assert list_models(tmp_path / "missing", 10) == []


def _question(models: list[ModelFile], a: int, b: int, max_tokens: int = 8, prompt: str = "Say hello.") -> Question:
    return parse_question({"prompt": prompt, "max_tokens": max_tokens,
                           "panes": [{"model": models[a].name}, {"model": models[b].name}]}, models, LIMITS)


def test_the_plan_runs_both_at_once_only_when_they_fit(tmp_path: Path) -> None:
    models = _fake_models(tmp_path)
    question = _question(models, 0, 1)
    size = models[0].size_bytes + models[1].size_bytes
    roomy = Playground(tmp_path, LIMITS, memory=lambda: size + LIMITS.memory_reserve_bytes)
    assert roomy.plan(question).parallel and roomy.plan(question).note is None
    tight = Playground(tmp_path, LIMITS, memory=lambda: size + LIMITS.memory_reserve_bytes - 1)
    plan = tight.plan(question)
    assert not plan.parallel and plan.note is not None and "one after the other" in plan.note
    # one model twice is mapped once: it needs its own size only
    twice = Playground(tmp_path, LIMITS, memory=lambda: models[0].size_bytes + LIMITS.memory_reserve_bytes)
    assert twice.plan(_question(models, 0, 0)).parallel


# -- with the real test models ----------------------------------------------------------------------


@pytest.fixture()
def real_models(tmp_path: Path) -> list[ModelFile]:
    """The test GGUFs in a models folder: two different ones when both are cached, else one (tests use it twice)."""
    cached = [m for m in ALL if model_path(m) is not None]
    if not cached:
        require_model(ALL[0])  # skips, saying how to fetch them
    require_model(cached[0])
    folder = tmp_path / "llm-models"
    folder.mkdir()
    for model in cached:
        (folder / model.filename).symlink_to(model.path)
    return list_models(folder, LIMITS.max_models_listed)


class Recorder:
    """Collects a run's events; `on` hooks run inside emit (on the run's threads) before an event is kept."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self.hooks: list[Callable[[Event], None]] = []

    def __call__(self, event: Event) -> None:
        for hook in self.hooks:
            hook(event)
        with self.lock:
            self.events.append(event)

    def of(self, kind: str, pane: int | None = None) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e["event"] == kind and (pane is None or e.get("pane") == pane)]

    def text(self, pane: int) -> str:
        return "".join(str(e["text"]) for e in self.of("text", pane))


def _other(models: list[ModelFile]) -> int:
    return 1 if len(models) > 1 else 0


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_both_answers_stream_at_once_and_the_engines_stay_loaded(real_models: list[ModelFile], tmp_path: Path) -> None:
    playground = Playground(real_models[0].path.parent, LIMITS, memory=lambda: 1 << 50)
    question = _question(real_models, 0, _other(real_models), max_tokens=6)
    seen = Recorder()
    both_streaming = threading.Event()

    # Pane 0's first piece of text waits for pane 1's: answers given one after the other would never get here.
    def hold_pane_0(event: Event) -> None:
        if event["event"] == "text" and event["pane"] == 1:
            both_streaming.set()
        if event["event"] == "text" and event["pane"] == 0 and not seen.of("text", 0):
            assert both_streaming.wait(WAIT_S), "pane 1 did not stream while pane 0 was answering"

    seen.hooks.append(hold_pane_0)
    run = playground.start(question, seen)
    assert run.finished.wait(WAIT_S)
    assert both_streaming.is_set()
    assert seen.of("plan") == [{"event": "plan", "parallel": True, "note": None}]
    for pane in (0, 1):
        assert seen.text(pane).strip(), seen.events
        done = seen.of("done", pane)
        assert len(done) == 1 and 0 < int(done[0]["tokens"]) <= 6 and done[0]["stopped"] is None  # type: ignore[call-overload]
    assert seen.events[-1] == {"event": "end"}
    assert len(playground.loaded) == 2

    # the next prompt starts at once: nothing to load, and the same answers with the same seeds
    again = Recorder()
    assert playground.start(question, again).finished.wait(WAIT_S)
    assert again.of("loading") == [] and [e["load_s"] for e in again.of("start")] == [None, None]
    assert [again.text(p) for p in (0, 1)] == [seen.text(p) for p in (0, 1)]

    # one model in both panes: two copies, and never more than two engines
    twice = Recorder()
    assert playground.start(_question(real_models, 0, 0, max_tokens=4), twice).finished.wait(WAIT_S)
    assert playground.loaded == [(real_models[0].name, 0), (real_models[0].name, 1)]
    assert len(twice.of("done")) == 2
    playground.close()
    assert playground.loaded == []


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_short_of_memory_they_answer_one_after_the_other(real_models: list[ModelFile]) -> None:
    playground = Playground(real_models[0].path.parent, LIMITS, memory=lambda: 0)
    question = _question(real_models, 0, _other(real_models), max_tokens=4)
    seen = Recorder()
    loaded_while_pane_1: list[int] = []
    seen.hooks.append(lambda e: loaded_while_pane_1.append(len(playground.loaded)) if e["event"] == "start" and e["pane"] == 1 else None)
    assert playground.start(question, seen).finished.wait(WAIT_S)
    plan = seen.of("plan")[0]
    assert plan["parallel"] is False and "one after the other" in str(plan["note"])
    kinds = [(e["event"], e.get("pane")) for e in seen.events if e["event"] in ("start", "done")]
    assert kinds == [("start", 0), ("done", 0), ("start", 1), ("done", 1)]
    assert loaded_while_pane_1 == [1]  # pane 0's model was unloaded first
    assert seen.text(0).strip() and seen.text(1).strip()


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_a_cancelled_run_stops_before_the_next_token_and_one_prompt_runs_at_a_time(real_models: list[ModelFile]) -> None:
    playground = Playground(real_models[0].path.parent, LIMITS, memory=lambda: 1 << 50)
    question = _question(real_models, 0, _other(real_models), max_tokens=LIMITS.max_tokens,
                         prompt="Count from 1 to 500, one number per line.")
    seen = Recorder()
    first_text = threading.Event()
    seen.hooks.append(lambda e: first_text.set() if e["event"] == "text" else None)
    run = playground.start(question, seen)
    with pytest.raises(PlaygroundError) as busy:
        playground.start(question, Recorder())
    assert busy.value.status == 429 and "another prompt" in str(busy.value)
    assert first_text.wait(WAIT_S)
    run.cancel()
    assert run.finished.wait(WAIT_S)
    for done in seen.of("done"):
        assert done["stopped"] == "cancelled" and int(done["tokens"]) < LIMITS.max_tokens  # type: ignore[call-overload]
    assert len(seen.of("done")) == 2
    # free again: the next prompt is taken
    assert playground.start(_question(real_models, 0, 0, max_tokens=2), Recorder()).finished.wait(WAIT_S)


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_a_model_that_does_not_load_fails_its_pane_only(real_models: list[ModelFile]) -> None:
    folder = real_models[0].path.parent
    (folder / "broken.gguf").write_bytes(b"this is not a GGUF file\n" * 10)
    models = list_models(folder, LIMITS.max_models_listed)
    broken = [m.name for m in models].index("broken.gguf")
    good = [m.name for m in models].index(real_models[0].name)
    playground = Playground(folder, LIMITS, memory=lambda: 1 << 50)
    seen = Recorder()
    assert playground.start(_question(models, broken, good, max_tokens=4), seen).finished.wait(WAIT_S)
    errors = seen.of("error")
    assert len(errors) == 1 and errors[0]["pane"] == 0 and "could not load" in str(errors[0]["message"])
    assert seen.text(1).strip() and len(seen.of("done", 1)) == 1
    assert seen.events[-1] == {"event": "end"} and not playground.busy
