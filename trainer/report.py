"""The "under the hood" report: report.json, PNG plots, a self-contained report.html and a printed table.

Task-agnostic: it reads the report dictionary the trainer assembled (labels, counts, history, metrics of
each variant, skipped files, timing).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    peak = m.max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if peak and m[i, j] > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((acc_ax, "accuracy", "Accuracy per epoch"), (loss_ax, "loss", "Loss per epoch")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f} %"


def _class_table(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{metrics['support'].get(label, 0)}</td><td>{_pct(metrics['per_class'].get(label))}</td>"
        f"<td>{_pct(metrics['precision'].get(label))}</td><td>{_pct(metrics['recall'].get(label))}</td></tr>"
        for label in metrics["labels"]
    )
    return f"<table><tr><th>class</th><th>examples</th><th>accuracy</th><th>precision</th><th>recall</th></tr>{rows}</table>"


def _tm_html(report: dict[str, Any]) -> str:
    """`trainer train --compare-tm`: the Teachable Machine export next to ours, class by class."""
    tm = report.get("teachable_machine")
    if not tm:
        return ""
    ours = report["metrics"]["fp32"]
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{tm['support'].get(label, 0)}</td><td>{_pct(ours['per_class'].get(label))}</td>"
                   f"<td>{_pct(tm['per_class'].get(label))}</td></tr>" for label in report["labels"])
    return (f"<h2>Compared with the Teachable Machine export</h2><p><code>{html.escape(tm['export'])}</code> ({html.escape(tm['format'])}, "
            f"SHA-256 <code>{html.escape(tm['sha256'])}</code>), scored on the same {tm['n']} held-out samples through ONNX Runtime.</p>"
            f"<table><tr><th>class</th><th>examples</th><th>ours (fp32)</th><th>Teachable Machine</th></tr>{rows}"
            f"<tr><td><b>overall</b></td><td>{tm['n']}</td><td>{_pct(ours['accuracy'])}</td><td>{_pct(tm['accuracy'])}</td></tr></table>"
            f"<p>{html.escape(tm['note'])}</p>")


MAX_MISTAKES_SHOWN = 50  # the HTML lists this many; report.json's validation_samples holds them all


def _mistakes_html(report: dict[str, Any]) -> str:
    """The validation samples the model got wrong (fp32), by file: which photos or clips to look at."""
    wrong = [s for s in report.get("validation_samples", []) if s["true"] != s["predicted"]]
    if not wrong:
        return ""
    rows = "".join(f"<tr><td><code>{html.escape(s['file'])}</code></td><td>{html.escape(s['true'])}</td>"
                   f"<td>{html.escape(s['predicted'])}</td></tr>" for s in wrong[:MAX_MISTAKES_SHOWN])
    more = f"<p>and {len(wrong) - MAX_MISTAKES_SHOWN} more (report.json, validation_samples)</p>" if len(wrong) > MAX_MISTAKES_SHOWN else ""
    return (f"<h3>Validation samples it got wrong ({len(wrong)})</h3>"
            f"<table><tr><th>file</th><th>true class</th><th>the model said</th></tr>{rows}</table>{more}")


def _backbones_html(report: dict[str, Any]) -> str:
    """`trainer train --compare-backbones`: each backbone trained on this data, and what it costs on a device."""
    rows = report.get("backbones")
    if not rows:
        return ""

    def cell(values: dict[str, float], variant: str, fmt: str) -> str:
        return fmt.format(values[variant]) if variant in values else "-"

    body = "".join(
        f"<tr><td>{'<b>' if r['chosen'] else ''}{html.escape(r['backbone'])}{' (this bundle)</b>' if r['chosen'] else ''}"
        f"<br><small>{html.escape(r['description'])}</small></td><td>{'x'.join(str(x) for x in r['input_size'])}</td>"
        f"<td>{_pct(r['accuracy'].get('fp32'))}</td><td>{_pct(r['accuracy'].get('int8'))}</td>"
        f"<td>{cell(r['ms_per_image'], 'fp32', '{:.1f}')}</td><td>{cell(r['ms_per_image'], 'int8', '{:.1f}')}</td>"
        f"<td>{cell(r['size_mb'], 'fp32', '{:.1f}')}</td><td>{cell(r['size_mb'], 'int8', '{:.1f}')}</td></tr>"
        for r in rows
    )
    return ("<h2>Backbones compared on this data</h2><p>The same head training on each backbone. Time per image: batch 1, "
            "one ONNX Runtime thread, on this machine (a small board is slower, in about the same ratios).</p>"
            "<table><tr><th>backbone</th><th>input</th><th>val accuracy fp32</th><th>int8</th><th>ms per image fp32</th>"
            f"<th>int8</th><th>size MB fp32</th><th>int8</th></tr>{body}</table>")


def write_html(report: dict[str, Any], out_dir: Path, images: dict[str, Path]) -> Path:
    metrics = report["metrics"]
    variants = "".join(
        f"<tr><td>{v}</td><td>{_pct(m['accuracy'])}</td><td>{m['n']}</td></tr>" for v, m in metrics.items()
    )
    counts = report["data"]["counts"]
    count_rows = "".join(
        f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{counts[s].get(label, 0)}</td>" for s in ("train", "val", "test")) + "</tr>"
        for label in report["labels"]
    )
    skipped = report["data"]["skipped"]
    skipped_html = (
        "<ul>" + "".join(f"<li><code>{html.escape(s['path'])}</code>: {html.escape(s['reason'])}</li>" for s in skipped) + "</ul>"
        if skipped
        else "<p>none</p>"
    )
    timing = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in report["timing"].items())
    best = metrics.get("fp32") or next(iter(metrics.values()))
    test = report.get("test_metrics") or {}
    test_html = (
        "<h2>Accuracy on the test split</h2><table><tr><th>variant</th><th>accuracy</th><th>examples</th></tr>"
        + "".join(f"<tr><td>{v}</td><td>{_pct(m['accuracy'])}</td><td>{m['n']}</td></tr>" for v, m in test.items())
        + f"</table>{_class_table(test['fp32']) if 'fp32' in test else ''}"
        if test
        else ""
    )
    backbone, total_s = html.escape(report['backbone']), report['timing'].get('total', 0)
    confusion = ''.join(_img(p) for k, p in images.items() if k.startswith('confusion'))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>EdgeTeach training report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}img{{max-width:100%}}code{{font-size:90%}}</style></head><body>
<h1>Training report</h1>
<p>{report['task']} classifier, backbone <b>{backbone}</b>, {len(report['labels'])} classes, trained in {total_s:.1f} s.</p>
<h2>Accuracy on the validation split (ONNX Runtime)</h2><table><tr><th>variant</th><th>accuracy</th><th>examples</th></tr>{variants}</table>
<h2>Per class (fp32)</h2>{_class_table(best)}
{_tm_html(report)}
{_backbones_html(report)}
{test_html}
<h2>Confusion matrix</h2><p>Rows: true class; columns: what the model said.</p>{confusion}
{_mistakes_html(report)}
<h2>Accuracy and loss per epoch</h2>{_img(images['curves']) if 'curves' in images else ''}
<h2>Data</h2><table><tr><th>class</th><th>train</th><th>val</th><th>test</th></tr>{count_rows}</table>
<h3>Skipped files ({len(skipped)})</h3>{skipped_html}
<h2>Timing</h2><table>{timing}</table>
<h2>Settings</h2><pre>{html.escape(json.dumps(report['settings'], indent=2))}</pre>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, confusion_matrix[_int8].png, curves.png and report.html in out_dir."""
    images: dict[str, Path] = {}
    for variant, metrics in report["metrics"].items():
        name = "confusion_matrix.png" if variant == "fp32" else f"confusion_matrix_{variant}.png"
        plot_confusion(metrics["confusion_matrix"], metrics["labels"], out_dir / name, f"Confusion matrix ({variant}, validation)")
        images[name.removesuffix(".png")] = out_dir / name
    if report.get("history"):
        plot_curves(report["history"], out_dir / "curves.png")
        images["curves"] = out_dir / "curves.png"
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    html_path = write_html(report, out_dir, images)
    return {"json": out_dir / "report.json", "html": html_path, **images}


