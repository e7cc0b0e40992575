"""`edge doctor` names the one owner of the LLM server and reports a mismatch with its fix (issue 12 item 10).

The decision is tested on the unit states systemctl reports (a device's systemd cannot run in the test
machine); the real doctor, which finds no systemd here, is run end to end for the one case that shows up
without it: llm.run_by systemd where nothing would start the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main as edge_main
from edge.config.llm import LlmSettings
from edge.doctor.llm import check_llm_owner
from edge.doctor.resources import UnitState
from tests.edge.doctor.test_doctor import mqtt_at, write_config
from tests.support.broker import free_port

ENABLED = UnitState("enabled", "active")
STARTED_BY_HAND = UnitState("disabled", "active")
DISABLED = UnitState("disabled", "inactive")
MISSING = UnitState("not-found", "inactive")


def llm(**values: object) -> LlmSettings:
    return LlmSettings.model_validate({"enabled": True, **values})


@pytest.mark.parametrize("unit", [ENABLED, STARTED_BY_HAND])
def test_daemon_owner_while_the_unit_runs_is_two_servers(unit: UnitState) -> None:
    result = check_llm_owner(llm(run_by="daemon", port=8089), unit)
    assert result.status == "fail"
    assert "two servers race for port 8089" in result.detail
    assert "llm.run_by: systemd" in result.fix and "systemctl disable --now edgeteach-llm.service" in result.fix


@pytest.mark.parametrize("unit, fix", [(MISSING, "deploy/install.sh"), (DISABLED, "systemctl enable --now edgeteach-llm.service"),
                                       (None, "llm.run_by: daemon")])
def test_systemd_owner_without_the_unit_is_no_server(unit: UnitState | None, fix: str) -> None:
    result = check_llm_owner(llm(run_by="systemd"), unit)
    assert result.status == "fail" and "nothing starts the LLM server" in result.detail
    assert fix in result.fix


def test_one_owner_is_fine() -> None:
    assert check_llm_owner(llm(run_by="systemd"), ENABLED).status == "ok"
    assert check_llm_owner(llm(run_by="daemon"), DISABLED).status == "ok"
    assert check_llm_owner(llm(run_by="daemon"), MISSING).status == "ok"
    assert check_llm_owner(llm(run_by="daemon"), None).status == "ok"


def test_unit_running_while_the_llm_is_off_is_a_warning() -> None:
    result = check_llm_owner(LlmSettings(enabled=False), ENABLED)
    assert result.status == "warn" and "llm.enabled is false" in result.detail
    assert check_llm_owner(LlmSettings(enabled=False), DISABLED).status == "ok"


def test_doctor_reports_a_systemd_owner_where_systemd_does_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: the doctor asks it about edgeteach-llm.service instead")
    config = write_config(tmp_path / "edge.yaml", mqtt=mqtt_at(free_port()), llm={"enabled": True, "run_by": "systemd"})

    code = edge_main(["doctor", "-c", str(config), "--json", "--no-open"])

    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["llm owner"]["status"] == "fail" and "systemd does not run here" in checks["llm owner"]["detail"]
    assert "llm.run_by: daemon" in checks["llm owner"]["fix"]
