"""docs/benchmarks.md stays traceable to bench/results/*.json.

- every results file the page cites exists, and every file in bench/results/ is cited;
- every table has a "Source:" paragraph right above it that names existing results files and says what
  the load was;
- each table's figures are rendered from its JSON here and compared cell by cell; any number in a value
  cell that no check accounts for fails too, so a new figure cannot slip in without a source;
- key figures in the text are rendered from the JSON and must appear verbatim.

Stdlib only: runs without the project's heavy dependencies.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.support.paths import REPO

DOC = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "bench" / "results"
REF = re.compile(r"bench/results/[A-Za-z0-9_.\-]+\.json")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


@cache
def j(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


# ---------------------------------------------------------------------------------------------- parsing


@dataclass
class Table:
    line: int  # 1-based line of the header
    header: list[str]
    rows: list[list[str]]
    source_text: str  # the "Source:" paragraph above the table ("" if none)

    @property
    def sources(self) -> list[str]:
        return REF.findall(self.source_text)


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _clean(cell: str) -> str:
    return re.sub(r"\s+", " ", cell.replace("**", "")).strip()


def parse_tables(text: str) -> list[Table]:
    lines = text.splitlines()
    tables: list[Table] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        block = lines[start:i]
        header, rows = _cells(block[0]), [_cells(x) for x in block[2:]]
        tables.append(Table(start + 1, header, rows, _source_paragraph(lines, start)))
    return tables


def _source_paragraph(lines: list[str], table_start: int) -> str:
    """The paragraph starting with 'Source:' between the table and the previous heading or table."""
    k = table_start - 1
    while k >= 0 and not lines[k].startswith(("#", "|")):
        if lines[k].startswith("Source:"):
            end = k
            while end < len(lines) and lines[end].strip() and not lines[end].startswith("|"):
                end += 1
            return " ".join(lines[k:end])
        k -= 1
    return ""


def normalized_doc(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# ------------------------------------------------------------------------------------------ formatting


def f(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def hundreds(value: float) -> str:
    return f"{round(value, -2):,.0f}"


def loads(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def span(lo: float, hi: float, digits: int, sep: str = "-") -> str:
    return f"{lo:.{digits}f}{sep}{hi:.{digits}f}"


def sci(value: float) -> str:
    return f"{value:.1e}".replace("e-0", "e-")


# A cell check: a list -> the cell's numbers, in order, must be exactly these strings;
# Text(s) -> the whole cell (bold removed) must read s; Has(s) -> the cell must contain s.
@dataclass
class Text:
    text: str


@dataclass
class Has:
    text: str


Check = list | Text | Has


@dataclass
class Spec:
    label_cols: int  # columns holding labels: their numbers are not required to be checked
    rows: dict[str | int, dict[int, Check]]  # row: first cell's prefix (bold removed) or row index


def target(ok: bool) -> str:
    return "met" if ok else "missed"


# ------------------------------------------------------------------------------------------ the tables


def daemon_quiet() -> Spec:
    d = j("daemon_fp32_quiet.json")
    t, m, dm, tg = d["throughput"], d["mqtt"], d["daemon"], d["targets"]
    assert len(t["bare_rounds"]) == len(t["pipeline_rounds"]) == len(t["pair_ratios"]) == 8
    return Spec(1, {
        "bare model": {0: Has(f"median of {len(t['bare_rounds'])} rounds"), 1: [f(t["bare_model_fps"], 1)]},
        "camera pipeline": {0: Has(f"paced at {t['camera_fps']:g} fps"), 1: [f(t["pipeline_fps"], 1)]},
        "pipeline / bare": {0: Has(f"median of {len(t['pair_ratios'])} adjacent pairs"),
                            1: Text(f"{t['ratio']:.3f}x ({span(min(t['pair_ratios']), max(t['pair_ratios']), 3)})"),
                            2: Text(f">= {tg['throughput_ratio_min']:g}: {target(t['ratio'] >= tg['throughput_ratio_min'])}")},
        "CPU per classified frame": {1: [f(t["bare_cpu_ms_per_frame"], 1), f(t["pipeline_cpu_ms_per_frame"], 1)]},
        "capture -> publish p50 / p99, camera": {1: [f(dm["capture_to_publish_p50_ms"], 0), f(dm["capture_to_publish_p99_ms"], 0)]},
        "capture -> publish p50 / p99, microphone": {1: [f(dm["mic_capture_to_publish_p50_ms"], 0), f(dm["mic_capture_to_publish_p99_ms"],
                                                                                                      0)]},
        "MQTT QoS 0 / QoS 1": {0: Has(f"{m['payload_bytes']} B JSON"), 1: [hundreds(m["qos0_msgs_per_s"]), hundreds(m["qos1_msgs_per_s"])]},
        "daemon RSS peak": {1: [f(dm["daemon_rss_peak_mb"], 1)],
                            2: Text(f"< {tg['rss_mb_max']:g} MB: {target(dm['daemon_rss_peak_mb'] < tg['rss_mb_max'])}")},
    })


def daemon_loaded() -> Spec:
    a, b = j("daemon_fp32_loaded.json"), j("daemon_int8_loaded.json")
    assert (a["variant"], b["variant"]) == ("fp32", "int8")
    both = (a, b)

    def per(fn: Callable[[dict], list[str]]) -> dict[int, Check]:
        return {1: fn(a), 2: fn(b)}

    def ratio(d: dict) -> Check:
        t = d["throughput"]
        return Text(f"{t['ratio']:.3f} ({span(min(t['pair_ratios']), max(t['pair_ratios']), 3)})")

    def verdict(oks: list[bool]) -> str:
        return ("met by both" if all(oks) else "missed by both") if len(set(oks)) == 1 else \
            "; ".join(f"{d['variant']} {target(ok)}" for d, ok in zip(both, oks))

    tmin = a["targets"]["throughput_ratio_min"]
    rss_max = a["targets"]["rss_mb_max"]
    return Spec(1, {
        "bare model": {0: Has(f"median of {len(a['throughput']['bare_rounds'])}"), **per(lambda d: [f(d["throughput"]["bare_model_fps"],
                                                                                                      1)])},
        "camera pipeline": {0: Has(f"{a['throughput']['camera_fps']:g} / {b['throughput']['camera_fps']:g} fps"),
                            **per(lambda d: [f(d["throughput"]["pipeline_fps"], 1)])},
        "pipeline / bare": {**per(ratio), 3: Text(f">= {tmin:g}: {verdict([d['throughput']['ratio'] >= tmin for d in both])}")},
        "process CPU per classified frame": per(lambda d: [f(d["throughput"]["bare_cpu_ms_per_frame"], 1),
                                                           f(d["throughput"]["pipeline_cpu_ms_per_frame"], 1)]),
        "capture -> publish p50 / p99 (camera": per(lambda d: [f(d["daemon"]["capture_to_publish_p50_ms"], 0),
                                                               f(d["daemon"]["capture_to_publish_p99_ms"], 0)]),
        "capture -> publish p50 / p99, microphone": per(lambda d: [f(d["daemon"]["mic_capture_to_publish_p50_ms"], 0),
                                                                   f(d["daemon"]["mic_capture_to_publish_p99_ms"], 0)]),
        "MQTT": {0: Has(f"{a['mqtt']['payload_bytes']} / {b['mqtt']['payload_bytes']} B JSON"),
                 **per(lambda d: [hundreds(d["mqtt"]["qos0_msgs_per_s"]), hundreds(d["mqtt"]["qos1_msgs_per_s"])])},
        "daemon RSS peak": {**per(lambda d: [f(d["daemon"]["daemon_rss_peak_mb"], 1)]),
                            3: Text(f"< {rss_max:g} MB: {verdict([d['daemon']['daemon_rss_peak_mb'] < rss_max for d in both])}")},
    })


def _audio_row(name: str, backbone: str, split: str) -> dict:
    rows = [r for r in j(name)["rows"] if r["backbone"] == backbone and r["split"] == split]
    assert len(rows) == 1, (name, backbone, split)
    return rows[0]


def audio() -> Spec:
    def cells(name: str, backbone: str, split: str) -> dict[int, Check]:
        r = _audio_row(name, backbone, split)
        lat = r["latency_1s_window_1_thread"]
        return {0: Has(f"{r['epochs']} epochs"),
                2: [pct(r["accuracy"]["fp32"])], 3: [pct(r["accuracy"]["int8"])], 4: [f(r["timing"]["train"], 0)],
                5: [f(r["wall_seconds"], 0), f(r["cpu_seconds"], 0)],
                6: [f(lat["fp32"]["median_ms"], 2)], 7: [f(lat["int8"]["median_ms"], 2)]}

    rows = [("audio_trainer_cnn45.json", "compact_cnn", s) for s in ("unseen", "seen", "few")]
    rows += [("audio_trainer.json", "compact_cnn", "unseen"), ("audio_trainer.json", "compact_cnn", "seen"),
             ("audio_trainer_few.json", "compact_cnn", "few"),
             ("audio_trainer.json", "efficientnet_lite0", "unseen"), ("audio_trainer.json", "efficientnet_lite0", "seen")]
    spec = {i: cells(*r) for i, r in enumerate(rows)}
    for i, (_, _, split) in enumerate(rows):  # the label column says which split the row is
        spec[i][1] = Text("few (5 training speakers)" if split == "few" else split)
    return Spec(2, spec)


def image_steps() -> Spec:
    d = j("image_trainer.json")
    cold, warm, phone = d["train_cold"], d["retrain_cached"], d["phone_photos_cold_train"]
    t = phone["timing"]

    def row(key: str) -> dict[int, Check]:
        return {1: [f(cold[key], 1)], 2: [f(warm[key], 1)] if key in warm else Text("-"), 3: [f(t[key], 1)]}

    spec: dict[str | int, dict[int, Check]] = {
        "read + decode": row("decode"),
        "embed": {0: Has(f"{d['data']['training_views']} training views + {d['data']['val_images']} val"), **row("embed")},
        "head epochs": row("train"),
        "export + parity": row("export"),
        "int8 quantization": row("quantize"),
        "score both": row("evaluate"),
        "total": {**row("total"), 3: [f(t["total"], 1), f(phone["wall_s"], 1)]},
    }
    spec["embed"][2] = [f(warm["embed"], 1), str(warm["cache_hits"])]
    return Spec(1, spec)


def image_accuracy() -> Spec:
    d = j("image_trainer.json")
    a, p = d["accuracy"], d["phone_photos_cold_train"]
    assert a["fp32_val"] == a["fp32_val_trainer_evaluate"] and a["int8_val"] == a["int8_val_trainer_evaluate"]
    return Spec(1, {
        "ASL frames": {0: Has(f"{len(d['data']['classes'])} classes, {d['data']['val_images']} val"), 1: [pct(a["fp32_val"])],
                       2: [pct(a["int8_val"])]},
        "12-MP JPEGs": {1: [pct(p["fp32_val"])], 2: [pct(p["int8_val"])]},
    })


def image_latency() -> Spec:
    d = j("image_trainer.json")
    lat, r = d["latency_ms_batch1"], d["ratios"]
    cores = d["machine"]["cpu_count"]
    tags = ("1 thread", f"all threads ({cores})")

    def row(engine: str) -> dict[int, Check]:
        return {1 + i: [f(lat[f"{engine}, {tag}"], 1)] for i, tag in enumerate(tags)}

    return Spec(1, {
        "PyTorch eager": row("pytorch eager"),
        "ONNX Runtime fp32": row("ort fp32"),
        "ONNX Runtime int8": row("ort int8"),
        "ORT fp32 speed-up": {1 + i: [f(r[tag]["ort_fp32_speedup_vs_eager"], 1)] for i, tag in enumerate(tags)},
        "int8 speed-up": {1 + i: [f(r[tag]["int8_speedup_vs_fp32"], 2)] for i, tag in enumerate(tags)},
    })


INT8_SETTINGS = {
    "default": "current (minmax, qdq, per-channel, reduce_range)",
    "MinMax moving average": "minmax moving average",
}


def _study_row(name: str, setting: str) -> dict:
    rows = [r for r in j(name)["rows"] if r["setting"] == setting]
    assert len(rows) == 1, (name, setting)
    return rows[0]


def int8_study() -> Spec:
    asl, phone = j("int8_study_asl.json"), j("int8_study_phone.json")
    spec: dict[str | int, dict[int, Check]] = {}
    for i, ra in enumerate(asl["rows"]):
        rp = _study_row("int8_study_phone.json", ra["setting"])
        cells: dict[int, Check] = {}
        for offset, r in ((1, ra), (5, rp)):
            cells[offset] = [str(r["agree"]), str(r["n"])]
            cells[offset + 1] = [f(r["mean_abs_prob_diff"], 4)]
            cells[offset + 2] = [pct(r["int8_acc"])]
            cells[offset + 3] = [f(r["fp32_ms"] / r["int8_ms"], 2)]
        cells[9] = [f(ra["quantize_s"], 0), f(rp["quantize_s"], 0)]
        spec[i] = cells
    assert len(asl["rows"]) == len(phone["rows"])
    return Spec(1, spec)


def int8_repeats() -> Spec:
    files = ("int8_study_asl_seed1.json", "int8_study_asl_seed2.json", "int8_study_phone_seed1.json")

    def cell(name: str, setting: str) -> Check:
        rows = [r for r in j(name)["rows"] if r["setting"] == setting]
        if not rows:
            return Text("not run")
        r = rows[0]
        return Text(f"{r['agree']}/{r['n']}, {r['mean_abs_prob_diff']:.4f}")

    settings = {"default": INT8_SETTINGS["default"], "MinMax moving average": "minmax moving average",
                "percentile 99.99": "percentile 99.99"}
    return Spec(1, {label: {1 + i: cell(name, setting) for i, name in enumerate(files)} for label, setting in settings.items()})


def llm(name: str = "llm.json") -> Spec:
    d = j(name)
    spec: dict[str | int, dict[int, Check]] = {}
    names = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma 3 270M"}
    for mi, m in enumerate(d["models"]):
        for pi, key in enumerate(("direct", "http", "mqtt")):
            p = m[key]
            ratio = "1.000" if key == "direct" else f(m[f"{key}_vs_direct_tps"], 3)
            cells: dict[int, Check] = {
                1: Text(key if key == "direct" else key.upper()),
                2: [f(p["tps_median"], 1)], 3: [ratio], 4: [f(p["ttft_ms_median"], 0)],
                5: Text("-") if key == "direct" else [f(p["overhead_cpu_ms_per_token_median"], 2)],
                6: [f(p["cpu_bound_share"], 3)],
            }
            if key == "direct":
                cells[0] = Has(names[m["name"]])
            spec[3 * mi + pi] = cells
    return Spec(2, spec)


# (first cited file, header's first cell) -> expected figures
def llm_builds() -> Spec:
    d = j("llm_build_amd-epyc-zen4-loaded.json")
    names = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma 3 270M"}
    rows: dict[str | int, dict[int, Check]] = {}
    index = 0
    for model, label in names.items():
        for build in ("portable", "native", "avx512"):
            cell = d["summary"][model][build]
            assert cell["runs"] == d["rounds"] == 7 and cell["crashed"] == 0
            rows[index] = {0: Has(label) if build == "portable" else Text(""), 1: Text(build),
                           2: [f(cell["median_tokens_per_s"], 2)], 3: [f(cell["vs_portable"], 3)]}
            index += 1
    return Spec(2, rows)


def tm_import() -> Spec:
    d = j("tm-import_loaded.json")
    lat, mb, acc = d["latency_ms_batch1_1_thread"], d["model_mb"], d["accuracy_handsign_held_out"]

    def row(name: str) -> dict[int, Check]:
        return {1: [f(lat[name], 2)], 2: [f(mb[name], 2)], 3: [pct(acc[name])] if name in acc else Text("-")}

    return Spec(1, {
        "Teachable Machine, TFLite float": row("tm tflite fp32"),
        "Teachable Machine, TFLite quantized": row("tm tflite int8"),
        "Teachable Machine, Keras": row("tm keras fp32"),
        "ours, EfficientNet-Lite0, fp32": row("ours fp32"),
        "ours, EfficientNet-Lite0, int8": row("ours int8"),
    })


FUZZ_RUN, FUZZ_FIRST_RUN = "fuzz-network_10000x10000_shared-2core-fixed.json", "fuzz-network_10000x10000_shared-2core.json"


def fuzz_network() -> Spec:
    d = j(FUZZ_RUN)
    m, h, rss, checks = d["mqtt"], d["http"], d["rss_mb"], d["checks"]
    outcomes = h["outcomes"]

    def count(pred: Callable[[str], bool]) -> int:
        return sum(n for key, n in outcomes.items() if pred(key.split(" ", 1)[1]))

    def n(value: int) -> str:
        return f"{value:,}"

    def rss_cell(r: dict) -> list[str]:
        return [f(r["start_after_warmup"], 1), f(r["end"], 1), f(100 * r["growth"], 1)]

    internal = m.get("internal_error_reply_count", len(m["internal_error_replies"]))
    syncs = d["options"]["mqtt_count"] // d["options"]["sync_every"]
    synced = {who: m["outcomes"].get(f"sync {who} answered", 0) for who in ("daemon", "llm")}
    tracebacks = d["tracebacks"]
    replies = m["replies"]
    return Spec(1, {
        "MQTT payloads sent": {1: [n(m["sent"]), f(m["seconds"], 1), f(m["messages_per_s"], 1)]},
        "sync markers answered": {1: [str(synced["daemon"]), str(synced["llm"]), str(syncs)],
                                  2: Text("all: " + target(synced["daemon"] == synced["llm"] == syncs))},
        "MQTT replies": {1: [n(replies["command reply (broadcast)"]), n(replies["reply on a response topic"]),
                             n(replies["LLM response (default topic)"])]},
        '"internal error" command replies': {1: [n(internal)], 2: Text("none: " + target(internal == 0))},
        "HTTP requests sent": {1: [n(h["sent"]), f(h["seconds"], 1), f(h["requests_per_s"], 1), "50", f(h["latency_ms_p50"], 1), "99",
                                   f(h["latency_ms_p99"], 1)]},
        "HTTP answered 2xx or 3xx": {1: [n(count(lambda o: o[:1] in "23" and o.isdigit())), n(count(lambda o: o.startswith("4")))]},
        "HTTP closed without an answer": {1: [n(count(lambda o: o == "closed")), n(count(lambda o: o == "timeout"))]},
        "HTTP 5xx answers": {1: [str(h["server_errors_5xx"]), str(h["refused"])],
                             2: Text("none: " + target(h["server_errors_5xx"] == 0 and h["refused"] == 0))},
        "daemon RSS": {1: rss_cell(rss["daemon"]), 2: Text("within 10 %: " + target(abs(rss["daemon"]["growth"]) <= 0.10))},
        "LLM server RSS": {1: rss_cell(rss["llm"]), 2: Text("within 10 %: " + target(abs(rss["llm"]["growth"]) <= 0.10))},
        "both alive": {1: Text("yes" if all(checks[k] for k in ("daemon_alive", "llm_alive", "ping_answers", "v1_models_answers",
                                                                "pipelines_resumed")) else "no"), 2: Text("met")},
        "tracebacks in the logs": {1: [str(len(tracebacks["daemon"])), str(len(tracebacks["llm"]))],
                                   2: Text("none: " + target(checks["no_traceback_in_logs"]))},
    })


def dashboard(name: str) -> Spec:
    d = j(name)
    s, tmin = d["summary"], d["targets"]["ratio_min"]
    assert len(d["pairs"]) == 12 and d["ok"] == (s["ratio"] >= tmin)
    return Spec(1, {
        "classified frames/s": {0: Has(f"median of {len(d['pairs'])} rounds"), 1: [f(s["unwatched_fps"], 1)], 2: [f(s["watched_fps"], 1)],
                                3: Text(f"{s['ratio']:.3f}x (pairs {span(s['ratio_min'], s['ratio_max'], 3)}); >= {tmin:g}: "
                                        f"{target(d['ok'])}")},
        "classified frames per CPU-second": {1: [f(s["unwatched_frames_per_cpu_s"], 1)], 2: [f(s["watched_frames_per_cpu_s"], 1)],
                                             3: Text(f"{s['cpu_ratio']:.3f}x (pairs {span(s['cpu_ratio_min'], s['cpu_ratio_max'], 3)})")},
        "daemon CPU": {1: [f(s["unwatched_cpu_percent"], 1)], 2: [f(s["watched_cpu_percent"], 1)]},
        "MJPEG frames": {2: [f(s["stream_fps"], 1), f(s["jpeg_kb"], 1)]},
    })


def fleet() -> Spec:
    d = j("fleet_20x5mb-loaded.json")
    return Spec(1, {
        "bundle": {1: [f(d["bundle_bytes"] / 1e6, 2), str(d["chunks"])]},
        "deploy until every device is healthy": {1: [f(d["rollout_s"], 1)]},
        "each device's download": {1: [f(d["device_download_s_median"], 1), f(d["device_download_s_max"], 1)]},
        "broker bytes sent": {1: [f(d["broker_bytes_sent"] / 1e6, 1), f(d["sent_over_bundle_per_device"], 3)]},
        "broker bytes received": {1: [f(d["broker_bytes_received"] / 1e6, 1)]},
        "controller CPU": {1: [f(d["controller_cpu_s"], 3), f(d["controller_cpu_ms_per_device"], 1)]},
    })


def studio(name: str) -> Spec:
    """bench/bench_studio.py: page loads in a real Chromium and Preview's rate in the real page (issue 14)."""
    d = j(name)
    load, shown, api, tg, setup = d["page_load_ms"], d["preview"], d["preview_api"], d["targets"], d["setup"]
    assert tg["page_load_ok"] == (load["cold"]["median"] < tg["page_load_ms_max"]), name
    assert tg["preview_ok"] == all(shown[v]["hz"] >= tg["preview_hz_min"] for v in ("fp32", "int8")), name

    def rate(variant: str) -> dict[int, Check]:
        hz = shown[variant]["hz"]
        return {0: Has(f"over {setup['seconds']:g} s"), 1: Text(f"{hz:.1f} frames/s ({shown[variant]['frames']} frames)"),
                2: Text(f">= {tg['preview_hz_min']:g} Hz: {target(hz >= tg['preview_hz_min'])}")}

    rows: dict[str | int, dict[int, Check]] = {
        "page load, fresh browser": {0: Has(f"of {setup['loads']}"),
                                     1: Text(f"{load['cold']['median']:.0f} / {load['cold']['p95']:.0f} ms "
                                             f"(fastest {load['cold']['min']:.0f})"),
                                     2: Text(f"< {tg['page_load_ms_max']:g} ms (median): {target(tg['page_load_ok'])}")},
        "page load, reloaded": {0: Has(f"of {setup['loads']}"), 1: Text(f"{load['warm']['median']:.0f} / {load['warm']['p95']:.0f} ms")},
        "Preview in the page, fp32": rate("fp32"),
        "Preview in the page, int8": rate("int8"),
        "the same frame posted to the API alone, server time": {
            0: Has(f"median of {setup.get('api_rounds', 30)}"),
            1: Text(f"{api['fp32']['server_ms_median']:.1f} / {api['int8']['server_ms_median']:.1f} ms")},
        "the same frame posted to the API alone, round trip": {
            1: Text(f"{api['fp32']['round_trip_ms_median']:.1f} / {api['int8']['round_trip_ms_median']:.1f} ms")},
    }
    if "cold_breakdown" in load:
        where = load["cold_breakdown"]
        rows["fresh browser: the page's"] = {
            0: Has(f"{where['static_files']} files"),
            1: Text(f"{where['last_module_or_css_ms_median']:.0f} / {where['projects_request_sent_ms_median']:.0f} ms")}
    return Spec(1, rows)


