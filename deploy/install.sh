#!/usr/bin/env bash
# EdgeTeach installer for a Raspberry Pi (Raspberry Pi OS bookworm or later, 64-bit), a Jetson (JetPack 6,
# Ubuntu 22.04) or a Debian/Ubuntu x86_64 machine. Run it from the source tree it installs:
#
#   sudo deploy/install.sh                 # install or upgrade; safe to run again (it changes nothing twice)
#   sudo deploy/install.sh --dry-run       # print every step and what it would do; change nothing
#   sudo deploy/install.sh --uninstall     # remove it all but your models and config (--purge: those too)
#
# What it does, each step checked first and skipped when already done:
#   Debian packages -> system user `edgeteach` (groups video, audio) -> /opt/edgeteach/venv with EdgeTeach
#   (and llama.cpp unless --no-llm) -> /etc/edgeteach/config.yaml (never overwritten) -> model storage
#   /var/lib/edgeteach/models -> systemd units edgeteach.service and edgeteach-llm.service, enabled.
# Every option is described by --help and in docs/deploy.md.
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="deploy/install.sh"
ORIG_ARGS="$*"

# ---- options ------------------------------------------------------------------------------------------
DRY_RUN=0
OS_OVERRIDE=""
WITH_LLM=1
WITH_MOSQUITTO=1
CUDA=0
CUDA_ARCH=""
LLM_SMOKE_MODEL=""
ORT_GPU=0
EXTRA_INDEX_URL=""
WHEELHOUSE=""
REUSE_VENV=""
SYSTEM_SITE=0
PYTHON_BIN="python3"
PREFIX="/opt/edgeteach"
ROOT=""
UNINSTALL=0
PURGE=0
START=0
SERVICE_USER="edgeteach"

usage() {
  cat <<'EOF'
Usage: sudo deploy/install.sh [OPTIONS]

Installs EdgeTeach from this source tree as a systemd service. A second run changes nothing and says so.

  --dry-run              print every step and what it would do; change nothing (no root needed)
  --os NAME              raspios | jetson | debian (also: ubuntu) instead of detecting this machine
  --no-llm               skip the local LLM (llama.cpp build and edgeteach-llm.service)
  --no-mosquitto         do not install a local MQTT broker (the config then names a remote one)
  --cuda                 build llama.cpp with CUDA (-DGGML_CUDA=on; arch 87 on a Jetson Orin); the CPU
                         part is always built portably (EDGETEACH_LLAMA_CMAKE_ARGS replaces that baseline)
  --cuda-arch N          CMAKE_CUDA_ARCHITECTURES for --cuda (default: 87 on a Jetson Orin, 72 on a Xavier)
  --llm-smoke-model FILE the GGUF for the smoke generation after the llama.cpp build (default: the first
                         .gguf under /var/lib/edgeteach/models; none: the check is skipped and says how)
  --onnxruntime-gpu      replace onnxruntime by onnxruntime-gpu (CUDA/TensorRT providers); on a Jetson
                         add --extra-index-url https://pypi.jetson-ai-lab.io/jp6/cu126
  --extra-index-url URL  an extra pip index (Jetson wheels)
  --wheelhouse DIR       install Python packages only from the wheels in DIR (offline classrooms)
  --reuse-packages VENV  link the packages of an existing virtual environment instead of downloading them
                         and install only EdgeTeach itself (fast, offline: tests and development)
  --system-site-packages create the virtual environment with the system's packages visible
                         (always on for Raspberry Pi OS, so that apt's python3-picamera2 is importable)
  --python PATH          the Python that creates the virtual environment (default: python3)
  --prefix DIR           where the virtual environment goes (default: /opt/edgeteach)
  --root DIR             install everything under DIR as if it were / (staging, tests): no apt, no user,
                         no ownership changes, units enabled offline with `systemctl --root`
  --start                start (or restart) the services at the end
  --uninstall            stop and remove the services and /opt/edgeteach; keep config and models
  --purge                with --uninstall: also remove /etc/edgeteach, /var/lib/edgeteach and the user
  -h, --help             this help
EOF
}

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --os) need_value "$@"; OS_OVERRIDE="$2"; shift ;;
    --no-llm) WITH_LLM=0 ;;
    --no-mosquitto) WITH_MOSQUITTO=0 ;;
    --cuda) CUDA=1 ;;
    --cuda-arch) need_value "$@"; CUDA_ARCH="$2"; shift ;;
    --llm-smoke-model) need_value "$@"; LLM_SMOKE_MODEL="$2"; shift ;;
    --onnxruntime-gpu) ORT_GPU=1 ;;
    --extra-index-url) need_value "$@"; EXTRA_INDEX_URL="$2"; shift ;;
    --wheelhouse) need_value "$@"; WHEELHOUSE="$2"; shift ;;
    --reuse-packages) need_value "$@"; REUSE_VENV="$2"; shift ;;
    --system-site-packages) SYSTEM_SITE=1 ;;
    --python) need_value "$@"; PYTHON_BIN="$2"; shift ;;
    --prefix) need_value "$@"; PREFIX="$2"; shift ;;
    --root) need_value "$@"; ROOT="$2"; shift ;;
    --start) START=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done

[ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge only goes with --uninstall"
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
if [ -n "$ROOT" ]; then
  case "$ROOT" in /*) ;; *) ROOT="$(pwd)/$ROOT" ;; esac
  ROOT="${ROOT%/}"
fi
if [ -n "$REUSE_VENV" ]; then
  [ -x "$REUSE_VENV/bin/python" ] || die "--reuse-packages $REUSE_VENV: no bin/python there; give a virtual environment's folder"
  REUSE_VENV="$(cd "$REUSE_VENV" && pwd)"
fi
if [ -n "$WHEELHOUSE" ]; then
  [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such folder; fill it with \`pip download 'edgeteach[edge]' -d DIR\` on a machine with internet"
  WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
fi

# ---- output: every step says what it found and what it does ------------------------------------------
CHANGES=0
if [ -t 1 ]; then BOLD=$'\033[1m'; GREEN=$'\033[32m'; YELLOW=$'\033[33m'; RESET=$'\033[0m'; else BOLD=""; GREEN=""; YELLOW=""; RESET=""; fi

section() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }
ok() { printf '  %sok%s     %s\n' "$GREEN" "$RESET" "$*"; }
skip() { printf '  skip   %s\n' "$*"; }
info() { printf '         %s\n' "$*"; }
# A change: announced, counted, and in --dry-run only announced.
change() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '  %swould%s  %s\n' "$YELLOW" "$RESET" "$*"
  else
    printf '  %sdo%s     %s\n' "$YELLOW" "$RESET" "$*"
  fi
}
# A command as one would type it (quoted only where needed), for --dry-run.
show_cmd() {
  local arg out=()
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@%+^-]+$ ]]; then
      out+=("$arg")
    elif [[ "$arg" =~ ^([A-Za-z_][A-Za-z0-9_]*=)(.*)$ ]]; then
      out+=("${BASH_REMATCH[1]}'${BASH_REMATCH[2]//\'/\'\\\'\'}'")
    else
      out+=("'${arg//\'/\'\\\'\'}'")
    fi
  done
  printf '         $ %s\n' "${out[*]}"
}
# Runs a command, or in --dry-run prints it.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    show_cmd "$@"
  else
    "$@"
  fi
}
# Like run, with environment assignments shown: run_env VAR=value ... -- command ...
run_env() {
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  if [ "$DRY_RUN" -eq 1 ]; then
    show_cmd "${envs[@]}" "$@"
  else
    env "${envs[@]}" "$@"
  fi
}

# ---- the machine ---------------------------------------------------------------------------------------
os_release_value() {
  local key="$1"
  [ -r /etc/os-release ] || return 0
  sed -n "s/^${key}=//p" /etc/os-release | head -n1 | tr -d '"'
}

device_model() {
  if [ -r /proc/device-tree/model ]; then tr -d '\0' </proc/device-tree/model; fi
}

detect_os() {
  local model id id_like
  model="$(device_model)"
  id="$(os_release_value ID)"
  id_like="$(os_release_value ID_LIKE)"
  if [ -e /etc/nv_tegra_release ] || [[ "$model" == *Jetson* ]]; then
    echo jetson
  elif [[ "$model" == *"Raspberry Pi"* ]]; then
    echo raspios
  elif [[ "$id" == debian || "$id" == ubuntu || "$id" == raspbian || " $id_like " == *" debian "* ]]; then
    echo debian
  else
    echo unknown
  fi
}

HOST_ARCH="$(uname -m)"
if [ -n "$OS_OVERRIDE" ]; then
  case "$OS_OVERRIDE" in
    raspios|raspberrypi|pi) TARGET_OS=raspios ;;
    jetson) TARGET_OS=jetson ;;
    debian|ubuntu) TARGET_OS=debian ;;
    *) die "--os $OS_OVERRIDE: unknown; use raspios, jetson or debian" ;;
  esac
else
  TARGET_OS="$(detect_os)"
fi

# Refuses machines the packages cannot work on, with the reason (only for the detected OS: --os is the
# user saying "treat this machine as ...", e.g. to see a Pi's plan on a laptop).
check_supported() {
  local version_id codename arch
  version_id="$(os_release_value VERSION_ID)"
  codename="$(os_release_value VERSION_CODENAME)"
  arch="$HOST_ARCH"
  case "$TARGET_OS" in
    unknown)
      die "this does not look like Raspberry Pi OS, a Jetson or Debian/Ubuntu (see /etc/os-release); if it is Debian-based, pass --os debian" ;;
    raspios)
      [ "$arch" = aarch64 ] || die "Raspberry Pi OS is ${arch}-bit here; ONNX Runtime ships only 64-bit ARM wheels: flash the 64-bit Raspberry Pi OS (bookworm or later) with Raspberry Pi Imager"
      case "$codename" in buster|bullseye) die "Raspberry Pi OS $codename is too old (python3-picamera2 and Python 3.11 need bookworm or later): flash a current 64-bit image" ;; esac ;;
    jetson)
      if [ -r /etc/nv_tegra_release ] && ! grep -q '^# R3[6-9]' /etc/nv_tegra_release; then
        info "warning: $(head -n1 /etc/nv_tegra_release) is not JetPack 6 (L4T R36); only JetPack 6 is tested"
      fi
      [ "$version_id" = "22.04" ] || info "warning: JetPack 6 is Ubuntu 22.04, this is '$version_id'" ;;
    debian)
      case "$arch" in x86_64|aarch64) ;; *) die "unsupported architecture $arch: ONNX Runtime has wheels for x86_64 and aarch64 only" ;; esac ;;
  esac
}

# ---- paths (all under --root when given) -------------------------------------------------------------
VENV="$PREFIX/venv"
CONF_DIR="/etc/edgeteach"
STATE_DIR="/var/lib/edgeteach"
MODELS_DIR="$STATE_DIR/models"
UNIT_DIR="/etc/systemd/system"
BIN_LINK="/usr/local/bin/edge"
R() { printf '%s%s' "$ROOT" "$1"; }   # a path as seen from here

UNITS=(edgeteach.service)
[ "$WITH_LLM" -eq 1 ] && UNITS+=(edgeteach-llm.service)
ALL_UNITS=(edgeteach.service edgeteach-llm.service)

SYSTEM_CHANGES_ALLOWED=1   # apt, users, chown, live systemctl
[ -z "$ROOT" ] || SYSTEM_CHANGES_ALLOWED=0

systemd_running() { [ -d /run/systemd/system ]; }

# Live systemctl, or offline against the staging root (enable/disable only write symlinks there).
SYSTEMCTL=(systemctl)
[ -z "$ROOT" ] || SYSTEMCTL+=("--root=$ROOT")

# ---- step: Debian packages ---------------------------------------------------------------------------
apt_packages() {
  local pkgs=(python3-venv python3-dev libportaudio2 libsndfile1 ca-certificates)
  [ "$TARGET_OS" = raspios ] && pkgs+=(python3-picamera2)
  [ "$WITH_MOSQUITTO" -eq 1 ] && pkgs+=(mosquitto mosquitto-clients)
  [ "$WITH_LLM" -eq 1 ] && pkgs+=(cmake build-essential)
  printf '%s\n' "${pkgs[@]}"
}

step_packages() {
  section "Debian packages"
  local wanted=() missing=() p
  mapfile -t wanted < <(apt_packages)
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    ok "installed: ${wanted[*]}"
  elif [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ]; then
    skip "--root: not installing ${missing[*]} (the host's packages are used)"
  else
    change "install ${missing[*]}"
    # --no-install-recommends: python3-picamera2 would otherwise pull a desktop's worth of GUI packages.
    run apt-get update -qq
    run_env DEBIAN_FRONTEND=noninteractive -- apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if [ "$TARGET_OS" = jetson ] && [ "$CUDA" -eq 1 ]; then
    if [ -x /usr/local/cuda/bin/nvcc ]; then
      ok "CUDA compiler /usr/local/cuda/bin/nvcc"
    elif [ "$DRY_RUN" -eq 1 ] || [ -n "$ROOT" ]; then
      info "note: --cuda needs /usr/local/cuda/bin/nvcc (JetPack: sudo apt install nvidia-jetpack)"
    else
      die "--cuda: no /usr/local/cuda/bin/nvcc; install JetPack's CUDA toolkit with \`sudo apt install nvidia-jetpack\` and run again"
    fi
  fi
}

# ---- step: the service user --------------------------------------------------------------------------
step_user() {
  section "System user $SERVICE_USER (groups video, audio)"
  if [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ]; then
    skip "--root: no user created (the units name User=$SERVICE_USER)"
    return
  fi
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    change "create system user $SERVICE_USER in groups video, audio"
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --groups video,audio --comment "EdgeTeach daemon" "$SERVICE_USER"
    return
  fi
  local group have missing=()
  have=" $(id -nG "$SERVICE_USER") "
  for group in video audio; do
    [[ "$have" == *" $group "* ]] || missing+=("$group")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    ok "user $SERVICE_USER exists, in groups video and audio"
  else
    change "add $SERVICE_USER to groups ${missing[*]}"
    run usermod -a -G "$(IFS=,; echo "${missing[*]}")" "$SERVICE_USER"
  fi
}

# ---- step: directories -------------------------------------------------------------------------------
# ensure_dir PATH MODE [OWNER:GROUP]
ensure_dir() {
  local path="$1" mode="$2" owner="${3:-}" here
  here="$(R "$path")"
  if [ ! -d "$here" ]; then
    change "create $path (mode $mode${owner:+, owner $owner})"
    run install -d -m "$mode" "$here"
    [ -z "$owner" ] || [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ] || run chown "$owner" "$here"
    return
  fi
  local have_mode have_owner
  have_mode="$(stat -c '%a' "$here")"
  have_owner="$(stat -c '%U:%G' "$here")"
  if [ "$have_mode" != "${mode#0}" ]; then
    change "set mode $mode on $path (was $have_mode)"
    run chmod "$mode" "$here"
  fi
  if [ -n "$owner" ] && [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ] && [ "$have_owner" != "$owner" ]; then
    change "set owner $owner on $path (was $have_owner)"
    run chown "$owner" "$here"
  fi
  if [ "$have_mode" = "${mode#0}" ] && { [ -z "$owner" ] || [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ] || [ "$have_owner" = "$owner" ]; }; then
    ok "$path"
  fi
}

step_dirs() {
  section "Directories"
  ensure_dir "$PREFIX" 0755
  # The config may hold the broker password: readable by the service, not by everyone.
  ensure_dir "$CONF_DIR" 0750 "root:$SERVICE_USER"
  ensure_dir "$STATE_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
  ensure_dir "$MODELS_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
}

# ---- step: virtual environment and EdgeTeach ---------------------------------------------------------
venv_python() { printf '%s/bin/python' "$(R "$VENV")"; }

# shellcheck source=SCRIPTDIR/llama-cpp.sh
source "$SRC_DIR/deploy/llama-cpp.sh"

# The CMake flags of the llama.cpp build: CUDA's when asked for, always on the portable CPU baseline.
llama_build_args() {
  local extra="" arch
  if [ "$CUDA" -eq 1 ]; then
    extra="-DGGML_CUDA=on"
    arch="$(cuda_arch)"
    [ -z "$arch" ] || extra="$extra -DCMAKE_CUDA_ARCHITECTURES=$arch"
  fi
  llama_cmake_args "$extra"
}

# A few tokens from a GGUF in a child process: a llama.cpp that crashes on this CPU stops the install here.
step_llm_smoke() {
  [ "$WITH_LLM" -eq 1 ] || return 0
  section "llama.cpp smoke generation"
  local model="$LLM_SMOKE_MODEL"
  if [ -z "$model" ]; then
    model="$(find "$(R /var/lib/edgeteach/models)" -maxdepth 2 -name '*.gguf' 2>/dev/null | LC_ALL=C sort | head -n1 || true)"
  fi
  if [ -z "$model" ]; then
    skip "no GGUF model yet: after \`edge llm pull\`, run \`$VENV/bin/python -m edge.llm.smoke --model FILE\` (or install again with --llm-smoke-model FILE)"
    return 0
  fi
  if [ "$DRY_RUN" -eq 1 ]; then
    change "generate a few tokens from $model in a child process ($VENV/bin/python -m edge.llm.smoke)"
    return 0
  fi
  llama_smoke "$(venv_python)" "$model" "$(llama_build_args)" || die "llama.cpp crashes on this CPU (see above); nothing was started"
  ok "llama.cpp generates on this CPU"
}

# The files that make up the installed package; their hash decides whether pip must run again.
source_files() {
  (cd "$SRC_DIR" && find pyproject.toml README.md edge trainer -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null | LC_ALL=C sort)
}

wanted_stamp() {
  local files_hash
  files_hash="$(cd "$SRC_DIR" && source_files | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  printf 'source=%s extras=%s cuda=%s arch=%s ort_gpu=%s system_opencv=%s reuse=%s wheelhouse=%s llama=%s\n' \
    "$files_hash" "$(extras)" "$CUDA" "$(cuda_arch)" "$ORT_GPU" "$USE_SYSTEM_OPENCV" "$REUSE_VENV" "$WHEELHOUSE" "$(llama_build_args)"
}

extras() { if [ "$WITH_LLM" -eq 1 ]; then echo edge,llm; else echo edge; fi; }

cuda_arch() {
  if [ -n "$CUDA_ARCH" ]; then echo "$CUDA_ARCH"; return; fi
  [ "$TARGET_OS" = jetson ] || return 0
  local model
  model="$(device_model)"
  case "$model" in
    *Xavier*) echo 72 ;;
    *) echo 87 ;;   # JetPack 6 runs on the Orin family only (Orin Nano/NX/AGX: sm_87)
  esac
}

# Jetson CSI cameras go through GStreamer (nvarguscamerasrc), which pip's opencv-python-headless lacks;
# JetPack's own OpenCV has it. When the system's cv2 has GStreamer, the venv sees it instead of pip's.
system_opencv_has_gstreamer() {
  [ -x /usr/bin/python3 ] || return 1
  /usr/bin/python3 -c 'import cv2, sys; sys.exit(0 if any(l.strip().startswith("GStreamer:") and "YES" in l for l in cv2.getBuildInformation().splitlines()) else 1)' 2>/dev/null
}
USE_SYSTEM_OPENCV=0
if [ "$TARGET_OS" = jetson ] && system_opencv_has_gstreamer; then USE_SYSTEM_OPENCV=1; fi

use_system_site() { [ "$SYSTEM_SITE" -eq 1 ] || [ "$TARGET_OS" = raspios ] || [ "$USE_SYSTEM_OPENCV" -eq 1 ]; }

# With --reuse-packages the new environment has no pip of its own (creating one costs the most time):
# the reused environment's pip installs into it with --python.
pip_cmd() {
  if [ -n "$REUSE_VENV" ]; then
    printf '%s\n' "$REUSE_VENV/bin/python" -m pip --disable-pip-version-check --python "$(venv_python)"
  else
    printf '%s\n' "$(venv_python)" -m pip --disable-pip-version-check
  fi
}

pip_source_args() {
  if [ -n "$REUSE_VENV" ]; then
    printf '%s\n' --no-deps --no-build-isolation --no-index
  elif [ -n "$WHEELHOUSE" ]; then
    printf '%s\n' --no-index --find-links "$WHEELHOUSE"
  fi
  if [ -n "$EXTRA_INDEX_URL" ]; then printf '%s\n' --extra-index-url "$EXTRA_INDEX_URL"; fi
}

step_venv() {
  section "Virtual environment $VENV"
  local venv_here cfg want_site have_site py_version
  venv_here="$(R "$VENV")"
  cfg="$venv_here/pyvenv.cfg"
  if use_system_site; then want_site=true; else want_site=false; fi
  command -v "$PYTHON_BIN" >/dev/null || [ "$DRY_RUN" -eq 1 ] || die "no $PYTHON_BIN; install python3 (3.10 or later) or pass --python PATH"
  if [ -x "$venv_here/bin/python" ] && [ -f "$cfg" ]; then
    have_site="$(sed -n 's/^include-system-site-packages *= *//p' "$cfg")"
    if [ "$have_site" = "$want_site" ]; then
      ok "$VENV ($("$venv_here/bin/python" --version 2>&1), system site packages: $want_site)"
    else
      change "recreate $VENV with system site packages $want_site (was $have_site)"
      run rm -rf "$venv_here"
      create_venv "$venv_here"
    fi
  else
    if use_system_site; then
      change "create $VENV with --system-site-packages (apt's python3-picamera2 stays visible)"
    else
      change "create $VENV"
    fi
    create_venv "$venv_here"
  fi
  if [ -n "$REUSE_VENV" ]; then
    py_version="$("$REUSE_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    local pth site_dir
    site_dir="$("$REUSE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    pth="$venv_here/lib/python$py_version/site-packages/_edgeteach_reuse.pth"
    if [ -f "$pth" ] && [ "$(cat "$pth")" = "$site_dir" ]; then
      ok "packages reused from $site_dir"
    else
      change "reuse the packages of $REUSE_VENV (path file $(basename "$pth"))"
      if [ "$DRY_RUN" -eq 1 ]; then
        printf '         $ echo %s > %s\n' "$site_dir" "$pth"
      else
        [ -d "$(dirname "$pth")" ] || die "--reuse-packages: $REUSE_VENV is Python $py_version but $VENV is $("$venv_here/bin/python" --version 2>&1); pass --python $REUSE_VENV/bin/python"
        printf '%s\n' "$site_dir" >"$pth"
      fi
    fi
  fi
}

