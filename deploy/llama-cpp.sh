# shellcheck shell=bash
# How EdgeTeach builds, installs and checks llama.cpp (llama-cpp-python), sourced by scripts/setup.sh and
# deploy/install.sh so that both build it the same way.
#
# Why not pip's default build: llama.cpp's CMake turns on GGML_NATIVE, i.e. -march=native, which tunes the
# library to the CPU it was built on. A wheel built on one x86 machine then crashes on another (seen: every
# generation died with SIGSEGV on a Sapphire Rapids VM, where a native build uses ggml's AMX kernels), and
# pip's wheel cache hands that wheel out again whatever CMAKE_ARGS say, since it is keyed by the sdist.
#
# So: (1) flags are a conservative baseline per architecture, made only of instructions that the running
# kernel reports as enabled (/proc/cpuinfo lists AVX2, FMA, F16C only when the kernel saved their state;
# Arm lists asimddp/fphp from the HWCAPs it enables); (2) the wheel is built once per (version, flags,
# Python, architecture) into our own cache; (3) a smoke generation in a child process right after the
# install stops the setup with a clear message instead of a test suite that dies later.
#
# EDGETEACH_LLAMA_CMAKE_ARGS replaces the baseline (for example a CUDA build, or -DGGML_NATIVE=ON to try
# the native build on a machine you will never copy it from); the smoke test still guards it.
#
# LLAMA_BUILD_USER (set by deploy/install.sh, which runs as root): pip downloads and compiles as that user,
# in a scratch folder of its own, and every Python run of the venv happens as that user too; root only
# copies the finished files into its cache and unpacks the wheel. Code from the index never runs as root.

LLAMA_CPP_PYTHON_VERSION="0.3.36"
# Not multimodal: our chat never loads vision projectors, and libmtmd doubles the build time.
LLAMA_COMMON_ARGS="-DLLAVA_BUILD=OFF"

# The x86-64 instruction sets a build may use, in order; each must be listed in the flags line.
_LLAMA_X86_AVX2_LEVEL=(avx avx2 fma f16c bmi2)
_LLAMA_X86_OFF="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

# _llama_as_builder COMMAND...: COMMAND as LLAMA_BUILD_USER (from /, which it may read) when one is set.
_llama_as_builder() {
  if [ -n "${LLAMA_BUILD_USER:-}" ]; then
    (cd / && runuser -u "$LLAMA_BUILD_USER" -- "$@")
  else
    "$@"
  fi
}

# _llama_scratch DIR: a folder pip may write to: DIR itself, or a build user's own folder in a scratch folder
# of root's (whose name others cannot list).
_llama_scratch() {
  local dir="$1" scratch
  if [ -z "${LLAMA_BUILD_USER:-}" ]; then
    mkdir -p "$dir"
    echo "$dir"
    return
  fi
  scratch="$(mktemp -d)" || return 1
  chmod 0711 "$scratch" &&
    install -d -m 0700 -o "$LLAMA_BUILD_USER" -g "$(id -g "$LLAMA_BUILD_USER")" "$scratch/out" || return 1
  echo "$scratch/out"
}

# _llama_pip PY OUT PIP_ARGS...: pip, as the build user when one is set (its HOME in OUT: no cache of its own).
_llama_pip() {
  local py="$1" out="$2"
  shift 2
  if [ -n "${LLAMA_BUILD_USER:-}" ]; then
    _llama_as_builder env HOME="$out" PIP_NO_CACHE_DIR=1 "$py" -m pip --disable-pip-version-check "$@"
  else
    "$py" -m pip --disable-pip-version-check "$@"
  fi
}

# _llama_collect OUT DIR PATTERN: copies what the build user made (PATTERN) into DIR as root's own files and
# drops the scratch folder; nothing to do when pip wrote into DIR itself.
_llama_collect() {
  local out="$1" dir="$2" pattern="$3"
  [ "$out" != "$dir" ] || return 0
  mkdir -p "$dir"
  find "$out" -maxdepth 1 -type f -name "$pattern" -exec cp {} "$dir/" \;
  rm -rf "$(dirname "$out")"
}

# llama_cpu_args [CPUINFO [ARCH]]: the baseline CMake flags for this machine's CPU as its kernel reports it.
llama_cpu_args() {
  local cpuinfo="${1:-/proc/cpuinfo}" arch="${2:-$(uname -m)}" flags feature missing=0 sse
  case "$arch" in
    x86_64|amd64)
      flags=" $(grep -m1 '^flags' "$cpuinfo" 2>/dev/null | cut -d: -f2) "
      for feature in "${_LLAMA_X86_AVX2_LEVEL[@]}"; do
        case "$flags" in *" $feature "*) ;; *) missing=1 ;; esac
      done
      if [ "$missing" -eq 0 ]; then
        # x86-64-v3 (Haswell, Zen 1 and later): AVX2/FMA/F16C/BMI2; never AVX-512, AVX-VNNI or AMX.
        echo "-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON $_LLAMA_X86_OFF"
      else
        # Older or restricted CPUs (some virtual machines hide AVX): SSE4.2 at most, plain x86-64 below that.
        case "$flags" in *" sse4_2 "*) sse=ON ;; *) sse=OFF ;; esac
        echo "-DGGML_NATIVE=OFF -DGGML_SSE42=$sse -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF $_LLAMA_X86_OFF"
      fi
      ;;
    aarch64|arm64)
      flags=" $(grep -m1 '^Features' "$cpuinfo" 2>/dev/null | cut -d: -f2) "
      # Pi 4 (Cortex-A72) is armv8.0; Pi 5 (A76) and Orin (A78AE) add dot product and half floats.
      local march="armv8-a"
      case "$flags" in *" asimddp "*) march="armv8.2-a+dotprod" ;; esac
      case "$flags" in *" fphp "*)
        case "$flags" in *" asimdhp "*) [ "$march" = armv8-a ] && march="armv8.2-a"; march="$march+fp16" ;; esac ;;
      esac
      echo "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=$march"
      ;;
    *)
      echo "-DGGML_NATIVE=OFF"
      ;;
  esac
}

