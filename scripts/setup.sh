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
    # systemd: systemd-analyze verify/security in tests; chromium: its Web Audio is the reference of the
    # Teachable Machine sound front end (tests/trainer/test_import_tm_sound.py), and the browser of the Studio's
    # end-to-end test (tests/trainer/studio/test_browser.py, driven by the dev extra's Playwright: pip installs
    # only its driver; `playwright install`, which would download browsers, is never run)
    dev) APT_PKGS+=(espeak-ng sox shellcheck systemd chromium) ;;
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

has_role() { local r; for r in "${ROLES[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

# llama.cpp: a portable build made once per flag set (deploy/llama-cpp.sh says why), then a smoke generation.
LLAMA_ARGS=""
if has_role llm; then
  # shellcheck source=SCRIPTDIR/../deploy/llama-cpp.sh
  source deploy/llama-cpp.sh
  LLAMA_ARGS="$(llama_cmake_args "")"
fi

sorted_roles="$(printf '%s\n' "${ROLES[@]}" | sort -u | tr '\n' ' ')"
want="$(sha256sum pyproject.toml deploy/llama-cpp.sh | sha256sum | cut -d' ' -f1) $sorted_roles $LLAMA_ARGS"
if [ -f .setup-stamp ] && [ "$(cat .setup-stamp)" = "$want" ] && .venv/bin/python -c "import edge, trainer" 2>/dev/null; then
  log "Python packages up to date for roles: $sorted_roles"
else
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
  if has_role llm; then
    log "llama.cpp for $(uname -m), CMAKE_ARGS=\"$LLAMA_ARGS\" (the first build takes ~5 minutes on 2 cores, then it is cached)"
    llama_install .venv/bin/python "$LLAMA_ARGS"
  fi
  extras="$(IFS=,; echo "${ROLES[*]}")"
  log "installing edgeteach[$extras]"
  "${PIP[@]}" install -q -e ".[$extras]"
  echo "$want" > .setup-stamp
fi

if has_role llm; then
  # Every run, not only after a build: a copied or stale .venv built for another CPU is caught here too.
  scripts/fetch-test-models.sh smollm2-135m
  if ! llama_smoke .venv/bin/python .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf "$LLAMA_ARGS"; then
    rm -f .setup-stamp
    exit 1
  fi
fi
# TF.js (the pure-JavaScript CPU backend) under Node: the reference runtime of the Teachable Machine TF.js tests
# (tests/trainer/test_import_tm_tfjs.py). Installed here, never fetched at test or run time; the device needs none.
TFJS_VERSION=4.22.0
if has_role dev && command -v npm >/dev/null && ! grep -qs "\"@tensorflow/tfjs-layers\": \"$TFJS_VERSION\"" .cache/tfjs/package.json; then
  log "installing TF.js $TFJS_VERSION (core, layers, cpu backend) into .cache/tfjs for the tests"
  npm install --prefix .cache/tfjs --save-exact --no-audit --no-fund --loglevel=error "@tensorflow/tfjs-core@$TFJS_VERSION" \
    "@tensorflow/tfjs-layers@$TFJS_VERSION" "@tensorflow/tfjs-backend-cpu@$TFJS_VERSION" >/dev/null
fi
log "done: .venv/bin/edge and .venv/bin/trainer are ready"
