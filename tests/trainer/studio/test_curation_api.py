"""The curation routes over real HTTP (trainer/studio/curation_routes.py): the class order kept in studio.json
and followed by the trained bundle, the validation samples behind each confusion-matrix cell, the Advanced
panel's backbone and fine-tune settings, and the class password's limit on wrong guesses sent in parallel."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.core.bundle import load_bundle
from edge.core.datasets import stratified_split
from edge.core.guesses import WrongGuesses
from edge.core.images import decode_image, fit_image
from edge.core.session import Classifier
from tests.trainer.studio.client import Client
from tests.trainer.studio.conftest import Running
from trainer.class_order import ordered
from trainer.image.backbones import BUILDERS
from trainer.studio.app import create_app
from trainer.studio.jobs import parse_settings
from trainer.studio.limits import MAX_FINE_TUNE, StudioLimits
from trainer.studio.projects import ProjectError
from trainer.studio.server import StudioServer

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def _classes(c: Client, project: str) -> list[str]:
    return [k["name"] for k in c.get(f"/api/projects/{project}").json()["classes"]]


def test_class_order_is_saved_and_kept(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    for name in ("paper", "bottles", "cans"):
        c.post("/api/projects/p/classes", {"name": name})
    assert _classes(c, "p") == ["bottles", "cans", "paper"]  # alphabetical until ordered
    reply = c.request("PUT", "/api/projects/p/class-order", json_body={"classes": ["paper", "cans"]})
    assert reply.status == 200 and reply.json() == {"classes": ["paper", "cans", "bottles"]}  # the rest after it
    assert _classes(c, "p") == ["paper", "cans", "bottles"]
    assert c.get("/api/projects/p/class-order").json() == {"classes": ["paper", "cans", "bottles"]}
    settings = json.loads((studio.project("p") / "studio.json").read_text())
    assert settings == {"task": "image", "classes": ["paper", "cans", "bottles"]}  # its other settings kept
    # a renamed class keeps its place; a new one comes after the saved order, a deleted one leaves it
    c.request("PATCH", "/api/projects/p/classes/cans", json_body={"name": "tins"})
    c.post("/api/projects/p/classes", {"name": "apples"})
    assert _classes(c, "p") == ["paper", "tins", "bottles", "apples"]
    c.request("DELETE", "/api/projects/p/classes/paper")
    assert _classes(c, "p") == ["tins", "bottles", "apples"]


def test_bad_orders_are_refused_and_change_nothing(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    for name in ("a", "b"):
        c.post("/api/projects/p/classes", {"name": name})
    c.request("PUT", "/api/projects/p/class-order", json_body={"classes": ["b", "a"]})
    before = (studio.project("p") / "studio.json").read_bytes()
    for body, status in (({"classes": "b,a"}, 400), ({"classes": ["b", 1]}, 400), ({"classes": ["a", "a"]}, 400),
                         ({"classes": ["a", "../x"]}, 409), ({"classes": ["a"] * 51}, 400), ({}, 400), ([], 400)):
        reply = c.request("PUT", "/api/projects/p/class-order", json_body=body)
        assert reply.status == status and reply.json()["error"], (body, reply.body)
    assert c.request("PUT", "/api/projects/p/class-order", body=b"x" * 40_000, headers={"content-type": "application/json"}).status == 413
    assert c.request("PUT", "/api/projects/nope/class-order", json_body={"classes": []}).status == 404
    assert Client(studio.server.port, csrf=False).request("PUT", "/api/projects/p/class-order", json_body={"classes": ["a"]}).status == 403
    assert (studio.project("p") / "studio.json").read_bytes() == before


def test_ordered_puts_the_unnamed_after_alphabetically() -> None:
    assert ordered(["a", "b", "c", "d"], ["c", "gone", "a", "c"]) == ("c", "a", "b", "d")
    assert ordered(["b", "a"], []) == ("a", "b")


def test_advanced_settings_are_checked() -> None:
    first = next(iter(BUILDERS))
    assert parse_settings({"backbone": first, "fine_tune": MAX_FINE_TUNE}).backbone == first
    assert parse_settings({}).fine_tune == 0
    for bad in ({"backbone": "resnet9000"}, {"backbone": 3}, {"backbone": "../x"}, {"fine_tune": MAX_FINE_TUNE + 1},
                {"fine_tune": -1}, {"fine_tune": 1.5}, {"fine_tune": True}, {"device": "cuda"}):
        with pytest.raises(ProjectError):
            parse_settings(bad)


def test_the_advanced_choices_come_from_the_trainer_registry(studio: Running) -> None:
    choices = studio.client.get("/api/train-choices").json()
    assert [b["name"] for b in choices["backbones"]] == list(BUILDERS)
    assert all(b["description"] == str(getattr(BUILDERS[b["name"]], "description", "")) for b in choices["backbones"])
    assert choices["fine_tune_max"] == MAX_FINE_TUNE and choices["default_backbone"] in BUILDERS
    assert "CPU" in choices["device"]


def test_confusion_cell_needs_a_model_and_known_classes(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    assert c.get("/api/projects/p/confusion?true=a&predicted=b").status == 404
    assert c.get("/api/projects/nope/confusion?true=a&predicted=b").status == 404


# --- the class password: wrong guesses limited per address and in all, also when sent in parallel ---

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _guess(port: int, password: str, source: str = "127.0.0.1") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        conn.request("POST", "/login", body=f"password={password}".encode(), headers=FORM)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _server(tmp: Path, limits: StudioLimits) -> StudioServer:
    server = StudioServer(create_app(tmp / "projects", "blue-whale", limits), "127.0.0.1", 0, limits)
    server.start()
    return server


def test_wrong_passwords_in_parallel_meet_the_limit(tmp_path: Path) -> None:
    limits = StudioLimits(max_wrong_passwords_per_client=5, max_wrong_passwords_total=50)
    server = _server(tmp_path, limits)
    try:
        with ThreadPoolExecutor(20) as pool:  # 20 guesses at once, from one address
            answers = list(pool.map(lambda i: _guess(server.port, f"guess-{i}"), range(20)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [401] * 5 + [429] * 15, statuses
        assert all("Wait" in text and "from this computer" in text for status, text in answers if status == 429)
        # while this address is over its limit, even the right password waits; another computer is let in
        assert _guess(server.port, "blue-whale")[0] == 429
        assert _guess(server.port, "blue-whale", source="127.0.0.2")[0] == 303
    finally:
        server.stop()


def test_wrong_passwords_from_many_computers_meet_the_total(tmp_path: Path) -> None:
    limits = StudioLimits(max_wrong_passwords_per_client=2, max_wrong_passwords_total=6)
    server = _server(tmp_path, limits)
    try:
        sources = [f"127.0.0.{n}" for n in range(2, 10) for _ in range(2)]  # 8 computers, 2 guesses each
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda s: _guess(server.port, "nope", source=s), sources))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [401] * 6 + [429] * 10, statuses
        assert any("all computers together" in text for status, text in answers if status == 429)
        assert _guess(server.port, "blue-whale", source="127.0.0.20")[0] == 429  # the total holds for everyone
    finally:
        server.stop()


def test_wrong_guesses_are_forgotten_after_a_minute() -> None:
    now = [1000.0]
    guesses = WrongGuesses(per_client=2, total=10, clock=lambda: now[0])
    assert guesses.count_wrong("a") is None and guesses.count_wrong("a") is None
    refusal = guesses.refusal("a")
    assert refusal is not None and refusal.wait_s == 60 and not refusal.everyone
    assert guesses.refusal("b") is None
    now[0] += 59.5
    assert guesses.refusal("a") is not None and guesses.refusal("a").wait_s == 1  # type: ignore[union-attr]
    now[0] += 0.5
    assert guesses.refusal("a") is None


# --- a real training: the order becomes the bundle's labels, and each cell's samples are the right ones ---

def _image(colour: tuple[int, int, int], i: int) -> np.ndarray:
    image = np.full((120, 160, 3), colour, np.uint8)
    cv2.circle(image, (40 + 8 * i, 60), 12 + i, (255, 255, 255), -1)
    return image


def make_project_with_a_mistake(studio: Running, name: str = "colours") -> Path:
    """A two-class project (red ordered before blue) whose `red` validation split holds one blue picture,
    which a model trained on it calls blue: one sample in an off-diagonal cell. Files are written with fixed
    names (a folder made by hand opens in the Studio) so the trainer's seeded split is known here. Returns
    the planted picture."""
    c = studio.client
    assert c.post("/api/projects", {"name": name}).status == 201
    root = studio.project(name)
    files: dict[str, list[Path]] = {}
    for label, colour in (("red", RED), ("blue", BLUE)):
        assert c.post(f"/api/projects/{name}/classes", {"name": label}).status == 201
        files[label] = [root / label / f"{label[0]}{i:02d}.jpg" for i in range(10)]
        for i, path in enumerate(files[label]):
            cv2.imwrite(str(path), _image(colour, i))
    _, val = stratified_split(files, 0.15, 0)  # the trainer's own split, default fraction and seed
    cv2.imwrite(str(val["red"][0]), _image(BLUE, 3))  # a blue picture filed under red
    assert c.request("PUT", f"/api/projects/{name}/class-order", json_body={"classes": ["red", "blue"]}).status == 200
    return val["red"][0]


def wait_trained(c: Client, name: str) -> dict:
    deadline = time.monotonic() + 400
    while (job := c.get(f"/api/projects/{name}/train").json()["job"])["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["state"] == "done", job
    return job


@pytest.mark.slow
def test_order_sets_the_bundle_labels_and_cells_list_their_samples(studio: Running) -> None:
    c = studio.client
    planted = make_project_with_a_mistake(studio)
    assert c.post("/api/projects/colours/train", {"epochs": 12, "batch_size": 8, "fine_tune": 1}).status == 200
    wait_trained(c, "colours")
    model_dir = studio.project("colours") / ".studio" / "model"
    bundle = load_bundle(model_dir)
    assert bundle.labels == ("red", "blue")  # the saved order, not the alphabetical one
    report = c.get("/api/projects/colours/report").json()
    assert report["labels"] == ["red", "blue"]
    on_disk = json.loads((model_dir / "report.json").read_text())
    assert on_disk["settings"]["fine_tune"] == 1 and on_disk["settings"]["backbone"] == "efficientnet_lite0"

    # each cell: as many samples as the matrix says, each one really predicted so by the bundle (device code)
    clf = Classifier(bundle, variant="fp32")
    matrix = report["fp32"]["confusion_matrix"]
    listed: set[str] = set()
    for t, true in enumerate(bundle.labels):
        for p, predicted in enumerate(bundle.labels):
            cell = c.get(f"/api/projects/colours/confusion?true={true}&predicted={predicted}").json()
            assert cell["total"] == len(cell["samples"]) == matrix[t][p], (true, predicted, cell)
            for sample in cell["samples"]:
                assert sample["class"] == true and sample["exists"]
                path = studio.project("colours") / true / sample["sample"]
                probs = clf.predict_images(fit_image(decode_image(path), bundle.image_size, "center_crop_square")[None])[0]
                assert bundle.labels[int(np.argmax(probs))] == predicted, (sample, probs)
                listed.add(sample["file"])
    assert len(listed) == report["fp32"]["n"] == 4  # every validation sample, in exactly one cell
    mistakes = c.get("/api/projects/colours/confusion?true=red&predicted=blue").json()
    assert [s["file"] for s in mistakes["samples"]] == [f"red/{planted.name}"]
    # the sample's own route serves it (the page's thumbnail)
    assert c.get(f"/api/projects/colours/classes/red/samples/{planted.name}?size=thumb").status == 200
    assert c.get("/api/projects/colours/confusion?true=red&predicted=green").status == 400
    assert c.get("/api/projects/colours/confusion?true=red").status == 400
    # a sample deleted since the training is listed as gone
    c.request("DELETE", f"/api/projects/colours/classes/red/samples/{planted.name}")
    assert c.get("/api/projects/colours/confusion?true=red&predicted=blue").json()["samples"][0]["exists"] is False


def test_a_broken_or_huge_studio_json_leaves_the_order_alphabetical(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    for name in ("b", "a"):
        c.post("/api/projects/p/classes", {"name": name})
    settings = studio.project("p") / "studio.json"
    for broken in ("{not json", '["b", "a"]', '{"classes": "b,a"}', json.dumps({"classes": ["b", "a"], "pad": "x" * 70_000})):
        settings.write_text(broken)
        assert _classes(c, "p") == ["a", "b"], broken[:30]
    # a new order is saved over it as a proper settings file
    assert c.request("PUT", "/api/projects/p/class-order", json_body={"classes": ["b"]}).json() == {"classes": ["b", "a"]}
    assert json.loads(settings.read_text())["classes"] == ["b", "a"]