create_venv() {
  local args=()
  use_system_site && args+=(--system-site-packages)
  [ -z "$REUSE_VENV" ] || args+=(--without-pip)
  run "$PYTHON_BIN" -m venv "${args[@]}" "$1"
}

# Raspberry Pi OS: apt's picamera2 (and simplejpeg) are built against the system numpy; a numpy 2 from
# PyPI in the venv would shadow it and break `import picamera2` ("numpy.dtype size changed"). Pinning pip
# to the system's numpy makes pip choose an OpenCV that works with it.
# JetPack's cv2 is built against numpy 1.x: the venv keeps numpy below 2 when it uses that cv2.
write_constraints() {
  local file="$1" numpy_version
  : >"$file"
  if [ "$USE_SYSTEM_OPENCV" -eq 1 ]; then printf 'numpy<2\n' >"$file"; fi
  [ "$TARGET_OS" = raspios ] || return 0
  numpy_version="$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
  [ -z "$numpy_version" ] || printf 'numpy==%s\n' "$numpy_version" >"$file"
}

step_package() {
  section "EdgeTeach into $VENV"
  local stamp_file want have="" stage pip_args=() pip=()
  stamp_file="$(R "$PREFIX")/.install-stamp"
  want="$(wanted_stamp)"
  [ -f "$stamp_file" ] && have="$(cat "$stamp_file")"
  if [ "$have" = "$want" ] && [ -x "$(R "$VENV")/bin/edge" ]; then
    ok "edgeteach[$(extras)] up to date with $SRC_DIR"
    return
  fi
  change "pip install edgeteach[$(extras)] from $SRC_DIR"
  mapfile -t pip < <(pip_cmd)
  mapfile -t pip_args < <(pip_source_args)
  # pip builds in the folder it is given; a private copy keeps build/ and *.egg-info out of the checkout.
  if [ "$DRY_RUN" -eq 0 ]; then
    stage="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the folder name is known now
    trap "rm -rf '$stage'" EXIT
    (cd "$SRC_DIR" && source_files | tr '\n' '\0' | xargs -0 cp --parents -t "$stage")
    write_constraints "$stage/constraints.txt"
    [ -s "$stage/constraints.txt" ] && pip_args+=(-c "$stage/constraints.txt")
  else
    stage="BUILD_COPY_OF_SOURCE"
    info "(the source files are copied to a private build folder BUILD_COPY_OF_SOURCE first)"
    [ "$TARGET_OS" != raspios ] || info "(pip is pinned to the system numpy, so apt's picamera2 keeps working)"
  fi
  if [ "$WITH_LLM" -eq 1 ] && [ -z "$REUSE_VENV" ]; then
    # Built portably once per flag set and installed before EdgeTeach, so pip never builds it with
    # llama.cpp's native tuning (deploy/llama-cpp.sh says why); a smoke generation follows below.
    local cmake_args
    cmake_args="$(llama_build_args)"
    if [ "$CUDA" -eq 1 ]; then
      info "llama.cpp with CUDA (a Jetson builds for 30-60 minutes)"
      export CUDACXX=/usr/local/cuda/bin/nvcc
    fi
    change "build llama-cpp-python $LLAMA_CPP_PYTHON_VERSION once into $(llama_cache_dir)/llama-wheels with CMAKE_ARGS='$cmake_args' (--no-cache-dir: pip's own cache ignores the flags)"
    if [ "$DRY_RUN" -eq 0 ]; then
      llama_install "$(venv_python)" "$cmake_args" "${pip_args[@]}" || die "building llama-cpp-python failed; see the output above (or install with --no-llm)"
    fi
  fi
  run "${pip[@]}" install -q "${pip_args[@]}" "${stage}[$(extras)]"
  if [ "$USE_SYSTEM_OPENCV" -eq 1 ]; then
    info "JetPack's OpenCV has GStreamer (csi:// cameras): pip's opencv-python-headless is removed so the venv uses it"
    run "${pip[@]}" uninstall -y -q opencv-python-headless
  elif [ "$TARGET_OS" = jetson ]; then
    info "note: no system OpenCV with GStreamer; csi:// cameras need JetPack's (sudo apt install nvidia-opencv), USB cameras work without"
  fi
  if [ "$ORT_GPU" -eq 1 ]; then
    # Both distributions provide the `onnxruntime` module; only one may be installed.
    run "${pip[@]}" uninstall -y -q onnxruntime
    run "${pip[@]}" install -q --force-reinstall --no-deps "${pip_args[@]}" onnxruntime-gpu
  fi
  if [ "$DRY_RUN" -eq 0 ]; then
    "$(venv_python)" -c 'import edge, onnxruntime' || die "the installed environment cannot import edge/onnxruntime; see the pip output above"
    printf '%s\n' "$want" >"$stamp_file"
    rm -rf "$stage"
    trap - EXIT
  fi
}

