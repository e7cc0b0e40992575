"""Rules that span several keys, checked on the raw data, not in pydantic validators: a validator on a list
or a model only runs once everything inside it is valid, so its problem would show up only after the user
fixed the others, and `edge config check` promises every problem at once."""

from __future__ import annotations

from typing import Any

from edge.config.errors import LineMap, problem_at
from edge.config.llm import exposure_problem
from edge.config.mqtt import MqttSettings
from edge.core.hosts import is_loopback


def pipeline_entries(data: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) of each pipeline written as a mapping, whatever else is wrong with the data."""
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, list):
        return []
    return [(index, entry) for index, entry in enumerate(pipelines) if isinstance(entry, dict)]


def duplicate_name_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """Pipeline names become MQTT topic levels and metric labels, so two pipelines cannot share one."""
    first: dict[str, int] = {}
    problems: list[str] = []
    for index, entry in pipeline_entries(data):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(problem_at(("pipelines", index, "name"), lines,
                                       f"two pipelines are named {name!r} (also pipelines[{first[name]}]); names must be unique "
                                       "because they become MQTT topics — rename one"))
        else:
            first[name] = index
    return problems


def _number(value: Any) -> float | None:
    """A YAML value as pydantic would read it into a float, or None (pydantic reports it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def reconnect_delay_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """The reconnect backoff doubles from the min delay up to the max; a min above the max is a typo."""
    mqtt = data.get("mqtt")
    if not isinstance(mqtt, dict) or not ({"reconnect_min_delay", "reconnect_max_delay"} & mqtt.keys()):
        return []
    fields = MqttSettings.model_fields
    low = _number(mqtt.get("reconnect_min_delay", fields["reconnect_min_delay"].default))
    high = _number(mqtt.get("reconnect_max_delay", fields["reconnect_max_delay"].default))
    if low is None or high is None or low <= high:
        return []
    key = "reconnect_min_delay" if "reconnect_min_delay" in mqtt else "reconnect_max_delay"
    return [problem_at(("mqtt", key), lines,
                       f"reconnect_min_delay ({low:g} s) is above reconnect_max_delay ({high:g} s); the wait between reconnects "
                       "starts at the min and doubles up to the max, so set min <= max")]


def llm_exposure_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """An enabled LLM server on a network address needs a key: found here, by `edge config check` and `edge run`,
    rather than by an `edge llm serve` child that exits and is restarted again and again."""
    llm = data.get("llm")
    if not isinstance(llm, dict) or llm.get("enabled") is not True:
        return []
    host, api_key = llm.get("host", "127.0.0.1"), llm.get("api_key")
    if not isinstance(host, str) or not (api_key is None or isinstance(api_key, str)):
        return []  # pydantic reports the wrong type
    problem = exposure_problem(host, api_key, llm.get("insecure_no_key") is True)
    return [problem_at(("llm", "host"), lines, problem)] if problem else []


def dashboard_exposure_problems(data: dict[str, Any], lines: LineMap) -> list[str]:
    """The dashboard shows the camera and pauses or reloads the classifiers: on a network address it needs a
    password, so a config that would serve it to the whole LAN without one is refused before anything starts."""
    dashboard = data.get("dashboard")
    if not isinstance(dashboard, dict) or dashboard.get("enabled", True) is False:
        return []
    host, password_file = dashboard.get("host", "127.0.0.1"), dashboard.get("password_file")
    if not isinstance(host, str) or is_loopback(host) or (isinstance(password_file, str) and password_file):
        return []  # pydantic reports a wrong type; a loopback address needs no password
    return [problem_at(("dashboard", "host"), lines,
                       f"the dashboard on {host} would show the camera and the controls to the whole network without a password: "
                       "set dashboard.password_file to a file holding one (e.g. `openssl rand -hex 8 > dashboard-password`), "
                       "or keep dashboard.host: 127.0.0.1")]


CROSS_KEY_CHECKS = (duplicate_name_problems, reconnect_delay_problems, llm_exposure_problems, dashboard_exposure_problems)
