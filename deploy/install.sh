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
#   /var/lib/edgeteach/models -> the local Mosquitto closed (accounts and an ACL) -> systemd units
#   edgeteach.service and edgeteach-llm.service, enabled.
# Every option is described by --help and in docs/deploy.md.
set -euo pipefail
# Whatever the caller's umask: what we create is readable by the services and writable by root only
# (a group-writable venv would be refused by the next run, see untrusted_file).
umask 022

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="deploy/install.sh"
ORIG_ARGS="$*"

# ---- options ------------------------------------------------------------------------------------------
DRY_RUN=0
OS_OVERRIDE=""
WITH_LLM=1
WITH_MOSQUITTO=1
ALLOW_ANONYMOUS=0
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
  --allow-anonymous      let clients without an account use the local broker (read and write edgeteach/#
                         and homeassistant/#); by default it asks every client for a password
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
  --uninstall            stop and remove the services and what the installer put in the prefix (listed
                         in PREFIX/.edgeteach-manifest, nothing else); keep config and models
  --purge                with --uninstall: also remove /etc/edgeteach, /var/lib/edgeteach, the broker's
                         accounts and ACL, and the user
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
    --allow-anonymous) ALLOW_ANONYMOUS=1 ;;
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
[ "$ALLOW_ANONYMOUS" -eq 0 ] || [ "$WITH_MOSQUITTO" -eq 1 ] || die "--allow-anonymous opens the local broker, which --no-mosquitto leaves out"
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
case "$PREFIX/" in *"/../"*|*"/./"*) die "--prefix $PREFIX: write it without '.' or '..'" ;; esac
case "$PREFIX" in *"//"*) die "--prefix $PREFIX: write it without '//'" ;; esac
PREFIX="${PREFIX%/}"
# --uninstall removes what the installer put in the prefix, so the prefix must be a folder of EdgeTeach's
# own: a folder the whole system shares is refused (an old version removed the whole prefix: /opt).
case "$PREFIX" in
  ""|/usr|/usr/local|/usr/lib|/usr/share|/opt|/etc|/var|/var/lib|/var/cache|/home|/root|/srv|/tmp|/var/tmp|/bin|/sbin|/lib|/lib64|/boot|/dev|/proc|/sys|/run|/mnt|/media|/snap)
    die "--prefix ${PREFIX:-/} is a folder the whole system shares; give EdgeTeach one of its own, e.g. --prefix /opt/edgeteach" ;;