# install_file SRC DST MODE [OWNER [LABEL]]: copies when missing or different; LABEL names a generated SRC.
install_file() {
  local src="$1" dst="$2" mode="$3" owner="${4:-}" label="${5:-$1}" here
  here="$(R "$dst")"
  if [ -f "$here" ] && cmp -s "$src" "$here"; then
    ok "$dst"
    return 1
  fi
  if [ -f "$here" ]; then change "update $dst"; else change "install $dst"; fi
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '         $ install -m %s %s %s\n' "$mode" "$label" "$here"
  else
    install -m "$mode" "$src" "$here"
  fi
  [ -z "$owner" ] || [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ] || run chown "$owner" "$here"
  return 0
}

step_command_link() {
  section "Command edge"
  local here target
  here="$(R "$BIN_LINK")"
  target="$VENV/bin/edge"
  if [ -L "$here" ] && [ "$(readlink "$here")" = "$target" ]; then
    ok "$BIN_LINK -> $target"
  elif [ -e "$here" ] && [ ! -L "$here" ]; then
    skip "$BIN_LINK exists and is not ours; use $target"
  else
    change "link $BIN_LINK -> $target"
    run install -d "$(dirname "$here")"
    run ln -sfn "$target" "$here"
  fi
}

step_docs() {
  section "Documentation in $PREFIX/docs"
  local f
  ensure_dir "$PREFIX/docs" 0755
  for f in "$SRC_DIR"/docs/*.md; do
    [ -f "$f" ] || continue
    install_file "$f" "$PREFIX/docs/$(basename "$f")" 0644 || true
  done
}

# ---- step: config ------------------------------------------------------------------------------------
hostname_id() {
  local name
  name="$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null || echo edgeteach)"
  name="${name%%.*}"
  name="$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_-' '-' | sed 's/^-*//; s/-*$//')"
  printf '%s' "${name:-edgeteach}"
}

