"""Rewrites imports and dotted module names from the old flat layout to the layered one (issue 11).

Usage (from the repository root):

    python scripts/restructure_imports.py tests/                 # rewrite every .py file under tests/ in place
    python scripts/restructure_imports.py --check tests/test_x.py # show what would change, change nothing
    python scripts/restructure_imports.py --move-tests           # git mv the old flat tests to tests/<part>/...
    python scripts/restructure_imports.py --group core edge/     # only one group of the tables (how the
                                                                  # branch applied them, one commit per group)

After merging a branch that still has the old layout (main, while this one was made):

    git merge main                                                # conflicts: mostly import blocks of tests
    python scripts/restructure_imports.py --resolve-conflicts $(git diff --name-only --diff-filter=U)
    git add -A && git commit                                      # (check what --resolve-conflicts left)
    python scripts/restructure_imports.py --move-tests
    python scripts/restructure_imports.py --paths edge trainer tests bench scripts deploy systemd docs \
        README.md pyproject.toml setup.cfg
    git diff; python -m pytest tests/test_architecture.py; the whole suite

What it rewrites, in .py files:
- `from edge.runtime.bundle import load_bundle` -> `from edge.core.bundle import load_bundle`; an import whose
  names go to different modules is split (`from edge.llm.core import LlmCore, QueueFullError` ->
  `from edge.llm.core import LlmCore` + `from edge.llm.worker import QueueFullError`);
- `from edge import evaluate` -> `from edge.core import evaluate`, `import edge.runtime.bundle as b` -> ...;
- renamed names (`CameraPipeline` -> `CameraPipelineConfig`): in the import and every use in the file (Python
  tokens only: names in strings and comments are left, except dotted paths below);
- dotted paths anywhere else in the file, strings and comments included: `"edge.runtime.bundle.load_bundle"`
  (mock targets), `-m edge.commands...`, logger names;
- in tests: `Path(__file__).resolve().parents[1]` (the repository, seen from a flat test) and `.parent`
  (tests/) become REPO and TESTS from tests.support.paths, so a test works at any depth.
In other files (.sh, .md, .toml, .service): the dotted paths only, and with --paths also file paths
(`edge/runtime/images.py` -> `edge/core/images.py`).

A name the tables do not place, imported from a module that became a package (`from edge.doctor import
_user`), is looked up in the new tree: the submodule that defines it is used. Anything it cannot place is
reported and left as it was. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------
# The tables. Each group is one step of the restructuring (one commit in the branch).

# old module -> new module
MODULE_GROUPS: dict[str, dict[str, str]] = {
    "core": {
        "edge.runtime": "edge.core",
        "edge.runtime.bundle": "edge.core.bundle",
        "edge.runtime.session": "edge.core.session",
        "edge.runtime.images": "edge.core.images",
        "edge.runtime.audio": "edge.core.audio",
        "edge.runtime.audio_windows": "edge.core.audio_windows",
        "edge.datasets": "edge.core.datasets",
        "edge.evaluate": "edge.core.evaluate",
        "edge.clikit": "edge.core.clikit",
    },
    "host": {
        "edge.systemd": "edge.host.systemd",
        "edge.procstats": "edge.host.procstats",
    },
    "config": {
        "edge.mqtt.settings": "edge.config.mqtt",
        "edge.llm.config": "edge.config.llm",
        "edge.config_check": "edge.tools.config_check",
    },
    "pipelines": {
        "edge.pipelines.common": "edge.pipelines.base",
    },
    "daemon": {
        "edge.daemon": "edge.daemon.daemon",
        "edge.health": "edge.daemon.health",
        "edge.mqtt.publisher": "edge.daemon.publisher",
        "edge.mqtt.commands": "edge.daemon.commands",
        "edge.mqtt.discovery": "edge.daemon.discovery",
    },
    "tools": {
        "edge.collect": "edge.tools.collect",
        "edge.predict": "edge.tools.predict",
    },
    "cli": {
        "edge.commands": "edge.cli.commands",
        "edge.commands.predict": "edge.cli.commands.predict",
        "edge.commands.config": "edge.cli.commands.config",
        "edge.commands.collect": "edge.cli.commands.collect",
        "edge.commands.run": "edge.cli.commands.run",
        "edge.commands.llm": "edge.cli.commands.llm",
        "edge.commands.doctor": "edge.cli.commands.doctor",
        "trainer.commands": "trainer.cli.commands",
        "trainer.commands.train": "trainer.cli.commands.train",
        "trainer.commands.train_audio": "trainer.cli.commands.train_audio",
        "trainer.commands.evaluate": "trainer.cli.commands.evaluate",
        "trainer.commands.demo": "trainer.cli.commands.demo",
    },
    "trainer": {
        "trainer.train": "trainer.head",
        "trainer.image_trainer": "trainer.image.job",
        "trainer.data": "trainer.image.data",
        "trainer.embeddings": "trainer.image.embeddings",
        "trainer.backbones": "trainer.image.backbones",
        "trainer.audio_trainer": "trainer.audio.job",
        "trainer.audio_data": "trainer.audio.data",
        "trainer.audio_frontend": "trainer.audio.frontend",
        "trainer.audio_models": "trainer.audio.models",
        "trainer.audio_train": "trainer.audio.loops",
        "trainer.live_demo": "trainer.demo.live",
        "trainer.samples": "trainer.demo.image_samples",
        "trainer.sound_samples": "trainer.demo.audio_samples",
        "trainer.speech_synth": "tests.support.speech_synth",
    },
    "support": {
        "tests.support.models": "tests.support.gguf_models",
        "tests.support.tiny_models": "tests.support.onnx_models",
        "tests.support.bundles": "tests.support.onnx_models",
    },
}

# (old module, old name) -> (new module, new name); the old module is the one code imported it from
NAME_GROUPS: dict[str, dict[tuple[str, str], tuple[str, str]]] = {
    "config": {
        ("edge.config", "CameraPipeline"): ("edge.config", "CameraPipelineConfig"),
        ("edge.config", "MicrophonePipeline"): ("edge.config", "MicrophonePipelineConfig"),
        ("edge.config", "CameraSource"): ("edge.config", "CameraSourceConfig"),
        ("edge.config", "MicrophoneSource"): ("edge.config", "MicrophoneSourceConfig"),
        ("edge.config", "_Strict"): ("edge.config.base", "StrictModel"),
        ("edge.config", "_PipelineBase"): ("edge.config.pipelines", "PipelineConfigBase"),
        ("edge.config", "_friendly"): ("edge.config.errors", "friendly_problem"),
    },
    "pipelines": {
        ("edge.pipelines.common", "PipelineCore"): ("edge.pipelines.base", "BasePipeline"),
        ("edge.pipelines.base", "StatusCallback"): ("edge.sources.base", "StatusCallback"),
    },
    "daemon": {
        ("edge.health", "MetricsText"): ("edge.daemon.metrics", "MetricsText"),
    },
    "llm": {
        ("edge.llm.worker", "QueueFull"): ("edge.llm.worker", "QueueFullError"),
        ("edge.llm.core", "QueueFullError"): ("edge.llm.worker", "QueueFullError"),
    },
    "trainer": {
        ("trainer.export", "ProbabilityModel"): ("trainer.image.backbones", "ImageProbabilityModel"),
        ("trainer.audio_models", "ProbabilitiesModel"): ("trainer.audio.models", "AudioProbabilityModel"),
        ("trainer.audio_models", "SoundClassifier"): ("trainer.audio.models", "AudioClassifier"),
        ("trainer.audio_train", "train_sound_classifier"): ("trainer.audio.loops", "train_end_to_end"),
    },
}

# Old flat test files -> their place in the mirrored tree (git mv). Includes tests that other engineers
# were adding on main while this branch was made; a line whose file does not exist is skipped.
TEST_MOVES: dict[str, str] = {
    "tests/test_bundle.py": "tests/edge/core/test_bundle.py",
    "tests/test_trainer_datasets.py": "tests/edge/core/test_datasets.py",
    "tests/test_config.py": "tests/edge/config/test_config.py",
    "tests/test_sources.py": "tests/edge/sources/test_sources.py",
    "tests/test_pipelines.py": "tests/edge/pipelines/test_pipelines.py",
    "tests/test_mqtt_connection.py": "tests/edge/mqtt/test_connection.py",
    "tests/test_mqtt_publisher.py": "tests/edge/daemon/test_publisher.py",
    "tests/test_doctor.py": "tests/edge/doctor/test_doctor.py",
    "tests/test_collect.py": "tests/edge/tools/test_collect.py",
    "tests/test_predict.py": "tests/edge/tools/test_predict.py",
    "tests/test_llm_cli.py": "tests/edge/llm/test_cli.py",
    "tests/test_llm_server.py": "tests/edge/llm/test_server.py",
    "tests/test_llm_worker.py": "tests/edge/llm/test_worker.py",
    "tests/test_audio_data.py": "tests/trainer/audio/test_data.py",
    "tests/test_audio_frontend.py": "tests/trainer/audio/test_frontend.py",
    "tests/test_audio_trainer.py": "tests/trainer/audio/test_job.py",
    "tests/test_trainer_backbones.py": "tests/trainer/image/test_backbones.py",
    "tests/test_trainer_data.py": "tests/trainer/image/test_data.py",
    "tests/test_trainer_pipeline.py": "tests/trainer/image/test_job.py",
    "tests/test_trainer_head_export.py": "tests/trainer/test_head_export.py",
    "tests/test_sound_samples.py": "tests/trainer/demo/test_audio_samples.py",
    "tests/test_daemon_lifecycle.py": "tests/e2e/test_daemon_lifecycle.py",
    "tests/test_daemon_mqtt.py": "tests/e2e/test_daemon_mqtt.py",
    "tests/test_daemon_llm.py": "tests/e2e/test_daemon_llm.py",
    "tests/test_deploy.py": "tests/e2e/test_deploy.py",
    "tests/test_llama_build.py": "tests/e2e/test_llama_build.py",
    "tests/test_live_demo.py": "tests/e2e/test_live_demo.py",
    "tests/test_daemon_reconnect.py": "tests/e2e/test_daemon_reconnect.py",
    "tests/test_daemon_reload.py": "tests/e2e/test_daemon_reload.py",
    # added on main meanwhile (the lead's merge): same rule, the folder of the code they test
    "tests/test_unit_bundle.py": "tests/edge/core/test_bundle_unit.py",
    "tests/test_unit_metrics.py": "tests/edge/core/test_evaluate_unit.py",
    "tests/test_unit_resample.py": "tests/edge/core/test_audio_unit.py",
    "tests/test_unit_postprocess.py": "tests/edge/pipelines/test_postprocess_unit.py",
    "tests/test_unit_commands.py": "tests/edge/daemon/test_commands_unit.py",
    "tests/test_unit_discovery.py": "tests/edge/daemon/test_discovery_unit.py",
    "tests/test_unit_llm_requests.py": "tests/edge/llm/test_requests_unit.py",
    "tests/test_unit_quantize.py": "tests/trainer/test_export_unit.py",
    "tests/test_trainer_learning.py": "tests/trainer/test_learning.py",
    "tests/support/models.py": "tests/support/gguf_models.py",
    "tests/support/tiny_models.py": "tests/support/onnx_models.py",
}


def merged(groups: Iterable[str] | None = None) -> tuple[dict[str, str], dict[tuple[str, str], tuple[str, str]]]:
    """The module and name tables of the given groups (all when None)."""
    wanted = set(groups) if groups else set(MODULE_GROUPS) | set(NAME_GROUPS)
    unknown = wanted - set(MODULE_GROUPS) - set(NAME_GROUPS)
    if unknown:
        raise SystemExit(f"unknown group(s): {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(sorted(set(MODULE_GROUPS) | set(NAME_GROUPS)))}")
    modules: dict[str, str] = {}
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for group in MODULE_GROUPS:
        if group in wanted:
            modules.update(MODULE_GROUPS[group])
    for group in NAME_GROUPS:
        if group in wanted:
            names.update(NAME_GROUPS[group])
    return modules, names


# ---------------------------------------------------------------------------------------------------
# What the new tree holds (to keep the rewrite idempotent and to place names of split modules)


class NewTree:
    """Modules under edge/, trainer/ and tests/ of the tree being rewritten, and the names each binds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, Path] = {}
        for top in ("edge", "trainer", "tests"):
            base = root / top
            if not base.is_dir():
                continue
            for path in base.rglob("*.py"):
                if "__pycache__" in path.parts or "fixtures" in path.parts:
                    continue
                rel = path.relative_to(root).with_suffix("")
                parts = list(rel.parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                self.modules[".".join(parts)] = path
        self._bound: dict[str, set[str]] = {}
        self._defined: dict[str, set[str]] = {}

    def is_module(self, dotted: str) -> bool:
        return dotted in self.modules

    def _scan(self, module: str) -> None:
        bound: set[str] = set()
        defined: set[str] = set()
        try:
            tree = ast.parse(self.modules[module].read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            defined.add(sub.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, (ast.If, ast.Try)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                        defined.add(sub.name)
                    elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                        for alias in sub.names:
                            bound.add((alias.asname or alias.name).split(".")[0])
        self._defined[module] = defined
        self._bound[module] = bound | defined

    def binds(self, module: str, name: str) -> bool:
        """`from module import name` works: a submodule, or a name bound at the module's top level."""
        if f"{module}.{name}" in self.modules:
            return True
        if module not in self.modules:
            return False
        if module not in self._bound:
            self._scan(module)
        return name in self._bound[module]

    def definer(self, package: str, name: str) -> str | None:
        """The one module at or under `package` that defines `name` (def, class or assignment)."""
        found = []
        for module in sorted(self.modules):
            if module == package or module.startswith(package + "."):
                if module not in self._defined:
                    self._scan(module)
                if name in self._defined[module]:
                    found.append(module)
        return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------------
# Resolving one old reference


@dataclass
class Rewriter:
    modules: dict[str, str]
    names: dict[tuple[str, str], tuple[str, str]]
    tree: NewTree
    notes: list[str] = field(default_factory=list)

    def old_module_prefix(self, parts: list[str], names: bool = True) -> int:
        """Length of the longest prefix of `parts` that is an old module of the tables (0: none)."""
        known = set(self.modules) | ({module for module, _ in self.names} if names else set())
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in known:
                return n
        return 0

    def new_module_prefix(self, parts: list[str]) -> int:
        for n in range(len(parts), 0, -1):
            if self.tree.is_module(".".join(parts[:n])):
                return n
        return 0

    def map_module(self, module: str) -> str:
        """The new name of an old module, its parents mapped too (`edge.runtime.x` under `edge.runtime`).
        A module of the new tree deeper than any old one is left (`edge.daemon.health` is new, while the old
        `edge.daemon` module became `edge.daemon.daemon`)."""
        parts = module.split(".")
        if self.new_module_prefix(parts) > self.old_module_prefix(parts, names=False):
            return module
        for n in range(len(parts), 0, -1):
            head = ".".join(parts[:n])
            if head in self.modules:
                return ".".join([self.modules[head], *parts[n:]])
        return module

    def map_name(self, module: str, name: str) -> tuple[str, str]:
        """(new module, new name) for `from module import name` in old code."""
        if (module, name) in self.names:
            return self.names[(module, name)]
        full = f"{module}.{name}"
        if self.tree.is_module(full) and full not in self.modules:
            return module, name  # `from edge.daemon import health`: a module of the new tree
        if full in self.modules:  # `from edge import evaluate`: the name is a module that moved
            new_full = self.modules[full]
            head, _, leaf = new_full.rpartition(".")
            return head, leaf
        new_module = self.map_module(module)
        if not self.tree.modules or self.tree.binds(new_module, name):
            return new_module, name
        place = self.tree.definer(new_module, name)
        if place is not None:
            return place, name
        if new_module != module or module in self.modules:
            self.notes.append(f"cannot place {module}.{name} in the new tree (kept as {new_module}.{name})")
        return new_module, name

    def map_dotted(self, dotted: str) -> str:
        """A dotted path in text (a mock target, a logger name, `-m edge.cli`): module part and one name."""
        parts = dotted.split(".")
        n_old = self.old_module_prefix(parts)
        if n_old == 0:
            return dotted
        if self.new_module_prefix(parts) > n_old:
            return dotted  # already the new layout (`edge.daemon.health`, not the old `edge.daemon`)
        module = ".".join(parts[:n_old])
        rest = parts[n_old:]
        if rest:
            new_module, new_name = self.map_name(module, rest[0])
            return ".".join([new_module, new_name, *rest[1:]])
        return self.map_module(module)


# ---------------------------------------------------------------------------------------------------
# Rewriting a file


DOTTED = re.compile(r"(?<![\w./-])((?:edge|trainer|tests)(?:\.[A-Za-z_]\w*)+)")


def _format_from(indent: str, module: str, names: list[str], multiline: bool, comment: str) -> str:
    tail = f"  {comment}" if comment else ""
    one = f"{indent}from {module} import {', '.join(names)}{tail}"
    if not multiline:
        return one
    body = "".join(f"{indent}    {name},\n" for name in names)
    return f"{indent}from {module} import ({tail}\n{body}{indent})"


def _trailing_comment(lines: list[str], end_line: int) -> str:
    """`# noqa: E402` and the like after an import (import statements hold no strings, so any # starts one)."""
    match = re.search(r"#.*$", lines[end_line - 1].rstrip("\n"))
    return match.group(0) if match else ""


def rewrite_python(text: str, rw: Rewriter) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        rw.notes.append(f"not valid Python ({exc.msg} at line {exc.lineno}): only dotted paths rewritten")
        return DOTTED.sub(lambda m: rw.map_dotted(m.group(1)), text)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []  # (first line, last line) 1-based inclusive -> replacement
    renames: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                continue
            top = node.module.split(".")[0]
            if top not in ("edge", "trainer", "tests"):
                continue
            groups: dict[str, list[str]] = {}
            changed = False
            for alias in node.names:
                if alias.name == "*":
                    groups.setdefault(rw.map_module(node.module), []).append("*")
                    changed |= rw.map_module(node.module) != node.module
                    continue
                new_module, new_name = rw.map_name(node.module, alias.name)
                if new_name != alias.name and alias.asname is None:
                    renames[alias.name] = new_name
                entry = new_name if alias.asname is None else f"{new_name} as {alias.asname}"
                if new_module != node.module or new_name != alias.name:
                    changed = True
                bucket = groups.setdefault(new_module, [])
                if entry not in bucket:
                    bucket.append(entry)
            if not changed:
                continue
            first, last = node.lineno, node.end_lineno or node.lineno
            indent = re.match(r"\s*", lines[first - 1]).group(0)
            comment = _trailing_comment(lines, last) if first == last else ""
            multiline = first != last
            out = [_format_from(indent, module, names, multiline and len(groups) == 1, comment) for module, names in groups.items()]
            edits.append((first, last, "\n".join(out) + "\n"))
        elif isinstance(node, ast.Import):
            new_aliases = []
            changed = False
            for alias in node.names:
                if alias.name.split(".")[0] not in ("edge", "trainer", "tests"):
                    new_aliases.append(alias.name if alias.asname is None else f"{alias.name} as {alias.asname}")
                    continue
                new = rw.map_dotted(alias.name)
                changed |= new != alias.name
                new_aliases.append(new if alias.asname is None else f"{new} as {alias.asname}")
            if not changed:
                continue
            first, last = node.lineno, node.end_lineno or node.lineno
            indent = re.match(r"\s*", lines[first - 1]).group(0)
            comment = _trailing_comment(lines, last)
            edits.append((first, last, f"{indent}import {', '.join(new_aliases)}{'  ' + comment if comment else ''}\n"))
    import_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            import_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    # dotted paths in everything that is not an import statement
    for index, line in enumerate(lines):
        if index + 1 not in import_lines:
            lines[index] = DOTTED.sub(lambda m: rw.map_dotted(m.group(1)), line)
    for first, last, replacement in sorted(edits, reverse=True):
        lines[first - 1:last] = [replacement]
    out = "".join(lines)
    if edits:
        out = _sort_import_runs(out)
    # names used from a renamed import, and `module.OldName` attribute uses of modules that were imported
    for (module, old), (_, new) in rw.names.items():
        if old != new and re.search(rf"\b{re.escape(module)}\b", text) and re.search(rf"\b{re.escape(old)}\b", text):
            renames.setdefault(old, new)
    if renames:
        out = _rename_tokens(out, renames, rw)
    return out


FIRST_PARTY_FROM = re.compile(r"^(\s*)from ((?:edge|trainer|tests)(?:\.\w+)*) import [^()\\]*$")


def _sort_import_runs(text: str) -> str:
    """Keeps runs of one-line first-party `from` imports sorted by module after a rename moved one."""
    lines = text.splitlines(keepends=True)
    try:  # only real import statements: code inside strings (a child process's script) is left alone
        statements = {node.lineno for node in ast.walk(ast.parse(text)) if isinstance(node,
                                                                                      ast.ImportFrom) and node.lineno == node.end_lineno}
    except SyntaxError:
        return text
    i = 0
    while i < len(lines):
        match = FIRST_PARTY_FROM.match(lines[i].rstrip("\n")) if i + 1 in statements else None
        if not match:
            i += 1
            continue
        j = i
        while j < len(lines) and j + 1 in statements:
            other = FIRST_PARTY_FROM.match(lines[j].rstrip("\n"))
            if not other or other.group(1) != match.group(1):
                break
            j += 1
        run = sorted(lines[i:j], key=lambda line: FIRST_PARTY_FROM.match(line.rstrip("\n")).group(2))
        merged_run: list[str] = []
        for line in run:  # two imports from one module (a name moved next to others) become one
            module = FIRST_PARTY_FROM.match(line.rstrip("\n")).group(2)
            last = merged_run[-1] if merged_run else ""
            if (last and FIRST_PARTY_FROM.match(last.rstrip("\n")).group(2) == module
                    and "#" not in last + line and " as " not in last + line):
                names = [n.strip() for n in last.split(" import ", 1)[1].split(",") + line.split(" import ", 1)[1].split(",")]
                unique = sorted(dict.fromkeys(names), key=_isort_key)
                merged_run[-1] = f"{match.group(1)}from {module} import {', '.join(unique)}\n"
            else:
                merged_run.append(line)
        lines[i:j] = merged_run
        i = i + len(merged_run)
    return "".join(lines)


def _isort_key(name: str) -> tuple[int, str]:
    """isort's default order inside one import: CONSTANTS, Classes, functions."""
    bare = name.split(" as ")[0]
    return (0 if bare.isupper() and len(bare) > 1 else 1 if bare[:1].isupper() else 2, bare)


def _rename_tokens(text: str, renames: dict[str, str], rw: Rewriter) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError) as exc:
        rw.notes.append(f"cannot tokenize for renames ({exc}); names left: {', '.join(renames)}")
        return text
    lines = text.splitlines(keepends=True)
    hits = [(tok.start, tok.end, renames[tok.string]) for tok in tokens if tok.type == tokenize.NAME and tok.string in renames]
    for (row, col), (_, end_col), new in sorted(hits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[end_col:]
    return "".join(lines)


def path_map(modules: dict[str, str], root: Path) -> dict[str, str]:
    """File paths of the moved modules (`edge/runtime/images.py` -> `edge/core/images.py`) and of the moved
    tests that are in their new place already, longest first."""
    out: dict[str, str] = {}
    for old, new in modules.items():
        old_path, new_path = old.replace(".", "/"), new.replace(".", "/")
        out[old_path + ".py"] = new_path + ".py"
        if any(other.startswith(old + ".") for other in modules):  # the old module was a package
            out[old_path + "/"] = new_path + "/"
    for old, new in TEST_MOVES.items():
        if (root / new).exists():
            out[old] = new
    return dict(sorted(out.items(), key=lambda item: -len(item[0])))


def rewrite_text(text: str, rw: Rewriter, paths: bool) -> str:
    text = DOTTED.sub(lambda m: rw.map_dotted(m.group(1)), text)
    mapping = path_map(rw.modules, rw.tree.root) if paths else {}
    if mapping:
        pattern = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(p) for p in mapping) + r")")

        text = pattern.sub(lambda match: mapping[match.group(1)], text)
    return text


def rewrite_file(path: Path, rw: Rewriter, check: bool, paths: bool) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    rw.notes = []
    if re.search(r"^<<<<<<< ", text, re.M):
        print(f"{path}: skipped: it still has merge conflict markers (see --resolve-conflicts)", file=sys.stderr)
        return False
    new = rewrite_python(text, rw) if path.suffix == ".py" else rewrite_text(text, rw, paths)
    if path.suffix == ".py" and is_test_file(path, rw.tree.root):
        new = rewrite_file_paths(new, rw)
    if path.suffix == ".py" and paths:
        new = rewrite_text(new, rw, paths)
    for note in rw.notes:
        print(f"{path}: note: {note}", file=sys.stderr)
    if new == text:
        return False
    if check:
        import difflib

        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), str(path), str(path)))
    else:
        path.write_text(new, encoding="utf-8")
    return True