esac
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
# What this installer created in the prefix, one "KIND PATH" a line, for --uninstall (see record()).
MANIFEST="$PREFIX/.edgeteach-manifest"
# The local broker: our own conf.d file, its accounts (hashed) and ACL; the clear passwords stay with us.
MOSQUITTO_CONF="/etc/mosquitto/conf.d/edgeteach.conf"
MOSQUITTO_PASSWD="/etc/mosquitto/edgeteach.passwd"
MOSQUITTO_ACL="/etc/mosquitto/edgeteach.acl"
DEVICE_SECRET="$CONF_DIR/mqtt-password"            # the daemon's (mqtt.password_file): 0640 root:edgeteach
TEACHER_USER="teacher"
TEACHER_SECRET="$CONF_DIR/mqtt-teacher-password"   # the operator's: 0600 root, read once with sudo
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
    case "$path" in "$PREFIX"|"$PREFIX"/*) record dir "$path" ;; esac
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

# ---- the manifest: what --uninstall may remove from the prefix ----------------------------------------
# record KIND PATH, KIND being tree (the folder and everything in it: the venv), file, or dir (removed only
# when empty, so a prefix that held other things before keeps them). Only what this installer created is
# recorded; --uninstall removes exactly that, in reverse order.
record() {
  local kind="$1" path="$2" here
  [ "$DRY_RUN" -eq 0 ] || return 0
  here="$(R "$MANIFEST")"
  if [ -f "$here" ] && grep -qxF "$kind $path" "$here"; then return 0; fi
  printf '%s %s\n' "$kind" "$path" >>"$here"
}

# What an install made before the manifest existed (its .install-stamp says it was one): the venv, the
# stamp, the docs we copy, and the prefix and docs folders, which go only when nothing else is in them.
legacy_manifest() {
  local f
  printf 'dir %s\n' "$PREFIX"
  [ ! -f "$(R "$VENV")/pyvenv.cfg" ] || printf 'tree %s\n' "$VENV"
  printf 'dir %s\n' "$PREFIX/docs"
  for f in "$SRC_DIR"/docs/*.md; do
    [ -f "$(R "$PREFIX/docs/$(basename "$f")")" ] && printf 'file %s\n' "$PREFIX/docs/$(basename "$f")"
  done
  printf 'file %s\n' "$PREFIX/.install-stamp"
}

step_dirs() {
  section "Directories"
  ensure_dir "$PREFIX" 0755
  if [ "$DRY_RUN" -eq 0 ] && [ ! -f "$(R "$MANIFEST")" ] && [ -f "$(R "$PREFIX/.install-stamp")" ]; then
    change "list the earlier install's files in $MANIFEST (for --uninstall)"
    legacy_manifest >"$(R "$MANIFEST")"
  fi
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

# untrusted_file DIR [DEPTH]: the first file in DIR (down to DEPTH levels) that belongs to another user than
# the one running the installer (root on a device) or root, or that others (DEPTH unset: group or others)
# may write; nothing when all are safe. The venv's code runs as the services and in the installer's checks:
# anyone who can write there can plant code in them.
untrusted_file() {
  local dir="$1" depth="${2:-}" me writable=/022
  me="$(id -u)"
  if [ -n "$depth" ]; then
    # another tree (--reuse-packages): only its top folders, and only world-writable is refused there
    # (a developer's own venv is often group-writable by their private group)
    writable=/002
    find -H "$dir" -maxdepth "$depth" \( \( ! -uid 0 ! -uid "$me" \) -o \( ! -type l -perm "$writable" \) \) -print -quit 2>/dev/null
  else
    find -H "$dir" \( \( ! -uid 0 ! -uid "$me" \) -o \( ! -type l -perm "$writable" \) \) -print -quit 2>/dev/null
  fi
}

# refuse_untrusted DIR WHAT [DEPTH]: stops the install when untrusted_file finds something in DIR.
refuse_untrusted() {
  local dir="$1" what="$2" bad
  bad="$(untrusted_file "$dir" "${3:-}")"
  [ -n "$bad" ] || return 0
  die "refusing to use $what $dir: $bad belongs to $(stat -c %U "$bad") with mode $(stat -c %a "$bad"), but only $(id -un) (or root) may write there; someone else could have planted code in it. Remove it (sudo rm -rf $dir) and run the installer again: it builds a fresh one"
}

step_venv() {
  section "Virtual environment $VENV"
  local venv_here cfg want_site have_site py_version
  venv_here="$(R "$VENV")"
  cfg="$venv_here/pyvenv.cfg"
  if use_system_site; then want_site=true; else want_site=false; fi
  command -v "$PYTHON_BIN" >/dev/null || [ "$DRY_RUN" -eq 1 ] || die "no $PYTHON_BIN; install python3 (3.10 or later) or pass --python PATH"
  [ -z "$REUSE_VENV" ] || refuse_untrusted "$REUSE_VENV" "the packages of" 3
  if [ -e "$venv_here" ] || [ -L "$venv_here" ]; then refuse_untrusted "$venv_here" "the existing virtual environment"; fi
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
  record tree "$VENV"
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

# Where the packages' own code runs. pip downloads and builds as the service user (a setup.py or build
# backend from the index never runs as root, and the service runs that code at every start anyway); root
# then only unpacks the built wheels, offline, into its own venv, and the import check runs as the service
# user again. Hashes were the other way: a lock file per board, Python and index (Jetson wheels) that this
# project cannot keep current. Under --root (staging, tests) and with --reuse-packages (nothing downloaded:
# our own tree and a venv already there) there is no user to switch to, and pip runs as the caller.
build_unprivileged() { [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ] && [ -z "$REUSE_VENV" ]; }

# service_exec COMMAND...: COMMAND as the service user (from /, which it may read) where build_unprivileged,
# else as the caller; as_service is the same as a step (only shown in a dry run).
service_exec() {
  if build_unprivileged; then (cd / && runuser -u "$SERVICE_USER" -- "$@"); else "$@"; fi
}
as_service() {
  if [ "$DRY_RUN" -eq 0 ]; then
    service_exec "$@"
  elif build_unprivileged; then
    show_cmd runuser -u "$SERVICE_USER" -- "$@"
  else
    show_cmd "$@"
  fi
}

# pip_install_unprivileged STAGE PIP_ARGS...: (uses the caller's pip array) the build as the service user into
# STAGE/wheels, then root's offline install of exactly those wheels.
pip_install_unprivileged() {
  local stage="$1" wheels prebuilt
  shift
  wheels="$stage/wheels"
  prebuilt="$stage/prebuilt"
  # The build user's own: setuptools writes build/ and *.egg-info into the source it builds (tried: "could not
  # create 'build': Permission denied" on a copy of root's). What it builds runs as that user anyway; root
  # takes from here only the wheels, and installs them without running them.
  run chown -R "$SERVICE_USER:$SERVICE_USER" "$stage"
  run install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$wheels"
  local find_links=()
  if [ "$WITH_LLM" -eq 1 ]; then
    # our portable llama.cpp build (above): pip takes the wheel rather than building the sdist again
    run install -d -m 0755 "$prebuilt"
    if [ "$DRY_RUN" -eq 0 ]; then
      cp "$(llama_wheel "$(venv_python)" "$(llama_build_args)")" "$prebuilt/" && chmod 0644 "$prebuilt"/*.whl
    fi
    find_links=(--find-links "$prebuilt")
  fi
  info "pip downloads and builds as $SERVICE_USER; root installs only the built wheels (no package code runs as root)"
  as_service env HOME="$wheels" PIP_NO_CACHE_DIR=1 "${pip[@]}" wheel -q -w "$wheels" "${find_links[@]}" "$@" "${stage}[$(extras)]"
  local root_args=(--no-index --find-links "$wheels")
  [ ! -s "$stage/constraints.txt" ] || root_args+=(-c "$stage/constraints.txt")
  run "${pip[@]}" install -q "${root_args[@]}" "edgeteach[$(extras)]"
  # the same version number as before after a git pull: reinstall our own wheel whatever pip thinks
  if [ "$DRY_RUN" -eq 1 ]; then
    run "${pip[@]}" install -q --no-index --no-deps --force-reinstall "$wheels/edgeteach-VERSION.whl"
  else
    run "${pip[@]}" install -q --no-index --no-deps --force-reinstall "$wheels"/edgeteach-*.whl
  fi
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
    # the build user reads the source copy and the constraints (public anyway); only root writes here
    chmod 0755 "$stage"
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
  if build_unprivileged; then
    pip_install_unprivileged "$stage" "${pip_args[@]}"
  else
    run "${pip[@]}" install -q "${pip_args[@]}" "${stage}[$(extras)]"
  fi
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
    as_service "$(venv_python)" -c 'import edge, onnxruntime' || die "the installed environment cannot import edge/onnxruntime; see the pip output above"
    printf '%s\n' "$want" >"$stamp_file"
    record file "$PREFIX/.install-stamp"
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
    if install_file "$f" "$PREFIX/docs/$(basename "$f")" 0644; then record file "$PREFIX/docs/$(basename "$f")"; fi
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

# The example with this machine's name (a classroom of Pis must not share one device_id), bundle paths
# and models_dir pointing into the model storage the service may read, the broker account the installer
# makes (unless --no-mosquitto), and the LLM left to edgeteach-llm.service (unless --no-llm).
render_config() {
  local example="$SRC_DIR/edge/config/example-config.yaml" id rendered
  [ -f "$example" ] || die "$example is missing: run the installer from a complete EdgeTeach source tree"
  id="$(hostname_id)"
  local edits=(-e "s|^device_id: .*|device_id: $id|"
               -e "/^device_id: /a # cmd/reload loads bundles only from inside this folder (docs/configuration.md)\nmodels_dir: $MODELS_DIR"
               -e "s|^\([[:space:]]*bundle:[[:space:]]*\)models/|\1$MODELS_DIR/|")
  if [ "$WITH_MOSQUITTO" -eq 1 ]; then
    edits+=(-e "s|^  # username: .*|  username: $id                 # the account the installer made on the local broker|"
            -e "s|^  # password_file: .*|  password_file: $DEVICE_SECRET|")
  fi
  rendered="$(sed "${edits[@]}" "$example")"
  if [ "$WITH_MOSQUITTO" -eq 1 ] && ! grep -q "^  password_file: $DEVICE_SECRET" <<<"$rendered"; then
    die "edge/config/example-config.yaml no longer has the commented mqtt username/password_file lines render_config fills in; update deploy/install.sh"
  fi
  printf '%s\n' "$rendered"
  if [ "$WITH_LLM" -eq 1 ]; then
    cat <<EOF

# The local LLM (docs/llm.md). edgeteach-llm.service runs it, under its own memory and CPU limits: set
# enabled: true and model: to a GGUF in $MODELS_DIR, then run the installer again (it enables the unit)
# or \`sudo systemctl enable --now edgeteach-llm\`.
llm:
  enabled: false
  run_by: systemd            # the unit runs \`edge llm serve\`, not \`edge run\` (one owner: docs/deploy.md)
EOF
  fi
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

# config_query EXPR: a Python expression over the installed config `c` (edge.config.load_config), printed
# (as the service user: no package code runs as root); nothing when there is no venv or config yet (a
# dry run) or the config does not load.
config_query() {
  local python config
  python="$(venv_python)"
  config="$(R "$CONF_DIR/config.yaml")"
  [ -x "$python" ] && [ -f "$config" ] || return 0
  service_exec "$python" -c 'import sys; from edge.config import load_config; c = load_config(sys.argv[1]); print(eval(sys.argv[2]))' \
    "$config" "$1" 2>/dev/null || true
}

# ---- step: the local broker --------------------------------------------------------------------------
# A classroom shares one network: the local Mosquitto asks every client for a password, and an ACL lets the
# device's account use only its own topics and the teacher's command every device.

# new_secret: a random password (24 characters), made in pipes: it never appears on a command line (`ps`).
new_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

# ensure_secret FILE MODE OWNER: a password file, made with a new password when missing and kept
# afterwards (never printed; the file is where it is read). Status 0 when it made a new one.
ensure_secret() {
  local path="$1" mode="$2" owner="$3" here
  here="$(R "$path")"
  if [ -s "$here" ]; then
    ok "$path (kept)"
    return 1
  fi
  change "create $path with a new random password (mode $mode${owner:+, owner $owner})"
  if [ "$DRY_RUN" -eq 0 ]; then
    (umask 077 && new_secret >"$here")
    chmod "$mode" "$here"
    [ "$SYSTEM_CHANGES_ALLOWED" -eq 0 ] || chown "$owner" "$here"
  fi
  return 0
}

# broker_owned FILE: root:mosquitto 0640 (the broker reads it after dropping root; nobody else may).
broker_owned() {
  chmod 0640 "$1"
  if [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ] && getent group mosquitto >/dev/null; then chown root:mosquitto "$1"; fi
}

# ensure_account USER SECRET_FILE NEW: USER in the broker's password file with the password of SECRET_FILE,
# added when missing or when NEW is 1 (a new password). mosquitto_passwd -U hashes a file of clear
# "user:password" lines, so the password is never on its command line. Status 0 when it changed something.
ensure_account() {
  local user="$1" secret="$2" new="$3" passwd tmp
  passwd="$(R "$MOSQUITTO_PASSWD")"
  if [ "$new" -eq 0 ] && [ -f "$passwd" ] && grep -q "^$user:" "$passwd"; then
    ok "account $user in $MOSQUITTO_PASSWD"
    return 1
  fi
  change "account $user in $MOSQUITTO_PASSWD (password from $secret, hashed)"
  if [ "$DRY_RUN" -eq 1 ]; then
    show_cmd mosquitto_passwd -U "FILE_WITH_$user:PASSWORD"
    return 0
  fi
  command -v mosquitto_passwd >/dev/null || die "no mosquitto_passwd: install the Debian package mosquitto (or pass --no-mosquitto)"
  tmp="$(umask 077 && mktemp "$(dirname "$passwd")/.edgeteach-passwd.XXXXXX")"
  printf '%s:%s\n' "$user" "$(cat "$(R "$secret")")" >"$tmp"
  mosquitto_passwd -U "$tmp" || { rm -f "$tmp"; die "mosquitto_passwd -U failed for the account $user"; }
  (umask 077 && { if [ -f "$passwd" ]; then grep -v "^$user:" "$passwd" || true; fi; cat "$tmp"; } >"$tmp.all")
  rm -f "$tmp"
  broker_owned "$tmp.all"
  mv -f "$tmp.all" "$passwd"
  return 0
}

# render_acl DEVICE_ID TOPIC_PREFIX: the ACL the installer writes once (then it is the teacher's to edit).
render_acl() {
  local id="$1" prefix="$2"
  cat <<EOF
# Who may use which topics on this broker. Written once by deploy/install.sh, then yours: add a client with
#   sudo mosquitto_passwd $MOSQUITTO_PASSWD NAME     (asks for its password)
# and a "user NAME" block below, then: sudo systemctl reload mosquitto. See docs/deploy.md, "The local broker".

# Clients without an account: only when the broker allows them (installed with --allow-anonymous).
topic readwrite edgeteach/#
topic readwrite homeassistant/#

# This device (edge run and edge llm serve): its own topics (states, events, status, replies under
# $prefix/replies/, command and LLM requests), and its Home Assistant discovery.
user $id
topic readwrite $prefix/#
topic write homeassistant/sensor/+/config
topic read homeassistant/status

# The operator (a teacher's laptop, Home Assistant): every device's topics, commands included.
user $TEACHER_USER
topic readwrite edgeteach/#
topic readwrite homeassistant/#
EOF
}

render_broker_conf() {
  cat <<EOF
# Written by deploy/install.sh (docs/deploy.md, "The local broker"); re-running the installer rewrites it.
# Every client logs in (accounts: $MOSQUITTO_PASSWD) and may use only the topics $MOSQUITTO_ACL gives it.
listener 1883
allow_anonymous $( [ "$ALLOW_ANONYMOUS" -eq 1 ] && echo true || echo false )
password_file $MOSQUITTO_PASSWD
acl_file $MOSQUITTO_ACL
EOF
}

step_broker() {
  [ "$WITH_MOSQUITTO" -eq 1 ] || return 0
  section "Local broker (Mosquitto): accounts and ACL"
  local id prefix new changed=0 rendered
  id="$(config_query 'c.device_id')"
  prefix="$(config_query 'c.mqtt.topic_prefix or "edgeteach/" + c.device_id')"
  [ -n "$id" ] || id="$(hostname_id)"
  [ -n "$prefix" ] || prefix="edgeteach/$id"
  prefix="${prefix%/}"
  [ "$id" != "$TEACHER_USER" ] || die "this device is called '$TEACHER_USER', the name of the operator account: rename it (device_id, or the hostname) and run again"
  ensure_dir /etc/mosquitto/conf.d 0755
  new=0
  if ensure_secret "$DEVICE_SECRET" 0640 "root:$SERVICE_USER"; then new=1; fi
  if ensure_account "$id" "$DEVICE_SECRET" "$new"; then changed=1; fi
  new=0
  if ensure_secret "$TEACHER_SECRET" 0600 root:root; then new=1; fi
  if ensure_account "$TEACHER_USER" "$TEACHER_SECRET" "$new"; then changed=1; fi
  if [ -f "$(R "$MOSQUITTO_ACL")" ]; then
    ok "$MOSQUITTO_ACL exists (never overwritten: it holds the clients you added)"
    grep -qx "user $id" "$(R "$MOSQUITTO_ACL")" ||
      info "warning: $MOSQUITTO_ACL has no 'user $id' block: this device cannot use its topics until you add one (docs/deploy.md)"
  else
    rendered="$(mktemp)"
    render_acl "$id" "$prefix" >"$rendered"
    if install_file "$rendered" "$MOSQUITTO_ACL" 0640 "" "<the ACL for $id and $TEACHER_USER>"; then changed=1; fi
    rm -f "$rendered"
    [ "$DRY_RUN" -eq 1 ] || broker_owned "$(R "$MOSQUITTO_ACL")"
  fi
  rendered="$(mktemp)"
  render_broker_conf >"$rendered"
  if install_file "$rendered" "$MOSQUITTO_CONF" 0644 "" "<listener 1883, allow_anonymous $( [ "$ALLOW_ANONYMOUS" -eq 1 ] && echo true || echo false ), password_file, acl_file>"; then
    changed=1
  fi
  rm -f "$rendered"
  if [ "$ALLOW_ANONYMOUS" -eq 1 ]; then
    info "warning: --allow-anonymous: anyone on the network may read and command every device on this broker"
  fi
  if [ "$changed" -eq 1 ] && [ -z "$ROOT" ] && systemd_running; then
    change "restart mosquitto (new accounts or settings)"
    run systemctl restart mosquitto
  fi
  if [ -z "$(config_query 'c.mqtt.username or ""')" ] && [ -f "$(R "$CONF_DIR/config.yaml")" ] && [ -x "$(venv_python)" ] && [ "$ALLOW_ANONYMOUS" -eq 0 ]; then
    info "warning: $CONF_DIR/config.yaml has no mqtt.username, and the local broker now refuses clients without one: add"
    info "  username: $id"
    info "  password_file: $DEVICE_SECRET"
    info "under mqtt: (or install again with --allow-anonymous)"
  fi
  info "the operator account '$TEACHER_USER': its password is in $TEACHER_SECRET (sudo cat $TEACHER_SECRET; copy it once into your MQTT client)"
  info "add a client: sudo mosquitto_passwd $MOSQUITTO_PASSWD NAME, a 'user NAME' block in $MOSQUITTO_ACL, then sudo systemctl reload mosquitto"
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

# Who runs the LLM server by the config: off, daemon (`edge run`'s child) or systemd (edgeteach-llm.service).
# Exactly one of them may: two servers would race for the port.
llm_owner() {
  local owner
  owner="$(config_query '"off" if not c.llm.enabled else c.llm.run_by')"
  printf '%s' "${owner:-off}"
}

step_enable() {
  section "Enable the services"
  local unit state owner
  owner="$(llm_owner)"   # once: each ask starts Python
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
      if [ "$unit" = edgeteach-llm.service ] && [ "$owner" = daemon ]; then
        info "warning: llm.run_by is daemon in $CONF_DIR/config.yaml, so \`edge run\` starts a second LLM server that races this unit for the port: set llm.run_by: systemd, or sudo systemctl disable --now $unit"
      fi
    elif [ "$unit" = edgeteach-llm.service ] && [ "$owner" = off ]; then
      # Started without a model it would only fail and restart; the config decides.
      skip "$unit not enabled: llm.enabled is not true in $CONF_DIR/config.yaml (set llm.enabled and llm.model, then run the installer again)"
    elif [ "$unit" = edgeteach-llm.service ] && [ "$owner" = daemon ]; then
      skip "$unit not enabled: llm.run_by is daemon in $CONF_DIR/config.yaml, so \`edge run\` starts the LLM itself (set llm.run_by: systemd to run it under the unit's limits, then run the installer again)"
    else
      change "enable $unit"
      run "${SYSTEMCTL[@]}" enable --quiet "$unit"
    fi
  done
  if [ -z "$ROOT" ] && systemd_running; then
    for unit in "${UNITS[@]}"; do
      if [ "$unit" = edgeteach-llm.service ] && [ "$owner" != systemd ]; then continue; fi
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

# remove_installed: what the manifest lists (or, for an install older than the manifest, what such an
# install made), newest first. Nothing else in the prefix is touched: a --prefix that held other files keeps
# them, and a folder we made is removed only once it is empty.
remove_installed() {
  local here lines=() line kind path i
  here="$(R "$MANIFEST")"
  if [ -f "$here" ]; then
    mapfile -t lines <"$here"
  elif [ -f "$(R "$PREFIX/.install-stamp")" ]; then
    mapfile -t lines < <(legacy_manifest)
  else
    ok "nothing of EdgeTeach's in $PREFIX (no $MANIFEST)"
    return
  fi
  [ ! -f "$here" ] || remove_path "$MANIFEST"
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    line="${lines[i]}"
    kind="${line%% *}"
    path="${line#* }"
    # A manifest is root's file in root's folder; still, only plain paths inside the prefix are followed.
    case "$path/" in
      *"/../"*|*"/./"*|*"//"*) info "warning: $MANIFEST names '$path': left alone"; continue ;;
    esac
    case "$path" in
      "$PREFIX"|"$PREFIX"/*) ;;
      *) info "warning: $MANIFEST names $path, outside $PREFIX: left alone"; continue ;;
    esac
    case "$kind" in
      tree|file) remove_path "$path" ;;
      dir)
        if [ ! -d "$(R "$path")" ]; then
          ok "$path already gone"
        elif [ "$DRY_RUN" -eq 1 ]; then
          change "remove $path (if nothing else is left in it)"
        elif [ -z "$(ls -A "$(R "$path")")" ]; then
          change "remove $path"
          rmdir "$(R "$path")"
        else
          info "kept $path: it holds files the installer did not put there"
        fi ;;
      *) info "warning: $MANIFEST: unknown line '$line': left alone" ;;
    esac
  done
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
  remove_installed
  if [ -L "$(R "$BIN_LINK")" ] && [ "$(readlink "$(R "$BIN_LINK")")" = "$VENV/bin/edge" ]; then
    remove_path "$BIN_LINK"
  elif [ -e "$(R "$BIN_LINK")" ] || [ -L "$(R "$BIN_LINK")" ]; then
    ok "$BIN_LINK is not ours (it does not point to $VENV/bin/edge): left alone"
  else
    ok "$BIN_LINK already gone"
  fi
  section "Your config and models"
  if [ "$PURGE" -eq 1 ]; then
    remove_path "$CONF_DIR"
    remove_path "$STATE_DIR"
    local broker_before=$CHANGES
    remove_path "$MOSQUITTO_CONF"
    remove_path "$MOSQUITTO_PASSWD"
    remove_path "$MOSQUITTO_ACL"
    if [ "$CHANGES" -gt "$broker_before" ] && [ -z "$ROOT" ] && systemd_running && systemctl is-active --quiet mosquitto; then
      change "restart mosquitto (without EdgeTeach's accounts: back to Mosquitto's default, local clients only)"
      run systemctl restart mosquitto
    fi
    if [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ] && getent passwd "$SERVICE_USER" >/dev/null; then
      change "remove user $SERVICE_USER"
      run userdel "$SERVICE_USER"
    elif [ "$SYSTEM_CHANGES_ALLOWED" -eq 1 ]; then
      ok "user $SERVICE_USER already gone"
    fi
  else
    info "kept: $CONF_DIR and $STATE_DIR (your config and models), the broker's accounts and ACL ($MOSQUITTO_CONF) and the user $SERVICE_USER; --purge removes them"
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
  # deploy/llama-cpp.sh builds, and runs the venv's Python, as this user too (build_unprivileged says why)
  if build_unprivileged; then LLAMA_BUILD_USER="$SERVICE_USER"; fi
  step_packages
  step_user
  step_dirs
  step_venv
  step_package
  step_llm_smoke
  step_command_link
  step_docs
  step_config
  step_broker
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
  if [ "$WITH_MOSQUITTO" -eq 1 ]; then
    echo "  4. watch and command it from your laptop as 'teacher' (password: sudo cat $TEACHER_SECRET):"
    echo "     mosquitto_sub -h $(hostname_id).local -u teacher -P PASSWORD -t 'edgeteach/#' -v"
  fi
fi
