"""Streaming models against a classical enhancer, side by side on real recordings.

    pip install -e '.[bench]'   # logmmse, the classical enhancer (MIT; not needed otherwise)
    python benchmarks/vs_classical.py        # the shipped student, int8 and float32 files
    python benchmarks/vs_classical.py runs/demo/export/two_step_stream_int8_ptq.tflite \
        runs/demo/export/student_stream_float32.tflite [--clips 25] [--json OUT.json]

Every enhancer gets the same noisy mixtures: speech and noise recordings (default: the *test*
split of ../shared/audio, which no recipe trains on), ``--clips`` draws of a 4 s speech clip and
a noise clip, each mixed at every ``--snrs`` value (energy SNR), preceded by ``--lead-in`` seconds
of the noise alone (default 1 s: a classical enhancer estimates the noise from the first frames, as
a device stream starting before anyone speaks allows; with 0 it starts on speech and log-MMSE
makes most mixtures worse). Enhancers:

* each ``.tflite`` file given, through ``StreamingEnhancer`` (frame by frame, as a device runs it);
  a shipped model's name (``student:int8``, ``student:float32``, which bare ``student`` means)
  stands for its file, and with no file given both files of the shipped student are compared;
* ``log-MMSE``: Ephraim-Malah log-spectral-amplitude MMSE from the ``logmmse`` package (its
  defaults: noise from the first 6 frames, then updated in frames a VAD calls noise).

Prints a markdown table and JSON (stdout or ``--json``): per enhancer and SNR the mean
improvement over the noisy input in SI-SDR (dB), PESQ-WB and eSTOI (points), with its standard
error over clips, and the CPU time per 16 ms of audio (one thread, the enhancement of all clips
divided by their hops; the .tflite files' figure includes the STFT/mel/mask numpy
path), then each model's paired per-clip difference to log-MMSE with its standard error
(``vs_reference`` in the JSON).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import emit_json, machine  # benchmarks/machine.py: the script folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyse_tf.constants import HOP, SAMPLE_RATE  # noqa: E402

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
METRICS = ("si_sdr", "pesq", "estoi")
CLASSICAL = "log-MMSE (logmmse)"


def log_mmse():
    """``audio [n] -> [n]`` with the ``logmmse`` package, or SystemExit naming the install."""
    try:
        import logmmse
    except ImportError:
        raise SystemExit("vs_classical.py: error: the classical enhancer needs the logmmse "
                         "package: pip install -e '.[bench]' (or pip install logmmse)") from None
    np.seterr(all="warn")  # logmmse sets numpy to raise on any floating-point warning

    def enhance(audio):
        # float32 in: its float64 path returns a tuple (logmmse 1.5, utils.from_float)
        out = np.asarray(logmmse.logmmse(np.asarray(audio, np.float32), SAMPLE_RATE), np.float32)
        return np.pad(out, (0, max(0, audio.size - out.size)))[:audio.size]

    return enhance


def streaming(path):
    from tinyse_tf.runtime import StreamingEnhancer

    return StreamingEnhancer(path).enhance  # aligned with the input, as long as it


def with_lead_in(pairs_by_snr, seconds):
    """The mixtures with their first ``seconds`` made noise only (the clean signal zeroed there):
    the noise level is unchanged, so the SNR of the speech part stays the one asked for."""
    n = int(seconds * SAMPLE_RATE)
    out = {}
    for snr, pairs in pairs_by_snr.items():
        out[snr] = []
        for noisy, clean in pairs:
            quiet = clean.copy()
            quiet[:n] = 0.0
            out[snr].append((noisy - clean + quiet, quiet))
    return out


class Timed:
    """``enhance`` that adds up the CPU time and the 16 ms hops it was given."""

    def __init__(self, enhance):
        self.enhance, self.seconds, self.hops = enhance, 0.0, 0

    def __call__(self, audio):
        t = time.process_time()
        out = self.enhance(audio)
        self.seconds += time.process_time() - t
        self.hops += -(-audio.size // HOP)
        return out


def _mean_se(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(np.nanmean(values)),
            "se": float(np.nanstd(values) / np.sqrt(np.sum(np.isfinite(values))))}


def run(enhancers, pairs_by_snr, reference=None):
    """``{name: {snr: {metric: {"mean", "se"}, "us_per_frame": float}}}``: improvement over the
    noisy input per clip (``fidelity.score_enhancers``), averaged per SNR; CPU time per hop
    over all SNRs. With ``reference`` (an enhancer's name), every other enhancer also gets
    ``"vs_reference": {metric: {"mean", "se"}}``, its paired per-clip difference to it."""
    from tinyse_tf.export.fidelity import score_enhancers

    timed = {name: Timed(enhance) for name, enhance in enhancers.items()}
    scores = score_enhancers(timed, pairs_by_snr, METRICS)
    out = {}
    for name, per_snr in scores.items():
        us = 1e6 * timed[name].seconds / timed[name].hops
        out[name] = {}
        for snr, deltas in per_snr.items():
            out[name][snr] = {**{m: _mean_se(v) for m, v in deltas.items()}, "us_per_frame": us}
            if reference is not None and name != reference:
                base = scores[reference][snr]
                out[name][snr]["vs_reference"] = {
                    m: _mean_se(np.asarray(v) - np.asarray(base[m])) for m, v in deltas.items()}
    return out


def table(results, snrs, paired=False) -> str:
    """Markdown: per enhancer the mean improvement over the input per metric and SNR, or with
    ``paired`` the mean ± standard error of its per-clip difference to the reference."""
    head = ["enhancer"] + [f"{label} {snr:g} dB" for label in ("ΔSI-SDR", "ΔPESQ", "ΔeSTOI")
                           for snr in snrs] + ([] if paired else ["µs / 16 ms"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, per_snr in results.items():
        if paired:
            if "vs_reference" not in per_snr[snrs[0]]:
                continue
            cells = [f"{per_snr[s]['vs_reference'][m]['mean']:+.2f} ± "
                     f"{per_snr[s]['vs_reference'][m]['se']:.2f}" for m in METRICS for s in snrs]
        else:
            cells = [f"{per_snr[s][m]['mean']:+.2f}" for m in METRICS for s in snrs]
            cells.append(f"{per_snr[snrs[0]]['us_per_frame']:.0f}")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="streaming .tflite files (exported by the recipe or "
                                             "`tinyse export`) or shipped model names "
                                             "(default: student:int8 student:float32)")
    p.add_argument("--speech", default=str(SHARED_AUDIO / "speech" / "test"))
    p.add_argument("--noise", default=str(SHARED_AUDIO / "noise" / "test"))
    p.add_argument("--clips", type=int, default=25, help="mixtures per SNR")
    p.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    p.add_argument("--seconds", type=float, default=4.0, help="speech per mixture")
    p.add_argument("--lead-in", type=float, default=1.0, help="seconds of noise alone first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tinyse_tf.data import list_audio
    from tinyse_tf.export.fidelity import mixtures_by_snr

    from tinyse_tf.shipped import resolve

    files = {}
    for model in args.models or ["student:int8", "student:float32"]:
        try:
            shipped = None if Path(model).exists() else resolve(model)
        except (ValueError, OSError) as err:
            p.error(str(err))
        if shipped is not None:
            name, _, kind = model.partition(":")
            files[f"shipped {name} {kind or 'int8'}"] = shipped
        elif not Path(model).is_file() or not model.endswith(".tflite"):
            p.error(f"{model}: not a .tflite file; give streaming files from an export folder")
        else:
            files[Path(model).stem] = model
    enhancers = {CLASSICAL: log_mmse()}
    enhancers.update({label: streaming(path) for label, path in files.items()})
    try:
        speech, noise = list_audio(args.speech), list_audio(args.noise)
    except Exception as err:  # noqa: BLE001 - report the folder in one line
        p.error(f"{err}")
    pairs = with_lead_in(mixtures_by_snr(speech, noise, args.snrs, args.clips,
                                         seconds=args.lead_in + args.seconds, seed=args.seed),
                         args.lead_in)
    results = run(enhancers, pairs, reference=CLASSICAL)
    report = {"machine": machine(),
              "speech": args.speech, "noise": args.noise, "clips_per_snr": args.clips,
              "seconds": args.seconds, "lead_in_s": args.lead_in, "seed": args.seed, "results": {n: {f"{s:g}": v for s, v in r.items()}
                                             for n, r in results.items()}}
    print(table(results, args.snrs))
    print(f"\nPaired per-clip difference to {CLASSICAL} (mean ± standard error):\n")
    print(table(results, args.snrs, paired=True))
    emit_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