def summary_table(report: dict[str, Any]) -> str:
    """A short plain-text table for the terminal."""
    metrics = report["metrics"]
    variants = list(metrics)
    # with --compare-tm, the Teachable Machine export's accuracy on the same held-out samples, as one more column
    columns = {v: metrics[v] for v in variants} | ({"TM": report["teachable_machine"]} if report.get("teachable_machine") else {})
    width = max(12, *(len(label) for label in report["labels"]))
    lines = [f"{'class':<{width}} {'val n':>6} " + " ".join(f"{v + ' acc':>10}" for v in columns)]
    for label in report["labels"]:
        n = metrics[variants[0]]["support"].get(label, 0)
        lines.append(f"{label:<{width}} {n:>6} " + " ".join(f"{_pct(m['per_class'].get(label)):>10}" for m in columns.values()))
    lines.append(f"{'overall':<{width}} "
                 f"{metrics[variants[0]]['n']:>6} " + " ".join(f"{_pct(m['accuracy']):>10}" for m in columns.values()))
    if report.get("teachable_machine"):
        tm = report["teachable_machine"]
        lines.append(f"TM: the Teachable Machine export {tm['export']} (sha256 {tm['sha256'][:12]}...) on the same {tm['n']} samples. "
                     + tm["note"])
    for variant, m in (report.get("test_metrics") or {}).items():
        lines.append(f"{'test split (' + variant + ')':<{width}} {m['n']:>6} {_pct(m['accuracy']):>10}")
    skipped = len(report["data"]["skipped"])
    timing = report["timing"]
    lines.append(
        f"skipped files: {skipped}; time: {timing.get('total', 0):.1f} s "
        f"(reading {timing.get('decode', 0):.1f}, embedding {timing.get('embed', 0):.1f}, head {timing.get('train', 0):.1f}, "
        f"export {timing.get('export', 0):.1f}, int8 {timing.get('quantize', 0):.1f})"
    )
    return "\n".join(lines)
