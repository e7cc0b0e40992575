"""docs/security.md's recipe for one broker shared by a whole class, proven against the real mosquitto: the ACL
is read out of the page itself, so the page cannot drift from what was tested. Each Pi's account may use only
`edgeteach/<its name>/#`; the teacher may command every Pi; anonymous clients are refused."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_deploy_broker import Client, login
from tests.support.broker import mosquitto_available, mosquitto_with
from tests.support.paths import REPO

SECURITY_DOC = REPO / "docs" / "security.md"
PASSWORDS = {"pi-07": "pi-07-secret", "pi-08": "pi-08-secret", "teacher": "teacher-secret"}


def documented_acl() -> str:
    """The code block that starts with `# /etc/mosquitto/classroom.acl` in docs/security.md."""
    match = re.search(r"```text\n\s*# /etc/mosquitto/classroom\.acl\n(.*?)```", SECURITY_DOC.read_text(), re.S)
    assert match, "docs/security.md lost its classroom ACL block"
    return "\n".join(line.strip() for line in match.group(1).splitlines()) + "\n"


def documented_broker_settings() -> list[str]:
    """Step 4 of the recipe: the `key value` settings it tells the teacher to put in the broker's config."""
    step = re.search(r"4\. In the broker's config: (.*?)Then `sudo systemctl reload mosquitto`", SECURITY_DOC.read_text(), re.S)
    assert step, "docs/security.md lost step 4 of the classroom recipe"
    return re.findall(r"`((?:allow_anonymous|password_file|acl_file|message_size_limit) [^`]+)`", step.group(1))


@pytest.fixture()
def classroom_broker(tmp_path: Path) -> Iterator[int]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (Debian package 'mosquitto')")
    passwd, acl = tmp_path / "classroom.passwd", tmp_path / "classroom.acl"
    passwd.touch()
    for user, password in PASSWORDS.items():  # -b: the password on the command line is fine for a test
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, capture_output=True)
    acl.write_text(documented_acl())
    settings = documented_broker_settings()
    assert {s.split()[0] for s in settings} == {"allow_anonymous", "password_file", "acl_file", "message_size_limit"}, settings
    settings = [s.replace("/etc/mosquitto/", f"{tmp_path}/") for s in settings]
    with mosquitto_with("\n".join(settings), tmp_path) as port:
        yield port


@pytest.fixture()
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_each_pi_uses_only_its_own_topics_and_the_teacher_commands_all(classroom_broker: int, clients: list[Client]) -> None:
    assert not login(clients, classroom_broker, None, None).accepted  # anonymous
    assert not login(clients, classroom_broker, "pi-07", "wrong").accepted
    teacher = login(clients, classroom_broker, "teacher", PASSWORDS["teacher"])
    pi07 = login(clients, classroom_broker, "pi-07", PASSWORDS["pi-07"])
    pi08 = login(clients, classroom_broker, "pi-08", PASSWORDS["pi-08"])
    teacher.subscribe("edgeteach/#")
    pi07.subscribe("edgeteach/pi-07/cmd/+")  # what pi-07's daemon subscribes to

    forged_command = pi08.publish("edgeteach/pi-07/cmd/reload", b'{"bundle": "/tmp/evil"}')
    forged_state = pi08.publish("edgeteach/pi-07/desk/state", b'{"label": "fake"}')
    own_state = pi07.publish("edgeteach/pi-07/desk/state", b'{"label": "cat"}')
    discovery = pi07.publish("homeassistant/sensor/pi-07_desk/config", b"{}")
    command = teacher.publish("edgeteach/pi-07/cmd/ping", b'{"id": "1"}')

    for refused in (forged_command, forged_state):
        assert refused.is_failure and "authori" in str(refused).lower(), refused
    for accepted in (own_state, discovery, command):
        assert not accepted.is_failure, accepted
    teacher.wait_for("edgeteach/pi-07/desk/state", b'{"label": "cat"}')
    pi07.wait_for("edgeteach/pi-07/cmd/ping", b'{"id": "1"}')
    # one client's packets are handled in order: pi-07's own state arrived, so pi-08's forgeries were dropped
    assert all(payload != b'{"label": "fake"}' for _, payload in teacher.received), teacher.received
    assert all(topic != "edgeteach/pi-07/cmd/reload" for topic, _ in pi07.received + teacher.received)
