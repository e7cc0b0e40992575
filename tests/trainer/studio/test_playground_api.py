"""The LLM playground over real HTTP (a Studio under uvicorn): the listing, a prompt streamed as JSON lines by
the real test GGUFs, bad input refused with clear 4xx, one prompt at a time (429), and a browser that goes
away mid-answer cancelling the generation."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.gguf_models import ALL, model_path
from tests.support.llm_server import require_model
from tests.trainer.studio.client import Client
from trainer.studio.app import create_app
from trainer.studio.limits import PlaygroundLimits, StudioLimits
from trainer.studio.playground import TRICKS
from trainer.studio.server import StudioServer

LIMITS = PlaygroundLimits()
WAIT_S = 120  # a bound for a failing test only


@dataclass
class Running:
    server: StudioServer
    client: Client
    folder: Path  # the models folder given to the Studio
    names: list[str]  # the models in it, by name: two different ones when both test models are cached


def _serve(tmp_path: Path, folder: Path) -> StudioServer:
    server = StudioServer(create_app(tmp_path / "projects", None, StudioLimits(), cache_dir=tmp_path / "cache", llm_models=folder),
                          "127.0.0.1", 0, StudioLimits())
    server.start()
    return server


@pytest.fixture()
def studio(tmp_path: Path) -> Iterator[Running]:
    """A Studio whose models folder holds the cached test GGUFs (skips when there are none)."""
    cached = [m for m in ALL if model_path(m) is not None]
    require_model(cached[0] if cached else ALL[0])
    folder = tmp_path / "llm-models"
    folder.mkdir()
    for model in cached:
        (folder / model.filename).symlink_to(model.path)
    server = _serve(tmp_path, folder)
    try:
        names = sorted(m.filename for m in cached)
        yield Running(server, Client(server.port), folder, names if len(names) > 1 else names * 2)
    finally:
        server.stop()


@pytest.fixture()
def fake_studio(tmp_path: Path) -> Iterator[Running]:
    """A Studio whose models folder holds a file named like a model (enough for the checks before any loading)."""
    folder = tmp_path / "llm-models"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(b"GGUF" + bytes(64))
    (tmp_path / "outside.gguf").write_bytes(b"GGUF" + bytes(64))
    server = _serve(tmp_path, folder)
    try:
        yield Running(server, Client(server.port), folder, ["tiny.gguf", "tiny.gguf"])
    finally:
        server.stop()


def _question(names: list[str], prompt: str = "What is 2 + 2?", max_tokens: int = 8) -> dict[str, object]:
    return {"prompt": prompt, "max_tokens": max_tokens, "panes": [{"model": names[0], "temperature": 0, "seed": 0},
                                                                  {"model": names[1], "temperature": 0.5, "seed": 3}]}


class Stream:
    """POST /api/llm/ask, read line by line as the server sends them."""

    def __init__(self, port: int, question: dict[str, object]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
        self.conn.request("POST", "/api/llm/ask", body=json.dumps(question),
                          headers={"X-Studio": "1", "Content-Type": "application/json"})
        self.response = self.conn.getresponse()

    def events(self) -> Iterator[dict[str, object]]:
        while line := self.response.readline():
            yield json.loads(line)

    def drop(self) -> None:
        """What a closed tab does: the connection goes away mid-answer."""
        assert self.conn.sock is not None
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def test_the_listing_names_the_models_and_the_tricks(fake_studio: Running) -> None:
    reply = fake_studio.client.get("/api/llm")
    assert reply.status == 200
    data = reply.json()
    assert data["models"] == [{"name": "tiny.gguf", "size_mb": 0}]
    assert data["folder"] == str(fake_studio.folder)
    assert len(data["tricks"]) == len(TRICKS) >= 4
    assert all(t["title"] and t["prompt"] and t["tests"] for t in data["tricks"])
    assert any("ignore" in t["prompt"].lower() and t["system"] for t in data["tricks"])  # the injection has a secret to keep
    assert data["limits"]["max_tokens"] == LIMITS.max_tokens and data["busy"] is False


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"panes": [{"model": "nope.gguf"}, {"model": "tiny.gguf"}]}, 404, "no model 'nope.gguf'"),
    ({"panes": [{"model": "../outside.gguf"}, {"model": "tiny.gguf"}]}, 404, "no model '../outside.gguf'"),
    ({"panes": [{"model": "tiny.gguf"}, {"model": "OUTSIDE"}]}, 404, "pane 2: no model"),
    ({"prompt": "x" * (LIMITS.max_prompt_chars + 1)}, 400, "characters; the most is"),
    ({"max_tokens": 0}, 400, "max_tokens is 0"),
    ({"max_tokens": LIMITS.max_tokens + 1}, 400, f"choose from 1 to {LIMITS.max_tokens}"),
    ({"panes": [{"model": "tiny.gguf", "temperature": -1}, {"model": "tiny.gguf"}]}, 400, "temperature is -1"),
])
def test_bad_input_is_refused_before_any_model_loads(fake_studio: Running, change: dict[str, object], status: int, words: str) -> None:
    question = {**_question(fake_studio.names), **change}
    if "OUTSIDE" in json.dumps(change):  # an absolute path to a real .gguf outside the folder
        question["panes"] = [{"model": "tiny.gguf"}, {"model": str(fake_studio.folder.parent / "outside.gguf")}]
    reply = fake_studio.client.post("/api/llm/ask", question)
    assert reply.status == status, reply.body
    assert words in reply.json()["error"]
    assert fake_studio.client.get("/api/llm").json()["busy"] is False  # nothing was started


def test_bodies_and_requests_out_of_bounds_are_refused(fake_studio: Running) -> None:
    huge = json.dumps({**_question(fake_studio.names), "system": "x" * LIMITS.max_body_bytes}).encode()
    reply = fake_studio.client.post("/api/llm/ask", body=huge)
    assert reply.status == 413 and f"{LIMITS.max_body_bytes} bytes" in reply.json()["error"]
    assert fake_studio.client.post("/api/llm/ask", body=b"[1, 2]").status == 400
    no_header = Client(fake_studio.server.port, csrf=False).post("/api/llm/ask", _question(fake_studio.names))
    assert no_header.status == 403  # a page elsewhere cannot make a visitor's browser ask


@pytest.mark.native_llm
def test_a_model_file_that_does_not_load_is_said_in_its_pane(fake_studio: Running) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: run scripts/setup.sh llm")
    stream = Stream(fake_studio.server.port, _question(fake_studio.names))
    assert stream.response.status == 200
    events = list(stream.events())
    errors = [e for e in events if e["event"] == "error"]
    assert {e["pane"] for e in errors} == {0, 1} and all("could not load" in str(e["message"]) for e in errors)
    assert events[-1] == {"event": "end"}
    assert fake_studio.client.get("/api/llm").status == 200  # the Studio is still up


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_a_prompt_streams_both_answers_as_json_lines(studio: Running) -> None:
    stream = Stream(studio.server.port, _question(studio.names))
    assert stream.response.status == 200
    assert stream.response.getheader("content-type", "").startswith("application/x-ndjson")
    events = list(stream.events())
    assert events[0] == {"event": "plan", "parallel": True, "note": None}
    assert events[-1] == {"event": "end"}
    for pane in (0, 1):
        starts = [e for e in events if e["event"] == "start" and e["pane"] == pane]
        assert [s["model"] for s in starts] == [studio.names[pane]]
        text = "".join(str(e["text"]) for e in events if e["event"] == "text" and e["pane"] == pane)
        done = [e for e in events if e["event"] == "done" and e["pane"] == pane]
        assert text.strip() and len(done) == 1 and 0 < int(done[0]["tokens"]) <= 8  # type: ignore[call-overload]
    assert studio.client.get("/api/llm").json()["busy"] is False


@pytest.mark.native_llm
@pytest.mark.timeout(300)
def test_one_prompt_at_a_time_and_a_closed_tab_cancels_it(studio: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trainer.studio.playground")
    long = _question(studio.names, prompt="Count from 1 to 500, one number per line.", max_tokens=LIMITS.max_tokens)
    first = Stream(studio.server.port, long)
    for event in first.events():
        if event["event"] == "text":
            break
    second = studio.client.post("/api/llm/ask", _question(studio.names))
    assert second.status == 429 and "answering another prompt" in second.json()["error"]
    assert studio.client.get("/api/llm").json()["busy"] is True

    first.drop()
    deadline = time.monotonic() + WAIT_S
    while studio.client.get("/api/llm").json()["busy"]:
        assert time.monotonic() < deadline, "the answers went on after the browser left"
        time.sleep(0.1)
    outcomes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("playground:")]
    assert len(outcomes) == 2 and all(o.endswith("(cancelled)") for o in outcomes), outcomes
    # and the models are free for the next prompt
    assert list(Stream(studio.server.port, _question(studio.names, max_tokens=2)).events())[-1] == {"event": "end"}