# The example with this machine's name (a classroom of Pis must not share one device_id) and bundle
# paths pointing into the model storage the service may read.
render_config() {
  local example="$SRC_DIR/edge/config/example-config.yaml"
  [ -f "$example" ] || die "$example is missing: run the installer from a complete EdgeTeach source tree"
  sed -e "s|^device_id: .*|device_id: $(hostname_id)|" \
      -e "s|^\([[:space:]]*bundle:[[:space:]]*\)models/|\1$MODELS_DIR/|" "$example"
}

step_config() {
  section "Configuration $CONF_DIR"
  local rendered
  rendered="$(mktemp)"
  render_config >"$rendered"
  install_file "$rendered" "$CONF_DIR/config.example.yaml" 0644 "" "<edge/config/example-config.yaml with this device_id>" || true
  if [ -f "$(R "$CONF_DIR/config.yaml")" ]; then
    ok "$CONF_DIR/config.yaml exists (never overwritten; compare with config.example.yaml after upgrades)"
  else
    install_file "$rendered" "$CONF_DIR/config.yaml" 0640 "root:$SERVICE_USER" "<edge/config/example-config.yaml with this device_id>" || true
    info "edit it: device_id, the MQTT broker, and the bundles you copy into $MODELS_DIR"
  fi
  rm -f "$rendered"
}

