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

LLAMA_CPP_PYTHON_VERSION="0.3.36"
# Not multimodal: our chat never loads vision projectors, and libmtmd doubles the build time.
LLAMA_COMMON_ARGS="-DLLAVA_BUILD=OFF"

# The x86-64 instruction sets a build may use, in order; each must be listed in the flags line.
_LLAMA_X86_AVX2_LEVEL=(avx avx2 fma f16c bmi2)
_LLAMA_X86_OFF="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

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
  py_tag="$("$1" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  printf '%s|%s|%s|%s' "$LLAMA_CPP_PYTHON_VERSION" "$2" "$py_tag" "$(uname -m)" | sha256sum | cut -c1-16
}

# llama_sdist PYTHON [PIP_ARGS...]: the source archive, downloaded once into the cache (kept, so that a
# rebuild with other flags, or the broken-build test, needs no network).
llama_sdist() {
  local py="$1" dir file
  shift
  dir="$(llama_cache_dir)/sdist"
  file="$dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  if [ ! -s "$file" ]; then
    mkdir -p "$dir"
    "$py" -m pip --disable-pip-version-check download -q --no-deps --no-binary :all: "$@" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$dir" >&2
  fi
  echo "$file"
}

# llama_wheel PYTHON CMAKE_ARGS [PIP_ARGS...]: builds the wheel once per key; prints its path.
llama_wheel() {
  local py="$1" args="$2" dir sdist wheel
  shift 2
  dir="$(llama_cache_dir)/llama-wheels/$(llama_build_key "$py" "$args")"
  wheel="$(find "$dir" -maxdepth 1 -name 'llama_cpp_python-*.whl' 2>/dev/null | head -n1)"
  if [ -z "$wheel" ]; then
    sdist="$(llama_sdist "$py" "$@")"
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION with CMAKE_ARGS=\"$args\" (several minutes, once)" >&2
    mkdir -p "$dir.tmp"
    # --no-cache-dir: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, and would hand back a
    # wheel built with other flags.
    CMAKE_ARGS="$args" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$py" -m pip --disable-pip-version-check wheel -q --no-deps --no-cache-dir "$@" -w "$dir.tmp" "$sdist" >&2
    printf '%s\n' "$args" >"$dir.tmp/CMAKE_ARGS"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    wheel="$(find "$dir" -maxdepth 1 -name 'llama_cpp_python-*.whl' | head -n1)"
  fi
  echo "$wheel"
}

# llama_installed_key PYTHON: the key of the build installed in PYTHON's environment ("" when none).
llama_installed_key() {
  "$1" - <<'EOF' 2>/dev/null || true
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
  "$py" -m pip --disable-pip-version-check install -q --force-reinstall --no-deps "$wheel" >&2
  "$py" -m pip --disable-pip-version-check install -q "$@" "$wheel" >&2   # its dependencies, if missing
  site="$("$py" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llama_cpp").origin).parent)')"
  printf '%s\n' "$key" >"$site/EDGETEACH_BUILD"
}

# llama_smoke PYTHON MODEL: a few tokens in a child process; on a crash, the message and exit status 1.
llama_smoke() {
  local py="$1" model="$2"
  if "$py" -m edge.llm.smoke --model "$model"; then
    return 0
  fi
  echo "llama.cpp was built with CMAKE_ARGS=\"${3:-see above}\"; setup stopped so that nothing runs on a broken build." >&2
  return 1
}
