"""Training from the Studio over real HTTP: the trainer's own pipeline in a child process, every epoch
reported while it runs, one training at a time with the others queued, cancel, the report and the zip."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest

from edge.core.bundle import load_bundle
from tests.trainer.studio.client import Client
from tests.trainer.studio.conftest import Running, jpeg

COLOURS = {"red": (0, 0, 255), "blue": (255, 0, 0)}


def _project(c: Client, name: str, per_class: int = 6) -> None:
    assert c.post("/api/projects", {"name": name}).status == 201
    for label, colour in COLOURS.items():
        c.post(f"/api/projects/{name}/classes", {"name": label})
        for i in range(per_class):
            assert c.post(f"/api/projects/{name}/classes/{label}/samples?filename=s.jpg", body=jpeg(colour, 15 + 3 * i)).status == 201


def _job(c: Client, name: str) -> dict:
    job = c.get(f"/api/projects/{name}/train").json()["job"]
    assert job is not None
    return job


def _wait(c: Client, name: str, until: tuple[str, ...] = ("done", "failed", "cancelled"), timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(c, name)
        if job["state"] in until:
            return job
        time.sleep(0.3)
    raise AssertionError(f"training of {name} still {job}")


def test_settings_and_data_are_checked_before_queueing(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    c.post("/api/projects/p/classes", {"name": "only"})
    too_few = c.post("/api/projects/p/train", {"epochs": 2})
    assert too_few.status == 400 and "at least 2 classes" in too_few.json()["error"]
    assert str(studio.root) not in too_few.json()["error"]  # the server's folders are not shown to the page
    _project(c, "q", per_class=3)
    for bad in ({"epochs": 0}, {"epochs": 501}, {"epochs": 2.5}, {"batch_size": "16"}, {"lr": 0}, {"lr": 5},
                {"lr": True}, {"fine_tune": 3}, [1]):
        reply = c.post("/api/projects/q/train", bad)
        assert reply.status == 400 and reply.json()["error"], bad
    assert c.get("/api/projects/q/train").json() == {"job": None, "defaults": {"epochs": 50, "batch_size": 16, "lr": 0.001,
                                                                   "backbone": "efficientnet_lite0", "fine_tune": 0}}


@pytest.mark.slow
def test_train_queue_cancel_report_and_zip(studio: Running) -> None:
    c = studio.client
    _project(c, "first")
    _project(c, "second")
    _project(c, "third")
    assert c.post("/api/projects/first/train", {"epochs": 4, "batch_size": 8, "lr": 0.001}).status == 200
    assert c.post("/api/projects/first/train", {"epochs": 4}).status == 409  # one job per project
    assert c.post("/api/projects/second/train", {"epochs": 500}).status == 200
    assert c.post("/api/projects/third/train", {"epochs": 3}).status == 200
    # while the first runs, the others wait and see their place
    assert _job(c, "third")["state"] == "queued" and _job(c, "third")["place"] == 2 and _job(c, "third")["ahead"] == 2

    first = _wait(c, "first")
    assert first["state"] == "done", first
    assert [row["epoch"] for row in first["history"]] == [1, 2, 3, 4]  # every epoch, in order
    assert all(set(row) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"} for row in first["history"])

    # the second is cancelled mid-training (500 epochs would take minutes): it stops, and leaves no bundle
    running = _wait(c, "second", until=("running",))
    assert running["place"] == 0
    _wait_epochs(c, "second", 1)
    assert c.post("/api/projects/second/train/cancel").json()["job"]["state"] in ("running", "cancelled")
    cancelled = _wait(c, "second", timeout=30)
    assert cancelled["state"] == "cancelled" and len(cancelled["history"]) < 500
    assert c.get("/api/projects/second/report").status == 404
    assert not (studio.project("second") / ".studio" / "model").exists()
    assert c.post("/api/projects/second/train/cancel").status == 409

    third = _wait(c, "third")
    assert third["state"] == "done" and len(third["history"]) == 3

    # under the hood: the trainer's own report, as report.json holds it
    report = c.get("/api/projects/first/report").json()
    on_disk = json.loads((studio.project("first") / ".studio" / "model" / "report.json").read_text())
    assert report["labels"] == on_disk["labels"] == ["blue", "red"]
    assert report["fp32"]["confusion_matrix"] == on_disk["metrics"]["fp32"]["confusion_matrix"]
    assert sum(map(sum, report["fp32"]["confusion_matrix"])) == report["fp32"]["n"] > 0
    assert report["history"] == first["history"]
    assert set(report["accuracy"]) == {"fp32", "int8"}
    assert any(line.startswith("scp -r first-model ") for line in report["deploy"])

    reply = c.get("/api/projects/first/bundle.zip")
    assert reply.status == 200 and reply.headers["content-disposition"] == 'attachment; filename="first-model.zip"'
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        names = archive.namelist()
        assert all(n.startswith("first-model/") for n in names) and "first-model/manifest.json" in names
        archive.extractall(studio.root.parent / "unzipped")
    bundle = load_bundle(studio.root.parent / "unzipped" / "first-model")  # checks every file's SHA-256
    assert bundle.labels == ("blue", "red")


def _wait_epochs(c: Client, name: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(_job(c, name)["history"]) < n:
        assert time.monotonic() < deadline, _job(c, name)
        time.sleep(0.2)
