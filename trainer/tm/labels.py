"""Class names from an export, in output order: labels.txt ("INDEX LABEL" lines, TFLite and Keras exports)
or metadata.json's `labels` (TF.js exports). The count must match the model's outputs."""

from __future__ import annotations

import json
from collections.abc import Sequence

from trainer.tm.errors import TmImportError

MAX_LABEL_CHARS = 200


def _check(labels: list[str], where: str) -> list[str]:
    if len(labels) < 2:
        raise TmImportError(f"{where}: {len(labels)} class(es); a classifier needs at least two — is this the right file?")
    for label in labels:
        if not label or len(label) > MAX_LABEL_CHARS or any(ord(c) < 32 for c in label):
            raise TmImportError(f"{where}: label {label[:40]!r} is empty, longer than {MAX_LABEL_CHARS} characters or holds control "
                                "characters; fix it in Teachable Machine and export again")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise TmImportError(f"{where}: label(s) {', '.join(duplicates)} appear twice; give every class its own name")
    return labels


def parse_labels_txt(data: bytes, where: str) -> list[str]:
    """labels.txt as Teachable Machine writes it: "0 cat", "1 dog", ... The index must be the line's position:
    the label order is the output order, and a file edited out of order would silently swap classes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TmImportError(f"{where}: not UTF-8 text ({exc}); export again from Teachable Machine") from exc
    labels: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if head.isdigit() and rest.strip():
            if int(head) != len(labels):
                raise TmImportError(f"{where}: line {line!r} has index {head} where {len(labels)} was expected; labels must be listed "
                                    "in output order, 0 first — restore the file Teachable Machine wrote")
            labels.append(rest.strip())
        else:
            labels.append(line)
    return _check(labels, where)


def parse_metadata_labels(data: bytes, where: str, key: str = "labels") -> list[str]:
    """metadata.json of a TF.js export: `labels` (image) or `wordLabels` (sound), in output order."""
    meta = parse_metadata(data, where)
    labels = meta.get(key)
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise TmImportError(f"{where}: no {key!r} list of names; a Teachable Machine export's metadata.json has one")
    return _check([label.strip() for label in labels], where)


def parse_metadata(data: bytes, where: str) -> dict[str, object]:
    try:
        meta = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TmImportError(f"{where}: not valid JSON ({exc}); download the export again") from exc
    if not isinstance(meta, dict):
        raise TmImportError(f"{where}: expected a JSON object")
    return meta


def check_class_count(labels: Sequence[str], classes: int, labels_where: str, model_where: str) -> None:
    if len(labels) != classes:
        raise TmImportError(f"{labels_where}: {len(labels)} labels, but {model_where} has {classes} outputs; the labels belong to another "
                            "model — use the labels file from the same Teachable Machine download")
