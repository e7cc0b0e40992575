"""The documentation's commands and the real command lines agree.

Every `edge` / `trainer` command in a fenced shell block of README.md or docs/*.md must name real
sub-commands and only real flags (checked by walking the argparse parsers, not by running anything), and
every flag of every sub-command must be documented under a heading that names the command, so neither the
docs nor the CLI can drift without a test failing with the file and line.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
PROGRAMS = ("edge", "trainer")
HELP_FLAGS = ("-h", "--help")
# Words that run the command after them: `sudo -u edgeteach edge doctor`, `time trainer train ...`.
PREFIX_WORDS = ("sudo", "env", "time", "nohup", "exec")
SUDO_OPTIONS_WITH_VALUE = ("-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U")
OPERATORS = ("|", "||", "&&", ";", "&", "(", ")")
REDIRECTIONS = (">", ">>", "<", "<<", ">&", "&>", ">|")


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# ---------------------------------------------------------------------------------------------------
# The parsers, as plain data


def parser_tree(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """{"options": {flag: takes_a_value}, "subcommands": {name: tree}} for a parser and its sub-parsers."""
    options: dict[str, bool] = {}
    subcommands: dict[str, Any] = {}
    for action in parser._actions:  # argparse has no public way to list them
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subcommands[name] = parser_tree(sub)
        for flag in action.option_strings:
            options[flag] = action.nargs != 0
    return {"options": options, "subcommands": subcommands}


def _edge_tree() -> dict[str, Any]:
    from edge.cli import build_parser

    return parser_tree(build_parser())


def _trainer_tree() -> dict[str, Any] | None:
    """trainer's parser imports torch (its --backbone choices come from the backbones), so it is built in a
    child process: this test stays light, and on a device-only install (no torch) it is None."""
    code = ("import json; from tests.test_docs_commands import parser_tree; from trainer.cli import build_parser; "
            "print(json.dumps(parser_tree(build_parser())))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        if "No module named 'torch'" in run.stderr:
            return None
        raise AssertionError(f"cannot build trainer's parser:\n{run.stderr}")
    tree: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return tree


@pytest.fixture(scope="module")
def trees() -> dict[str, dict[str, Any] | None]:
    return {"edge": _edge_tree(), "trainer": _trainer_tree()}


def _require(trees: dict[str, dict[str, Any] | None], program: str) -> dict[str, Any]:
    tree = trees[program]
    if tree is None:
        pytest.skip(f"{program}'s parser needs torch, which is not installed here (scripts/setup.sh trainer)")
    return tree


# ---------------------------------------------------------------------------------------------------
# The commands in the docs


@dataclass(frozen=True)
class DocCommand:
    file: str
    line: int
    text: str
    program: str  # "edge" or "trainer"
    args: tuple[str, ...]  # what follows the program, up to the next pipe, && or redirection

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.text.strip()}"


def shell_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, line number of the block's first line, lines) of every fenced code block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"^\s*```\s*([\w-]*)", lines[index])
        if not match:
            index += 1
            continue
        language, start = match.group(1).lower(), index + 2
        end = index + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        yield language, start, lines[index + 1 : end]
        index = end + 1


def logical_lines(language: str, start: int, lines: list[str]) -> Iterator[tuple[int, str]]:
    """(line number, command) with backslash continuations joined; in `console` blocks only `$ ` lines."""
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(lines):
        number = start + offset
        if pending is None:
            if language == "console":
                if not raw.lstrip().startswith("$ "):
                    continue
                raw = raw.lstrip()[2:]
            pending = (number, "")
        text = pending[1] + raw
        if text.endswith("\\"):
            pending = (pending[0], text[:-1] + " ")
            continue
        yield pending[0], text
        pending = None
    if pending is not None:
        yield pending


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: not a command line we can read
        return []


def simple_commands(tokens: list[str]) -> Iterator[list[str]]:
    """Splits on pipes, && and the like, and drops redirections (`> edge.yaml`)."""
    current: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            if current:
                yield current
            current = []
        elif token in REDIRECTIONS:
            skip_next = True
        else:
            current.append(token)
    if current:
        yield current


def _program(word: str) -> str | None:
    """`edge`, `.venv/bin/edge`, `/usr/local/bin/edge`, ... -> "edge"; anything else -> None."""
    for program in PROGRAMS:
        if word == program or word.endswith(f"/bin/{program}"):
            return program
    return None


def invocation(words: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(program, its arguments) when this simple command runs edge or trainer."""
    index = 0
    while index < len(words):
        word = words[index]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):  # VAR=value before the command
            index += 1
        elif word in PREFIX_WORDS:
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 2 if words[index] in SUDO_OPTIONS_WITH_VALUE else 1
        else:
            break
    if index >= len(words):
        return None
    program = _program(words[index])
    return (program, tuple(words[index + 1 :])) if program else None


