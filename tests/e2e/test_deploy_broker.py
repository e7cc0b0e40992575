"""The local broker the installer sets up is closed (issue 12 item 6), proven against the real mosquitto.

The installer runs for real into a throwaway root (as in test_deploy.py) WITH its Mosquitto step: it writes
the accounts (hashed by the real mosquitto_passwd), the ACL and its conf.d file. The tests start the real
broker on that conf file; only what a staging root cannot hold is changed: the paths point into the root,
the listener is a free loopback port, and (when the tests run as root) mosquitto stays root so that it can
read pytest's private folders (on a device the installer makes the files root:mosquitto 0640 instead).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.test_deploy import TEST_VENV, changes, copy_source, run_installer
from tests.support.broker import mosquitto_available, mosquitto_with
from tests.support.daemon import DaemonProcess, write_config


@dataclass
class Install:
    source: Path
    root: Path
    out: str
    device: str

    def secret(self, name: str) -> str:
        return (self.root / "etc/edgeteach" / name).read_text().strip()


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    base = tmp_path_factory.mktemp("deploy-broker")
    source = copy_source(base / "src")
    root = base / "root"
    result = run_installer("--root", str(root), "--no-llm", "--reuse-packages", str(TEST_VENV), source=source)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((root / "etc/edgeteach/config.yaml").read_text())
    return Install(source, root, result.stdout, config["device_id"])


@pytest.fixture()
def closed_broker(install: Install, tmp_path: Path) -> Iterator[int]:
    """The real mosquitto on the installer's own conf.d file; yields its port."""
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (Debian package 'mosquitto')")
    conf = (install.root / "etc/mosquitto/conf.d/edgeteach.conf").read_text()
    assert re.search(r"^listener 1883$", conf, re.M), conf
    staged = conf.replace("/etc/mosquitto/", f"{install.root}/etc/mosquitto/").replace("listener 1883\n", "")
    with mosquitto_with(staged, tmp_path) as port:
        yield port