BACKBONES_RUN = "backbones_shared-2core.json"
BACKBONE_NAMES = {"EfficientNet-Lite0": "efficientnet_lite0", "EfficientNet-Lite1": "efficientnet_lite1",
                  "EfficientNet-Lite2": "efficientnet_lite2"}


def _backbone(name: str) -> tuple[dict, dict]:
    sets = j(BACKBONES_RUN)["sets"]
    return sets["asl"]["backbones"][name], sets["phone"]["backbones"][name]


def backbones() -> Spec:
    rows: dict[str | int, dict[int, Check]] = {}
    base = _backbone("efficientnet_lite0")
    for label, name in BACKBONE_NAMES.items():
        a, p = _backbone(name)
        am, pm = a["ms_per_image_1thread"], p["ms_per_image_1thread"]
        rows[label] = {
            1: [str(a["input_size"][0]), str(a["input_size"][1])],
            2: [pct(a["val_accuracy"]["fp32"]), pct(a["val_accuracy"]["int8"])],
            3: [pct(a["flip"]["fp32_flip_avg"])],
            4: [pct(p["val_accuracy"]["fp32"]), pct(p["val_accuracy"]["int8"])],
            5: [pct(p["flip"]["fp32_flip_avg"])],
            6: [f(am["fp32"], 1), f(pm["fp32"], 1)],
            7: [f(am["int8"], 1), f(pm["int8"], 1)],
            8: [f(am["fp32"] / am["int8"], 2), f(pm["fp32"] / pm["int8"], 2)],
            9: [f(am["fp32"] / base[0]["ms_per_image_1thread"]["fp32"], 2), f(pm["fp32"] / base[1]["ms_per_image_1thread"]["fp32"], 2)],
            10: [f(a["size_mb"]["fp32"], 1), f(a["size_mb"]["int8"], 1)],
            11: [f(a["wall_s"], 0), f(p["wall_s"], 0)],
        }
    return Spec(1, rows)