# ---- step: systemd -----------------------------------------------------------------------------------
render_unit() {
  local unit="$1"
  sed -e "s|/opt/edgeteach|$PREFIX|g" "$SRC_DIR/systemd/$unit"
}

# Drop-ins the installer owns, per unit and machine. The units themselves stay identical everywhere; what
# a Jetson or a CUDA build needs on top is kept apart, so `systemctl cat` shows exactly what was relaxed.
# wanted_dropins UNIT -> names of the drop-ins this install wants for UNIT
wanted_dropins() {
  local unit="$1"
  [ "$TARGET_OS" = jetson ] && echo jetson.conf
  if [ "$unit" = edgeteach-llm.service ] && [ "$CUDA" -eq 1 ]; then echo cuda.conf; fi
  return 0
}
OWNED_DROPINS=(jetson.conf cuda.conf)

# dropin_text UNIT NAME
dropin_text() {
  local unit="$1" name="$2"
  echo "# Written by deploy/install.sh; see docs/deploy.md (Jetson and CUDA). Re-running the installer rewrites it."
  echo "[Service]"
  case "$name" in
    jetson.conf)
      echo "# JetPack's GPU nodes (/dev/nvmap is a misc device, /dev/nvhost-*, /dev/nvgpu/*) are no single device class:"
      echo "# lift the device allow-list rather than break CUDA/TensorRT. DeviceAllow= (empty) resets the list."
      echo "DevicePolicy=auto"
      echo "DeviceAllow="
      if [ "$unit" = edgeteach.service ]; then
        echo "# CSI cameras: nvarguscamerasrc talks to nvargus-daemon through a socket in the host's /tmp."
        echo "PrivateTmp=no"
      fi ;;
    cuda.conf)
      echo "# llama.cpp on CPU runs under MemoryDenyWriteExecute (tested); the CUDA driver was not tested under it."
      echo "MemoryDenyWriteExecute=no" ;;
  esac
}

