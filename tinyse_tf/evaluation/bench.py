"""Time each metric on one clip: ``python -m tinyse_tf.evaluation.bench [--seconds 10]``.

Prints, per metric, the first call (DNSMOS loads its ONNX models then) and the median of later calls
for one signal, and the cost per test clip (noisy + enhanced = two signals). Without ``--clean``
it uses a synthetic voiced signal; pass real files for realistic PESQ/DNSMOS behaviour.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tinyse_tf.evaluation import metrics as M

SR = M.SAMPLE_RATE


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic signal, f0 90-165 Hz, syllable-rate envelope. Shape: [seconds * 16000]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 30))
    x = x * np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None) ** 1.5
    return 0.3 * x / np.abs(x).max()


def _read(path, seconds: float) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(path, dtype="float64")
    if sr != SR or x.ndim != 1:
        raise SystemExit(f"{path}: need 16 kHz mono")
    return np.resize(x, int(seconds * SR))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--snr", type=float, default=0.0, help="SNR of the noisy signal (dB)")
    p.add_argument("--clean", help="16 kHz mono speech file (default: synthetic)")
    p.add_argument("--noise", help="16 kHz mono noise file (default: white noise)")
    args = p.parse_args(argv)

    clean = _read(args.clean, args.seconds) if args.clean else synthetic_speech(args.seconds)
    noise = (_read(args.noise, args.seconds) if args.noise
             else np.random.default_rng(1).standard_normal(clean.size))
    noise *= np.sqrt(np.sum(clean ** 2) / np.sum(noise ** 2) / 10 ** (args.snr / 10))
    noisy = clean + noise
    gain = 0.9 / np.abs(noisy).max()
    clean, noisy = clean * gain, noisy * gain

    calls = {"si_sdr": lambda: M.si_sdr(clean, noisy), "sdr": lambda: M.sdr(clean, noisy),
             "pesq": lambda: M.pesq_wb(clean, noisy), "estoi": lambda: M.estoi(clean, noisy),
             "dnsmos": lambda: M.dnsmos(noisy)}
    print(f"{args.seconds:g} s clip, noisy at {args.snr:g} dB, {args.repeats} repeats "
          f"({'files' if args.clean else 'synthetic'})")
    print("| metric | first call (s) | per signal, median (s) | per clip, noisy + enhanced (s) | value |")
    print("|---|---|---|---|---|")
    total = 0.0
    for name, call in calls.items():
        t0 = time.perf_counter()
        value = call()
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        total += 2 * med
        shown = (", ".join(f"{k} {v:.2f}" for k, v in value.items()) if isinstance(value, dict)
                 else f"{value:.2f}")
        print(f"| {name} | {first:.3f} | {med:.3f} | {2 * med:.3f} | {shown} |")
    print(f"| all | | | {total:.3f} | |")


if __name__ == "__main__":
    main()
