"""The fleet lines of docs/security.md's classroom ACL (read from the page by test_classroom_broker's fixture), on a
real Mosquitto: each Pi may read its group's desired model and the bundles' chunks but not write them; the teacher
may write both."""

from __future__ import annotations

from tests.e2e.test_classroom_broker import PASSWORDS, classroom_broker, clients  # noqa: F401  (the fixtures)
from tests.e2e.test_deploy_broker import Client, login

DESIRED = "edgeteach/groups/class-a/model/desired"
CHUNK = "edgeteach/fleet/bundles/" + "a" * 64 + "/chunks/0"


def test_pis_read_the_fleet_topics_and_only_the_teacher_writes_them(classroom_broker: int, clients: list[Client]) -> None:  # noqa: F811
    teacher = login(clients, classroom_broker, "teacher", PASSWORDS["teacher"])
    pi07 = login(clients, classroom_broker, "pi-07", PASSWORDS["pi-07"])
    pi08 = login(clients, classroom_broker, "pi-08", PASSWORDS["pi-08"])
    pi07.subscribe(DESIRED)  # what a device of group class-a subscribes to
    pi07.subscribe("edgeteach/fleet/bundles/+/chunks/0")
    teacher.subscribe("edgeteach/#")

    forged_desired = pi08.publish(DESIRED, b'{"job_id": "evil"}')
    forged_chunk = pi08.publish(CHUNK, b"evil")
    for refused in (forged_desired, forged_chunk):
        assert refused.is_failure and "authori" in str(refused).lower(), refused

    for topic, payload in ((DESIRED, b'{"job_id": "j1"}'), (CHUNK, b"chunk-0")):
        sent = teacher.publish(topic, payload)
        assert not sent.is_failure, sent
        pi07.wait_for(topic, payload)
    assert all(payload not in (b'{"job_id": "evil"}', b"evil") for _, payload in pi07.received + teacher.received)
    # pi-07's own progress and state reach the teacher (its own prefix)
    assert not pi07.publish("edgeteach/pi-07/model/state", b'{"status": "idle"}').is_failure
    teacher.wait_for("edgeteach/pi-07/model/state", b'{"status": "idle"}')
