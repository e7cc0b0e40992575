"""The training queue: one training at a time on this machine (a classroom shares it), the others wait in
order and can see their place. Job state lives here, on the server, so a page reloaded mid-training picks it
up again. Each training runs `worker.train` in a child process."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.datasets import DatasetError, scan_dataset
from trainer.image.backbones import BUILDERS
from trainer.studio import worker
from trainer.studio.limits import (
    DEFAULT_BACKBONE,
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_FINE_TUNE,
    DEFAULT_LR,
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_FINE_TUNE,
    MAX_LR,
)
from trainer.studio.projects import DATASET_TASK, STATE_DIR, Project, ProjectError, ProjectStore

log = logging.getLogger(__name__)

MAX_HISTORY = MAX_EPOCHS  # one row per epoch, so bounded by the epochs a page may ask for


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH
    lr: float = DEFAULT_LR
    backbone: str = DEFAULT_BACKBONE
    fine_tune: int = DEFAULT_FINE_TUNE


SETTING_NAMES = tuple(TrainSettings.__dataclass_fields__)


def parse_settings(body: object) -> TrainSettings:
    """The "Advanced" panel's values, checked: whole numbers in range, a positive learning rate, a backbone of
    the trainer's registry, a fine-tune depth from 0 to MAX_FINE_TUNE."""
    if not isinstance(body, dict):
        raise ProjectError("send the settings as a JSON object: {\"epochs\": 50, \"batch_size\": 16, \"lr\": 0.001}")
    unknown = set(body) - set(SETTING_NAMES)
    if unknown:
        raise ProjectError(f"unknown setting(s) {sorted(unknown)}; the settings are {', '.join(SETTING_NAMES)}")
    given = {**vars(TrainSettings()), **body}
    epochs, batch, lr, backbone, fine_tune = (given[k] for k in SETTING_NAMES)
    for name, value, low, top in (("epochs", epochs, 1, MAX_EPOCHS), ("batch_size", batch, 1, MAX_BATCH),
                                  ("fine_tune", fine_tune, 0, MAX_FINE_TUNE)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
            raise ProjectError(f"{name} must be a whole number from {low} to {top}, got {value!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr <= MAX_LR:
        raise ProjectError(f"lr (learning rate) must be a number above 0 and at most {MAX_LR:g}, got {lr!r}")
    if not isinstance(backbone, str) or backbone not in BUILDERS:
        shown = backbone[:60] if isinstance(backbone, str) else backbone
        raise ProjectError(f"backbone must be one of {', '.join(BUILDERS)}, got {shown!r}")
    return TrainSettings(int(epochs), int(batch), float(lr), backbone, int(fine_tune))


@dataclass
class Job:
    id: str
    project: Project
    settings: TrainSettings
    state: str = "queued"  # queued, running, done, failed, cancelled
    phase: str = "waiting for its turn"
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class TrainingQueue:
    """Jobs in arrival order, run one by one on a background thread."""

    def __init__(self, store: ProjectStore, cache_dir: Path | None = None, max_queue: int = 20) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.max_queue = max_queue
        self._waiting: deque[Job] = deque()
        self._latest: dict[str, Job] = {}  # the last job of each project, for the page
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="studio-training", daemon=True)
        self._thread.start()

    def submit(self, project: Project, settings: TrainSettings) -> Job:
        try:  # refused now, with the trainer's own message, rather than after waiting in the queue
            scan_dataset(project.root, DATASET_TASK[project.task])
        except DatasetError as exc:
            raise ProjectError(str(exc).replace(str(project.root), project.name), 400) from None
        with self._cond:
            current = self._latest.get(project.name)
            if current is not None and current.active:
                raise ProjectError(f"project {project.name!r} is already training or waiting to; cancel it first", 409)
            if len(self._waiting) >= self.max_queue:
                raise ProjectError(f"{self.max_queue} trainings are already waiting; try again when one is done", 429)
            job = Job(secrets.token_hex(6), project, settings)
            self._waiting.append(job)
            self._latest[project.name] = job
            self._cond.notify_all()
        log.info("training of %s queued (%s)", project.name, settings)
        return job

    def cancel(self, project_name: str) -> Job:
        with self._cond:
            job = self._latest.get(project_name)
            if job is None or not job.active:
                raise ProjectError(f"project {project_name!r} has no training to cancel", 409)
            job.cancel.set()
            if job in self._waiting:
                self._waiting.remove(job)
                self._end(job, "cancelled")
            return job

    def status(self, project_name: str) -> dict[str, object] | None:
        with self._cond:
            job = self._latest.get(project_name)
            if job is None:
                return None
            place = list(self._waiting).index(job) + 1 if job in self._waiting else 0
            ahead = place - 1 + (1 if self._running is not None else 0) if place else 0  # trainings before this one
            return {"id": job.id, "state": job.state, "phase": job.phase, "place": place, "ahead": ahead,
                    "settings": vars(job.settings), "history": list(job.history), "error": job.error,
                    "seconds": round((job.finished or time.time()) - job.started, 1) if job.started else None}

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            for job in [*self._waiting, *([self._running] if self._running else [])]:
                job.cancel.set()
            self._cond.notify_all()
        self._thread.join(timeout=15)

    def _end(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.time()
        job.phase = {"done": "finished", "failed": "failed", "cancelled": "cancelled"}[state]

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                self._running = job
                job.state, job.started = "running", time.time()
            try:
                self._run(job)
            except Exception as exc:  # one broken training must not stop the queue
                log.exception("training of %s failed", job.project.name)
                with self._cond:
                    self._end(job, "failed", f"training failed: {exc}")
            finally:
                with self._cond:
                    self._running = None

    def _run(self, job: Job) -> None:
        state_dir = job.project.root / STATE_DIR
        state_dir.mkdir(exist_ok=True)
        new_dir = state_dir / "model.new"
        shutil.rmtree(new_dir, ignore_errors=True)
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no copy of this server's threads
        events = ctx.Queue()
        s = job.settings
        child = ctx.Process(target=worker.train, name=f"studio-train-{job.project.name}",
                            args=(job.project.root, new_dir, s.epochs, s.batch_size, s.lr, self.cache_dir, events),
                            kwargs={"backbone": s.backbone, "fine_tune": s.fine_tune}, daemon=True)
        child.start()
        outcome: tuple[str, str | None] | None = None
        while outcome is None:
            if job.cancel.is_set():
                child.terminate()
                outcome = ("cancelled", None)
                break
            try:
                kind, value = events.get(timeout=0.2)
            except queue.Empty:
                if not child.is_alive():
                    outcome = ("failed", f"the training process ended unexpectedly (exit code {child.exitcode})")
                continue
            with self._cond:
                if kind == "phase":
                    job.phase = str(value)
                elif kind == "epoch" and isinstance(value, dict) and len(job.history) < MAX_HISTORY:
                    job.history.append(value)
                    job.phase = f"training: epoch {len(job.history)} of {s.epochs}"
                elif kind == "error":
                    outcome = ("failed", str(value))
                elif kind == "done":
                    outcome = ("done", None)
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
        events.close()
        if outcome[0] == "done":
            with self.store.lock:  # the finished bundle replaces the last one in one step
                final = job.project.model_dir
                shutil.rmtree(final, ignore_errors=True)
                new_dir.rename(final)
        else:
            shutil.rmtree(new_dir, ignore_errors=True)
        with self._cond:
            self._end(job, outcome[0], outcome[1])
        log.info("training of %s: %s%s", job.project.name, outcome[0], f" ({outcome[1]})" if outcome[1] else "")
