"""The order of a project's classes, which is the order of the labels in its bundle (and so of the device's
outputs and of the report's tables). The Studio keeps it in the project's `studio.json` ("classes": [...]);
`trainer train` on that folder follows it too, so the page and the command line make the same bundle.
Class folders the list does not name come after it, alphabetically; names it holds that are no class
folder (a class deleted since) are ignored."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

SETTINGS_FILE = "studio.json"  # the Studio's settings beside the class folders
ORDER_KEY = "classes"
MAX_SETTINGS_BYTES = 64 * 1024  # a list of a few hundred names; anything bigger is not ours


def ordered(labels: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
    """`labels` with those named in `order` first, in that order, then the rest alphabetically."""
    present = set(labels)
    first = list(dict.fromkeys(name for name in order if name in present))
    return (*first, *sorted(present - set(first)))


def read_settings(data_dir: Path) -> dict[str, object]:
    """The folder's studio.json as a dict; {} when there is none or it is not a JSON object."""
    path = Path(data_dir) / SETTINGS_FILE
    try:
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            log.warning("%s is over %d bytes; ignored", path, MAX_SETTINGS_BYTES)
            return {}
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read (%s); the classes keep their alphabetical order", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


def read_order(data_dir: Path) -> tuple[str, ...]:
    """The class order saved in the folder's studio.json; () when there is none."""
    order = read_settings(data_dir).get(ORDER_KEY)
    if not isinstance(order, list):
        return ()
    return tuple(name for name in order if isinstance(name, str))


def write_order(data_dir: Path, order: Sequence[str]) -> None:
    """Saves `order` in the folder's studio.json, keeping its other settings; replaced in one step, so a
    training reading it meanwhile sees the old order or the new one, never half a file."""
    path = Path(data_dir) / SETTINGS_FILE
    settings = read_settings(data_dir) | {ORDER_KEY: list(order)}
    tmp = path.with_name(f".{SETTINGS_FILE}.tmp")
    tmp.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def rename_in_order(data_dir: Path, old: str, new: str) -> None:
    """A renamed class keeps its place in the saved order (nothing to do when no order is saved)."""
    order = read_order(data_dir)
    if old in order:
        write_order(data_dir, [new if name == old else name for name in order])