UNITS_CHANGED=0

step_units() {
  section "systemd units in $UNIT_DIR"
  ensure_dir "$UNIT_DIR" 0755
  local unit rendered dropin_dir name wanted
  for unit in "${UNITS[@]}"; do
    rendered="$(mktemp)"
    render_unit "$unit" >"$rendered"
    if install_file "$rendered" "$UNIT_DIR/$unit" 0644 "" "<systemd/$unit for $PREFIX>"; then UNITS_CHANGED=1; fi
    rm -f "$rendered"
    dropin_dir="$UNIT_DIR/$unit.d"
    wanted=" $(wanted_dropins "$unit" | tr '\n' ' ') "
    [[ "$wanted" =~ [a-z] ]] && ensure_dir "$dropin_dir" 0755
    for name in "${OWNED_DROPINS[@]}"; do
      if [[ "$wanted" == *" $name "* ]]; then
        rendered="$(mktemp)"
        dropin_text "$unit" "$name" >"$rendered"
        if install_file "$rendered" "$dropin_dir/$name" 0644 "" "<$name for $unit>"; then UNITS_CHANGED=1; fi
        rm -f "$rendered"
      elif [ -f "$(R "$dropin_dir/$name")" ]; then
        change "remove $dropin_dir/$name (not wanted by this install's options)"
        run rm -f "$(R "$dropin_dir/$name")"
        UNITS_CHANGED=1
      fi
    done
  done
  if [ "$WITH_LLM" -eq 0 ] && [ -f "$(R "$UNIT_DIR/edgeteach-llm.service")" ]; then
    info "note: edgeteach-llm.service from an earlier install stays; remove it with --uninstall then reinstall"
  fi
}

llm_enabled_in_config() {
  local python config
  python="$(venv_python)"
  config="$(R "$CONF_DIR/config.yaml")"
  [ -x "$python" ] && [ -f "$config" ] || return 1
  "$python" -c 'import sys; from edge.config import load_config; sys.exit(0 if load_config(sys.argv[1]).llm.enabled else 1)' "$config" 2>/dev/null
}

step_enable() {
  section "Enable the services"
  local unit state
  if [ "$UNITS_CHANGED" -eq 1 ]; then
    if [ -n "$ROOT" ]; then
      skip "--root: no daemon-reload (systemd reads the units when the root boots)"
    elif ! systemd_running; then
      skip "systemd is not running here (a container?): no daemon-reload"
    else
      change "systemctl daemon-reload"
      run systemctl daemon-reload
    fi
  fi
  for unit in "${UNITS[@]}"; do
    state="$("${SYSTEMCTL[@]}" is-enabled "$unit" 2>/dev/null || true)"
    if [ "$state" = enabled ]; then
      ok "$unit enabled"
    elif [ "$unit" = edgeteach-llm.service ] && ! llm_enabled_in_config; then
      # Started without a model it would only fail and restart; the config decides.
      skip "$unit not enabled: llm.enabled is not true in $CONF_DIR/config.yaml (set llm.enabled and llm.model, then: sudo systemctl enable --now $unit)"
    else
      change "enable $unit"
      run "${SYSTEMCTL[@]}" enable --quiet "$unit"
    fi
  done
  if [ -z "$ROOT" ] && systemd_running; then
    for unit in "${UNITS[@]}"; do
      if [ "$START" -eq 1 ]; then
        if systemctl is-active --quiet "$unit" && [ "$CHANGES" -eq 0 ]; then
          ok "$unit running"
        else
          change "restart $unit"
          run systemctl restart "$unit"
        fi
      elif [ "$CHANGES" -gt 0 ] && systemctl is-active --quiet "$unit"; then
        # Running with old code or units: pick up the new ones now rather than at the next reboot.
        change "restart running $unit"
        run systemctl try-restart "$unit"
      fi
    done
  fi
}