INT8_VNNI = ("int8-study_asl_vnni.json", "int8-study_phone_vnni.json")


def int8_vnni() -> Spec:
    """The issue 17 int8 table: agreement, accuracy and the CPU-time (wall) speed-up per set."""
    asl, phone = (j(n) for n in INT8_VNNI)
    by_phone = {r["setting"]: r for r in phone["rows"]}
    spec: dict[str | int, dict[int, Check]] = {}
    for i, ra in enumerate(asl["rows"]):
        cells: dict[int, Check] = {}
        for offset, r in ((1, ra), (4, by_phone.get(ra["setting"]))):
            if r is None:
                cells.update({offset + k: Text("not run") for k in range(3)})
                continue
            cells[offset] = [str(r["agree"]), str(r["n"])]
            cells[offset + 1] = [pct(r["int8_acc"])]
            cells[offset + 2] = [f(r["fp32_cpu_ms"] / r["int8_cpu_ms"], 2), f(r["fp32_ms"] / r["int8_ms"], 2)]
        rp = by_phone.get(ra["setting"])
        cells[7] = [f(ra["quantize_s"], 0)] + ([f(rp["quantize_s"], 0)] if rp else [])
        spec[i] = cells
    return Spec(1, spec)


def int8_vnni_figures() -> list[str]:
    asl, phone = (j(n) for n in INT8_VNNI)
    rows = [r for d in (asl, phone) for r in d["rows"]]
    pick = "first 3 convs float, reduce_range off"
    a, p = (next(r for r in d["rows"] if r["setting"] == pick) for d in (asl, phone))
    old = [next(r for r in d["rows"] if r["setting"] == INT8_SETTINGS["default"]) for d in (asl, phone)]
    assert all(d["machine"]["cpu"]["dot_product"] == ["avx512_vnni"] for d in (asl, phone))  # "AVX-512 VNNI"
    return [
        f"load averages {loads(asl['machine']['load_avg_before_run'])} before and",
        f"{loads(asl['machine']['load_avg_after_run'])} after the ASL run, {loads(phone['machine']['load_avg_before_run'])} and "
        f"{loads(phone['machine']['load_avg_after_run'])} around the phone run",
        f"fp32 took {span(min(r['fp32_cpu_ms'] for r in rows), max(r['fp32_cpu_ms'] for r in rows), 1)} ms of CPU per image in every row "
        f"while its wall time swung from {min(r['fp32_ms'] for r in rows):.1f} to {max(r['fp32_ms'] for r in rows):.0f} ms",
        f"{f(a['fp32_cpu_ms'] / a['int8_cpu_ms'], 2)}x and {f(p['fp32_cpu_ms'] / p['int8_cpu_ms'], 2)}x the fp32 speed in CPU time "
        f"({f(a['fp32_ms'] / a['int8_ms'], 2)}x and {f(p['fp32_ms'] / p['int8_ms'], 2)}x wall)",
        f"int8 accuracy {pct(a['int8_acc'])} % and {pct(p['int8_acc'])} % against fp32's {pct(a['fp32_acc'])} % and {pct(p['fp32_acc'])} % "
        f"({a['n'] - a['agree']} and {p['n'] - p['agree']} answers differ",
        "the earlier recipe gives " + " / ".join(f"{f(r['fp32_cpu_ms'] / r['int8_cpu_ms'], 2)}x" for r in old),
    ]


