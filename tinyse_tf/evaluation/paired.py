"""Paired comparisons of two enhancers scored on the same clips: mean difference and its
standard error, per input SNR and metric.

Input is what ``tinyse_tf.export.fidelity.score_enhancers`` returns, ``{name: {snr: {metric:
[improvement over the noisy input, per clip]}}}``; the clips of every name are the same, in the
same order, so differences are taken clip by clip.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: How the metrics are printed: label and unit.
LABELS = {"si_sdr": ("ΔSI-SDR", "dB"), "pesq": ("ΔPESQ-WB", ""), "estoi": ("ΔeSTOI", "points")}


def paired_stats(values: Sequence[float]) -> dict:
    """``{"mean", "se", "better", "n"}`` of per-clip differences (NaN clips left out; ``se`` is
    NaN for fewer than two clips)."""
    values = [float(v) for v in values if math.isfinite(v)]
    n = len(values)
    if not n:
        return {"mean": math.nan, "se": math.nan, "better": 0, "n": 0}
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
    return {"mean": mean, "se": math.sqrt(var / n), "better": sum(v > 0 for v in values), "n": n}


def paired_difference(scores: Mapping, name: str, reference: str) -> dict:
    """``{snr: {metric: paired_stats(name - reference)}}`` over the clips of each SNR."""
    out = {}
    for snr, per_metric in scores[name].items():
        ref = scores[reference][snr]
        out[snr] = {m: paired_stats([a - b for a, b in zip(values, ref[m])])
                    for m, values in per_metric.items()}
    return out


def mean_scores(scores: Mapping) -> dict:
    """``{name: {snr: {metric: mean improvement over the noisy input}}}``."""
    return {name: {snr: {m: paired_stats(v)["mean"] for m, v in per_metric.items()}
                   for snr, per_metric in per_snr.items()}
            for name, per_snr in scores.items()}


def comparison_table(scores: Mapping, reference: str) -> str:
    """Markdown: every enhancer's mean improvement over the noisy input per metric and SNR, and
    below, each one's paired difference to ``reference`` (mean ± standard error, clips better)."""
    names = list(scores)
    snrs = list(scores[reference])
    metrics = list(scores[reference][snrs[0]])
    head = " / ".join(f"{s:g}" for s in snrs) + " dB"
    cols = [f"{LABELS.get(m, (m, ''))[0]} ({head})" for m in metrics]
    lines = ["| enhancer | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    means = mean_scores(scores)
    for name in names:
        lines.append(f"| {name} | " + " | ".join(
            " / ".join(f"{means[name][s][m]:+.2f}" for s in snrs) for m in metrics) + " |")
    for name in names:
        if name == reference:
            continue
        diff = paired_difference(scores, name, reference)
        lines.append(f"| {name} − {reference} | " + " | ".join(
            " / ".join(f"{diff[s][m]['mean']:+.2f} ± {diff[s][m]['se']:.2f}" for s in snrs)
            for m in metrics) + " |")
    return "\n".join(lines)
