"""deploy/install.sh and the systemd units, exercised for real.

The installer runs FOR REAL into a throwaway root (`--root`: every path under a temp folder, no apt, no
user, units enabled offline with `systemctl --root`), from a private copy of the source tree, reusing the
test environment's packages (`--reuse-packages`) so it needs no network. Then `edge doctor` runs from
the virtual environment it installed, and systemd's own tools verify and score the installed units.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.broker import Broker
from tests.support.paths import REPO

INSTALLER = REPO / "deploy" / "install.sh"
UNITS = ("edgeteach.service", "edgeteach-llm.service")
EXPOSURE_LIMIT = 3.0
TEST_VENV = Path(sys.prefix)  # the environment running the tests: its packages are reused


def run_installer(*args: str, source: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(source / "deploy" / "install.sh"), *args], capture_output=True, text=True, timeout=timeout)


def changes(output: str) -> list[str]:
    """The lines announcing a change ("do ..." when real, "would ..." in a dry run)."""
    return [line.strip() for line in output.splitlines() if re.match(r"^\s+(do|would)\s", line)]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/setup.sh dev (it installs the Debian package)")
    return path


# ---------------------------------------------------------------------------------------------------
# The script itself


def test_installer_passes_shellcheck() -> None:
    scripts = [INSTALLER, REPO / "deploy/llama-cpp.sh", REPO / "scripts/setup.sh", REPO / "scripts/test.sh"]
    result = subprocess.run([need("shellcheck"), "-x", "--severity=style", *map(str, scripts)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "os_name, extra, expected, unexpected",
    [
        ("raspios", [], ["python3-picamera2", "--system-site-packages", "system numpy", "-DGGML_NATIVE=OFF"], ["GGML_CUDA", "cuda.conf"]),
        ("jetson", ["--cuda"], ["CMAKE_ARGS='-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=87 -DGGML_NATIVE=OFF", "--no-cache-dir",
                                "edgeteach-llm.service.d/cuda.conf"],
         ["python3-picamera2", "--system-site-packages"]),
        ("debian", ["--no-llm"], ["python3 -m venv /opt/edgeteach/venv",
                                  # pip builds as the service user; root installs only those wheels, offline
                                  "runuser -u edgeteach -- env HOME=BUILD_COPY_OF_SOURCE/wheels PIP_NO_CACHE_DIR=1",
                                  "install -q --no-index --find-links BUILD_COPY_OF_SOURCE/wheels",
                                  "mosquitto_passwd -U", "allow_anonymous false"],
         ["python3-picamera2", "GGML_CUDA", "edgeteach-llm.service", "--system-site-packages"]),
    ],
)
def test_dry_run_lists_every_step_for_each_os(os_name: str, extra: list[str], expected: list[str], unexpected: list[str]) -> None:
    watched = [Path("/opt/edgeteach"), Path("/etc/edgeteach"), Path("/var/lib/edgeteach"), Path("/etc/systemd/system/edgeteach.service")]
    before = {p: p.exists() for p in watched}

    result = run_installer("--dry-run", "--os", os_name, *extra)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("Debian packages", "System user edgeteach", "Directories", "Virtual environment", "EdgeTeach into",
                    "Configuration /etc/edgeteach", "Local broker (Mosquitto)", "systemd units", "Enable the services"):
        assert f"== {section}" in out, f"step {section!r} missing from the dry run:\n{out}"
    for text in expected:
        assert text in out, f"{text!r} missing for --os {os_name}:\n{out}"
    for text in unexpected:
        assert text not in out, f"{text!r} should not appear for --os {os_name}:\n{out}"
    assert f"system: {os_name}" in out
    assert all(line.startswith(("would", "ok")) for line in changes(out))
    assert "Dry run:" in out.splitlines()[-1] or "Nothing to change" in out.splitlines()[-1]
    assert {p: p.exists() for p in watched} == before, "a dry run changed the system"


def test_bad_options_are_refused_with_a_reason() -> None:
    result = run_installer("--os", "windows", "--dry-run")
    assert result.returncode != 0 and "use raspios, jetson or debian" in result.stderr
    result = run_installer("--purge")
    assert result.returncode != 0 and "--purge only goes with --uninstall" in result.stderr
    result = run_installer("--allow-anonymous", "--no-mosquitto", "--dry-run")
    assert result.returncode != 0 and "--no-mosquitto leaves out" in result.stderr


# ---------------------------------------------------------------------------------------------------
# A real install into a throwaway root


def copy_source(dest: Path) -> Path:
    """The parts of the checkout the installer uses, frozen: other work in the checkout cannot change
    what the second (idempotency) run sees."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("deploy", "systemd", "docs", "edge", "trainer"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    base = tmp_path_factory.mktemp("deploy")
    source = copy_source(base / "src")
    root = base / "root"
    result = run_installer("--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV), source=source)
    assert result.returncode == 0, result.stdout + result.stderr
    yield source, root, result.stdout


def test_real_install_lays_out_the_system(installed: tuple[Path, Path, str]) -> None:
    _, root, out = installed
    assert "Done:" in out and changes(out)
    edge = root / "opt/edgeteach/venv/bin/edge"
    assert edge.is_file() and os.access(edge, os.X_OK)
    assert os.readlink(root / "usr/local/bin/edge") == "/opt/edgeteach/venv/bin/edge"
    for unit in UNITS:
        text = (root / "etc/systemd/system" / unit).read_text()
        assert "ExecStart=/opt/edgeteach/venv/bin/edge" in text
    # enabled offline, as `systemctl enable` would on the device
    assert (root / "etc/systemd/system/multi-user.target.wants/edgeteach.service").is_symlink()
    assert (root / "var/lib/edgeteach/models").is_dir()
    assert oct((root / "etc/edgeteach").stat().st_mode & 0o777) == "0o750"
    config = yaml.safe_load((root / "etc/edgeteach/config.yaml").read_text())
    assert config["device_id"] not in ("kitchen-pi", "")  # the machine's own name: a classroom of Pis must not collide
    assert all(p["bundle"].startswith("/var/lib/edgeteach/models/") for p in config["pipelines"])
    assert config["models_dir"] == "/var/lib/edgeteach/models"
    assert (root / "opt/edgeteach/docs/deploy.md").is_file()


def test_second_run_changes_nothing_and_keeps_the_config(installed: tuple[Path, Path, str]) -> None:
    source, root, _ = installed
    config = root / "etc/edgeteach/config.yaml"
    edited = config.read_text() + "# edited by the maker\n"
    config.write_text(edited)

    result = run_installer("--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV), source=source)

    assert result.returncode == 0, result.stderr
    assert changes(result.stdout) == [], result.stdout
    assert "Nothing to change" in result.stdout
    assert config.read_text() == edited


def test_installed_doctor_runs_from_the_installed_venv(installed: tuple[Path, Path, str], broker: Broker, tmp_path: Path) -> None:
    _, root, _ = installed
    edge = root / "opt/edgeteach/venv/bin/edge"
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"device_id": "installed", "mqtt": {"host": "127.0.0.1", "port": broker.port},
                                      "health": {"enabled": False}}))

    healthy = subprocess.run([str(edge), "doctor", "-c", str(config), "--json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    report = json.loads(healthy.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert str(root / "opt/edgeteach/venv") in checks["edgeteach"]["detail"]  # the installed copy, not the checkout
    assert checks["mqtt"]["status"] == "ok"

    # The example config the installer wrote loads in the installed doctor and points at bundles to copy.
    example = subprocess.run([str(edge), "doctor", "-c", str(root / "etc/edgeteach/config.yaml"), "--timeout", "1"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert example.returncode == 1
    assert "FAIL    bundle desk" in example.stdout and "/var/lib/edgeteach/models/my-model does not exist" in example.stdout


def test_uninstall_keeps_config_and_models_unless_purged(installed: tuple[Path, Path, str], tmp_path: Path) -> None:
    source, original, _ = installed
    root = tmp_path / "root"
    shutil.copytree(original, root, symlinks=True)
    mine = root / "var/lib/edgeteach/models/mine.txt"
    mine.write_text("a model the maker copied")

    first = run_installer("--root", str(root), "--uninstall", source=source)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "remove /opt/edgeteach" in first.stdout
    assert not (root / "opt/edgeteach").exists() and not (root / "usr/local/bin/edge").is_symlink()
    assert not (root / "etc/systemd/system/edgeteach.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/edgeteach.service").exists()
    assert (root / "etc/edgeteach/config.yaml").is_file() and mine.is_file()

    again = run_installer("--root", str(root), "--uninstall", source=source)
    assert again.returncode == 0 and changes(again.stdout) == [] and "Nothing to change" in again.stdout, again.stdout

    purge = run_installer("--root", str(root), "--uninstall", "--purge", source=source)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert "remove /etc/edgeteach" in purge.stdout and "remove /var/lib/edgeteach" in purge.stdout
    assert not (root / "etc/edgeteach").exists() and not (root / "var/lib/edgeteach").exists()


# ---------------------------------------------------------------------------------------------------
# One owner of the LLM server (issue 12 item 10)


def set_llm(root: Path, **llm: object) -> None:
    config_path = root / "etc/edgeteach/config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["llm"] = {**config.get("llm", {}), **llm}
    config_path.write_text(yaml.safe_dump(config))


def test_installed_config_leaves_the_llm_to_its_unit(installed: tuple[Path, Path, str]) -> None:
    _, root, out = installed
    assert yaml.safe_load((root / "etc/edgeteach/config.yaml").read_text())["llm"] == {"enabled": False, "run_by": "systemd"}
    unit = (root / "etc/systemd/system/edgeteach-llm.service").read_text()
    assert "\nExecStart=/opt/edgeteach/venv/bin/edge llm serve -c /etc/edgeteach/config.yaml\n" in unit
    assert not (root / "etc/systemd/system/multi-user.target.wants/edgeteach-llm.service").exists()  # llm.enabled is false
    assert "edgeteach-llm.service not enabled: llm.enabled is not true" in out


@pytest.mark.parametrize("run_by, enabled", [("systemd", True), ("daemon", False)])
def test_llm_unit_is_enabled_only_when_it_owns_the_llm(installed: tuple[Path, Path, str], tmp_path: Path, run_by: str,
                                                        enabled: bool) -> None:
    source, original, _ = installed
    root = tmp_path / "root"
    shutil.copytree(original, root, symlinks=True)
    set_llm(root, enabled=True, run_by=run_by)

    result = run_installer("--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV), source=source)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "etc/systemd/system/multi-user.target.wants/edgeteach-llm.service").is_symlink() == enabled, result.stdout
    if not enabled:
        assert "llm.run_by is daemon" in result.stdout and "set llm.run_by: systemd" in result.stdout


# ---------------------------------------------------------------------------------------------------
# Uninstall removes only what the installer made; a venv someone else could write to is refused (item 14)


def test_uninstall_keeps_what_the_prefix_held_before(installed: tuple[Path, Path, str], tmp_path: Path) -> None:
    source = installed[0]
    root = tmp_path / "root"
    prefix = root / "srv/tools"
    (prefix / "docs").mkdir(parents=True)
    (prefix / "notes.txt").write_text("the maker's")
    (prefix / "docs/mine.md").write_text("the maker's too")
    install = run_installer("--root", str(root), "--prefix", "/srv/tools", "--no-mosquitto", "--no-llm", "--reuse-packages", str(TEST_VENV),
                            source=source)
    assert install.returncode == 0, install.stdout + install.stderr
    assert (prefix / "venv/bin/edge").is_file() and (prefix / "docs/deploy.md").is_file()

    result = run_installer("--root", str(root), "--prefix", "/srv/tools", "--uninstall", source=source)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (prefix / "venv").exists() and not (prefix / "docs/deploy.md").exists() and not (prefix / ".edgeteach-manifest").exists()
    assert (prefix / "notes.txt").read_text() == "the maker's" and (prefix / "docs/mine.md").read_text() == "the maker's too"
    assert "remove /srv/tools\n" not in result.stdout  # the prefix was there before: not ours to remove


@pytest.mark.parametrize("prefix", ["/opt", "/", "/usr"])
def test_a_shared_system_folder_is_refused_as_prefix(installed: tuple[Path, Path, str], tmp_path: Path, prefix: str) -> None:
    root = tmp_path / "root"
    keep = root / prefix.lstrip("/") / "other-software/keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("not ours")
    for args in (["--uninstall"], ["--no-mosquitto", "--reuse-packages", str(TEST_VENV)]):
        result = run_installer("--root", str(root), "--prefix", prefix, *args, source=installed[0])
        assert result.returncode != 0 and "a folder the whole system shares" in result.stderr, result.stdout + result.stderr
        assert keep.read_text() == "not ours"


def test_upgrading_an_install_older_than_the_manifest_lists_it(installed: tuple[Path, Path, str], tmp_path: Path) -> None:
    source, original, _ = installed
    root = tmp_path / "root"
    shutil.copytree(original, root, symlinks=True)
    manifest = root / "opt/edgeteach/.edgeteach-manifest"
    manifest.unlink()

    result = run_installer("--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV), source=source)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = manifest.read_text().splitlines()
    assert lines[0] == "dir /opt/edgeteach" and "tree /opt/edgeteach/venv" in lines and "file /opt/edgeteach/docs/deploy.md" in lines


def test_uninstall_of_an_install_older_than_the_manifest(installed: tuple[Path, Path, str], tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed[1], root, symlinks=True)
    (root / "opt/edgeteach/.edgeteach-manifest").unlink()
    (root / "opt/edgeteach/backup.tar").write_text("the maker's")

    result = run_installer("--root", str(root), "--uninstall", source=installed[0])

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "opt/edgeteach/venv").exists() and not (root / "opt/edgeteach/docs").exists()
    assert (root / "opt/edgeteach/backup.tar").is_file()


@pytest.mark.parametrize("how", ["owner", "world-writable"])
def test_a_venv_others_could_write_to_is_not_reused(installed: tuple[Path, Path, str], tmp_path: Path, how: str) -> None:
    source, original, _ = installed
    root = tmp_path / "root"
    shutil.copytree(original, root, symlinks=True)
    venv = root / "opt/edgeteach/venv"
    if how == "owner":
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user; the world-writable case runs the same check")
        os.chown(venv / "lib", 65534, 65534)
        expected = "belongs to nobody"
    else:
        (venv / "bin/edge").chmod(0o777)
        expected = "with mode 777"

    result = run_installer("--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV), source=source)

    assert result.returncode != 0, result.stdout
    assert "refusing to use the existing virtual environment" in result.stderr and expected in result.stderr, result.stderr
    assert "someone else could have planted code in it" in result.stderr and "sudo rm -rf" in result.stderr
    assert "do     pip install" not in result.stdout  # stopped before anything ran from it


# ---------------------------------------------------------------------------------------------------
# systemd's own verdict on the installed units


def make_systemd_root(installed_root: Path, root: Path) -> Path:
    """The installed root plus what every real OS root has and `systemd-analyze --root` looks up: the
    distribution's units (sysinit.target, ...) and /bin/kill (ExecReload)."""
    need("systemd-analyze")
    shutil.copytree(installed_root / "etc", root / "etc", symlinks=True)
    shutil.copytree(installed_root / "opt", root / "opt", symlinks=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "bin").mkdir()
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "bin/kill")
    return root


@pytest.fixture(scope="module")
def systemd_root(installed: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_systemd_root(installed[1], tmp_path_factory.mktemp("systemd") / "root")


@pytest.fixture(scope="module")
def jetson_systemd_root(installed: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jetson install with the CUDA llama.cpp build (staged here: --os jetson, --root), so the drop-ins
    it adds are verified and scored as well."""
    source = installed[0]
    root = tmp_path_factory.mktemp("jetson") / "root"
    result = run_installer("--os", "jetson", "--cuda", "--root", str(root), "--no-mosquitto", "--reuse-packages", str(TEST_VENV),
                           source=source)
    assert result.returncode == 0, result.stdout + result.stderr
    return make_systemd_root(root, tmp_path_factory.mktemp("jetson-systemd") / "root")


def analyze_exposure(root: Path, unit: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", f"--threshold={int(EXPOSURE_LIMIT * 10)}", "--no-pager", unit],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result


def test_jetson_install_adds_its_drop_ins_and_stays_verified_and_below_3(jetson_systemd_root: Path) -> None:
    units = jetson_systemd_root / "etc/systemd/system"
    daemon_dropin = (units / "edgeteach.service.d/jetson.conf").read_text()
    assert "PrivateTmp=no" in daemon_dropin and "DeviceAllow=\n" in daemon_dropin
    assert "MemoryDenyWriteExecute=no" in (units / "edgeteach-llm.service.d/cuda.conf").read_text()
    for unit in UNITS:
        verify = subprocess.run(["systemd-analyze", "verify", f"--root={jetson_systemd_root}", unit], capture_output=True, text=True,
                                timeout=60)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
        exposure, result = analyze_exposure(jetson_systemd_root, unit)
        assert exposure <= EXPOSURE_LIMIT and result.returncode == 0, result.stdout
        # the drop-ins are really read: the relaxed settings show up in the score
        assert "✗ PrivateDevices=" in result.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_passes(systemd_root: Path, unit: str) -> None:
    result = subprocess.run(["systemd-analyze", "verify", f"--root={systemd_root}", unit], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stdout + result.stderr


def test_verify_catches_a_broken_unit(systemd_root: Path, tmp_path: Path) -> None:
    """The verify test above can fail: a unit whose ExecStart is missing is refused."""
    broken = systemd_root / "etc/systemd/system/broken.service"
    broken.write_text((systemd_root / "etc/systemd/system/edgeteach.service").read_text().replace("/venv/bin/edge run",
                                                                                                  "/venv/bin/no-such-edge run"))
    try:
        result = subprocess.run(["systemd-analyze", "verify", f"--root={systemd_root}", "broken.service"], capture_output=True, text=True,
                                timeout=60)
    finally:
        broken.unlink()
    assert result.returncode != 0 and "no-such-edge" in result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_at_most_3(systemd_root: Path, unit: str) -> None:
    exposure, result = analyze_exposure(systemd_root, unit)
    assert exposure <= EXPOSURE_LIMIT, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_daemon_unit_keeps_what_camera_microphone_and_watchdog_need() -> None:
    text = (REPO / "systemd/edgeteach.service").read_text()
    settings = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure", "SupplementaryGroups=video audio",
                 "DeviceAllow=char-video4linux rw", "DeviceAllow=char-alsa rw", "ProtectSystem=strict", "StateDirectory=edgeteach"):
        assert line in settings, f"{line} missing from edgeteach.service"
    # sounddevice's stream callbacks are cffi closures: write+execute memory (see the next test).
    assert not any(s.startswith("MemoryDenyWriteExecute=yes") for s in settings)
    assert "PrivateDevices=yes" not in settings


def test_write_execute_ban_would_break_sounddevice_callbacks() -> None:
    """Why the daemon unit does not set MemoryDenyWriteExecute: the kernel's equivalent (PR_SET_MDWE,
    Linux 6.3+, which systemd uses where available) makes cffi refuse the callback sounddevice builds
    for every input stream."""
    probe = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\n"  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        "import cffi\n"
        "ffi = cffi.FFI()\n"
        "try:\n"
        "    ffi.callback('int(int)', lambda x: x)\n"
        "except MemoryError as exc:\n"
        "    print('refused:', exc); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3): cannot reproduce MemoryDenyWriteExecute here")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "write+execute" in result.stdout


def test_llm_generates_under_the_write_execute_ban() -> None:
    """Why the LLM unit may keep MemoryDenyWriteExecute=yes: llama.cpp on the CPU loads a real GGUF and
    generates with the kernel's write+execute ban in force."""
    from tests.support.gguf_models import SMOLLM2, missing_reason, model_path

    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/setup.sh llm)")
    gguf = model_path(SMOLLM2)
    if gguf is None:
        pytest.skip(missing_reason(SMOLLM2))
    probe = (
        "import ctypes, sys\n"
        "if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\n"
        "import llama_cpp\n"
        "llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)\n"
        "out = llm.create_completion('The capital of France is', max_tokens=4, temperature=0)\n"
        "print('generated:', out['usage']['completion_tokens'])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(gguf)], capture_output=True, text=True, timeout=120)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"generated: [1-9]", result.stdout), result.stdout
