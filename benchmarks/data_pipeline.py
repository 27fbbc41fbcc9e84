"""Throughput and memory of the streaming mixture pipeline: a small and a large corpus.

    python benchmarks/data_pipeline.py                          # 1 h and 20 h, batch 8 x 2 s
    python benchmarks/data_pipeline.py --hours 0.2 2 --batches 100    # a quick look

For each size a corpus is generated as 16 kHz 16-bit WAV files in a temporary folder (80 %
speech-like files of 2-10 s: harmonic voices with syllable envelopes and pauses; 20 % noise
files of 10 s),
prepared with ``prepare_data`` (timed), and the training pipeline (``mixture_dataset``, the
train split) is measured in a child process of its own, so that its peak RSS is the pipeline's
alone. Everything generated is removed at the end. Prints one JSON object (for scripts) and a
markdown table.

``measure_pipeline(ds, n_batches)`` is the reusable part: time it next to a training step to see
whether the input keeps the trainer fed (it does when examples/s here is well above
batch_size / step time).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

SPEECH_SHARE = 0.8
NOISE_SECONDS = 10.0


def measure_pipeline(ds, n_batches: int = 50, warmup: int = 5) -> dict:
    """Pull ``warmup`` batches (not timed), then time ``n_batches`` batches from ``ds``.

    Args:
        ds: a dataset of ``(noisy, clean)`` batches, e.g. from ``mixture_dataset``.
        n_batches: batches timed.
        warmup: batches pulled first (graph tracing, thread start-up, prefetch fill).

    Returns:
        dict with ``batches``, ``examples``, ``seconds``, ``examples_per_s``,
        ``batches_per_s``, ``audio_seconds_per_s`` (of noisy audio), ``batch_shape``,
        ``cpu_ms_per_example`` (CPU time of this process, all threads: less sensitive than
        wall time to other jobs on the machine) and ``load_average`` (1 min, at the end).
    """
    from tinyse_tf.constants import SAMPLE_RATE

    it = iter(ds)
    for _ in range(warmup):
        next(it)
    examples, samples, shape = 0, 0, None
    start, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(n_batches):
        noisy, _clean = next(it)
        shape = list(noisy.shape)
        examples += shape[0]
        samples += shape[0] * shape[1]
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"batches": n_batches, "examples": examples, "seconds": round(seconds, 4),
            "examples_per_s": round(examples / seconds, 1),
            "batches_per_s": round(n_batches / seconds, 2),
            "audio_seconds_per_s": round(samples / SAMPLE_RATE / seconds, 1),
            "batch_shape": shape, "cpu_ms_per_example": round(1000 * cpu / examples, 3),
            "load_average": round(os.getloadavg()[0], 1)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_corpus(root: Path, hours: float, seed: int = 0) -> dict:
    """Write ``hours`` of audio as WAV files under ``root/speech`` and ``root/noise``.

    Speech-like files: a voice (a few harmonics of a gliding f0) gated by syllable envelopes
    (3-6 Hz) with pauses, 2-10 s, cut from per-voice banks at random offsets and gains, so every
    file differs while generation stays fast. Noise: white/pink/brown noise, 10 s.
    """
    import numpy as np
    import soundfile as sf

    from tinyse_tf.constants import SAMPLE_RATE as SR

    rng = np.random.default_rng(seed)
    t = np.arange(60 * SR) / SR
    voices = []
    for _ in range(16):  # 60 s banks
        f0 = rng.uniform(90, 250) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(h * phase) / h for h in range(1, 6))
        syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t), 0, None) ** 2
        pauses = np.repeat(rng.random(60 * 4) > 0.2, SR // 4)
        voices.append((voice * syllables * pauses).astype(np.float32))
    spectra = np.fft.rfftfreq(int(NOISE_SECONDS * SR), 1 / SR)
    counts = {"speech": 0, "noise": 0}
    speech_left, noise_left = SPEECH_SHARE * hours * 3600, (1 - SPEECH_SHARE) * hours * 3600
    while speech_left > 0:
        n = int(min(rng.uniform(2, 10), max(speech_left, 1)) * SR)
        bank = voices[rng.integers(len(voices))]
        start = rng.integers(len(bank) - n)
        audio = bank[start:start + n] * (0.3 / max(np.abs(bank[start:start + n]).max(), 1e-3))
        folder = root / "speech" / f"spk{counts['speech'] % 50:02d}"  # speaker-like folders
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{counts['speech']:06d}.wav", audio, SR, subtype="PCM_16")
        counts["speech"] += 1
        speech_left -= n / SR
    (root / "noise").mkdir(parents=True, exist_ok=True)
    while noise_left > 0:
        slope = rng.choice([0.0, 0.5, 1.0])  # white, pink, brown
        spectrum = (rng.standard_normal(len(spectra)) + 1j * rng.standard_normal(len(spectra)))
        noise = np.fft.irfft(spectrum / np.maximum(spectra, 20) ** slope)
        noise *= 0.1 / noise.std()
        sf.write(root / "noise" / f"{counts['noise']:06d}.wav", noise, SR, subtype="PCM_16")
        counts["noise"] += 1
        noise_left -= NOISE_SECONDS
    return counts


def _measure_child(data_dir: str, batch_size: int, clip_seconds: float, batches: int,
                   warmup: int, seed: int) -> dict:
    """Runs in its own process: build the train pipeline, pull batches, report peak RSS."""
    from tinyse_tf._tf import tf
    from tinyse_tf.data import load_prepared, mixture_dataset

    tf.zeros(1).numpy()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = load_prepared(data_dir)
    ds = mixture_dataset(*data.split("train"), clip_seconds=clip_seconds, batch_size=batch_size,
                         seed=seed)
    result = measure_pipeline(ds, batches, warmup)
    result["rss_before_mb"] = round(before)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def run_size(hours: float, work: Path, args) -> dict:
    """Generate, prepare and measure one corpus size; removes its files afterwards."""
    from tinyse_tf.data import prepare_data

    folder = work / f"{hours:g}h"
    try:
        start = time.perf_counter()
        counts = write_corpus(folder / "audio", hours, seed=args.seed)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        data = prepare_data(folder / "audio" / "speech", folder / "audio" / "noise",
                            folder / "prepared", seed=args.seed, progress=False)
        prepare_s = time.perf_counter() - start
        shutil.rmtree(folder / "audio")  # the pipeline reads the shards only
        speech, noise = data.split("train")
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(folder / "prepared"),
             "--batch-size", str(args.batch_size), "--clip-seconds", str(args.clip_seconds),
             "--batches", str(args.batches), "--warmup", str(args.warmup),
             "--seed", str(args.seed)],
            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if child.returncode != 0:
            raise RuntimeError(f"pipeline child failed: {child.stderr[-2000:]}")
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"hours": hours, "speech_files": counts["speech"], "noise_files": counts["noise"],
            "train_speech_hours": round(speech.seconds / 3600, 2),
            "train_speech_shards": len(speech.files), "train_noise_shards": len(noise.files),
            "generate_seconds": round(generate_s, 1), "prepare_seconds": round(prepare_s, 1),
            **measured}


def _table(results: list[dict]) -> str:
    head = ("| corpus | files (speech + noise) | train shards | prepare-data | examples/s | "
            "CPU ms / example | peak RSS | load average |\n|---|---|---|---|---|---|---|---|")
    rows = [f"| {r['hours']:g} h | {r['speech_files']:,} + {r['noise_files']:,} | "
            f"{r['train_speech_shards']} + {r['train_noise_shards']} | {r['prepare_seconds']:.0f} s"
            f" | {r['examples_per_s']:,.0f} | {r['cpu_ms_per_example']:.2f} | "
            f"{r['peak_rss_mb']:,} MB | {r['load_average']:g} |" for r in results]
    return "\n".join([head, *rows])


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 20.0],
                        help="corpus sizes in hours of audio (default: 1 20)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--batches", type=int, default=500, help="batches timed")
    parser.add_argument("--warmup", type=int, default=20, help="batches pulled before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", help="where to write the corpora (default: the system's temp)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure_child(args.child, args.batch_size, args.clip_seconds,
                                        args.batches, args.warmup, args.seed)))
        return None

    with tempfile.TemporaryDirectory(prefix="tinyse-data-bench-", dir=args.tmp) as work:
        results = [run_size(h, Path(work), args) for h in args.hours]
    report = {"results": results, "batch": f"{args.batch_size} x {args.clip_seconds:g} s",
              "peak_rss_growth_mb": results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"],
              "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "tensorflow": metadata.version("tensorflow")}
    print(json.dumps(report))
    print(_table(results))
    print(f"\npeak RSS growth {results[0]['hours']:g} h -> {results[-1]['hours']:g} h: "
          f"{report['peak_rss_growth_mb']:+,} MB; batch {report['batch']}; "
          f"{report['cpus']} CPUs")
    return report


if __name__ == "__main__":
    main()