def doc_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for path in doc_files():
        name = str(path.relative_to(REPO))
        for language, start, lines in shell_blocks(path.read_text(encoding="utf-8")):
            if language not in SHELL_LANGUAGES:
                continue
            for number, text in logical_lines(language, start, lines):
                for words in simple_commands(_tokens(text)):
                    hit = invocation(words)
                    if hit is not None:
                        found.append(DocCommand(name, number, text, *hit))
    return found


def drift(tree: dict[str, Any], program: str, args: tuple[str, ...]) -> str | None:
    """What is wrong with `program args` for the program's parser tree (None when nothing is)."""
    node, path = tree, [program]
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            return None  # the rest is positional
        if word.startswith("-") and word != "-" and not re.match(r"^-\d", word):
            flag = word.split("=", 1)[0]
            if flag not in node["options"]:
                known = ", ".join(sorted(f for f in node["options"] if f not in HELP_FLAGS)) or "none"
                return f"unknown flag {flag} for `{' '.join(path)}` (its flags: {known})"
            if flag in HELP_FLAGS:
                return None
            index += 2 if node["options"][flag] and "=" not in word else 1
            continue
        if node["subcommands"]:
            if word not in node["subcommands"]:
                return f"unknown sub-command {word!r} after `{' '.join(path)}` (known: {', '.join(sorted(node['subcommands']))})"
            node = node["subcommands"][word]
            path.append(word)
        index += 1
    if node["subcommands"]:
        return f"`{' '.join(path)}` needs a sub-command ({', '.join(sorted(node['subcommands']))})"
    return None


def test_the_docs_have_edge_and_trainer_commands() -> None:
    commands = doc_commands()
    programs = {c.program for c in commands}
    assert programs == {"edge", "trainer"}, programs
    # The extraction itself: sudo, pipes, && and redirections.
    words = list(simple_commands(_tokens("edge config example | sudo -u edgeteach .venv/bin/edge config check - && cat x > y")))
    assert [invocation(w) for w in words] == [("edge", ("config", "example")), ("edge", ("config", "check", "-")), None]


def test_no_command_hides_in_an_untagged_block() -> None:
    """Commands must sit in ```bash blocks, or the test below would not see them."""
    hidden = []
    for path in doc_files():
        for language, start, lines in shell_blocks(path.read_text(encoding="utf-8")):
            if language:
                continue
            for offset, line in enumerate(lines):
                words = _tokens(line)
                if words and (_program(words[0]) or words[0] in PREFIX_WORDS and invocation(words)):
                    hidden.append(f"{path.relative_to(REPO)}:{start + offset}: {line.strip()}")
    assert not hidden, "tag these code blocks ```bash so their commands are checked:\n" + "\n".join(hidden)


@pytest.mark.parametrize("program", PROGRAMS)
def test_documented_commands_are_real(program: str, trees: dict[str, dict[str, Any] | None]) -> None:
    tree = _require(trees, program)
    problems = []
    for command in doc_commands():
        if command.program != program:
            continue
        problem = drift(tree, program, command.args)
        if problem:
            problems.append(f"{command.where()}\n    {problem}")
    assert not problems, "commands in the docs that the CLI does not accept:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------
# Every flag is documented


def leaf_commands(tree: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """(command path, its flags other than -h) for every parser that has flags of its own."""
    flags = [f for f in tree["options"] if f not in HELP_FLAGS]
    if flags:
        yield path, flags
    for name, sub in tree["subcommands"].items():
        yield from leaf_commands(sub, path + (name,))


def sections() -> list[tuple[str, int, str, str]]:
    """(file, line, heading text, the section: up to the next heading of the same or a higher level)."""
    found = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        fenced = False
        headings = []
        for number, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            match = None if fenced else re.match(r"^(#{1,6})\s+(.*)", line)
            if match:
                headings.append((number, len(match.group(1)), match.group(2)))
        for i, (number, level, title) in enumerate(headings):
            end = next((n for n, lvl, _ in headings[i + 1 :] if lvl <= level), len(lines))
            found.append((str(path.relative_to(REPO)), number + 1, title, "\n".join(lines[number:end])))
    return found


def undocumented(tree: dict[str, Any], program: str) -> list[str]:
    every = sections()
    problems = []
    for path, flags in leaf_commands(tree, (program,)):
        command = " ".join(path)
        homes = [s for s in every if s[2].startswith(f"`{command}`")]
        if not homes:
            problems.append(f"`{command}`: no heading starts with it (e.g. \"### `{command}`\" above a table of its flags); its "
                            f"flags: {', '.join(flags)}")
            continue
        text = "\n".join(s[3] for s in homes)
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
        if missing:
            where = ", ".join(f"{s[0]}:{s[1]}" for s in homes)
            problems.append(f"`{command}` ({where}): not documented: {', '.join(missing)}")
    return problems


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_flag_is_documented(program: str, trees: dict[str, dict[str, Any] | None]) -> None:
    problems = undocumented(_require(trees, program), program)
    assert not problems, "flags missing from README.md and docs/*.md:\n" + "\n".join(problems)
