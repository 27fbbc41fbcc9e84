"""Throughput of the on-the-fly mixture pipeline on the built-in corpus.

    python benchmarks/data_pipeline.py                    # smoke corpus, batch 16 x 2 s
    python benchmarks/data_pipeline.py --size default --batches 200

Prints one JSON object (for scripts) and a table. ``measure_pipeline(ds, n_batches)`` is the
reusable part: time it next to a training step to see whether the input keeps the trainer fed
(the pipeline is fast enough when examples/s here is well above batch_size / step time).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time


def measure_pipeline(ds, n_batches: int = 50, warmup: int = 5) -> dict:
    """Pull ``warmup`` batches (not timed), then time ``n_batches`` batches from ``ds``.

    Args:
        ds: a dataset of ``(noisy, clean)`` batches, e.g. from ``mixture_dataset``.
        n_batches: batches timed.
        warmup: batches pulled first (graph tracing, thread start-up, prefetch fill).

    Returns:
        dict with ``batches``, ``examples``, ``seconds``, ``examples_per_s``,
        ``batches_per_s``, ``audio_seconds_per_s`` (of noisy audio) and ``batch_shape``.
    """
    from tinyse_tf.constants import SAMPLE_RATE

    it = iter(ds)
    for _ in range(warmup):
        next(it)
    examples, samples, shape = 0, 0, None
    start = time.perf_counter()
    for _ in range(n_batches):
        noisy, _clean = next(it)
        shape = list(noisy.shape)
        examples += shape[0]
        samples += shape[0] * shape[1]
    seconds = time.perf_counter() - start
    return {"batches": n_batches, "examples": examples, "seconds": round(seconds, 4),
            "examples_per_s": round(examples / seconds, 1),
            "batches_per_s": round(n_batches / seconds, 2),
            "audio_seconds_per_s": round(samples / SAMPLE_RATE / seconds, 1),
            "batch_shape": shape}


def main(argv=None) -> dict:
    from tinyse_tf._tf import tf
    from tinyse_tf.data import CORPUS_SIZES, build_corpus, mixture_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(CORPUS_SIZES), default="smoke",
                        help="built-in corpus size (default: smoke)")
    parser.add_argument("--data-dir", default=None, help="corpus folder (default: user cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--batches", type=int, default=100, help="batches timed")
    parser.add_argument("--warmup", type=int, default=10, help="batches pulled before timing")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    corpus = build_corpus(args.data_dir, seed=args.seed, progress=False, **CORPUS_SIZES[args.size])
    corpus_s = time.perf_counter() - start
    start = time.perf_counter()
    ds = mixture_dataset(*corpus.split("train"), clip_seconds=args.clip_seconds,
                         batch_size=args.batch_size, seed=args.seed)
    load_s = time.perf_counter() - start
    result = {"size": args.size, "speech_files": len(corpus.speech["train"]),
              "noise_files": len(corpus.noise["train"]),
              "corpus_seconds": round(corpus_s, 3),  # build, or cache hit when already built
              "load_seconds": round(load_s, 3),
              **measure_pipeline(ds, args.batches, args.warmup),
              "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "tensorflow": tf.__version__}
    print(json.dumps(result))
    rows = [("corpus (build or cache hit)", f"{result['corpus_seconds']:.2f} s"),
            ("load audio + build dataset", f"{result['load_seconds']:.2f} s"),
            ("batch shape", "x".join(map(str, result["batch_shape"]))),
            ("examples/s", f"{result['examples_per_s']:.0f}"),
            ("batches/s", f"{result['batches_per_s']:.1f}"),
            ("audio s/s", f"{result['audio_seconds_per_s']:.0f}")]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"| {'measure'.ljust(w0)} | {'value'.rjust(w1)} |\n|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|")
    for name, value in rows:
        print(f"| {name.ljust(w0)} | {value.rjust(w1)} |")
    return result


if __name__ == "__main__":
    main()