def is_test_file(path: Path, root: Path) -> bool:
    """A test module or conftest under tests/ (not tests/support/, whose helpers keep their own paths)."""
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return False
    return rel.parts[0] == "tests" and "support" not in rel.parts[:-1] and (rel.name.startswith("test_") or rel.name == "conftest.py")


def iter_files(targets: list[str]) -> Iterable[Path]:
    for target in targets:
        path = Path(target)
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file() and "__pycache__" not in sub.parts and "fixtures" not in sub.parts and sub.suffix in (
                        ".py", ".sh", ".md", ".toml", ".service", ".conf", ".cfg", ".ini", ".txt", ".yaml", ".yml"):
                    yield sub
        elif path.is_file():
            yield path


# ---------------------------------------------------------------------------------------------------
# Tests that found the repository from their own place


# A flat test (tests/test_x.py) found the repository as Path(__file__).resolve().parents[1] and tests/ as
# .parent; in the mirrored tree the depth varies, so tests take both from tests.support.paths instead.
FILE_PATH = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?\.(?:parents\[(\d)\]|parent\b)")


def _unbound_path_names(text: str) -> list[str]:
    """REPO or TESTS used by a test but bound nowhere in it (a merge kept the use and lost the import)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {(a.asname or a.name) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    return sorted({"REPO", "TESTS"} & loaded - bound)


def rewrite_file_paths(text: str, rw: Rewriter) -> str:
    """`Path(__file__).resolve().parents[1]` -> REPO and `.parent` -> TESTS (from tests.support.paths), in a
    test written for the flat layout. `REPO = Path(__file__)...` becomes the import itself."""
    if not FILE_PATH.search(text):
        missing = _unbound_path_names(text)
        return _add_import(text, "tests.support.paths", missing) if missing else text
    needed: set[str] = set()

    def swap(match: re.Match[str]) -> str:
        level = int(match.group(1)) if match.group(1) is not None else 0
        if level > 1:
            rw.notes.append(f"left {match.group(0)}: above the repository in the flat layout")
            return match.group(0)
        name = "REPO" if level == 1 else "TESTS"
        needed.add(name)
        return name

    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        new = FILE_PATH.sub(swap, line)
        bare = re.fullmatch(r"(REPO|TESTS) = \1\s*(#.*)?\n?", new)
        if bare and not line.startswith((" ", "\t")):
            continue  # `REPO = Path(__file__)...` at module level: the import binds it now
        out.append(new)
    text = "".join(out)
    names = sorted(needed)
    if names:
        text = _add_import(text, "tests.support.paths", names)
    # where the assignment was, at most two blank lines before the next top-level statement
    return re.sub(r"\n(?:[ \t]*\n){3,}(?=\S)", "\n\n\n", text)


def _add_import(text: str, module: str, names: list[str]) -> str:
    """Adds `from module import names` after the last top-level import (merged if one from module exists)."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    last = 0
    last_module: str | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == module and node.lineno == node.end_lineno:
            have = [alias.name for alias in node.names]
            merged = sorted(dict.fromkeys(have + names), key=_isort_key)
            lines[node.lineno - 1] = f"from {module} import {', '.join(merged)}\n"
            return "".join(lines)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            last = node.end_lineno or node.lineno
            last_module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
    statement = f"from {module} import {', '.join(names)}\n"
    if last and (last_module or "").split(".")[0] not in ("edge", "trainer", "tests"):
        statement = "\n" + statement  # the first first-party import: a section of its own
    lines.insert(last, statement)
    return _sort_import_runs("".join(lines))


