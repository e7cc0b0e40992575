"""Turns pydantic's validation errors into lines for people editing a YAML file on a Pi over SSH: each one
names the key path as it appears in the file (`pipelines[0].threshold`), the line, the bad value and what to
write instead; an unknown key gets a "did you mean" hint."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """An unusable config. `errors` holds one friendly line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {line}" for line in errors)
        super().__init__(f"{source}: {len(errors)} problem{'s' if len(errors) != 1 else ''} in the config:\n{lines}")


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the discriminator's value ('camera') into the location of union members; the user
    never wrote that key, so it is dropped from the path we show."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part in ("camera", "microphone") and i > 0 and isinstance(loc[i - 1], int):
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's internal names for union branches / validators
        out.append(part)
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes or container types an annotation may hold (Optional/Union/Annotated peeled)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:  # Optional[X] / Union[X, Y] and X | Y
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _field_at(root: type[BaseModel], loc: tuple[Any, ...], data: Any) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Walks the models along an error location (using the input data to pick the union member) and
    returns (the model holding the last key, that key's FieldInfo)."""
    model: Any = root
    node: Any = data
    info: FieldInfo | None = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None, None
        holder = model
        info = model.model_fields.get(part)
        node = node.get(part) if isinstance(node, dict) else None
        if info is None:
            return holder, None
        if i == len(loc) - 1:
            return holder, info
        model = None
        for candidate in _unwrap(info.annotation):
            origin = typing.get_origin(candidate)
            if origin in (list, tuple):
                members = [m for arg in typing.get_args(candidate) for m in _unwrap(arg)]
                next_node = node[loc[i + 1]] if isinstance(node, list) and isinstance(loc[i + 1], int) and loc[i + 1] < len(node) else None
                kind = next_node.get("kind", "camera") if isinstance(next_node, dict) else "camera"
                for member in members:
                    if isinstance(member, type) and issubclass(member, BaseModel):
                        tag = member.model_fields.get("kind")
                        if tag is None or tag.default == kind:
                            model = member
                            break
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
            if model is not None:
                break
    return None, info


def _bounds(info: FieldInfo) -> tuple[Any, Any]:
    low = high = None
    for meta in info.metadata:
        ge, gt, le, lt = (getattr(meta, key, None) for key in ("ge", "gt", "le", "lt"))
        low = ge if ge is not None else (gt if gt is not None else low)
        high = le if le is not None else (lt if lt is not None else high)
    return low, high


LineMap = dict[tuple[Any, ...], int]


def yaml_lines(text: str) -> LineMap:
    """Maps key paths to 1-based line numbers, so errors can say where to look."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: LineMap = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                lines[path + (index,)] = value.start_mark.line + 1
                walk(value, path + (index,))

    if root is not None:
        walk(root, ())
    return lines


def problem_at(loc: tuple[Any, ...], lines: LineMap, message: str) -> str:
    """One problem line: the key path as written in the file, the line of the deepest key that exists in
    the file (a missing key points at its parent), then the message."""
    where = ""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            where = f" (line {lines[loc[:cut]]})"
            break
    return f"{_format_path(loc)}{where}: {message}"


def friendly_problem(error: Mapping[str, Any], data: Any, lines: LineMap, root: type[BaseModel]) -> str:
    """One pydantic error as one line; `root` is the model the data was validated against."""
    loc = _strip_tags(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    value = error.get("input")
    holder, info = _field_at(root, loc, data)
    note = f" ({info.description})" if info is not None and info.description else ""
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = sorted(holder.model_fields) if holder is not None else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        listing = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return problem_at(loc, lines, f"unknown key '{key}'; {hint}{listing}")
    if kind == "missing":
        return problem_at(loc, lines, f"required but missing; add it{note}")
    if kind == "union_tag_not_found":
        return problem_at(loc, lines, "no `kind`; add `kind: camera` or `kind: microphone`")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", value)
        return problem_at(loc + ("kind",), lines, f"{tag!r} is not a pipeline kind; write `kind: camera` or `kind: microphone`")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than") and info is not None:
        low, high = _bounds(info)
        if low is not None and high is not None:
            rule = f"must be between {low} and {high}"
        else:
            rule = error["msg"].replace("Input should be", "must be")
        return problem_at(loc, lines, f"{value!r} is not allowed: {rule}{note}")
    if kind == "value_error":
        return problem_at(loc, lines, str(error.get("msg", "")).removeprefix("Value error, "))
    message = str(error.get("msg", "invalid")).replace("Input should be", "must be").replace("String should", "must")
    shown = value if not isinstance(value, (dict, list)) else type(value).__name__
    return problem_at(loc, lines, f"{shown!r} is not allowed: {message[0].lower() + message[1:] if message else message}{note}")
