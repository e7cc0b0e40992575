#!/usr/bin/env bash
# Installs what EdgeTeach needs, idempotently: Debian packages, the virtual environment .venv/ at the
# repository root, and the Python packages for the roles asked for (edge, trainer, llm, dev).
# Usage: scripts/setup.sh [ROLE...]      (default: edge trainer)
# A second run with nothing changed does no work: the pip step is skipped while pyproject.toml and the
# roles are unchanged (stamp file .setup-stamp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROLES=("$@")
[ ${#ROLES[@]} -gt 0 ] || ROLES=(edge trainer)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# ---- Debian packages --------------------------------------------------------------------------------
APT_PKGS=(python3-venv libportaudio2 libsndfile1 mosquitto mosquitto-clients alsa-utils)
for role in "${ROLES[@]}"; do
  case "$role" in
    dev) APT_PKGS+=(espeak-ng sox shellcheck systemd) ;;  # systemd: systemd-analyze verify/security in tests
    llm) APT_PKGS+=(cmake build-essential) ;;
  esac
done
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    log "missing system packages ${missing[*]} and no apt-get: install them with your package manager"; exit 1
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# ---- virtual environment ----------------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

sorted_roles="$(printf '%s\n' "${ROLES[@]}" | sort -u | tr '\n' ' ')"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $sorted_roles"
if [ -f .setup-stamp ] && [ "$(cat .setup-stamp)" = "$want" ] && .venv/bin/python -c "import edge, trainer" 2>/dev/null; then
  log "Python packages up to date for roles: $sorted_roles"
  exit 0
fi

for role in "${ROLES[@]}"; do
  if [ "$role" = trainer ]; then
    # Installed in two steps, as PyTorch asks, so that torchaudio cannot pull another torch release.
    if ! .venv/bin/python -c "import torch, torchvision, torchaudio; assert torch.__version__.startswith('2.9.1')" 2>/dev/null; then
      log "installing torch 2.9.1 + torchvision 0.24.1 + torchaudio 2.9 (several minutes the first time)"
      "${PIP[@]}" install -q torch==2.9.1 torchvision==0.24.1
      "${PIP[@]}" install -q torch==2.9.1 'torchaudio==2.9.*'
    fi
  fi
done
extras="$(IFS=,; echo "${ROLES[*]}")"
log "installing edgeteach[$extras] (llama-cpp-python builds from source the first time: ~8 minutes)"
"${PIP[@]}" install -q -e ".[$extras]"
echo "$want" > .setup-stamp
log "done: .venv/bin/edge and .venv/bin/trainer are ready"
