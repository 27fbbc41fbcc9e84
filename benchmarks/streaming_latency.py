"""Per-frame latency and real-time factor of the exported streaming models on this CPU.

    python benchmarks/streaming_latency.py [--presets teacher student ...] [--frames 2000]
        [--threads 1] [--json OUT.json] [--keep DIR]

For each preset (built with ``norm="frame_ln"`` and RANDOM weights: latency does not depend on the
weight values, quality is not measured here) it exports the float32 and the full-int8 PTQ
streaming files (``tinyse_tf.export.export_model``, calibrated on a few seconds of real noisy
speech from ../shared/audio when present, else on synthetic audio) and measures:

* ``invoke``: one ``interpreter.invoke()`` with inputs already set (the model alone);
* ``hop``: one ``StreamingEnhancer.process(256 samples)``: buffering, STFT frame, mel features,
  (de)quantization, set/invoke/get of every tensor by name, mask mapping, overlap-add;

as median and 99th percentile in microseconds, and the real-time factor RTF = median hop time /
16 ms hop duration. Prints a table and the same numbers as JSON (to stdout, or ``--json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyse_tf.constants import HOP, SAMPLE_RATE

HOP_US = 1e6 * HOP / SAMPLE_RATE  # 16 000 us
SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"


def _calibration_audio(seconds=3.0, n=4):
    from tinyse_tf.export.calibration import noisy_mixtures

    speech = sorted((SHARED_AUDIO / "speech" / "train").glob("*.flac"))
    noise = sorted((SHARED_AUDIO / "noise" / "train").glob("*.flac"))
    if speech and noise:
        return [p[0] for p in noisy_mixtures(speech[:8], noise[:8], n, seconds, seed=0)], "shared"
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
            for _ in range(n)], "synthetic"


def _stats(ns):
    us = np.asarray(ns, np.float64) / 1e3
    return {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean())}


def time_invoke(path, frames, threads):
    from tinyse_tf.streaming import StreamingEnhancer

    se = StreamingEnhancer(path, num_threads=threads)
    se.run_frame(np.ones(80, np.float32))  # sets every input by name
    interp = se._interp
    for _ in range(50):
        interp.invoke()
    ns = []
    for _ in range(frames):
        t = time.perf_counter_ns()
        interp.invoke()
        ns.append(time.perf_counter_ns() - t)
    return _stats(ns)


def time_hops(path, frames, threads, audio):
    from tinyse_tf.streaming import StreamingEnhancer

    se = StreamingEnhancer(path, num_threads=threads)
    need = (frames + 50) * HOP
    audio = np.tile(audio, int(np.ceil(need / audio.size)))[:need]
    hops = audio.reshape(-1, HOP)
    for h in hops[:50]:
        se.process(h)
    ns = []
    for h in hops[50:]:
        t = time.perf_counter_ns()
        se.process(h)
        ns.append(time.perf_counter_ns() - t)
    return _stats(ns)


def run(presets, frames, threads, keep=None):
    from tinyse_tf.export.quantize import export_model
    from tinyse_tf.models import build_cruse
    from tinyse_tf.models.complexity import macs_per_frame

    audio, source = _calibration_audio()
    out_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinyse_bench_"))
    results = []
    for preset in presets:
        model = build_cruse(preset, norm="frame_ln", seed=0)
        t = time.time()
        paths = export_model(model, out_dir, preset, int8=("ptq",), representative_audio=audio,
                             calibration_frames=300)
        export_s = time.time() - t
        for kind, path in paths.items():
            n = frames if model.count_params() < 500_000 else max(200, frames // 4)
            inv = time_invoke(path, n, threads)
            hop = time_hops(path, n, threads, audio[0])
            results.append({
                "preset": preset, "file": path.name,
                "dtype": "int8" if "int8" in kind else "float32",
                "parameters": int(model.count_params()), "macs_per_frame": macs_per_frame(preset),
                "size_kib": round(path.stat().st_size / 1024, 1), "frames_timed": n,
                "invoke": inv, "hop": hop,
                "invoke_fraction_of_hop": inv["median_us"] / HOP_US,
                "rtf": hop["median_us"] / HOP_US, "export_s": round(export_s, 1)})
    return {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version(), "threads": threads},
            "weights": "random (norm='frame_ln'); latency only, no quality",
            "calibration_audio": source, "hop_us": HOP_US, "results": results}


def table(report) -> str:
    head = ("preset", "dtype", "params", "MMACs/frame", "KiB", "invoke med us", "invoke p99 us",
            "hop med us", "hop p99 us", "RTF", "invoke/16ms")
    rows = [(r["preset"], r["dtype"], f"{r['parameters']:,}", f"{r['macs_per_frame'] / 1e6:.3f}",
             f"{r['size_kib']:.0f}", f"{r['invoke']['median_us']:.1f}",
             f"{r['invoke']['p99_us']:.1f}", f"{r['hop']['median_us']:.1f}",
             f"{r['hop']['p99_us']:.1f}", f"{r['rtf']:.4f}",
             f"{100 * r['invoke_fraction_of_hop']:.2f} %") for r in report["results"]]
    w = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = lambda cells: "| " + " | ".join(c.rjust(n) for c, n in zip(cells, w)) + " |"
    return "\n".join([fmt(head), "|" + "|".join("-" * (n + 2) for n in w) + "|"]
                     + [fmt(r) for r in rows])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+",
                   default=["teacher", "student_350k", "student_240k", "student", "student_30k"])
    p.add_argument("--frames", type=int, default=2000, help="timed frames per model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the JSON report here (default: print it)")
    p.add_argument("--keep", help="keep the exported files in this folder")
    args = p.parse_args(argv)
    report = run(args.presets, args.frames, args.threads, args.keep)
    student = [r for r in report["results"] if r["preset"] == "student" and r["dtype"] == "int8"]
    if student:
        r = student[0]
        report["student_int8_summary"] = (
            f"62k student int8: invoke {r['invoke']['median_us']:.1f} us median = "
            f"{100 * r['invoke_fraction_of_hop']:.2f} % of the 16 ms hop; full hop "
            f"{r['hop']['median_us']:.1f} us (RTF {r['rtf']:.4f})")
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    print(table(report))
    if student:
        print(report["student_int8_summary"])


if __name__ == "__main__":
    main()
