"""Tokens/s of llama.cpp builds side by side: the portable build setup installs vs CPU-tuned ones.

Only the CPU backend (libggml-cpu) differs between the builds compared here: it is where GGML_NATIVE and the
instruction-set switches land. Each variant is compiled once from the cached llama-cpp-python source
(tests/support/llama_builds.py) and loaded through LLAMA_CPP_LIB_PATH beside the installed libraries.
Rounds are interleaved (portable, native, ..., portable, native, ...) so a noisy neighbour hits all builds
alike; each round is one child process generating greedily from the test GGUF (edge/llm/smoke.py).

    .venv/bin/python bench/bench_llm_build.py --rounds 5 --tokens 64 --label quiet
writes bench/results/llm_build_<label>.json (bench/results_io.py: never overwritten; --force to replace).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from edge.llm.smoke import smoke_generate  # noqa: E402
from tests.support import llama_builds  # noqa: E402
from tests.support.gguf_models import ALL, model_path  # noqa: E402

# name -> CPU backend flags; "portable" is the installed build itself.
VARIANTS = {
    "portable": None,
    "native": "-DGGML_NATIVE=ON",
    "avx512": "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
              "-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX512_VBMI=ON",
}


def cpu_description() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"model": model, "machine": platform.machine(), "flags": sorted(llama_builds.cpu_flags())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="portable,native,avx512", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--load", default="", help="what else ran on the machine during the run (recorded)")
    add_output_args(parser)
    args = parser.parse_args()
    out = results_path(args, "llm_build")
    load_before = load_average()
    sdist = llama_builds.cached_sdist()
    if llama_builds.installed_lib_dir() is None or sdist is None:
        parser.error("llama-cpp-python and its cached source are needed: run scripts/setup.sh llm")
    models = [(m.name, model_path(m)) for m in ALL if model_path(m) is not None]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        libs: dict[str, Path | None] = {}
        flags_of: dict[str, str] = {}
        for name in names:
            flags = VARIANTS[name]
            if flags is None:
                libs[name] = None
                flags_of[name] = (llama_builds.installed_lib_dir().parent / "EDGETEACH_BUILD").read_text().strip()  # type: ignore[union-attr]
                continue
            print(f"building the {name} CPU backend ({flags}) ...", flush=True)
            backend = llama_builds.build_cpu_backend(sdist, flags, Path(tmp) / f"work-{name}")
            libs[name] = llama_builds.lib_dir_with_cpu_backend(backend, Path(tmp) / f"lib-{name}")
            flags_of[name] = flags
        rounds: list[dict[str, object]] = []
        for model_name, model in models:
            for index in range(args.rounds):
                for name in names:
                    result = smoke_generate(model, tokens=args.tokens, threads=args.threads, lib_path=libs[name])  # type: ignore[arg-type]
                    row = {"model": model_name, "round": index, "variant": name, "ok": result.ok, "tokens": result.tokens,
                           "seconds": round(result.seconds, 4), "tokens_per_s": round(result.tokens_per_s, 2),
                           "signal": result.signal_name}
                    rounds.append(row)
                    print(json.dumps(row), flush=True)

    summary: dict[str, dict[str, object]] = {}
    print(f"\n{'model':<14} {'build':<10} {'tokens/s median':>16} {'vs portable':>12}  runs")
    for model_name, _ in models:
        base = None
        for name in names:
            speeds = [r["tokens_per_s"] for r in rounds if r["model"] == model_name and r["variant"] == name and r["ok"]]
            failed = sum(1 for r in rounds if r["model"] == model_name and r["variant"] == name and not r["ok"])
            median = statistics.median(speeds) if speeds else 0.0  # type: ignore[type-var]
            base = median if name == "portable" else base
            ratio = round(median / base, 3) if base else None
            summary.setdefault(model_name, {})[name] = {"median_tokens_per_s": round(float(median), 2), "vs_portable": ratio,
                                                        "runs": len(speeds), "crashed": failed}
            print(f"{model_name:<14} {name:<10} {median:>16.2f} {ratio if ratio is not None else '-':>12}  "
                  f"{len(speeds)} ok, {failed} crashed")

    out = write_results(out, {
        "script": "bench/bench_llm_build.py", "when": time.strftime("%Y-%m-%d %H:%M"), "label": args.label, "load": args.load,
        "load_avg_before": load_before, "load_avg_after": load_average(),
        "cpu": cpu_description(), "threads": args.threads, "tokens": args.tokens, "rounds": args.rounds,
        "variants": flags_of, "summary": summary, "runs": rounds,
    }, args.force)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
