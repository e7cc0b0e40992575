"""Names that become folder and file names: checked so nothing a browser sends can leave the project folder."""

from __future__ import annotations

import re
import unicodedata

# Letters (any script), digits, space, dash, underscore, dot; no leading dot (hidden), no slashes.
_NAME = re.compile(r"^[\w][\w .\-]*$")
_FILE_SAFE = re.compile(r"[^\w.\-]+")


class BadName(ValueError):
    """A project or class name that cannot be a folder name; the message says what is allowed."""


def check_name(name: object, what: str, max_chars: int) -> str:
    """The name, stripped, or BadName (names with `/`, `..`, control characters, a leading dot)."""
    if not isinstance(name, str):
        raise BadName(f"{what} name must be text")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise BadName(f"{what} name is empty")
    if len(name) > max_chars:
        raise BadName(f"{what} name is longer than {max_chars} characters")
    if name in (".", "..") or ".." in name or not _NAME.match(name) or name.startswith("_"):
        raise BadName(f"{what} name {name!r} is not allowed: use letters, digits, spaces, '-', '_' and '.', "
                         f"not starting with '_' or '.', and no '..'")
    return name


def safe_file_stem(filename: str, max_chars: int = 40) -> str:
    """A file stem from a browser-given file name: path parts dropped, odd characters replaced."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _FILE_SAFE.sub("_", unicodedata.normalize("NFC", stem)).strip("._")
    return stem[:max_chars] or "image"