# llama_cmake_args [EXTRA...]: every flag of the build (EDGETEACH_LLAMA_CMAKE_ARGS replaces the baseline).
llama_cmake_args() {
  local base="${EDGETEACH_LLAMA_CMAKE_ARGS:-$(llama_cpu_args /proc/cpuinfo)}"
  echo "$* $base $LLAMA_COMMON_ARGS" | xargs
}

llama_cache_dir() {
  echo "${EDGETEACH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeteach}"
}

# llama_build_key PYTHON CMAKE_ARGS: what a wheel depends on; a change of any part builds a new wheel.
llama_build_key() {
  local py_tag
  py_tag="$(_llama_as_builder "$1" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  printf '%s|%s|%s|%s' "$LLAMA_CPP_PYTHON_VERSION" "$2" "$py_tag" "$(uname -m)" | sha256sum | cut -c1-16
}

# llama_sdist PYTHON [PIP_ARGS...]: the source archive, downloaded once into the cache (kept, so that a
# rebuild with other flags, or the broken-build test, needs no network).
llama_sdist() {
  local py="$1" dir file out
  shift
  dir="$(llama_cache_dir)/sdist"
  file="$dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  if [ ! -s "$file" ]; then
    out="$(_llama_scratch "$dir")" || return 1
    _llama_pip "$py" "$out" download -q --no-deps --no-binary :all: "$@" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$out" >&2 || return 1
    _llama_collect "$out" "$dir" 'llama_cpp_python-*.tar.gz'
    [ -s "$file" ] || return 1
  fi
  echo "$file"
}

# llama_wheel PYTHON CMAKE_ARGS [PIP_ARGS...]: builds the wheel once per key; prints its path.
llama_wheel() {
  local py="$1" args="$2" dir sdist wheel out
  shift 2
  dir="$(llama_cache_dir)/llama-wheels/$(llama_build_key "$py" "$args")"
  wheel="$(find "$dir" -maxdepth 1 -name 'llama_cpp_python-*.whl' 2>/dev/null | head -n1)"
  if [ -z "$wheel" ]; then
    sdist="$(llama_sdist "$py" "$@")" || return 1
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION with CMAKE_ARGS=\"$args\" (several minutes, once)" >&2
    rm -rf "$dir.tmp"
    out="$(_llama_scratch "$dir.tmp")" || return 1
    if [ "$out" != "$dir.tmp" ]; then  # the build user reads its own copy (root's cache may be private)
      cp "$sdist" "$out/"
      sdist="$out/$(basename "$sdist")"
    fi
    # --no-cache-dir: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, and would hand back a
    # wheel built with other flags.
    CMAKE_ARGS="$args" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      _llama_pip "$py" "$out" wheel -q --no-deps --no-cache-dir "$@" -w "$out" "$sdist" >&2 ||
      { _llama_collect "$out" "$dir.tmp" none; return 1; }
    _llama_collect "$out" "$dir.tmp" 'llama_cpp_python-*.whl'
    printf '%s\n' "$args" >"$dir.tmp/CMAKE_ARGS"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    wheel="$(find "$dir" -maxdepth 1 -name 'llama_cpp_python-*.whl' | head -n1)"
  fi
  echo "$wheel"
}

# llama_installed_key PYTHON: the key of the build installed in PYTHON's environment ("" when none).
llama_installed_key() {
  _llama_as_builder "$1" - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
if spec and spec.origin:
    marker = pathlib.Path(spec.origin).parent / "EDGETEACH_BUILD"
    print(marker.read_text().strip() if marker.is_file() else "unknown")
EOF
}

# llama_install PYTHON CMAKE_ARGS [PIP_ARGS...]: installs our build unless it is already there. Its
# dependencies come from the index as usual; the wheel itself only ever from our cache.
llama_install() {
  local py="$1" args="$2" key wheel site
  shift 2
  key="$(llama_build_key "$py" "$args")"
  if [ "$(llama_installed_key "$py")" = "$key" ]; then
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already installed with CMAKE_ARGS=\"$args\"" >&2
    return 0
  fi
  wheel="$(llama_wheel "$py" "$args" "$@")" || return 1
  # a wheel: pip unpacks it, no package code runs
  "$py" -m pip --disable-pip-version-check install -q --force-reinstall --no-deps "$wheel" >&2
  if [ -z "${LLAMA_BUILD_USER:-}" ]; then
    "$py" -m pip --disable-pip-version-check install -q "$@" "$wheel" >&2   # its dependencies, if missing
  fi  # else the installer's own unprivileged build brings them, with EdgeTeach's
  site="$(_llama_as_builder "$py" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llama_cpp").origin).parent)')"
  printf '%s\n' "$key" >"$site/EDGETEACH_BUILD"
}

# llama_smoke PYTHON MODEL: a few tokens in a child process; on a crash, the message and exit status 1.
llama_smoke() {
  local py="$1" model="$2"
  if _llama_as_builder "$py" -m edge.llm.smoke --model "$model"; then
    return 0
  fi
  echo "llama.cpp was built with CMAKE_ARGS=\"${3:-see above}\"; setup stopped so that nothing runs on a broken build." >&2
  return 1
}
