"""cmd/reload only loads bundle folders inside models_dir (edge.daemon.commands.confined_bundle): `..`, absolute
paths elsewhere and symlinks leading out are refused, and a missing folder, a folder that is not a bundle and a
path outside models_dir all get the same reply text (the reason goes to the log only), so a requester on the
classroom network cannot probe the device's files. The real daemon and broker: tests/e2e/test_reload_confinement.py."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from edge.config.edge import load_config
from edge.daemon.commands import RELOAD_PATH_REFUSED, CommandError, CommandHandler, confined_bundle
from edge.mqtt.connection import IncomingMessage
from edge.mqtt.topics import Topics

TOPICS = Topics("edgeteach/dev")


def _bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    return folder


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    _bundle(root / "colors")
    _bundle(root / "nested" / "deep")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("x")
    _bundle(tmp_path / "public" / "evil")
    return root


# -- the path check ----------------------------------------------------------------------------------------


def test_a_bundle_inside_is_accepted_as_its_resolved_folder(models: Path) -> None:
    assert confined_bundle(str(models / "colors"), models) == ((models / "colors").resolve(), "")
    assert confined_bundle(str(models / "nested" / "deep"), str(models)) == ((models / "nested" / "deep").resolve(), "")
    assert confined_bundle(str(models / "colors" / "manifest.json"), models) == ((models / "colors").resolve(), "")


def test_a_relative_path_is_taken_under_models_dir(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path / "public")  # not where the daemon's cwd happens to be
    assert confined_bundle("colors", models) == ((models / "colors").resolve(), "")
    folder, why = confined_bundle("evil", models)
    assert folder is None and "no such folder" in why


def test_a_path_outside_is_refused(models: Path, tmp_path: Path) -> None:
    folder, why = confined_bundle(str(tmp_path / "public" / "evil"), models)
    assert folder is None and why == f"{(tmp_path / 'public' / 'evil').resolve()} is outside models_dir {models.resolve()}"


def test_a_sibling_folder_sharing_the_prefix_is_outside(models: Path, tmp_path: Path) -> None:
    _bundle(tmp_path / "models-evil" / "b")  # "/x/models-evil".startswith("/x/models") must not count as inside
    folder, why = confined_bundle(str(tmp_path / "models-evil" / "b"), models)
    assert folder is None and "outside models_dir" in why


@pytest.mark.parametrize("request_path", ["{m}/../public/evil", "{m}/colors/../../public/evil", "../public/evil"])
def test_dot_dot_escaping_is_refused(models: Path, request_path: str) -> None:
    folder, why = confined_bundle(request_path.format(m=models), models)
    assert folder is None and "outside models_dir" in why


def test_dot_dot_staying_inside_is_fine(models: Path) -> None:
    assert confined_bundle(f"{models}/nested/../colors", models) == ((models / "colors").resolve(), "")


def test_a_symlink_inside_pointing_outside_is_refused(models: Path, tmp_path: Path) -> None:
    (models / "link").symlink_to(tmp_path / "public" / "evil", target_is_directory=True)
    (models / "dirlink").symlink_to(tmp_path / "public", target_is_directory=True)
    for path in (models / "link", models / "dirlink" / "evil"):
        folder, why = confined_bundle(str(path), models)
        assert folder is None and "outside models_dir" in why, (path, why)


def test_a_symlink_inside_pointing_inside_is_followed(models: Path) -> None:
    (models / "current").symlink_to(models / "colors", target_is_directory=True)
    assert confined_bundle(str(models / "current"), models) == ((models / "colors").resolve(), "")


def test_models_dir_given_through_a_symlink_still_contains_its_bundles(models: Path, tmp_path: Path) -> None:
    (tmp_path / "models-link").symlink_to(models, target_is_directory=True)
    assert confined_bundle(str(models / "colors"), tmp_path / "models-link") == ((models / "colors").resolve(), "")
    assert confined_bundle(str(tmp_path / "models-link" / "colors"), models) == ((models / "colors").resolve(), "")


def test_missing_and_not_a_bundle_inside(models: Path) -> None:
    assert confined_bundle(str(models / "missing"), models) == (None, f"{(models / 'missing').resolve()}: no such folder")
    empty = (models / "empty").resolve()
    assert confined_bundle(str(models / "empty"), models) == (None, f"{empty}: not a bundle (no manifest.json in a folder)")
    assert confined_bundle(str(models / "file.txt"), models)[0] is None
    (models / "colors" / "labels.txt").write_text("red\n")  # a file inside a bundle is not the bundle
    assert confined_bundle(str(models / "colors" / "labels.txt"), models) == (
        None, f"{(models / 'colors' / 'labels.txt').resolve()}: not a bundle (no manifest.json in a folder)")
    assert confined_bundle(str(models / "empty" / "manifest.json"), models)[0] is None


def test_a_symlink_loop_or_a_nul_byte_is_refused_not_raised(models: Path) -> None:
    (models / "loop").symlink_to(models / "loop")
    assert confined_bundle(str(models / "loop"), models)[0] is None
    folder, why = confined_bundle("col\0ors", models)
    assert folder is None and why


# -- the command -------------------------------------------------------------------------------------------


class _Conn:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False, **_: Any) -> bool:
        self.published.append((topic, payload))
        return True

    def reply(self, request: IncomingMessage, payload: bytes, qos: int = 1) -> bool:
        return True


class _Pipeline:
    name, kind = "cam", "camera"

    def __init__(self) -> None:
        self.reloaded: list[str] = []

    def reload(self, bundle: str) -> None:
        if "bad" in bundle:
            raise ValueError("a detailed bundle problem")
        self.reloaded.append(bundle)

    def stats(self) -> dict[str, Any]:
        return {"model_sha256": "abc"}


class _Target:
    def __init__(self, pipeline: _Pipeline) -> None:
        self.pipeline = pipeline
        self.reloaded: list[str] = []

    def pipelines(self) -> dict[str, Any]:
        return {"cam": self.pipeline}

    def pipeline_reloaded(self, name: str) -> None:
        self.reloaded.append(name)


def _handler(models_dir: Path | None) -> tuple[CommandHandler, _Pipeline, _Target, _Conn]:
    pipeline, conn = _Pipeline(), _Conn()
    target = _Target(pipeline)
    return CommandHandler(conn, TOPICS, target, 10_000, models_dir=models_dir), pipeline, target, conn  # type: ignore[arg-type]


def _reply(handler: CommandHandler, conn: _Conn, bundle: str) -> dict[str, Any]:
    handler.handle(IncomingMessage(TOPICS.command("reload"), json.dumps({"pipeline": "cam", "bundle": bundle}).encode()))
    return json.loads(conn.published[-1][1])


def test_the_three_refusals_give_the_same_reply_and_the_reasons_go_to_the_log(
        models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    handler, pipeline, target, conn = _handler(models)
    paths = [str(models / "missing"), str(models / "empty"), str(tmp_path / "public" / "evil")]
    with caplog.at_level(logging.WARNING, logger="edge.daemon.commands"):
        replies = [_reply(handler, conn, path) for path in paths]
    errors = {r["error"] for r in replies}
    assert errors == {f"cam: {RELOAD_PATH_REFUSED}"}, errors
    assert all(not r["ok"] for r in replies) and handler.failed == 3
    assert "no such bundle under models_dir" in RELOAD_PATH_REFUSED and "old model keeps running" in RELOAD_PATH_REFUSED
    for path in paths:
        assert path not in RELOAD_PATH_REFUSED
    assert not pipeline.reloaded and not target.reloaded  # never loaded
    logged = [r.getMessage() for r in caplog.records]
    assert any("no such folder" in m for m in logged) and any("not a bundle" in m for m in logged)
    assert any("outside models_dir" in m for m in logged), logged
    assert all(m.startswith("reload of cam refused: ") for m in logged), logged


def test_a_bundle_inside_is_reloaded_from_its_resolved_folder(models: Path) -> None:
    handler, pipeline, target, conn = _handler(models)
    (models / "current").symlink_to(models / "colors", target_is_directory=True)
    reply = _reply(handler, conn, str(models / "current"))
    assert reply["ok"] and reply["bundle"] == str(models / "current") and reply["model_sha256"] == "abc"
    assert pipeline.reloaded == [str((models / "colors").resolve())] and target.reloaded == ["cam"]


def test_a_bad_bundle_inside_keeps_its_detailed_reason(models: Path) -> None:
    handler, _, _, conn = _handler(models)
    _bundle(models / "bad")
    reply = _reply(handler, conn, str(models / "bad"))
    assert reply["error"] == "cam: new bundle refused, the old model keeps running: a detailed bundle problem"


def test_the_confinement_is_checked_before_anything_is_loaded(models: Path, tmp_path: Path) -> None:
    handler, pipeline, _, _ = _handler(models)
    with pytest.raises(CommandError, match="no such bundle under models_dir"):
        handler._reload({"pipeline": "cam", "bundle": str(tmp_path / "public" / "evil")})
    assert pipeline.reloaded == []


def test_without_models_dir_any_path_is_passed_on_unchanged(tmp_path: Path) -> None:
    handler, pipeline, _, _ = _handler(None)
    handler._reload({"pipeline": "cam", "bundle": "relative/x"})
    assert pipeline.reloaded == ["relative/x"]


# -- the config key ----------------------------------------------------------------------------------------


def test_models_dir_defaults_to_the_config_files_folder_and_resolves_relative_paths(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "edge.yaml"
    config.parent.mkdir()
    config.write_text("pipelines: []\n")
    assert load_config(config).models_dir == str(config.parent.resolve())
    config.write_text("models_dir: models\n")
    assert load_config(config).models_dir == str(config.parent.resolve() / "models")
    config.write_text("models_dir: /var/lib/edgeteach/models\n")
    assert load_config(config).models_dir == "/var/lib/edgeteach/models"
    assert os.path.isabs(load_config(config).models_dir or "")


def test_a_name_too_long_for_the_file_system_is_refused_not_raised(models: Path) -> None:
    # ENAMETOOLONG from the checks after resolving (found by bench/fuzz_network.py: a traceback and an internal error)
    folder, why = confined_bundle("x" * 300, models)
    assert folder is None and why == f"cannot look at {models.resolve() / ('x' * 300)} (File name too long)"
