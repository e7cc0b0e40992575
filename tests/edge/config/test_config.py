"""The device config: what validates, and errors that name the key path, the value and the fix."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edge.cli import main as edge_main
from edge.config import (
    RESERVED_NAMES,
    CameraPipelineConfig,
    ConfigError,
    MicrophonePipelineConfig,
    example_config_text,
    load_config,
    parse_config,
    sanitise_device_id,
)
from edge.core.bundle import load_bundle, write_manifest
from edge.tools.config_check import check_config
from tests.support.onnx_models import color_bundle, tone_bundle


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    return info.value.errors


def test_example_config_validates_and_describes_two_pipelines(tmp_path: Path) -> None:
    path = _write(tmp_path, example_config_text())
    config = load_config(path)
    assert [p.kind for p in config.pipelines] == ["camera", "microphone"]
    camera, mic = config.pipelines
    assert isinstance(camera, CameraPipelineConfig) and isinstance(mic, MicrophonePipelineConfig)
    assert camera.bundle == str(tmp_path / "models" / "my-model")  # relative to the config file
    assert mic.smoothing.method == "n_of_m" and mic.smoothing.n == 2


def test_defaults_from_a_minimal_config(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "pipelines:\n  - {name: cam, kind: camera, bundle: /b}\n"))
    assert config.device_id == sanitise_device_id(config.device_id)
    assert config.health.host == "127.0.0.1" and config.health.port == 8321
    cam = config.pipelines[0]
    assert cam.source.uri == "0" and cam.publish.event_qos == 1 and cam.publish.retain_state is True
    assert cam.providers == ["cpu"] and cam.variant == "fp32"


def test_threshold_out_of_range_names_path_value_and_rule(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "pipelines:\n  - name: cam\n    kind: camera\n    bundle: /b\n    threshold: 1.7\n")
    assert len(errors) == 1
    line = errors[0]
    assert line.startswith("pipelines[0].threshold (line 5): 1.7 is not allowed: must be between 0 and 1")
    assert "a confidence" in line


def test_unknown_key_gets_did_you_mean(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "mqtt:\n  prot: 1883\npipelines:\n  - {name: cam, kind: camera, bundle: /b, treshold: 0.5}\n")
    assert any(e.startswith("mqtt.prot (line 2): unknown key 'prot'; did you mean 'port'?") for e in errors), errors
    assert any("pipelines[0].treshold" in e and "did you mean 'threshold'?" in e for e in errors), errors


def test_pipeline_kind_missing_or_wrong(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "pipelines:\n  - {name: a, bundle: /b}\n  - {name: b, kind: webcam, bundle: /b}\n")
    assert errors[0] == "pipelines[0] (line 2): no `kind`; add `kind: camera` or `kind: microphone`"
    assert errors[1].startswith("pipelines[1].kind (line 3): 'webcam' is not a pipeline kind")


def test_duplicate_and_unsafe_names(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "pipelines:\n  - {name: a, kind: camera, bundle: /b}\n  - {name: a, kind: microphone, bundle: /b}\n")
    assert errors == ["pipelines[1].name (line 3): two pipelines are named 'a' (also pipelines[0]); names must be unique because they "
                      "become MQTT topics — rename one"]
    errors = _errors(tmp_path, "pipelines:\n  - {name: 'kitchen/cam', kind: camera, bundle: /b}\n")
    assert errors[0].startswith("pipelines[0].name (line 2): 'kitchen/cam' is not allowed")
    assert "letters, digits, _ and -" in errors[0]


def test_smoothing_n_greater_than_m_and_missing_bundle(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "pipelines:\n  - name: m\n    kind: microphone\n    smoothing: {method: n_of_m, n: 4, m: 3}\n")
    assert any(e.startswith("pipelines[0].bundle") and "required but missing" in e for e in errors), errors
    assert any(e.startswith("pipelines[0].smoothing") and "n (4) cannot exceed m (3)" in e for e in errors), errors


def test_bad_types_and_yaml_syntax(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "mqtt:\n  port: abc\npipelines: []\n")
    assert errors[0].startswith("mqtt.port (line 2): 'abc' is not allowed: must be a valid integer")
    errors = _errors(tmp_path, "mqtt:\n  host: a\n    port: 1\n")
    assert errors[0].startswith("line 3, column") and "not valid YAML" in errors[0]
    errors = _errors(tmp_path, "- just\n- a list\n")
    assert "top level must be a mapping" in errors[0]
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_device_id_is_sanitised_for_topics() -> None:
    assert parse_config({"device_id": "Kitchen Pi.local"}).device_id == "kitchen-pi-local"
    assert sanitise_device_id("###") == "edgeteach"


def test_cli_check_ok_with_real_bundles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    color_bundle(tmp_path / "models" / "colors")
    tone_bundle(tmp_path / "models" / "tones")
    path = _write(
        tmp_path,
        "device_id: lab\npipelines:\n  - {name: cam, kind: camera, bundle: models/colors}\n"
        "  - {name: mic, kind: microphone, bundle: models/tones, source: {device: 2}}\n",
    )
    assert edge_main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "cam: camera 0" in out and "mic: microphone device 2" in out


def test_cli_check_reports_errors_and_wrong_bundle_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "pipelines:\n  - {name: cam, kind: camera, bundle: /b, threshold: 2}\n")
    assert edge_main(["config", "check", str(path)]) == 1
    assert "pipelines[0].threshold (line 2): 2 is not allowed" in capsys.readouterr().err
    tone_bundle(tmp_path / "tones")
    path = _write(tmp_path, "pipelines:\n  - {name: cam, kind: camera, bundle: tones}\n")
    assert edge_main(["config", "check", str(path)]) == 1
    assert "a camera pipeline needs an image bundle" in capsys.readouterr().err


def test_cli_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert edge_main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and "pipelines" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_cli_check_warns_when_two_pipelines_share_one_webcam(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        "pipelines:\n  - {name: a, kind: camera, bundle: /b, source: {uri: 0}}\n  - {name: b, kind: camera, bundle: /b, "
        "source: {uri: /dev/video0}}\n"
        "  - {name: c, kind: camera, bundle: /b, source: {uri: clip.mp4}}\n  - {name: d, kind: camera, bundle: /b, "
        "source: {uri: clip.mp4}}\n",
    )
    assert edge_main(["config", "check", "--no-bundles", str(path)]) == 0
    err = capsys.readouterr().err
    assert "pipelines a, b all open camera /dev/video0" in err and "c, d" not in err


# ---------------------------------------------------------------------------------------------------
# `edge config check`: every problem at once, including what the file points at


def _check(tmp_path: Path, text: str, open_bundles: bool = True) -> list[str]:
    return check_config(str(_write(tmp_path, text)), open_bundles=open_bundles).problems


def test_duplicate_names_come_out_with_the_other_problems(tmp_path: Path) -> None:
    # A pydantic validator on the list would only run once every pipeline is valid: here pipeline 2 is not.
    errors = _errors(tmp_path, "pipelines:\n  - {name: a, kind: camera, bundle: /b}\n  - {name: a, kind: camera, bundle: /b}\n"
                               "  - {name: c, kind: camera, bundle: /b, threshold: 3}\n")
    assert any(e.startswith("pipelines[1].name (line 3): two pipelines are named 'a'") for e in errors), errors
    assert any(e.startswith("pipelines[2].threshold (line 4): 3 is not allowed") for e in errors), errors


@pytest.mark.parametrize("name", RESERVED_NAMES)
def test_pipeline_names_that_are_device_topics_are_refused(tmp_path: Path, name: str) -> None:
    assert set(RESERVED_NAMES) == {"cmd", "llm", "stats", "status"}
    errors = _errors(tmp_path, f"mqtt:\n  port: 0\npipelines:\n  - {{name: {name}, kind: camera, bundle: /b}}\n")
    assert any(e.startswith(f"pipelines[0].name (line 4): '{name}' is reserved") and "pick another name" in e for e in errors), errors
    assert any(e.startswith("mqtt.port (line 2)") for e in errors), errors
    assert load_config(_write(tmp_path,
                              f"pipelines:\n  - {{name: {name}-cam, kind: camera, bundle: /b}}\n")).pipelines[0].name == f"{name}-cam"


def test_reconnect_delays_must_be_ordered(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "mqtt:\n  keepalive: 1\n  reconnect_min_delay: 60\n  reconnect_max_delay: 30\n")
    assert any(e.startswith("mqtt.reconnect_min_delay (line 3): reconnect_min_delay (60 s) is above "
                            "reconnect_max_delay (30 s)") for e in errors), errors
    assert any(e.startswith("mqtt.keepalive (line 2)") for e in errors), errors  # reported together
    # Against the default max (30 s) too, and equal delays are fine.
    assert any("(45 s) is above reconnect_max_delay (30 s)" in e for e in _errors(tmp_path, "mqtt:\n  reconnect_min_delay: 45\n"))
    assert load_config(_write(tmp_path, "mqtt:\n  reconnect_min_delay: 5\n  reconnect_max_delay: 5\n")).mqtt.reconnect_max_delay == 5


def test_an_enabled_llm_on_a_network_address_needs_a_key(tmp_path: Path) -> None:
    # Found when the config is read (edge config check, edge run), not by an LLM child that exits again and again.
    errors = _errors(tmp_path, "llm:\n  enabled: true\n  host: 0.0.0.0\n")
    assert any(e.startswith("llm.host (line 3): llm.host 0.0.0.0 is reachable from the network but llm.api_key is not set")
               and "llm.insecure_no_key: true" in e for e in errors), errors
    for fine in ("llm:\n  enabled: true\n  host: 0.0.0.0\n  api_key: k3y-k3y-k3y\n",  # a key
                 "llm:\n  enabled: true\n  host: 0.0.0.0\n  insecure_no_key: true\n",  # said out loud
                 "llm:\n  enabled: true\n  host: localhost\n",  # loopback
                 "llm:\n  enabled: false\n  host: 0.0.0.0\n"):  # not served by this config
        load_config(_write(tmp_path, fine))


def test_check_builds_each_onnx_session(tmp_path: Path) -> None:
    # Garbage bytes with a matching checksum: the manifest is consistent, only ONNX Runtime can tell.
    bundle = color_bundle(tmp_path / "models" / "colors")
    (bundle / "model.onnx").write_bytes(b"not an onnx model at all")
    write_manifest(bundle, load_bundle(bundle, verify_checksums=False).manifest)
    load_bundle(bundle)  # passes the manifest and checksum checks
    problems = _check(tmp_path, "pipelines:\n  - name: cam\n    kind: camera\n    bundle: models/colors\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith("pipelines[0].bundle (line 4): ") and "ONNX Runtime cannot load this model" in problems[0]
    assert _check(tmp_path, "pipelines:\n  - {name: cam, kind: camera, bundle: models/colors, enabled: false}\n") == []


def test_check_reads_the_mqtt_password_file(tmp_path: Path) -> None:
    problems = _check(tmp_path, f"mqtt:\n  username: edge\n  password_file: {tmp_path / 'missing'}\n")
    assert len(problems) == 1 and problems[0].startswith(f"mqtt.password_file (line 3): cannot read {tmp_path / 'missing'}"), problems
    (tmp_path / "a-folder").mkdir()
    assert _check(tmp_path, f"mqtt:\n  password_file: {tmp_path / 'a-folder'}\n")[0].startswith("mqtt.password_file (line 2): cannot read")
    (tmp_path / "secret").write_text("s3cret\n")
    assert _check(tmp_path, f"mqtt:\n  password_file: {tmp_path / 'secret'}\n") == []


def test_bundle_problems_have_lines_and_come_with_the_other_problems(tmp_path: Path) -> None:
    tone_bundle(tmp_path / "tones")
    problems = _check(
        tmp_path,
        "device_id: lab\npipelines:\n  - name: cam\n    kind: camera\n    bundle: missing\n"
        "  - {name: mic, kind: microphone, bundle: tones, variant: int8}\n  - {name: bad, kind: camera, bundle: tones, threshold: 2}\n",
    )
    assert problems[0].startswith("pipelines[2].threshold (line 7): 2 is not allowed"), problems
    assert problems[1].startswith(f"pipelines[0].bundle (line 5): {tmp_path / 'missing'}: no such bundle folder"), problems
    assert problems[2] == "pipelines[1].variant (line 6): the bundle has no int8 model (it has: fp32)", problems
    assert len(problems) == 3  # the invalid pipeline's bundle is not opened: its own problem is already there


def test_cli_check_reads_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The documented `edge config example | edge config check --no-bundles -`.
    monkeypatch.setattr("sys.stdin", io.StringIO(example_config_text()))
    assert edge_main(["config", "check", "--no-bundles", "-"]) == 0
    assert capsys.readouterr().out.startswith("<stdin>: OK\ndevice_id: kitchen-pi")
    # With the bundles it names in place (relative paths are taken from the current folder), the example
    # passes the full check.
    monkeypatch.chdir(tmp_path)
    color_bundle(tmp_path / "models" / "my-model")
    tone_bundle(tmp_path / "models" / "my-sound-model")
    monkeypatch.setattr("sys.stdin", io.StringIO(example_config_text().replace("variant: int8", "variant: fp32")))
    assert edge_main(["config", "check", "-"]) == 0, capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("pipelines:\n  - {name: a, kind: camera, bundle: nowhere}\n"))
    assert edge_main(["config", "check", "-"]) == 1
    assert "<stdin>: 1 problem in the config:\n  - pipelines[0].bundle (line 2): " in capsys.readouterr().err


def test_unknown_label_is_capped_at_64_characters(tmp_path: Path) -> None:
    ok = load_config(_write(tmp_path, "pipelines:\n  - {name: cam, kind: camera, bundle: /b, unknown_label: " + "u" * 64 + "}\n"))
    assert ok.pipelines[0].unknown_label == "u" * 64
    errors = _errors(tmp_path, "pipelines:\n  - name: cam\n    kind: camera\n    bundle: /b\n    unknown_label: " + "u" * 65 + "\n")
    assert len(errors) == 1 and errors[0].startswith("pipelines[0].unknown_label (line 5)"), errors
    assert "64" in errors[0], errors


@pytest.mark.parametrize("label", ["a\\nb", "tab\\there", "esc\\u001b[31m", "del\\u007f", "c1\\u0085"])
def test_unknown_label_with_control_characters_is_refused(tmp_path: Path, label: str) -> None:
    errors = _errors(tmp_path, f'pipelines:\n  - name: cam\n    kind: camera\n    bundle: /b\n    unknown_label: "{label}"\n')
    assert len(errors) == 1 and errors[0].startswith("pipelines[0].unknown_label (line 5)"), errors
    assert "control characters" in errors[0], errors


def test_unknown_label_may_hold_spaces_and_non_ascii_letters(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, 'pipelines:\n  - {name: cam, kind: camera, bundle: /b, unknown_label: "nichts erkannt ü"}\n'))
    assert config.pipelines[0].unknown_label == "nichts erkannt ü"