@dataclass
class Client:
    """A paho MQTT 5 client logged in as one account; records what it receives and the PUBACK reason codes."""

    port: int
    username: str | None
    password: str | None
    connack: Any = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5)
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = reason
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self.pubacks[mid] = reason
            self._cond.notify_all()

    def connect(self) -> Client:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"
        return self

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        granted: list[Any] = []

        def on_subscribe(_client: mqtt.Client, _userdata: Any, _mid: int, codes: list[Any], _props: Any) -> None:
            granted.extend(codes)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert done.wait(10), "no SUBACK"
        assert not granted[0].is_failure, f"subscription to {topic} refused: {granted[0]}"

    def publish(self, topic: str, payload: bytes) -> Any:
        """QoS 1: waits for the PUBACK and returns its reason code (MQTT 5 says 'Not authorized' there)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.pubacks, 10), f"no PUBACK for {topic}"
            return self.pubacks[info.mid]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        with self._cond:
            arrived = self._cond.wait_for(lambda: (topic, payload) in self.received, timeout)
            assert arrived, f"{topic} {payload!r} not received: {self.received}"

    def wait_for_part(self, topic: str, part: bytes, timeout: float = 10.0) -> bool:
        """Whether a message on `topic` whose payload contains `part` arrives within `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: any(t == topic and part in p for t, p in self.received), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def clients(closed_broker: int) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def login(clients: list[Client], port: int, username: str | None, password: str | None) -> Client:
    client = Client(port, username, password)
    clients.append(client)
    return client.connect()


def test_config_names_the_device_account_and_models_dir(install: Install) -> None:
    config = yaml.safe_load((install.root / "etc/edgeteach/config.yaml").read_text())
    assert config["mqtt"]["username"] == install.device
    assert config["mqtt"]["password_file"] == "/etc/edgeteach/mqtt-password" and "password" not in config["mqtt"]
    assert config["models_dir"] == "/var/lib/edgeteach/models"
    for name, mode in (("mqtt-password", 0o640), ("mqtt-teacher-password", 0o600)):
        path = install.root / "etc/edgeteach" / name
        assert path.stat().st_mode & 0o777 == mode, name
        assert len(path.read_text().strip()) >= 20
    assert oct((install.root / "etc/mosquitto/edgeteach.passwd").stat().st_mode & 0o777) == "0o640"


def test_passwords_are_never_printed(install: Install) -> None:
    for name in ("mqtt-password", "mqtt-teacher-password"):
        assert install.secret(name) not in install.out
    assert "sudo mosquitto_passwd /etc/mosquitto/edgeteach.passwd NAME" in install.out  # how to add a client


def test_anonymous_clients_and_wrong_passwords_are_refused(closed_broker: int, clients: list[Client], install: Install) -> None:
    assert not login(clients, closed_broker, None, None).accepted
    assert not login(clients, closed_broker, install.device, install.secret("mqtt-password") + "x").accepted
    # the device's password is not the teacher's
    assert not login(clients, closed_broker, "teacher", install.secret("mqtt-password")).accepted
    assert login(clients, closed_broker, install.device, install.secret("mqtt-password")).accepted


def test_device_publishes_its_states_but_not_another_devices_commands(closed_broker: int, clients: list[Client], install: Install) -> None:
    teacher = login(clients, closed_broker, "teacher", install.secret("mqtt-teacher-password"))
    assert teacher.accepted
    teacher.subscribe("edgeteach/#")
    device = login(clients, closed_broker, install.device, install.secret("mqtt-password"))

    forged = device.publish("edgeteach/other-pi/cmd/reload", b'{"bundle": "/tmp/evil"}')
    state = device.publish(f"edgeteach/{install.device}/desk/state", b'{"label": "cat"}')

    assert forged.is_failure and "authori" in str(forged).lower(), forged
    assert not state.is_failure, state
    # the broker handles one client's packets in order: the state arrived, so the forged command was dropped
    teacher.wait_for(f"edgeteach/{install.device}/desk/state", b'{"label": "cat"}')
    assert all(topic != "edgeteach/other-pi/cmd/reload" for topic, _ in teacher.received), teacher.received


def test_teacher_commands_the_device(closed_broker: int, clients: list[Client], install: Install) -> None:
    device = login(clients, closed_broker, install.device, install.secret("mqtt-password"))
    device.subscribe(f"edgeteach/{install.device}/cmd/+")  # what the daemon subscribes to
    teacher = login(clients, closed_broker, "teacher", install.secret("mqtt-teacher-password"))

    reason = teacher.publish(f"edgeteach/{install.device}/cmd/ping", b'{"id": "1"}')

    assert not reason.is_failure, reason
    device.wait_for(f"edgeteach/{install.device}/cmd/ping", b'{"id": "1"}')


def test_installed_doctor_logs_in_and_finds_the_broker_closed(closed_broker: int, install: Install, tmp_path: Path) -> None:
    """`edge doctor` from the installed venv, with the installed config's account (its password file read
    from the staging root), against the closed broker."""
    config = yaml.safe_load((install.root / "etc/edgeteach/config.yaml").read_text())
    config["mqtt"].update(port=closed_broker, host="127.0.0.1", password_file=str(install.root / "etc/edgeteach/mqtt-password"))
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"device_id": config["device_id"], "mqtt": config["mqtt"], "health": {"enabled": False}}))
    edge = install.root / "opt/edgeteach/venv/bin/edge"

    result = subprocess.run([str(edge), "doctor", "-c", str(path), "--json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["mqtt"]["status"] == "ok" and f"as {install.device}" in checks["mqtt"]["detail"], checks["mqtt"]
    assert checks["mqtt access"]["status"] == "ok" and "refuses clients without an account" in checks["mqtt access"]["detail"]


def test_the_daemon_works_on_the_closed_broker_with_its_account(closed_broker: int, clients: list[Client], install: Install,
                                                                tmp_path: Path) -> None:
    """The real daemon, logged in with the account the installer made, publishes its status and answers
    the teacher's ping: the ACL gives it everything it uses."""
    teacher = login(clients, closed_broker, "teacher", install.secret("mqtt-teacher-password"))
    teacher.subscribe(f"edgeteach/{install.device}/#")
    config = write_config(tmp_path / "edge.yaml", "127.0.0.1", closed_broker, [], device_id=install.device,
                          mqtt={"username": install.device, "password_file": str(install.root / "etc/edgeteach/mqtt-password")})
    daemon = DaemonProcess(config)
    try:
        teacher.wait_for(f"edgeteach/{install.device}/status", b"online", timeout=30)
        assert not teacher.publish(f"edgeteach/{install.device}/cmd/ping", b'{"id": "t1"}').is_failure
        assert teacher.wait_for_part(f"edgeteach/{install.device}/cmd/ping/reply", b"pong", 20), (teacher.received, daemon.log())
        assert "refused the connection" not in daemon.log() and "Not authorized" not in daemon.log()
    finally:
        daemon.stop()


def test_second_run_keeps_the_passwords(install: Install, tmp_path: Path) -> None:
    passwd = install.root / "etc/mosquitto/edgeteach.passwd"
    before = (passwd.read_text(), install.secret("mqtt-password"), install.secret("mqtt-teacher-password"))
    acl = install.root / "etc/mosquitto/edgeteach.acl"
    acl.write_text(acl.read_text() + "\nuser node-red\ntopic read edgeteach/#\n")  # a client the teacher added

    again = run_installer("--root", str(install.root), "--no-llm", "--reuse-packages", str(TEST_VENV), source=install.source)

    assert again.returncode == 0, again.stdout + again.stderr
    assert changes(again.stdout) == [], again.stdout
    assert (passwd.read_text(), install.secret("mqtt-password"), install.secret("mqtt-teacher-password")) == before
    assert "user node-red" in acl.read_text()


def test_anonymous_access_only_with_the_flag(install: Install, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_installer("--root", str(root), "--no-llm", "--allow-anonymous", "--reuse-packages", str(TEST_VENV), source=install.source)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "allow_anonymous true" in (root / "etc/mosquitto/conf.d/edgeteach.conf").read_text()
    assert "--allow-anonymous: anyone on the network" in result.stdout
