"""Projects on disk: a project is a data folder in the layout `trainer train` reads (one folder per class)
plus `studio.json` (its settings) and `.studio/` (the last trained bundle; hidden, so the data scan skips it).
So a project made here trains with `trainer train PROJECT -o OUT` too, and a folder made by hand opens here."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.core.images import IMAGE_SUFFIXES
from trainer.class_order import ordered, read_order, rename_in_order
from trainer.studio.limits import StudioLimits
from trainer.studio.names import check_name

SETTINGS_FILE = "studio.json"
STATE_DIR = ".studio"
MODEL_DIR = "model"


class ProjectError(Exception):
    """A request the projects cannot honour; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Project:
    name: str
    root: Path

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

    def samples(self, class_name: str) -> list[str]:
        folder = self.class_dir(class_name)
        return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    def sample_path(self, class_name: str, sample: str) -> Path:
        # a sample is named by the listing above, never by a path the browser makes up
        if sample not in self.samples(class_name):
            raise ProjectError(f"class {class_name!r} has no sample {sample!r}", 404)
        return self.class_dir(class_name) / sample


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

    def create(self, name: object) -> Project:
        checked = check_name(name, "project", self.limits.max_name_chars)
        with self.lock:
            if checked in self.names():
                raise ProjectError(f"a project named {checked!r} already exists", 409)
            if len(self.names()) >= self.limits.max_projects:
                raise ProjectError(f"there are already {self.limits.max_projects} projects; delete one first", 409)
            root = self.root / checked
            root.mkdir()
            (root / SETTINGS_FILE).write_text(json.dumps({"task": "image"}) + "\n", encoding="utf-8")
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
        return {"name": project.name, "task": "image", "classes": classes,
                "has_model": (project.model_dir / "manifest.json").is_file()}
