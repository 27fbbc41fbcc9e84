"""What the mask should do on the two STFT bins below the mel filterbank (0 and 31.25 Hz), which
no band covers and so no model sees: each treatment scored on a recipe run's validation stream.

    python benchmarks/low_bins.py runs/flagship student teacher --snrs -5 0 5 10 20 30 \
        --json docs/results/campaign/low_bins_validation.json

Treatments of ``mel_to_linear_matrix`` (docs/DESIGN.md, B.2): ``copy`` (both bins take the
lowest band's mask: the matrix until 2026-12-07), ``dc_zero`` (the DC bin 0, bin 1 copies:
today's), ``both_zero`` (both 0). The models are scored as ``validation_score.py --snrs`` scores
them (the same batches for every treatment), with the matrix swapped in before each is built.
Reads the run folder; writes nothing there.

    python benchmarks/low_bins.py --energy-of ../shared/audio/noise/test ../shared/audio/speech/test

prints instead, per recording of those folders, the share of its energy in bins 0 and 1 (the
STFT of ``FrameAnalyzer``, first 20 s as ``load_audio`` reads it: mono, 16 kHz).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import validation_score
from machine import emit_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

TREATMENTS = ("copy", "dc_zero", "both_zero")


def matrix(treatment: str):
    """``mel_to_linear_matrix()`` [80, 257] with bins 0 and 1 set as ``treatment`` says."""
    from tinyse_tf.dsp import mel_to_linear_matrix

    out = mel_to_linear_matrix().copy()
    out[:, :2] = 0.0
    out[0, :2] = {"copy": (1.0, 1.0), "dc_zero": (0.0, 1.0), "both_zero": (0.0, 0.0)}[treatment]
    return out


def energy_shares(path, seconds: float = 20.0) -> tuple[float, float]:
    """Share of a recording's STFT energy in bins 0 and 1 (first ``seconds`` at 16 kHz)."""
    import numpy as np

    from tinyse_tf.constants import HOP, SAMPLE_RATE
    from tinyse_tf.data import load_audio
    from tinyse_tf.dsp import FrameAnalyzer

    audio = load_audio(path)[:int(seconds * SAMPLE_RATE)]
    power = (np.abs(FrameAnalyzer().push(audio[:len(audio) // HOP * HOP])) ** 2).sum(axis=0)
    return float(power[0] / power.sum()), float(power[1] / power.sum())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="recipe run folder (its config.json fixes the "
                                            "validation stream)")
    p.add_argument("models", nargs="*", help="shipped names, .keras files or stage best.h5 files")
    p.add_argument("--snrs", type=float, nargs="+", metavar="DB")
    p.add_argument("--data-dir", help="the run's --data-dir, if it had one")
    p.add_argument("--energy-of", nargs="+", metavar="DIR",
                   help="instead: each recording's energy share in bins 0 and 1")
    p.add_argument("--json", help="write the scores here instead of stdout")
    args = p.parse_args(argv)
    if args.energy_of:
        from tinyse_tf.data import list_audio

        shares = {}
        for folder in args.energy_of:
            files = list_audio(folder)
            if not files:
                p.error(f"--energy-of {folder}: no recordings there")
            key = "/".join(Path(folder).resolve().parts[-2:])  # e.g. noise/test
            shares[key] = {f.name: [round(v, 5) for v in energy_shares(f)] for f in files}
        emit_json({"energy_share_bins_0_1": shares}, args.json)
        return 0
    if not args.run or not args.models or not args.snrs:
        p.error("give a run folder, models and --snrs (or --energy-of DIR)")
    import tinyse_tf.features as features

    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for treatment in TREATMENTS:
            m = matrix(treatment)
            features.mel_to_linear_matrix = lambda m=m: m  # what mel_mask_to_linear multiplies by
            out = Path(tmp) / f"{treatment}.json"
            extra = ["--data-dir", args.data_dir] if args.data_dir else []
            code = validation_score.main([args.run, *args.models, "--snrs",
                                          *map(str, args.snrs), "--json", str(out), *extra])
            if code:
                return code
            result = json.loads(out.read_text())
            scores[treatment] = result["val_si_sdr_at_snr"]
            print(f"{treatment}: {scores[treatment]}", file=sys.stderr)
    emit_json({"run": result["run"], "validation_steps": result["validation_steps"],
               "val_si_sdr_at_snr_by_treatment": scores}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