def backbone_figures() -> list[str]:
    """The backbones section's prose (issue 17)."""
    d = j(BACKBONES_RUN)
    lite = {n: _backbone(n) for n in BACKBONE_NAMES.values()}
    ms = {n: [s["ms_per_image_1thread"]["fp32"] for s in v] for n, v in lite.items()}
    vs0 = {n: [ms[n][i] / ms["efficientnet_lite0"][i] for i in (0, 1)] for n in ms}
    size = {n: v[0]["size_mb"]["fp32"] / lite["efficientnet_lite0"][0]["size_mb"]["fp32"] - 1 for n, v in lite.items()}
    wall = {n: v[0]["wall_s"] / lite["efficientnet_lite0"][0]["wall_s"] for n, v in lite.items()}
    l0, l1, l2 = (lite[f"efficientnet_lite{i}"] for i in range(3))
    speedups = [s["ms_per_image_1thread"]["fp32"] / s["ms_per_image_1thread"]["int8"] for v in lite.values() for s in v]
    return [
        f"load averages {loads(d['machine']['load_avg_before_run'])} before and {loads(d['machine']['load_avg_after_run'])} after the run",
        f"(Lite1 {pct(l1[0]['val_accuracy']['fp32'])} % on both; Lite2 {pct(l2[0]['val_accuracy']['fp32'])} % and "
        f"{pct(l2[1]['val_accuracy']['fp32'])} % against Lite0's {pct(l0[0]['val_accuracy']['fp32'])} % and "
        f"{pct(l0[1]['val_accuracy']['fp32'])} %)",
        f"{span(min(vs0['efficientnet_lite1']), max(vs0['efficientnet_lite1']), 2)}x (Lite1) and "
        f"{span(min(vs0['efficientnet_lite2']), max(vs0['efficientnet_lite2']), 2)}x (Lite2) Lite0's time per image",
        f"{100 * size['efficientnet_lite1']:.0f}-{100 * size['efficientnet_lite2']:.0f} % bigger files",
        f"{wall['efficientnet_lite1']:.1f}x (Lite1) and {wall['efficientnet_lite2']:.1f}x (Lite2) Lite0's training time on the ASL set",
        f"({pct(l0[0]['flip']['fp32_plain'])} -> {pct(l0[0]['flip']['fp32_flip_avg'])} % and {pct(l0[1]['flip']['fp32_plain'])} -> "
        f"{pct(l0[1]['flip']['fp32_flip_avg'])} %)",
        f"({pct(l2[0]['flip']['fp32_plain'])} -> {pct(l2[0]['flip']['fp32_flip_avg'])} % and {pct(l2[1]['flip']['fp32_plain'])} -> "
        f"{pct(l2[1]['flip']['fp32_flip_avg'])} %)",
        f"({span(min(speedups), max(speedups), 2)}x across rows here)",
    ]