# ---------------------------------------------------------------------------------------------------
# Merge conflicts the move leaves behind


CONFLICT = re.compile(r"^<<<<<<< [^\n]*\n(.*?)^=======\n(.*?)^>>>>>>> [^\n]*\n", re.S | re.M)
# an import (or a line of a parenthesized one), a blank, or the flat layout's `REPO = Path(__file__)...`
IMPORT_LINE = re.compile(r"^\s*(from \S+ import .+|import \S+.*|\s*[\w, ]+,?\s*|\)|[A-Z_]+ = Path\(__file__\).*|)$")
DECORATOR_LINE = re.compile(r"^\s*@pytest\.mark\.\w+.*$")


def resolve_conflicts(text: str, notes: list[str]) -> str:
    """Resolves the conflicts a merge of the old layout into this one typically leaves: both sides only
    imports (the union is kept; the rewrite then maps, sorts and merges it), or this branch's side only
    pytest marks (`@pytest.mark.slow`) where the other side added code (theirs first, then the mark, so it
    stays on the function it was on). Any other conflict is left for a person and reported."""

    def only(pattern: re.Pattern[str], block: str) -> bool:
        return all(pattern.match(line) for line in block.splitlines())

    def resolve(match: re.Match[str]) -> str:
        ours, theirs = match.group(1), match.group(2)
        if only(IMPORT_LINE, ours) and only(IMPORT_LINE, theirs):
            mine, other = ours.splitlines(keepends=True), theirs.splitlines(keepends=True)
            imports = [line for line in other + mine if line.strip() and not FILE_PATH.search(line)]
            rest = [line for line in other if FILE_PATH.search(line)]  # `REPO = Path(__file__)...`: after the imports
            return "".join(dict.fromkeys(imports)) + ("\n" + "".join(rest) if rest else "")
        if ours.strip() and only(DECORATOR_LINE, ours):
            return theirs + ours
        notes.append(f"conflict left as it is (line {text[:match.start()].count(chr(10)) + 1}): not only imports")
        return match.group(0)

    resolved = CONFLICT.sub(resolve, text)
    return _sort_import_runs(resolved) if resolved != text and "<<<<<<< " not in resolved else resolved