# ---- uninstall ---------------------------------------------------------------------------------------
remove_path() {
  local path="$1" here
  here="$(R "$path")"
  if [ -e "$here" ] || [ -L "$here" ]; then
    change "remove $path"
    run rm -rf "$here"
  else
    ok "$path already gone"
  fi
}

do_uninstall() {
  section "Stop and disable the services"
  local unit state
  for unit in "${ALL_UNITS[@]}"; do
    if [ ! -f "$(R "$UNIT_DIR/$unit")" ]; then
      ok "$unit not installed"
      continue
    fi
    if [ -z "$ROOT" ] && systemd_running && systemctl is-active --quiet "$unit"; then
      change "stop $unit"
      run systemctl stop "$unit"
    fi
    state="$("${SYSTEMCTL[@]}" is-enabled "$unit" 2>/dev/null || true)"
    if [ "$state" = enabled ]; then
      change "disable $unit"
      run "${SYSTEMCTL[@]}" disable --quiet "$unit"
    fi
  done
  section "Remove the units, $PREFIX and the edge command"
  local before=$CHANGES
  for unit in "${ALL_UNITS[@]}"; do
    remove_path "$UNIT_DIR/$unit"
  done
  remove_path "$UNIT_DIR/edgeteach.service.d"
  remove_path "$UNIT_DIR/edgeteach-llm.service.d"
  if [ "$CHANGES" -gt "$before" ] && [ -z "$ROOT" ] && systemd_running; then
    change "systemctl daemon-reload"
    run systemctl daemon-reload
  fi
  remove_path "$PREFIX"
  if [ -L "$(R "$BIN_LINK")" ]; then
    remove_path "$BIN_LINK"
  else
    ok "$BIN_LINK already gone"
  fi
  section "Your config and models"
  if [ "$PURGE" -eq 1 ]; then
    remove_path "$CONF_DIR"
    remove_path "$STATE_DIR"
    if [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ] && getent passwd "$SERVICE_USER" >/dev/null; then
      change "remove user $SERVICE_USER"
      run userdel "$SERVICE_USER"
    elif [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ]; then
      ok "user $SERVICE_USER already gone"
    fi
  else
    info "kept: $CONF_DIR and $STATE_DIR (your config and models) and the user $SERVICE_USER; --purge removes them"
  fi
  info "Debian packages are left installed (other software may use them)"
}

# ---- main --------------------------------------------------------------------------------------------
if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root: sudo $0${ORIG_ARGS:+ $ORIG_ARGS} (or try --dry-run first)"
fi

printf '%sEdgeTeach installer%s (source %s)\n' "$BOLD" "$RESET" "$SRC_DIR"
printf '  system: %s on %s%s\n' "$TARGET_OS" "$HOST_ARCH" "$( [ -n "$OS_OVERRIDE" ] && echo ' (--os)' )"
model="$(device_model)"
[ -z "$model" ] || printf '  model:  %s\n' "$model"
[ -z "$ROOT" ] || printf '  root:   %s (staging: no apt, no user, no live systemctl)\n' "$ROOT"
[ "$DRY_RUN" -eq 0 ] || printf '  dry run: nothing is changed\n'
[ -n "$OS_OVERRIDE" ] || check_supported

if [ "$UNINSTALL" -eq 1 ]; then
  do_uninstall
else
  [ "$WITH_LLM" -eq 1 ] || [ "$CUDA" -eq 0 ] || info "note: --cuda only affects llama.cpp, which --no-llm skips"
  step_packages
  step_user
  step_dirs
  step_venv
  step_package
  step_llm_smoke
  step_command_link
  step_docs
  step_config
  step_units
  step_enable
fi

echo
if [ "$CHANGES" -eq 0 ]; then
  echo "Nothing to change: everything is already as asked."
elif [ "$DRY_RUN" -eq 1 ]; then
  echo "Dry run: $CHANGES change(s) would be made; run without --dry-run to make them."
else
  echo "Done: $CHANGES change(s) made."
fi
if [ "$UNINSTALL" -eq 0 ] && [ "$DRY_RUN" -eq 0 ] && [ "$CHANGES" -gt 0 ]; then
  cat <<EOF

Next:
  1. edit $CONF_DIR/config.yaml (device_id, the MQTT broker) and copy your bundles into $MODELS_DIR
  2. check the setup as the service sees it:  sudo -u $SERVICE_USER $VENV/bin/edge doctor -c $CONF_DIR/config.yaml
  3. start it:  sudo systemctl start edgeteach   and watch it:  journalctl -u edgeteach -f
EOF
fi
