"""How far can an 80-band mel mask go? The oracle ratio mask on real test mixtures.

    python benchmarks/oracle_mask.py [--clips 20] [--json OUT.json]

The models output a real mask on 80 mel bands, mapped to the 257 STFT bins by the fixed
``mel_to_linear`` matrix and applied to the noisy STFT (``tinyse_tf.features``). Here that mask
is the ideal one, ``clip(mel|S| / mel|Y|, 0, 1)`` from the clean and noisy spectra, applied the
same way; beside it the ideal ratio mask on the 257 linear bins. ΔSI-SDR over the noisy input
per input SNR on ``--clips`` random mixtures of the test split (4 s of speech after 1 s of the
noise alone, as benchmarks/vs_peers.py mixes): an upper bound for the models' output form, not
for enhancement in general.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from machine import emit_json, machine
from vs_peers import SHARED, with_lead_in

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speech", default=str(SHARED / "audio" / "speech" / "test"))
    p.add_argument("--noise", default=str(SHARED / "audio" / "noise" / "test"))
    p.add_argument("--clips", type=int, default=20, help="random mixtures per SNR")
    p.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tinyse_tf import features
    from tinyse_tf._tf import tf
    from tinyse_tf.data import list_audio
    from tinyse_tf.dsp import mel_matrix
    from tinyse_tf.evaluation.metrics import si_sdr
    from tinyse_tf.export.fidelity import mixtures_by_snr

    mel = tf.constant(mel_matrix())
    pairs = with_lead_in(mixtures_by_snr(list_audio(args.speech), list_audio(args.noise),
                                         args.snrs, args.clips, seconds=5.0, seed=args.seed), 1.0)
    out = {}
    for snr, mixtures in pairs.items():
        gains = {"mel_80": [], "linear_257": []}
        for noisy, clean in mixtures:
            y, s = features.stft(tf.constant(noisy[None])), features.stft(tf.constant(clean[None]))
            masks = {"mel_80": features.mel_mask_to_linear(tf.clip_by_value(
                         tf.tensordot(tf.abs(s), mel, 1) / (tf.tensordot(tf.abs(y), mel, 1) + 1e-8),
                         0.0, 1.0)),
                     "linear_257": tf.clip_by_value(tf.abs(s) / (tf.abs(y) + 1e-8), 0.0, 1.0)}
            for name, mask in masks.items():
                enhanced = features.istft(tf.cast(mask, tf.complex64) * y, noisy.size).numpy()[0]
                gains[name].append(si_sdr(clean, enhanced) - si_sdr(clean, noisy))
        out[f"{snr:g}"] = {k: round(float(np.mean(v)), 2) for k, v in gains.items()}
        print(f"{snr:+g} dB: oracle mel-80 mask {out[f'{snr:g}']['mel_80']:+.2f} dB, "
              f"linear-257 {out[f'{snr:g}']['linear_257']:+.2f} dB", file=sys.stderr)
    emit_json({"machine": machine(), "clips_per_snr": args.clips, "seed": args.seed,
               "delta_si_sdr": out}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