# ---------------------------------------------------------------------------------------------------
# Moving the flat tests


def move_tests(root: Path, check: bool) -> list[tuple[str, str]]:
    """git mv each old test file that exists to its new place, creating the packages' __init__.py files.
    Run the rewrite over them afterwards: it also replaces `Path(__file__)...` with tests.support.paths."""
    moved = []
    for old, new in TEST_MOVES.items():
        src, dst = root / old, root / new
        if not src.exists() or dst.exists():
            continue
        moved.append((old, new))
        if check:
            continue
        folder = dst.parent
        folder.mkdir(parents=True, exist_ok=True)
        package = folder
        while package != root / "tests" and root / "tests" in package.parents:
            init_file = package / "__init__.py"
            if not init_file.exists():
                init_file.write_text("")
                subprocess.run(["git", "add", str(init_file)], cwd=root, check=True)
            package = package.parent
        subprocess.run(["git", "mv", old, new], cwd=root, check=True)
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("targets", nargs="*", help="files or folders to rewrite in place")
    parser.add_argument("--check", action="store_true", help="print the diff, change nothing; exit 1 when something would change")
    parser.add_argument("--group", action="append", help="apply only this group of the tables (repeatable; default: all)")
    parser.add_argument("--paths", action="store_true", help="also rewrite file paths (edge/runtime/x.py -> edge/core/x.py)")
    parser.add_argument("--move-tests", action="store_true", help="git mv the old flat tests (TEST_MOVES) first")
    parser.add_argument("--resolve-conflicts", action="store_true",
                        help="in the given files, resolve merge conflicts that are only imports (or only pytest marks on our side) first")
    parser.add_argument("--root", default=str(REPO), help="the repository (default: this script's)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if args.move_tests:
        for old, new in move_tests(root, args.check):
            print(f"{'would move' if args.check else 'moved'} {old} -> {new}")
    if args.resolve_conflicts:
        for path in iter_files(args.targets):
            text = path.read_text(encoding="utf-8")
            if "<<<<<<< " not in text:
                continue
            notes: list[str] = []
            resolved = resolve_conflicts(text, notes)
            for note in notes:
                print(f"{path}: {note}", file=sys.stderr)
            if resolved != text and not args.check:
                path.write_text(resolved, encoding="utf-8")
                print(f"resolved the import conflicts of {path}", file=sys.stderr)
    modules, names = merged(args.group)
    rw = Rewriter(modules, names, NewTree(root))
    changed = [path for path in iter_files(args.targets) if path.resolve() != Path(__file__).resolve() and rewrite_file(path, rw,
                                                                                                                        args.check,
                                                                                                                        args.paths)]
    for path in changed:
        print(f"{'would rewrite' if args.check else 'rewrote'} {path}", file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
