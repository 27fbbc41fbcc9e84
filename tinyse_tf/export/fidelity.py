"""Does an int8 streaming file keep its float model's quality? int8 - float per input SNR.

Every exported file (float32 and its int8 siblings) enhances the same noisy mixtures through
``StreamingEnhancer`` (the frame loop a device runs); per input SNR the improvement over the
noisy input is averaged, and each int8 file is compared with the float32 file of the same weights,
paired clip by clip. ``budget_warnings`` turns the comparison into one-line warnings.

``int8_criterion`` is the one acceptance criterion of an int8 file, used by the recipe's int8
guard and by the tests: every int8 file against the float32 file of the model that was handed to
the export, never against a fine-tuned copy (QAT fine-tunes its own copy of the weights). What
it measures is what a user loses by deploying the int8 file instead of the float model they
trained, whether the loss comes from rounding or from QAT's extra training (docs/EXPORT.md).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Largest loss an int8 file may show against its float32 file, per input SNR (issue 14):
#: SI-SDR in dB, eSTOI in percentage points.
INT8_BUDGET = {"si_sdr": 0.3, "estoi": 1.0}
FIDELITY_METRICS = ("si_sdr", "estoi")


def mixtures_by_snr(speech, noise, snrs=(-5, 0, 5), n_clips: int = 8, seconds: float = 4.0,
                    seed: int = 0, sources=None) -> dict[float, list]:
    """``{snr: [(noisy [n], clean [n]), ...]}``: the same speech/noise draws at every SNR.

    Args:
        speech, noise: 1-D float arrays at 16 kHz or audio file paths.
        sources: optional (speech index, noise index) per mixture, see ``noisy_mixtures``.
    """
    from tinyse_tf.export.calibration import noisy_mixtures

    return {float(snr): noisy_mixtures(speech, noise, n_clips=n_clips, seconds=seconds,
                                       snr_db=float(snr), seed=seed, sources=sources)
            for snr in snrs}


def score_enhancers(enhancers: Mapping[str, object], pairs_by_snr: Mapping[float, Sequence],
                    metrics: Sequence[str] = FIDELITY_METRICS) -> dict:
    """Improvement over the noisy input of every enhancer on every clip.

    Args:
        enhancers: ``{name: enhance}``, ``enhance(noisy [n]) -> [n]`` aligned with its input.
        pairs_by_snr: from ``mixtures_by_snr``.
        metrics: from ``si_sdr``, ``estoi`` (points), ``pesq`` (PESQ-WB).
    Returns:
        ``{name: {snr: {metric: [improvement per clip]}}}``.
    """
    from tinyse_tf.evaluation.metrics import estoi, pesq_wb, si_sdr

    fns = {"si_sdr": si_sdr, "estoi": estoi, "pesq": pesq_wb}
    score = lambda clean, audio: {m: fns[m](clean, audio) for m in metrics}  # noqa: E731
    noisy_scores = {snr: [score(c, n) for n, c in pairs] for snr, pairs in pairs_by_snr.items()}
    out = {}
    for name, enhance in enhancers.items():
        per_snr = {}
        for snr, pairs in pairs_by_snr.items():
            rows = [score(clean, enhance(noisy)) for noisy, clean in pairs]
            per_snr[snr] = {m: [r[m] - ref[m] for r, ref in zip(rows, noisy_scores[snr])]
                            for m in metrics}
        out[name] = per_snr
    return out


def score_files(files: Mapping[str, object], pairs_by_snr: Mapping[float, Sequence]) -> dict:
    """``score_enhancers`` of streaming files, each through ``StreamingEnhancer`` (every clip a
    new stream), on SI-SDR and eSTOI.

    Args:
        files: ``{name: streaming .tflite path}``.
    Returns:
        ``{name: {snr: {"si_sdr": [dB per clip], "estoi": [points per clip]}}}``.
    """
    from tinyse_tf.runtime import StreamingEnhancer

    return score_enhancers({name: StreamingEnhancer(path).enhance for name, path in files.items()},
                           pairs_by_snr)


def int8_gaps(scores: Mapping, float_name: str) -> dict:
    """Mean paired difference (int8 file - float file) per input SNR and metric.

    Returns:
        ``{int8 name: {snr: {"si_sdr": dB, "estoi": points}}}`` for every name but
        ``float_name``.
    """
    ref = scores[float_name]
    return {name: {snr: {m: float(np.mean(np.subtract(per_snr[snr][m], ref[snr][m])))
                         for m in FIDELITY_METRICS}
                   for snr in per_snr}
            for name, per_snr in scores.items() if name != float_name}


def budget_warnings(gaps: Mapping, budget: Mapping = INT8_BUDGET, where: str = "") -> list[str]:
    """One line per int8 file that loses more than ``budget`` at some input SNR."""
    out = []
    for name, per_snr in gaps.items():
        over = [f"{m} {d[m]:+.2f} at {snr:g} dB" for snr, d in per_snr.items()
                for m in FIDELITY_METRICS if d[m] < -budget[m]]
        if over:
            out.append(f"{name}: int8 loses more than its budget against float32{where} "
                       f"({', '.join(over)}; budget {budget['si_sdr']} dB SI-SDR, "
                       f"{budget['estoi']} eSTOI points)")
    return out


def int8_criterion(files: Mapping[str, object], pairs_by_snr: Mapping[float, Sequence],
                   float_name: str, budget: Mapping = INT8_BUDGET, where: str = "") -> dict:
    """Every int8 file of ``files`` against ``files[float_name]``, the float32 file exported from
    the same trained model (module docstring: the one criterion).

    Args:
        files: ``{name: streaming .tflite path}``: the float32 file and its int8 siblings as one
            ``export_model`` call wrote them.
        pairs_by_snr: from ``mixtures_by_snr``.
    Returns:
        ``{"scores": score_files(...), "gaps": int8_gaps(...), "warnings":
        budget_warnings(...), "table": gap_table(...)}``.
    """
    scores = score_files(files, pairs_by_snr)
    gaps = int8_gaps(scores, float_name)
    return {"scores": scores, "gaps": gaps, "warnings": budget_warnings(gaps, budget, where),
            "table": gap_table(scores, float_name)}


def gap_table(scores: Mapping, float_name: str) -> str:
    """Markdown: mean improvement of every file per SNR, and int8 - float beside each int8 row."""
    gaps = int8_gaps(scores, float_name)
    snrs = list(scores[float_name])
    head = " / ".join(f"{snr:g}" for snr in snrs) + " dB"
    lines = [f"| file | ΔSI-SDR dB ({head}) | ΔeSTOI points ({head}) | int8 − float SI-SDR | "
             f"int8 − float eSTOI |", "|---|---|---|---|---|"]
    for name, per_snr in scores.items():
        cells = [" / ".join(f"{np.mean(per_snr[s][m]):+.2f}" for s in snrs)
                 for m in FIDELITY_METRICS]
        diff = ["" if name == float_name else
                " / ".join(f"{gaps[name][s][m]:+.2f}" for s in snrs) for m in FIDELITY_METRICS]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {diff[0]} | {diff[1]} |")
    return "\n".join(lines)