# issue 17: edge run's RSS per configuration (bench/bench_footprint.py)
FOOTPRINT_ROWS = {"camera only": "camera", "microphone only": "microphone", "camera + microphone": "both"}
LIBRARY_NAMES = {"opencv": "OpenCV", "portaudio": "PortAudio", "libsndfile": "libsndfile", "pillow": "Pillow",
                 "onnxruntime": "ONNX Runtime"}
FOOTPRINT_STEPS = {"baseline": "footprint_fp32_before.json", "+ lazy source backends": "footprint_fp32_lazy-imports.json",
                   "+ lazy CLI sub-commands": "footprint_fp32_lazy-cli.json",
                   "+ fixed mmap threshold, lazy health and metrics": "footprint_fp32_final.json"}
FOOTPRINT_TRIES = {
    "ONNX Runtime CPU arena off": "ort-arena-off", "ONNX Runtime memory pattern off": "ort-pattern-off",
    "arena and memory pattern off": "ort-arena-and-pattern-off", "initializers outside the arena": "ort-initializers-outside-arena",
    "weight prepacking off": "ort-prepacking-off", "one ONNX Runtime thread per pipeline": "ort-1-thread",
    "MALLOC_ARENA_MAX=2": "malloc-arena-max-2", "MALLOC_ARENA_MAX=1": "malloc-arena-max-1",
    "mmap threshold fixed at 128 KiB": "mmap-128k", "mmap threshold fixed at 1 MiB": "mmap-1m",
    "128 KiB + arena off": "mmap-128k-ort-arena-off", "128 KiB + memory pattern off": "mmap-128k-ort-pattern-off",
    "128 KiB + one thread per pipeline": "mmap-128k-ort-1-thread",
}


def footprint_now() -> Spec:
    fb, ff, ib, nf = (j(f"footprint_{n}.json") for n in ("fp32_before", "fp32_final", "int8_before", "int8_final"))

    def row(key: str) -> dict[int, Check]:
        libraries = ", ".join(LIBRARY_NAMES[k] for k, v in nf["configs"][key]["libraries"].items() if v)
        return {1: [f(fb["configs"][key]["rss_mb"], 1)], 2: [f(ff["configs"][key]["rss_mb"], 1)], 3: [f(ib["configs"][key]["rss_mb"], 1)],
                4: [f(nf["configs"][key]["rss_mb"], 1)], 5: [f(ff["configs"][key]["hwm_mb"], 1), f(nf["configs"][key]["hwm_mb"], 1)],
                6: Text(libraries)}

    return Spec(1, {label: row(key) for label, key in FOOTPRINT_ROWS.items()})


def footprint_steps() -> Spec:
    return Spec(1, {label: {col: [f(j(name)["configs"][key]["rss_mb"], 1)] for col, key in enumerate(FOOTPRINT_ROWS.values(), start=1)}
                    for label, name in FOOTPRINT_STEPS.items()})


def footprint_tries() -> Spec:
    def row(name: str) -> dict[int, Check]:
        both = j(f"footprint_fp32_try-{name}.json")["configs"]["both"]
        return {0: Has(f"bench/results/footprint_fp32_try-{name}.json"), 1: [f(both["rss_mb"], 1)], 2: [f(both["hwm_mb"], 1)],
                3: [f(both["uss_mb"], 1)]}

    return Spec(1, {label: row(name) for label, name in FOOTPRINT_TRIES.items()})


def footprint_text() -> list[str]:
    """Phrases of the memory footprint section (issue 17)."""
    ff, nf = j("footprint_fp32_final.json"), j("footprint_int8_final.json")
    fa, na = j("footprint_fp32_after.json"), j("footprint_int8_after.json")
    fcpu, ncpu = ff["inference_cpu_ms_per_image"], nf["inference_cpu_ms_per_image"]
    fb, nb = ff["configs"]["both"], nf["configs"]["both"]
    loads_ = [j(f"footprint_{n}.json")["machine"]["load_avg_at_start"][0]
              for n in ("fp32_final", "int8_final", "fp32_before", "int8_before")]
    steps = [j(n)["machine"]["load_avg_at_start"][0] for n in FOOTPRINT_STEPS.values()]
    tries = [j(f"footprint_fp32_try-{n}.json")["machine"]["load_avg_at_start"][0] for n in FOOTPRINT_TRIES.values()]
    mic = [j(n)["configs"]["microphone"]["rss_mb"] for n in ("footprint_fp32_before.json", "footprint_fp32_lazy-cli.json")]
    assert (nb["rss_mb"] <= 150) and not (fb["rss_mb"] <= 150), "the verdicts below are written for int8 met, fp32 missed"
    return [
        f"{f(fcpu['default_malloc'], 2)} -> {f(fcpu['fixed_mmap_threshold'], 2)} ms fp32, "
        f"{f(ncpu['default_malloc'], 2)} -> {f(ncpu['fixed_mmap_threshold'], 2)} ms int8",
        f"load averages at the start of {loads_[0]:.2f} (fp32 now), {loads_[1]:.2f} (int8 now), {loads_[2]:.2f} (fp32 before) and "
        f"{loads_[3]:g} (int8 before)",
        f"gave {f(fa['configs']['both']['rss_mb'], 1)} MB (fp32) and {f(na['configs']['both']['rss_mb'], 1)} MB (int8)",
        f"**Target <= 150 MB with a camera and a microphone: met with int8** ({f(nb['rss_mb'], 1)} MB steady, "
        f"{f(nb['hwm_mb'], 1)} MB peak)",
        f"**missed with fp32** ({f(fb['rss_mb'], 1)} MB steady, {f(fb['hwm_mb'], 1)} MB peak)",
        "load averages at the start of " + ", ".join(f"{x:g}" for x in steps[:-1]) + f" and {steps[-1]:g}",
        f"load averages of {min(tries):g}-{max(tries):g} at the start",
        f"(a microphone-only daemon: {f(mic[0], 1)} -> {f(mic[1], 1)} MB)",
    ]


def fleet_transports() -> Spec:
    runs = [j("fleet_20x5mb-beside-http.json"), j("fleet_http_20x5mb-loaded.json"), j("fleet_http_20x5mb-spans.json")]
    assert [d["transport"] for d in runs] == ["mqtt chunks", "http", "http"]

    def per(fn: Callable[[dict], list[str]]) -> dict[int, Check]:
        return {i + 1: fn(d) for i, d in enumerate(runs)}

    return Spec(1, {
        "deploy until every device is healthy": per(lambda d: [f(d["rollout_s"], 1)]),
        "each device's download": per(lambda d: [f(d["device_download_s_median"], 1), f(d["device_download_s_max"], 1)]),
        "broker bytes sent": per(lambda d: [f(d["broker_bytes_sent"] / 1e6, 1)]),
        "controller CPU per device": per(lambda d: [f(d["controller_cpu_ms_per_device"], 1)]),
        "HTTP requests served": per(lambda d: [f"{d['http_chunk_requests']:,}"]),
    })


