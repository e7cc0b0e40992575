"""The trained bundle as a zip to download, its report for "Under the hood", and the commands that put it on a Pi."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from trainer.studio.names import safe_file_stem
from trainer.studio.projects import Project, ProjectError


def bundle_name(project: Project) -> str:
    """The bundle's folder name inside the zip and on the Pi: the project's name, made shell-safe."""
    return f"{safe_file_stem(project.name)}-model"


def _require_model(project: Project) -> None:
    if not (project.model_dir / "manifest.json").is_file():
        raise ProjectError(f"project {project.name!r} has no trained model yet: train it first", 404)


def bundle_zip(project: Project) -> bytes:
    """The bundle folder (manifest, labels, ONNX models, report) zipped under `bundle_name(project)/`."""
    _require_model(project)
    buffer = io.BytesIO()
    top = bundle_name(project)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(project.model_dir.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(project.model_dir).as_posix()}")
    return buffer.getvalue()


def report(project: Project) -> dict[str, Any]:
    """What "Under the hood" shows, taken from the trainer's own report.json (trainer/report.py writes it)."""
    _require_model(project)
    data = json.loads((project.model_dir / "report.json").read_text(encoding="utf-8"))
    fp32 = data["metrics"]["fp32"]
    keys = ("labels", "accuracy", "n", "per_class", "precision", "recall", "support", "confusion_matrix")
    return {
        "labels": data["labels"],
        "fp32": {k: fp32[k] for k in keys if k in fp32},
        "accuracy": {variant: m["accuracy"] for variant, m in data["metrics"].items()},
        "history": data.get("history", []),
        "counts": data["data"]["counts"],
        "settings": {k: data["settings"][k] for k in ("backbone", "epochs", "batch_size", "lr") if k in data["settings"]},
        "deploy": deploy_commands(project),
    }


def deploy_commands(project: Project) -> list[str]:
    """The shell lines, in order, from the downloaded zip to the model running on a Pi (docs/raspberry-pi.md)."""
    name = bundle_name(project)
    steps = [
        (f"unzip {name}.zip", "on your computer, where the zip was saved"),
        (f".venv/bin/edge predict {name} {'clip.wav' if project.task == 'sound' else 'photo.jpg'}",
         f"try it on a {'recording' if project.task == 'sound' else 'photo'} first (in the EdgeTeach checkout)"),
        (f"scp -r {name} USER@raspberrypi.local:", "copy it to the Pi"),
        (f"sudo mv ~/{name} /var/lib/edgeteach/models/", "on the Pi"),
        ("sudo chown -R edgeteach: /var/lib/edgeteach/models", ""),
        ("sudoedit /etc/edgeteach/config.yaml", f"set the pipeline's  bundle: /var/lib/edgeteach/models/{name}"),
        ("sudo -u edgeteach edge run -c /etc/edgeteach/config.yaml", "try it by hand (Ctrl-C stops), or:"),
        ("sudo systemctl restart edgeteach", "run it as the service"),
    ]
    width = max(len(command) for command, _ in steps) + 2
    return [f"{command:<{width}}# {note}" if note else command for command, note in steps]
