"""A smoke generation in a child process: proves that the installed llama.cpp build runs on this CPU.

A llama.cpp compiled for another CPU does not fail at import. It dies on its first matrix product: with
SIGILL when the code uses an instruction this CPU (or its kernel) does not enable, with SIGSEGV on paths
such as ggml's AMX kernels on some virtual machines. So the check generates a few tokens, greedily, in a
child process: the parent survives the crash and reports it with the signal's name and what to do.

`scripts/setup.sh` and `deploy/install.sh` run it right after installing llama-cpp-python
(`python -m edge.llm.smoke --model FILE`); `bench/bench_llm_build.py` uses it to time builds side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import CreateCompletionResponse

PROMPT = "The capital of France is"
DEFAULT_TOKENS = 8
DEFAULT_TIMEOUT_S = 300.0

# What to try when the build crashes: the portable x86-64 and Arm baselines of deploy/llama-cpp.sh.
PORTABLE_FLAGS_HINT = (
    "rebuild llama.cpp portably: remove the cached wheel (rm -rf ~/.cache/edgeteach/llama-wheels) and run the "
    "setup again without EDGETEACH_LLAMA_CMAKE_ARGS, or set it to a baseline this CPU has, e.g. "
    "EDGETEACH_LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF' "
    "(x86-64 with AVX2), '-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF' "
    "(older x86-64) or '-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a' (any 64-bit Arm board)"
)


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    tokens: int = 0
    seconds: float = 0.0
    text: str = ""
    signal_name: str | None = None  # e.g. SIGILL when the child was killed by a signal
    detail: str = ""  # the child's last output lines when it failed

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def _signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def smoke_generate(
    model: Path,
    *,
    python: str = sys.executable,
    tokens: int = DEFAULT_TOKENS,
    threads: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    lib_path: Path | None = None,
) -> SmokeResult:
    """Generates `tokens` tokens from `model` in a child `python`; never raises for a crashed child.

    `lib_path` points llama-cpp-python at another build's shared libraries (LLAMA_CPP_LIB_PATH), so two
    builds can be compared in one run and a broken build can be checked without installing it."""
    env = dict(os.environ)
    if lib_path is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib_path)
    command = [python, "-m", "edge.llm.smoke", "--child", "--model", str(model), "--tokens", str(tokens), "--threads", str(threads)]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return SmokeResult(ok=False, detail=f"no answer within {timeout_s:.0f} s")
    tail = "\n".join((child.stdout + child.stderr).strip().splitlines()[-8:])
    if child.returncode != 0:
        return SmokeResult(ok=False, signal_name=_signal_name(child.returncode), detail=tail or f"exit status {child.returncode}")
    try:
        report = json.loads(child.stdout.strip().splitlines()[-1])
        return SmokeResult(ok=True, tokens=int(report["tokens"]), seconds=float(report["seconds"]), text=str(report["text"]))
    except (IndexError, KeyError, TypeError, ValueError):
        return SmokeResult(ok=False, detail=f"the child printed no result: {tail}")


def explain(result: SmokeResult, model: Path) -> str:
    """One message a person can act on: what happened and which flags to try."""
    if result.ok:
        return (f"llama.cpp smoke generation ok: {result.tokens} tokens from {model.name} in {result.seconds:.2f} s "
                f"({result.tokens_per_s:.1f} tokens/s): {result.text.strip()!r}")
    if result.signal_name == "SIGILL":
        cause = ("it died of SIGILL (illegal instruction): the build uses an instruction this CPU or its kernel "
                 "does not enable, typically a build tuned for another CPU (GGML_NATIVE, AVX-512, AVX-VNNI, AMX)")
    elif result.signal_name:
        cause = (f"it died of {result.signal_name}: a native crash in llama.cpp; on Intel Xeon virtual machines this is "
                 "typically ggml's AMX path, which a native build enables (GGML_NATIVE tunes the build to the CPU it runs on)")
    else:
        cause = f"it failed: {result.detail}"
    return (f"llama.cpp smoke generation FAILED with {model}: {cause}.\n"
            f"Its last output:\n{result.detail}\nFix: {PORTABLE_FLAGS_HINT}.")


def _child(model: Path, tokens: int, threads: int) -> int:
    from llama_cpp import Llama

    llama = Llama(model_path=str(model), n_ctx=128, n_threads=threads, n_threads_batch=threads, verbose=False)
    started = time.perf_counter()
    # not streamed, so one response rather than an iterator of chunks
    out = cast("CreateCompletionResponse", llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, top_k=1))
    seconds = time.perf_counter() - started
    usage = out["usage"]
    print(json.dumps({"tokens": usage["completion_tokens"], "seconds": seconds, "text": out["choices"][0]["text"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.llm.smoke",
                                     description="Generate a few tokens in a child process to prove the llama.cpp build runs on this CPU.")
    parser.add_argument("--model", required=True, type=Path,
                        help="a GGUF file (the test model: .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf)")
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help=f"tokens to generate (default {DEFAULT_TOKENS})")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds before giving up (default {DEFAULT_TIMEOUT_S:.0f})")
    parser.add_argument("--lib-path", type=Path, help="another build's shared libraries (LLAMA_CPP_LIB_PATH)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.model, args.tokens, args.threads)
    if not args.model.is_file():
        print(f"no model file {args.model}: give a GGUF file (scripts/fetch-test-models.sh fetches the test model)", file=sys.stderr)
        return 2
    result = smoke_generate(args.model, tokens=args.tokens, threads=args.threads, timeout_s=args.timeout, lib_path=args.lib_path)
    if args.json:
        print(json.dumps({"ok": result.ok, "tokens": result.tokens, "seconds": result.seconds, "tokens_per_s": result.tokens_per_s,
                          "text": result.text, "signal": result.signal_name, "detail": result.detail}))
    print(explain(result, args.model), file=sys.stderr if args.json or not result.ok else sys.stdout)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