TABLES: dict[tuple[str, str], Callable[[], Spec]] = {
    ("bench/results/daemon_fp32_quiet.json", "measure"): daemon_quiet,
    ("bench/results/daemon_fp32_loaded.json", "measure"): daemon_loaded,
    ("bench/results/audio_trainer_cnn45.json", "backbone"): audio,
    ("bench/results/image_trainer.json", "step (seconds)"): image_steps,
    ("bench/results/image_trainer.json", "accuracy on val (through ONNX Runtime; `trainer evaluate` gives the same)"): image_accuracy,
    ("bench/results/image_trainer.json", "single image, batch 1, median ms"): image_latency,
    ("bench/results/int8_study_asl.json", "setting (one change from default)"): int8_study,
    ("bench/results/int8_study_asl_seed1.json", "setting"): int8_repeats,
    (f"bench/results/{BACKBONES_RUN}", "backbone"): backbones,
    (f"bench/results/{INT8_VNNI[0]}", "setting"): int8_vnni,
    ("bench/results/llm.json", "model"): llm,
    ("bench/results/llm_uvicorn.json", "model"): lambda: llm("llm_uvicorn.json"),
    ("bench/results/llm_build_amd-epyc-zen4-loaded.json", "model"): llm_builds,
    ("bench/results/tm-import_loaded.json", "model (batch 1, 1 thread)"): tm_import,
    (f"bench/results/{FUZZ_RUN}", "measure"): fuzz_network,
    ("bench/results/fleet_20x5mb-loaded.json", "rollout of one bundle over MQTT chunks"): fleet,
    ("bench/results/fleet_20x5mb-beside-http.json", "same 20 devices, same bundle"): fleet_transports,
    ("bench/results/studio_lazy-screens.json", "Studio (issue 14)"): lambda: studio("studio_lazy-screens.json"),
    ("bench/results/studio_quieter.json", "Studio (issue 14)"): lambda: studio("studio_quieter.json"),
    ("bench/results/studio_shared-2core.json", "Studio (issue 14)"): lambda: studio("studio_shared-2core.json"),
    ("bench/results/dashboard_int8_loaded.json", "one camera pipeline"): lambda: dashboard("dashboard_int8_loaded.json"),
    ("bench/results/dashboard_int8_quieter.json", "one camera pipeline"): lambda: dashboard("dashboard_int8_quieter.json"),
    ("bench/results/footprint_fp32_final.json", "configuration"): footprint_now,
    ("bench/results/footprint_fp32_before.json", "fp32, RSS MB"): footprint_steps,
    ("bench/results/footprint_fp32_lazy-cli.json", "setting tried (camera + microphone, fp32)"): footprint_tries,
}


# ------------------------------------------------------------------------------------ figures in text


