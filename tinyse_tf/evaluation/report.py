"""Evaluation reports: ``report.json`` (everything), ``report.md`` (tables like the paper's Table 3
and Table 4) and PNG plots, all written atomically.

Table 3 shape: one table per input-SNR label (-5, 0, 5, mixed, ..., all); rows are the noisy input
(absolute values) and the models (improvement over noisy, ``mean ± std`` over files); columns are
ΔSI-SDR, ΔSDR (BSS-eval), ΔPESQ-WB, ΔeSTOI, ΔDNSMOS SIG / BAK / OVRL.
"""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

from tinyse_tf.atomic import atomic_write_text
from tinyse_tf.evaluation.metrics import METRIC_NAMES
from tinyse_tf.evaluation.plots import plot_gain_vs_snr, plot_spectrograms
from tinyse_tf.evaluation.runner import ALL_LABEL, SIDES, label_order, summarize

#: Table columns (value keys) in the paper's order.
TABLE_COLUMNS: tuple[str, ...] = ("si_sdr", "sdr", "pesq", "estoi", "dnsmos_sig", "dnsmos_bak",
                                  "dnsmos_ovrl")
NOISY_ROW = "noisy input (absolute)"
GAIN_PLOTS = ("si_sdr", "pesq")
MISSING = "—"


