"""Projects on disk: a project is a data folder in the layout `trainer train` reads (one folder per class, plus
`_background_noise_` for sound) plus `studio.json` (its settings: {"task": "image" or "sound", ...}) and
`.studio/` (the last trained bundle; hidden, so the data scan skips it). So a project made here trains with
`trainer train PROJECT -o OUT` too, and a folder made by hand opens here (its task read from its files)."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edge.core.audio import AUDIO_SUFFIXES
from edge.core.audio_windows import BACKGROUND_LABEL
from edge.core.datasets import detect_task
from edge.core.images import IMAGE_SUFFIXES
from trainer.class_order import ordered, read_order, read_settings, rename_in_order
from trainer.studio.limits import BACKGROUND_SECONDS, CLIP_SECONDS, StudioLimits
from trainer.studio.names import check_name

SETTINGS_FILE = "studio.json"
STATE_DIR = ".studio"
MODEL_DIR = "model"
# The Studio's words for its two kinds of project, and what edge.core.datasets and the trainer call them.
TASKS = ("image", "sound")
DATASET_TASK = {"image": "image", "sound": "audio"}
SUFFIXES = {"image": IMAGE_SUFFIXES, "sound": AUDIO_SUFFIXES}


def check_task(task: object) -> str:
    """The task a new project asks for ("image" when it names none), or a 400 that lists the choices."""
    if task is None:
        return TASKS[0]
    if task not in TASKS:
        raise ProjectError(f"task {task!r} is not one the Studio makes: choose {' or '.join(map(repr, TASKS))}")
    return str(task)


def read_task(root: Path) -> str:
    """A project's task: studio.json's, else (a folder made by hand) the kind of file it holds most of."""
    task = read_settings(root).get("task")
    if isinstance(task, str) and task in TASKS:
        return task
    return "sound" if detect_task(root) == "audio" else "image"


class ProjectError(Exception):
    """A request the projects cannot honour; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Project:
    name: str
    root: Path

    @cached_property  # read once per request: every listing of samples asks
    def task(self) -> str:
        return read_task(self.root)

    @property
    def model_dir(self) -> Path:
        return self.root / STATE_DIR / MODEL_DIR

    def class_dir(self, name: str) -> Path:
        folder = self.root / name
        if name not in self.classes():  # only an existing class folder: never `..` or a path
            raise ProjectError(f"project {self.name!r} has no class {name!r}", 404)
        return folder

    def classes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

    def sample_dir(self, name: str) -> Path:
        """Where a class's samples go: its folder, or for a sound project also `_background_noise_` (made on
        its first recording; not a class a page can rename or delete)."""
        if name == BACKGROUND_LABEL and self.task == "sound":
            return self.root / BACKGROUND_LABEL
        return self.class_dir(name)

    def samples(self, class_name: str) -> list[str]:
        folder = self.sample_dir(class_name)
        if not folder.is_dir():  # a sound project's background before its first recording
            return []
        suffixes = SUFFIXES[self.task]
        return sorted(p.name for p in folder.iterdir()
                      if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))

    def sample_path(self, class_name: str, sample: str) -> Path:
        # a sample is named by the listing above, never by a path the browser makes up
        if sample not in self.samples(class_name):
            raise ProjectError(f"class {class_name!r} has no sample {sample!r}", 404)
        return self.sample_dir(class_name) / sample


class ProjectStore:
    """The projects folder. A lock serialises changes to folders (two tabs renaming one class at once)."""

    def __init__(self, root: Path, limits: StudioLimits) -> None:
        self.root = root
        self.limits = limits
        self.lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

    def get(self, name: str) -> Project:
        if name not in self.names():  # only an existing child folder, whatever the name holds
            raise ProjectError(f"no project named {name!r}", 404)
        return Project(name, self.root / name)

    def create(self, name: object, task: object = None) -> Project:
        checked = check_name(name, "project", self.limits.max_name_chars)
        kind = check_task(task)
        with self.lock:
            if checked in self.names():
                raise ProjectError(f"a project named {checked!r} already exists", 409)
            if len(self.names()) >= self.limits.max_projects:
                raise ProjectError(f"there are already {self.limits.max_projects} projects; delete one first", 409)
            root = self.root / checked
            root.mkdir()
            (root / SETTINGS_FILE).write_text(json.dumps({"task": kind}) + "\n", encoding="utf-8")
        return Project(checked, root)

    def add_class(self, project: Project, name: object) -> str:
        checked = check_name(name, "class", self.limits.max_name_chars)
        with self.lock:
            existing = project.classes()
            if checked in existing:
                raise ProjectError(f"class {checked!r} already exists", 409)
            if len(existing) >= self.limits.max_classes:
                raise ProjectError(f"a project holds at most {self.limits.max_classes} classes", 409)
            (project.root / checked).mkdir()
        return checked

    def rename_class(self, project: Project, old: str, new: object) -> str:
        checked = check_name(new, "class", self.limits.max_name_chars)
        with self.lock:
            source = project.class_dir(old)
            if checked in project.classes():
                raise ProjectError(f"class {checked!r} already exists", 409)
            source.rename(project.root / checked)
            rename_in_order(project.root, old, checked)  # it keeps its place among the classes
        return checked

    def delete_class(self, project: Project, name: str) -> None:
        with self.lock:
            shutil.rmtree(project.class_dir(name))

    def delete_sample(self, project: Project, class_name: str, sample: str) -> None:
        with self.lock:
            project.sample_path(class_name, sample).unlink()

    def summary(self, project: Project) -> dict[str, object]:
        # in the project's class order, which is the order of the labels its training makes (trainer.class_order)
        classes = [{"name": c, "samples": project.samples(c)} for c in ordered(project.classes(), read_order(project.root))]
        summary: dict[str, object] = {"name": project.name, "task": project.task, "classes": classes,
                                      "has_model": (project.model_dir / "manifest.json").is_file()}
        if project.task == "sound":
            summary["background"] = {"name": BACKGROUND_LABEL, "samples": project.samples(BACKGROUND_LABEL)}
            # the page's starting lengths and its bounds (the server checks them again on upload)
            summary["recording"] = {"clip_seconds": CLIP_SECONDS, "background_seconds": BACKGROUND_SECONDS,
                                    "max_clip_seconds": self.limits.max_clip_seconds,
                                    "max_background_seconds": self.limits.max_background_seconds}
        return summary