def text_figures() -> list[str]:
    """Phrases of docs/benchmarks.md's prose, rendered from the results files."""
    q, a, b = j("daemon_fp32_quiet.json"), j("daemon_fp32_loaded.json"), j("daemon_int8_loaded.json")
    qt, at, bt = q["throughput"], a["throughput"], b["throughput"]
    out = [
        f"`bench/results/daemon_fp32_quiet.json` (run {q['created_at'][:10]} {q['created_at'][11:16]} UTC)",
        f"`bench/results/daemon_fp32_loaded.json` (fp32, run {a['created_at'][:10]} {a['created_at'][11:16]} UTC;",
        f"`bench/results/daemon_int8_loaded.json` (int8, {b['created_at'][11:16]} UTC)",
        f"load average of {loads(q['machine']['load_avg_at_start'])}",
        f"(the daemon alone used {q['daemon']['daemon_cpu_percent']:.0f} % CPU)",
        f"({at['ratio']:.3f}x fp32, {bt['ratio']:.3f}x int8)",
        f"({f(qt['pipeline_cpu_ms_per_frame'] - qt['bare_cpu_ms_per_frame'], 1)} ms per classified frame here",
        f"load averages of {loads(a['machine']['load_avg_at_start'])} (fp32) and {loads(b['machine']['load_avg_at_start'])} (int8)",
        f"(bare model, fp32: {span(min(at['bare_rounds']), max(at['bare_rounds']), 1)} frames/s)",
        f"({a['daemon']['daemon_rss_peak_mb']:.1f} MB fp32, {b['daemon']['daemon_rss_peak_mb']:.1f} MB int8,",
        f"({at['ratio']:.3f}x fp32, {bt['ratio']:.3f}x int8 against {a['targets']['throughput_ratio_min']:g};",
        f"ranged from {min(at['pair_ratios']):.3f}x to {max(at['pair_ratios']):.3f}x",
        f"spends {at['pipeline_cpu_ms_per_frame'] - at['bare_cpu_ms_per_frame']:.1f} ms (fp32) / "
        f"{bt['pipeline_cpu_ms_per_frame'] - bt['bare_cpu_ms_per_frame']:.1f} ms (int8) more",
        f"(camera at {at['camera_fps']:g} / {bt['camera_fps']:g} fps, pipeline classifying {at['pipeline_fps']:.1f} / "
        f"{bt['pipeline_fps']:.1f} frames/s;",
        f"reached {qt['ratio']:.3f}x with the same script",
        # verdicts in the text follow the files' targets: a miss is never written as a pass
        f"**RSS: {target(all(d['targets']['rss_ok'] for d in (a, b)))}**",
        f"**Throughput: {target(all(d['targets']['throughput_ok'] for d in (a, b)))} on the loaded box**",
    ]

    # sound trainer
    cited = ("audio_trainer_cnn45.json", "audio_trainer.json", "audio_trainer_few.json")
    rows = [r for n in cited for r in j(n)["rows"]]
    cnn = [r for r in rows if r["backbone"] == "compact_cnn"]
    eff = [r for r in rows if r["backbone"] == "efficientnet_lite0"]
    unseen_cnn = [r for r in cnn if r["split"] == "unseen"]
    eff_unseen = _audio_row("audio_trainer.json", "efficientnet_lite0", "unseen")
    big = [r for r in cnn if r["split"] in ("unseen", "seen")]
    lat = [r["latency_1s_window_1_thread"][v]["median_ms"] for r in cnn for v in ("fp32", "int8")]
    eff_lat = [r["latency_1s_window_1_thread"][v]["median_ms"] for r in eff for v in ("fp32", "int8")]
    loss = [100 * (r["accuracy"]["fp32"] - r["accuracy"]["int8"]) for r in eff]
    before = j("audio_trainer_before_perband.json")["rows"]
    data = j("audio_trainer_cnn45.json")["data"]
    per_band = {s: _audio_row("audio_trainer.json", "compact_cnn", s) for s in ("unseen", "seen")}
    old = {s: _audio_row("audio_trainer_before_perband.json", "compact_cnn", s) for s in ("unseen", "seen")}
    few45, few30 = _audio_row("audio_trainer_cnn45.json", "compact_cnn", "few"), _audio_row("audio_trainer_few.json", "compact_cnn", "few")
    un45, un30 = _audio_row("audio_trainer_cnn45.json", "compact_cnn", "unseen"), per_band["unseen"]
    minutes = {epochs: [r["wall_seconds"] / 60 for r in big if r["epochs"] == epochs] for epochs in (45, 30)}
    out += [
        f"load average {span(min(r['load_average_at_start'] for r in rows), max(r['load_average_at_start'] for r in rows), 1)} (1 min) "
        "at the start of the rows",
        f"spoken by {data['speakers']} synthetic espeak-ng speakers",
        f"{data['clips']:,} clips at 8 kHz",
        f"validation set ({un45['n_val_files']} files)",
        f"held out ({per_band['seen']['n_val_files']} files)",
        f"{span(min(100 * r['accuracy']['fp32'] for r in unseen_cnn), max(100 * r['accuracy']['fp32'] for r in unseen_cnn), 1)} % against "
        f"{pct(eff_unseen['accuracy']['fp32'])} % for frozen",
        f"lose {span(min(loss), max(loss), 1)} points in int8",
        f"{span(min(minutes[45]), max(minutes[45]), 1)} min end to end",
        f"({span(min(minutes[30]), max(minutes[30]), 1)} min with 30 epochs)",
        f"{span(min(lat), max(lat), 2)} ms per 1 s window on one thread",
        f"96x96 takes {span(min(eff_lat), max(eff_lat), 2)} ms",
        f"max |diff| of probabilities {sci(min(r['parity_max_abs_diff'] for r in cnn))} to "
        f"{sci(max(r['parity_max_abs_diff'] for r in cnn))} (CNN rows), "
        f"{sci(min(r['parity_max_abs_diff'] for r in eff))} to {sci(max(r['parity_max_abs_diff'] for r in eff))} (EfficientNet rows)",
        f"split: {pct(few45['accuracy']['fp32'])} % vs {pct(few30['accuracy']['fp32'])} %",
        f"and {pct(un45['accuracy']['fp32'])} % vs {pct(un30['accuracy']['fp32'])} % on the unseen split",
        f"load average {span(min(r['load_average_at_start'] for r in before), max(r['load_average_at_start'] for r in before), 1)} "
        "at the start of its rows",
        f"gave {pct(old['unseen']['accuracy']['fp32'])} % unseen / {pct(old['seen']['accuracy']['fp32'])} % seen against "
        f"{pct(per_band['unseen']['accuracy']['fp32'])} % / {pct(per_band['seen']['accuracy']['fp32'])} % with per-band means",
    ]
    assert {r["epochs"] for r in before} == {30} and not [r for r in before if r["split"] == "few"]

    # image trainer
    im = j("image_trainer.json")
    acc, ph, r1 = im["accuracy"], im["phone_photos_cold_train"], im["ratios"]["1 thread"]
    n = im["data"]["val_images"]
    asl_flips, phone_flips = round((acc["fp32_val"] - acc["int8_val"]) * n), round((ph["fp32_val"] - ph["int8_val"]) * n)
    study = {k: j(f"int8_study_{k}.json")["rows"] for k in ("asl", "phone")}
    not_per_tensor = [r["n"] - r["agree"] for r in study["asl"] if r["setting"] != "per-tensor weights"]
    pctl = [r["quantize_s"] for k in study for r in study[k] if r["setting"].startswith("percentile")]
    default_q = [_study_row(f"int8_study_{k}.json", INT8_SETTINGS["default"])["quantize_s"] for k in study]
    out += [
        f"load average of {im['machine']['load_avg_1min']:.2f} (1 min)",
        f"{im['data']['train_images']} train / {n} val images",
        f"({r1['ort_fp32_speedup_vs_eager']:.1f}x on one thread;",
        f"({r1['int8_speedup_vs_fp32']:.2f}x on one thread)",
        f"({phone_flips} image of {n}), {100 * (acc['fp32_val'] - acc['int8_val']):.1f} points ({asl_flips} images of {n})",
        f"left {min(not_per_tensor)}-{max(not_per_tensor)} of the {n} ASL answers different",
        f"took {f(min(pctl), 0)}-{f(max(pctl), 0)} s to quantize against {f(min(default_q), 0)}-{f(max(default_q), 0)} s for the default",
        f"{im['retrain_cached']['train']:.1f} s for the head, {im['retrain_cached']['total']:.1f} s for the whole command",
        f"(embedding {im['retrain_cached']['embed']:.1f} s instead of {im['train_cold']['embed']:.1f} s)",
        f"{im['train_cold']['total']:.1f} s cold for {im['data']['train_images'] + n} webcam frames and {ph['wall_s']:.1f} s for "
        f"{ph['images']} twelve-megapixel JPEGs",
        f"took {im['train_cold']['total']:.1f} + {im['retrain_cached']['wall']:.1f} + {ph['wall_s']:.1f} s in the recorded run",
        f"**ORT fp32 >= 3x faster than PyTorch eager at batch 1: {target(r1['ort_fp32_speedup_vs_eager'] >= 3)}**",
        f"**int8 faster than fp32: {target(r1['int8_speedup_vs_fp32'] > 1)}**",
        "inside the 3-minute target" if max(im["train_cold"]["total"], ph["wall_s"]) < 180 else "outside the 3-minute target",
    ]

    # int8 study
    five = [r for k in ("asl", "phone", "asl_seed1", "asl_seed2", "phone_seed1") for r in j(f"int8_study_{k}.json")["rows"]]
    ms = [r[k] for k2 in study for r in study[k2] for k in ("fp32_ms", "int8_ms")]
    by = {k: {r["setting"]: r for r in study[k]} for k in study}
    default = INT8_SETTINGS["default"]
    pslow = [by[k][s]["quantize_s"] / by[k][default]["quantize_s"] for k in by for s in by[k] if s.startswith("percentile")]
    rr = [by[k]["reduce_range off"]["mean_abs_prob_diff"] / by[k][INT8_SETTINGS["default"]]["mean_abs_prob_diff"] for k in by]
    sym = [by[k]["activation symmetric"]["fp32_ms"] / by[k]["activation symmetric"]["int8_ms"] for k in by]
    pt = [by[k]["per-tensor weights"] for k in ("asl", "phone")]
    speedups = [r["fp32_ms"] / r["int8_ms"] for r in five]
    assert {r["fp32_acc"] for r in study["asl"]} == {by["asl"][INT8_SETTINGS["default"]]["fp32_acc"]}
    out += [
        f"absolute ms swung {min(ms):.0f}-{max(ms):.0f} ms",
        f"fp32 val accuracy: ASL {pct(study['asl'][0]['fp32_acc'])} %, phone {pct(study['phone'][0]['fp32_acc'])} %",
        f"each {max(r['calibration_inputs'] for r in study['asl'] if r['setting'] == 'all training images')} train / "
        f"{study['asl'][0]['n']} val",
        f"takes {span(min(pslow), max(pslow), 1)}x longer to quantize ({f(min(pctl), 0)}-{f(max(pctl), 0)} s here)",
        f"(per-tensor: {pt[0]['n'] - pt[0]['agree']} and {pt[1]['n'] - pt[1]['agree']} flips, {pct(pt[0]['int8_acc'])} % on both sets)",
        f"raises |diff| {span(min(rr), max(rr), 1)}x",
        f"speed advantage ({span(min(sym), max(sym), 2)}x)",
        f"in every row of the five files ({span(min(speedups), max(speedups), 2)}x)",
        f"quantizing alone took {sum(r['quantize_s'] for r in study['asl']) / 60:.1f} min for ASL and "
        f"{sum(r['quantize_s'] for r in study['phone']) / 60:.1f} min for phone",
    ]
    assert pct(pt[0]["int8_acc"]) == pct(pt[1]["int8_acc"])
    assert all(r["fp32_ms"] > r["int8_ms"] for r in five)

    # LLM
    llm_d = j("llm.json")
    models = llm_d["models"]
    per_round = [x for m in models for k in ("http", "mqtt") for x in m[f"{k}_vs_direct_tps_per_round"]]
    quartiles = [statistics.quantiles(m[f"{k}_vs_direct_tps_per_round"], n=4) for m in models for k in ("http", "mqtt")]
    gen = [m[k]["gen_cpu_ms_per_token_median"] for m in models for k in ("direct", "http", "mqtt")]
    mqtt_over = [m["mqtt"]["overhead_cpu_ms_per_token_median"] for m in models]
    http_over = {f(m["http"]["overhead_cpu_ms_per_token_median"], 2) for m in models}
    msgs = [r["messages"] for m in models for r in m["mqtt"]["runs"]]
    ttft_over = [m[f"{k}_ttft_overhead_ms"] for m in models for k in ("http", "mqtt")]
    ttft = [m[k]["ttft_ms_median"] for m in models for k in ("direct", "http", "mqtt")]
    smol = models[0]
    assert smol["name"] == "smollm2-135m" and len(http_over) == 1
    assert all(len(m[k]["runs"]) == llm_d["rounds"] for m in models for k in ("direct", "http", "mqtt"))

    def best(m: dict) -> list[float]:
        return [max(r["tps"] for r in m[k]["runs"]) for k in ("direct", "http", "mqtt")]

    out += [
        f"`--threads {llm_d['threads']} --rounds {llm_d['rounds']}`",
        f"**Target (HTTP and MQTT each >= {llm_d['target_ratio']:g}x direct): {target(llm_d['pass'])} in this run**",
        f"load average of {loads(llm_d['machine']['load_avg'])} (1 / 5 / 15 min)",
        f"{llm_d['max_tokens']} answer tokens, {llm_d['threads']} llama.cpp thread everywhere, {llm_d['rounds']} rounds",
        f"bench/bench_llm.py --threads {llm_d['threads']} --rounds {llm_d['rounds']}`",
        f"moved between {min(per_round):.3f} and {max(per_round):.3f} (interquartile ranges within "
        f"{min(q[0] for q in quartiles):.3f}-{max(q[2] for q in quartiles):.3f})",
        f"spend {smol['direct']['gen_cpu_ms_per_token_median']:.1f} ms of CPU per token against "
        f"{smol['http']['gen_cpu_ms_per_token_median']:.1f} ms in the server",
        f"10 ms clock ticks over {llm_d['max_tokens']} tokens, so {10 / llm_d['max_tokens']:.2f} ms steps",
        f"HTTP costs {http_over.pop()} ms per token",
        f"MQTT {span(min(mqtt_over), max(mqtt_over), 2)} ms",
        f"against {span(min(gen), max(gen), 1)} ms of llama.cpp compute per token",
        f"**>= {min(m[k]['cpu_bound_share'] for m in models for k in ('http', 'mqtt')):.3f} for both**",
        f"{min(msgs)}-{max(msgs)} messages per {llm_d['max_tokens']}-token answer",
        f"{min(ttft_over):.0f}-{max(ttft_over):.0f} ms later than direct",
        f"TTFT medians of {min(ttft):.0f}-{max(ttft):.0f} ms",
        f"reached {span(min(best(models[0])), max(best(models[0])), 1)} tokens/s (SmolLM2-135M) and "
        f"{span(min(best(models[1])), max(best(models[1])), 1)} tokens/s (Gemma 3 270M)",
    ]
    assert min(ttft_over) > 0  # "later than direct"

    # network fuzz
    fz, first = j(FUZZ_RUN), j(FUZZ_FIRST_RUN)
    o = fz["options"]
    corpus = (fz["mqtt"]["per_kind"].get("corpus", 0), fz["http"]["per_kind"].get("corpus", 0))
    fm = first["mqtt"]
    assert first["options"] == o and "corpus" not in fm["per_kind"]  # "same defaults, before the corpus existed"
    out += [
        f"({corpus[0]} MQTT payloads and {corpus[1]} HTTP requests here, counted in the totals)",
        "before the corpus existed and before the fixes below; load averages of "
        f"{loads(first['machine']['load_avg_at_start'])} at the start)",
        f"within their memory (+{100 * first['rss_mb']['daemon']['growth']:.1f} % daemon, +{100 * first['rss_mb']['llm']['growth']:.1f} % "
        "LLM server)",
        f"{len(first['tracebacks']['daemon'])} tracebacks in the daemon's log, {len(first['tracebacks']['llm'])} in the LLM server's, and "
        f"{fm.get('internal_error_reply_count', len(fm['internal_error_replies']))} \"internal error\" replies**",
        "**missed the \"no traceback\" target" if not first["checks"]["no_traceback_in_logs"] else "**met the \"no traceback\" target",
        f"(the defaults: {o['mqtt_count']:,} MQTT payloads and {o['http_count']:,} HTTP requests, seed {fz['seed']})",
        f"load averages of {loads(fz['machine']['load_avg_at_start'])} at the start and "
        f"{loads(fz['machine']['load_avg_at_end'])} at the end",
        f"every {o['sync_every']} of them a ping and a refused LLM request must come back",
        f"{o['http_workers']} at a time",
        f"read after a warm-up ({o['warmup_each']} cases of each kind, an LLM answer, a snapshot, a reload) and again "
        f"{o['settle_s']:g} s after",
        f"no answer within {o['http_client_timeout_s']:g} s",
        "**the run meets every target**" if fz["pass"] else "**the run misses a target**",
    ]
    out += backbone_figures() + int8_vnni_figures()
    out += footprint_text()
    return out