def _fmt(value, digits: int = 2) -> str:
    """A cell: {"mean", "std"} -> 'mean ± std'; a number -> 'mean'; a string as is; None -> '—'."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        mean, std = value.get("mean", math.nan), value.get("std")
        if mean is None or not math.isfinite(mean):
            return MISSING
        if std is None or not math.isfinite(std):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else MISSING


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ordered_labels(summaries: Mapping[str, Mapping]) -> list[str]:
    labels: dict[str, None] = {}
    for summary in summaries.values():
        labels.update(dict.fromkeys(summary))
    labels.pop(ALL_LABEL, None)
    return label_order(labels) + [ALL_LABEL]


def _columns(summaries: Mapping[str, Mapping], extra_rows: Mapping | None) -> list[str]:
    """TABLE_COLUMNS that some row has a value for (e.g. drops DNSMOS when it was not run)."""
    present = set()
    for summary in summaries.values():
        for per_label in summary.values():
            present.update(per_label["delta"])
    for per_label in (extra_rows or {}).values():
        for cells in per_label.values():
            present.update(cells)
    return [c for c in TABLE_COLUMNS if c in present]


def table3(summaries: Mapping[str, Mapping], label: str, extra_rows: Mapping | None = None,
           columns: Sequence[str] | None = None, noisy_from: str | None = None) -> str:
    """Markdown table for one SNR label: noisy absolute row, one Δ row per model, extra rows.

    Args:
        summaries: {model: ``summarize(records)``}.
        label: SNR label ("-5", "0", "5", "mixed", "all", ...).
        extra_rows: {row name: {label: {value key: number | {"mean", "std"} | str}}}, e.g. the
            paper's numbers or results computed elsewhere; shown after the models.
        columns: value keys; default the TABLE_COLUMNS present.
        noisy_from: model whose noisy-input values fill the noisy row (default: the first).
    """
    columns = list(columns or _columns(summaries, extra_rows))
    header = ["model", *("Δ" + METRIC_NAMES.get(c, c) for c in columns), "files"]
    rows = []
    names = list(summaries)
    if names:
        base = summaries[noisy_from or names[0]].get(label)
        if base is not None:
            rows.append([NOISY_ROW, *(_fmt(base["noisy"].get(c)) for c in columns),
                         str(_n_files(base))])
    for name in names:
        s = summaries[name].get(label)
        if s is None:
            rows.append([name, *(MISSING for _ in columns), "0"])
        else:
            rows.append([name, *(_fmt(s["delta"].get(c)) for c in columns), str(_n_files(s))])
    for name, per_label in (extra_rows or {}).items():
        cells = {str(k): v for k, v in per_label.items()}.get(label, {})  # -5 or "-5"
        rows.append([name, *(_fmt(cells.get(c)) for c in columns), MISSING])
    return _md_table(header, rows)


def _n_files(label_summary: Mapping) -> int:
    """Largest per-metric count: the number of files with at least one metric."""
    return max((v["n"] for side in label_summary.values() for v in side.values()), default=0)


def absolute_table(summaries: Mapping[str, Mapping], label: str = ALL_LABEL,
                   columns: Sequence[str] | None = None) -> str:
    """Markdown table of absolute scores (noisy input, then each model's output) for one label."""
    columns = list(columns or _columns(summaries, None))
    header = ["model", *(METRIC_NAMES.get(c, c) for c in columns)]
    rows = []
    for i, (name, summary) in enumerate(summaries.items()):
        s = summary.get(label)
        if s is None:
            continue
        if i == 0:
            rows.append(["noisy input", *(_fmt(s["noisy"].get(c)) for c in columns)])
        rows.append([name, *(_fmt(s["enhanced"].get(c)) for c in columns)])
    return _md_table(header, rows)


def _as_summary(value) -> Mapping:
    return summarize(value) if isinstance(value, (list, tuple)) else value


def size_table(results_by_size: Mapping[str, Mapping[str, object]], metric: str = "si_sdr",
               labels: Sequence[str] | None = None) -> str:
    """Markdown table shaped like the paper's Table 4: one row per student size.

    Args:
        results_by_size: {size name (e.g. "30k"): {variant (e.g. "baseline", "two-step KD"):
            records list or ``summarize`` output}}. Variants keep their order.
        metric: value key whose mean improvement (Δ, over noisy) fills the cells.
        labels: SNR labels to show (default: every label present, "all" last).
    Returns:
        Markdown: columns "<variant> <label>" for each label and variant, plus "gain <label>"
        (last variant minus first) when there are two or more variants.
    """
    summaries = {size: {v: _as_summary(r) for v, r in variants.items()}
                 for size, variants in results_by_size.items()}
    variants = list(dict.fromkeys(v for per in summaries.values() for v in per))
    if labels is None:
        labels = _ordered_labels({f"{s}/{v}": x for s, per in summaries.items() for v, x in per.items()})
    header = ["student size"]
    for lab in labels:
        header += [f"{v} {lab}" for v in variants]
        if len(variants) > 1:
            header.append(f"gain {lab}")
    rows = []
    for size, per in summaries.items():
        row = [size]
        for lab in labels:
            means = []
            for v in variants:
                s = per.get(v, {}).get(lab)
                m = s["delta"].get(metric, {}).get("mean", math.nan) if s else math.nan
                means.append(m if m is not None else math.nan)
                row.append(_fmt(m))
            if len(variants) > 1:
                row.append(_fmt(means[-1] - means[0]))
        rows.append(row)
    return f"Δ{METRIC_NAMES.get(metric, metric)}, mean over files\n\n" + _md_table(header, rows)


def _failures(results: Mapping[str, Sequence[Mapping]], max_examples: int = 5) -> str:
    lines = []
    for name, records in results.items():
        failed = [r for r in records if r.get("errors")]
        if not failed:
            continue
        counts: dict[str, int] = {}
        for r in failed:
            for k in r["errors"]:
                counts[k] = counts.get(k, 0) + 1
        lines.append(f"- **{name}**: {len(failed)} of {len(records)} files with errors ("
                     + ", ".join(f"{k}: {n}" for k, n in counts.items()) + ")")
        for r in failed[:max_examples]:
            for k, msg in r["errors"].items():
                lines.append(f"  - `{r['id']}` ({r['snr_label']}) {k}: {msg}")
    return "\n".join(lines) if lines else "None."


def _json_safe(obj):
    """NaN/inf -> None (strict JSON), paths -> str, numpy scalars -> Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _nan_back(obj, numeric: bool = False):
    if isinstance(obj, dict):
        return {k: _nan_back(v, numeric or k in SIDES or k in ("mean", "std")) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_back(v, numeric) for v in obj]
    if obj is None and numeric:
        return math.nan
    return obj


def read_report(path) -> dict:
    """Load ``report.json``; metric values stored as null (NaN) come back as float NaN."""
    with open(path, encoding="utf-8") as f:
        return _nan_back(json.load(f))


def write_report(results: Mapping[str, Sequence[Mapping]], out_dir, title: str = "Evaluation report",
                 extra_rows: Mapping | None = None, metadata: Mapping | None = None,
                 spectrogram: Mapping | None = None,
                 size_results: Mapping[str, Mapping[str, object]] | None = None,
                 sections: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write report.json, report.md and PNG plots into ``out_dir`` (each file atomically).

    Args:
        results: {model name ("teacher", "student", "one-step KD", "two-step KD", "student int8",
            ...): records from ``evaluate_files``}, in table order; the noisy row comes from the
            first model.
        title: Markdown title.
        extra_rows: rows added to every Table-3 table, see ``table3``.
        metadata: facts to keep (checkpoints, commit, test set, ...); values JSON cannot hold
            are stored as ``str(value)``.
        sections: further report.md sections, ``{heading: markdown}``, before the failures.
        spectrogram: optional {"noisy": [n], "enhanced": [n], "clean": [n], "title": str} arrays
            for one figure, spectrogram.png.
        size_results: optional ``size_table`` input; adds a Table-4 section.
    Returns:
        {"json": path, "markdown": path, plot name: path, ...} of the files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = {name: summarize(records) for name, records in results.items()}
    labels = _ordered_labels(summaries) if summaries else []
    written: dict[str, Path] = {}

    for metric in GAIN_PLOTS:
        path = out_dir / f"gain_vs_snr_{metric}.png"
        if summaries and plot_gain_vs_snr(summaries, metric, path):
            written[f"gain_vs_snr_{metric}"] = path
    if spectrogram is not None:
        path = out_dir / "spectrogram.png"
        plot_spectrograms(spectrogram["noisy"], spectrogram["enhanced"], spectrogram["clean"], path,
                          title=spectrogram.get("title"))
        written["spectrogram"] = path

    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    md = [f"# {title}", "", f"Created {created}. Per-file values, summaries and metadata: "
          "`report.json`.", "",
          "Rows other than the noisy input give the improvement over the noisy input "
          "(Δ = enhanced − noisy), `mean ± std` over files (std with ddof=0). SI-SDR is "
          "scale-invariant SDR (Le Roux et al. 2019); SDR is BSS-eval v3 SDR (mir_eval). "
          "PESQ is wide-band (P.862.2), eSTOI in percent, DNSMOS is P.835. Failed metrics are left "
          "out of the means; `files` counts files with at least one value.", ""]
    if metadata:
        md += ["## Metadata", "", *(f"- {k}: `{v}`" for k, v in metadata.items()), ""]
    md += ["## Improvement over the noisy input (Table 3 layout)", ""]
    for label in labels:
        heading = "all files" if label == ALL_LABEL else (
            f"input SNR {label} dB" if label.lstrip("+-").replace(".", "", 1).isdigit() else label)
        md += [f"### {heading}", "", table3(summaries, label, extra_rows), ""]
    if summaries:
        md += ["## Absolute scores, all files", "", absolute_table(summaries), ""]
    if size_results:
        md += ["## Student size (Table 4 layout)", "", size_table(size_results), ""]
    plots = [k for k in written if k != "json"]
    if plots:
        md += ["## Plots", "", *(f"![{k}]({written[k].name})" for k in plots), ""]
    for heading, body in (sections or {}).items():
        md += [f"## {heading}", "", body, ""]
    md += ["## Failures", "", _failures(results), ""]

    doc = {"title": title, "created_utc": created, "metadata": dict(metadata or {}),
           "labels": labels, "extra_rows": extra_rows or {},
           "models": {name: {"summary": summaries[name], "records": list(results[name])}
                      for name in results},
           "files": {k: p.name for k, p in written.items()}}
    if size_results:
        doc["size_table"] = {size: {v: _as_summary(r) for v, r in per.items()}
                             for size, per in size_results.items()}
    written["json"] = out_dir / "report.json"
    written["markdown"] = out_dir / "report.md"
    doc["files"].update(json="report.json", markdown="report.md")
    atomic_write_text(written["json"], json.dumps(_json_safe(doc), indent=1, allow_nan=False,
                                                       default=str) + "\n")
    atomic_write_text(written["markdown"], "\n".join(md))
    return written