# ------------------------------------------------------------------------------------------------ tests


def test_cited_results_files_exist_and_every_results_file_is_cited() -> None:
    text = DOC.read_text()
    cited = set(REF.findall(text))
    assert cited, "docs/benchmarks.md cites no bench/results/*.json file"
    missing = sorted(c for c in cited if not (REPO / c).is_file())
    assert not missing, f"docs/benchmarks.md cites results files that are not in the repo: {missing}"
    uncited = sorted(f"bench/results/{p.name}" for p in RESULTS.glob("*.json") if f"bench/results/{p.name}" not in cited)
    assert not uncited, f"results files that docs/benchmarks.md does not cite: {uncited}"
    # a bare "x.json" would escape the existence check above
    bare = [m.group(0) for m in re.finditer(r"(?<![/\w.-])[\w.-]+\.json\b", text)]
    assert not bare, f"name results files with their path (bench/results/...): {bare}"


def test_every_table_names_its_source_and_the_load() -> None:
    for table in parse_tables(DOC.read_text()):
        where = f"docs/benchmarks.md:{table.line} (table '{table.header[0]}')"
        assert table.sources, f"{where}: no 'Source:' paragraph naming bench/results/*.json right above the table"
        for source in table.sources:
            assert (REPO / source).is_file(), f"{where}: {source} is not in the repo"
        assert "load" in table.source_text.lower(), f"{where}: the Source paragraph does not say what the load was"


def _check_cell(where: str, cell: str, check: Check) -> None:
    if isinstance(check, Text):
        assert _clean(cell) == check.text, f"{where}: cell reads {_clean(cell)!r}, the results file gives {check.text!r}"
    elif isinstance(check, Has):
        assert check.text in _clean(cell), f"{where}: cell {_clean(cell)!r} should contain {check.text!r} (from the results file)"
    else:
        found = NUMBER.findall(cell)
        assert found == check, f"{where}: cell {cell!r} has figures {found}, the results file gives {check}"


def test_table_figures_match_their_results_files() -> None:
    tables = parse_tables(DOC.read_text())
    seen = set()
    for table in tables:
        key = (table.sources[0] if table.sources else "", table.header[0])
        assert key in TABLES, f"docs/benchmarks.md:{table.line}: no figure checks for table {key} in tests/test_benchmarks_doc.py"
        seen.add(key)
        spec = TABLES[key]()
        for row_key, checks in spec.rows.items():
            if isinstance(row_key, int):
                assert row_key < len(table.rows), f"docs/benchmarks.md:{table.line}: table {key} has no row {row_key}"
                rows = [table.rows[row_key]]
            else:
                rows = [r for r in table.rows if _clean(r[0]).startswith(row_key)]
                assert len(rows) == 1, f"docs/benchmarks.md:{table.line}: {len(rows)} rows of table {key} start with {row_key!r}"
            for col, check in checks.items():
                _check_cell(f"docs/benchmarks.md:{table.line} {key} row {row_key!r} column {col}", rows[0][col], check)
        # every figure in a value column is accounted for
        checked = {}
        for row_key, checks in spec.rows.items():
            index = row_key if isinstance(row_key, int) else next(i for i, r in enumerate(table.rows) if _clean(r[0]).startswith(row_key))
            checked[index] = set(checks)
        for i, row in enumerate(table.rows):
            for col in range(spec.label_cols, len(row)):
                if NUMBER.search(row[col]) and col not in checked.get(i, set()):
                    raise AssertionError(f"docs/benchmarks.md:{table.line} {key}: figure {row[col]!r} (row {i}, column {col}) "
                                         f"is not checked against a results file")
    assert seen == set(TABLES), f"tables checked here but gone from the doc: {set(TABLES) - seen}"


def test_key_figures_in_the_text_match_the_results_files() -> None:
    doc = normalized_doc(DOC.read_text())
    missing = [phrase for phrase in text_figures() if normalized_doc(phrase) not in doc]
    assert not missing, "docs/benchmarks.md does not say (with the results files' figures):\n  " + "\n  ".join(missing)


def test_results_files_agree_with_their_own_targets() -> None:
    """A miss is never recorded as a pass: the files' ok flags follow their figures."""
    for name in ("daemon_fp32_quiet.json", "daemon_fp32_loaded.json", "daemon_int8_loaded.json"):
        d = j(name)
        tg = d["targets"]
        assert tg["throughput_ok"] == (d["throughput"]["ratio"] >= tg["throughput_ratio_min"]), name
        assert tg["rss_ok"] == (d["daemon"]["daemon_rss_peak_mb"] < tg["rss_mb_max"]), name
    d = j("llm.json")
    assert d["pass"] == all(m[f"{k}_vs_direct_tps"] >= d["target_ratio"] for m in d["models"] for k in ("http", "mqtt"))
