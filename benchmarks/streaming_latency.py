"""Per-frame latency and real-time factor of the exported streaming models on this CPU.

    python benchmarks/streaming_latency.py [--presets teacher student ...] [--frames 2000]
        [--threads 1] [--json OUT.json] [--keep DIR] [--baseline CHECKOUT]

For each preset (built with ``norm="frame_ln"`` and RANDOM weights, norm gains and biases drawn
away from 1 and 0 as in a trained model so the converter cannot fold them away: latency does not
depend on the weight values otherwise, quality is not measured here) it exports the float32 and
the full-int8 PTQ streaming files (``tinyse_tf.export.export_model``, calibrated on a few seconds
of real noisy speech from ../shared/audio when present, else on synthetic audio) and measures:

* ``invoke``: one ``interpreter.invoke()`` with inputs already set (the model alone);
* ``hop``: one ``StreamingEnhancer.process(256 samples)``: buffering, STFT frame, mel features,
  (de)quantization, set/invoke/get of every tensor by name, mask mapping, overlap-add (a live
  stream, one hop per call);
* ``file_hop``: ``StreamingEnhancer.enhance(15 s recording)`` divided by its hops (a file through
  the stream: the signal path is vectorised over all hops, the model still runs frame by frame);

as median and 99th percentile in microseconds, the real-time factor RTF = median hop time /
16 ms hop duration, and per preset the int8 / float32 ratios. Prints a table and the same numbers
as JSON (to stdout, or ``--json``).

``--shipped`` measures the package's shipped streaming files instead (``tinyse_tf.shipped``: the
default model's int8 and float32 files, trained weights), each in turn within every one of
``--rounds`` rounds (the order alternating), and reports the median over rounds: this is how
``tinyse enhance``'s host default (docs/CLI.md) was chosen.

``--baseline CHECKOUT`` also runs this script on another checkout of tinyse_tf (e.g. a git worktree
of an older commit), in a subprocess, in alternation with this tree (``--rounds`` each), and
prints both side by side with the ratio this tree / baseline: the machine's load changes between
runs, so only numbers measured in one such session are compared.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The package measured: this checkout, or the one --baseline names (set for its subprocess).
sys.path.insert(0, os.environ.get("TINYSE_BENCH_ROOT", str(Path(__file__).resolve().parents[1])))

from tinyse_tf.constants import HOP, SAMPLE_RATE
from machine import emit_json, machine  # benchmarks/machine.py: the script folder is on sys.path

HOP_US = 1e6 * HOP / SAMPLE_RATE  # 16 000 us
TIMINGS = ("invoke", "hop", "file_hop")
SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"


def calibration_audio(seconds=3.0, n=4):
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


def _enhancer(path, threads):
    try:
        from tinyse_tf.runtime import StreamingEnhancer
    except ImportError:  # a baseline checkout from before tinyse_tf.runtime
        from tinyse_tf.streaming import StreamingEnhancer
    return StreamingEnhancer(path, num_threads=threads)


def _interpreter(se):
    return se.frame_model._interp if hasattr(se, "frame_model") else se._interp  # older checkout


def time_interpreter(interp, frames, warmup=50) -> dict:
    """Median / p99 / mean microseconds of ``interp.invoke()`` with its inputs already set."""
    for _ in range(warmup):
        interp.invoke()
    ns = []
    for _ in range(frames):
        t = time.perf_counter_ns()
        interp.invoke()
        ns.append(time.perf_counter_ns() - t)
    return _stats(ns)


def time_invoke(path, frames, threads):
    se = _enhancer(path, threads)
    se.run_frame(np.ones(80, np.float32))  # sets every input by name
    return time_interpreter(_interpreter(se), frames)


def delegate_partitions(interp) -> int:
    """How many pieces the XNNPACK delegate runs an interpreter's graph in (1: the whole graph;
    each op it has no kernel for, e.g. an int8 RSQRT, splits it and costs a hand-over per frame)."""
    return sum(op["op_name"] == "DELEGATE" for op in interp._get_ops_details())


def xnnpack_partitions(path, threads):
    """:func:`delegate_partitions` of the streaming file ``path``."""
    return delegate_partitions(_interpreter(_enhancer(path, threads)))


def time_hops(path, frames, threads, audio):
    se = _enhancer(path, threads)
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


def time_file(path, threads, audio, seconds=15.0, repeats=5):
    se = _enhancer(path, threads)
    n = int(seconds * SAMPLE_RATE)
    audio = np.tile(audio, int(np.ceil(n / audio.size)))[:n]
    se.enhance(audio[:SAMPLE_RATE])  # warm-up
    ns = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        se.enhance(audio)
        ns.append((time.perf_counter_ns() - t) / -(-n // HOP))
    return _stats(ns)


def random_model(preset):
    """``build_cruse(preset, norm="frame_ln", seed=0)`` with trained-like norm weights (gain 1 /
    bias 0 would let the converter fold them away)."""
    from tinyse_tf.models import build_cruse

    model = build_cruse(preset, norm="frame_ln", seed=0)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.endswith("_norm"):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    return model


def run(presets, frames, threads, keep=None):
    from tinyse_tf.export.quantize import export_model
    from tinyse_tf.export.tflite_ops import weight_macs

    audio, source = calibration_audio()
    out_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinyse_bench_"))
    results = []
    for preset in presets:
        model = random_model(preset)
        t = time.time()
        paths = export_model(model, out_dir, preset, int8=("ptq",), representative_audio=audio,
                             calibration_frames=300)
        export_s = time.time() - t
        for kind, path in paths.items():
            n = frames if model.count_params() < 500_000 else max(200, frames // 4)
            inv = time_invoke(path, n, threads)
            hop = time_hops(path, n, threads, audio[0])
            file_hop = time_file(path, threads, audio[0])
            results.append({
                "preset": preset, "file": path.name,
                "dtype": "int8" if "int8" in kind else "float32",
                "parameters": int(model.count_params()), "macs_per_frame": sum(weight_macs(path.read_bytes()).values()),
                "size_kib": round(path.stat().st_size / 1024, 1), "frames_timed": n,
                "invoke": inv, "hop": hop, "file_hop": file_hop,
                "xnnpack_partitions": xnnpack_partitions(path, threads),
                "invoke_fraction_of_hop": inv["median_us"] / HOP_US,
                "rtf": hop["median_us"] / HOP_US, "export_s": round(export_s, 1)})
    return {"machine": {**machine(), "threads": threads},
            "weights": "random (norm='frame_ln'); latency only, no quality",
            "calibration_audio": source, "hop_us": HOP_US, "results": results,
            "int8_over_float32": _int8_ratios(results)}


def run_shipped(frames, threads, rounds) -> dict:
    """The shipped int8 and float32 streaming files of the default model, timed in alternation
    (``rounds`` rounds, order flipped each round); medians over rounds, as ``run`` reports."""
    from tinyse_tf import shipped
    from tinyse_tf.export.contract import contract_path
    from tinyse_tf.export.tflite_ops import weight_macs

    audio, source = calibration_audio()
    name = shipped.DEFAULT_MODEL
    paths = {kind: shipped.pretrained_file(name, kind) for kind in ("int8", "float32")}
    reports = []
    for i in range(rounds):
        results = {}
        for kind in (("int8", "float32") if i % 2 == 0 else ("float32", "int8")):
            path = paths[kind]
            contract = json.loads(contract_path(path).read_text())
            inv = time_invoke(path, frames, threads)
            hop = time_hops(path, frames, threads, audio[0])
            results[kind] = {
                "preset": name, "file": path.name, "dtype": kind,
                "parameters": contract["parameters"],
                "macs_per_frame": sum(weight_macs(path.read_bytes()).values()), "size_kib": round(path.stat().st_size / 1024, 1),
                "frames_timed": frames, "invoke": inv, "hop": hop,
                "file_hop": time_file(path, threads, audio[0]),
                "xnnpack_partitions": xnnpack_partitions(path, threads),
                "invoke_fraction_of_hop": inv["median_us"] / HOP_US,
                "rtf": hop["median_us"] / HOP_US}
        reports.append({"results": [results["int8"], results["float32"]]})
    merged = _median_of_rounds(reports)
    return {"machine": {**machine(), "threads": threads},
            "weights": f"shipped model {name!r} (trained)", "audio": source, "hop_us": HOP_US,
            **merged}


def _int8_ratios(results) -> dict:
    """Per preset, int8 / float32 of the median invoke and hop times."""
    out = {}
    for preset in dict.fromkeys(r["preset"] for r in results):
        by = {r["dtype"]: r for r in results if r["preset"] == preset}
        if {"int8", "float32"} <= set(by):
            out[preset] = {k: round(by["int8"][k]["median_us"] / by["float32"][k]["median_us"], 3)
                           for k in TIMINGS}
    return out


def run_baseline(checkout, presets, frames, threads) -> dict:
    """This script's measurements on another checkout of the package (subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        env = {**os.environ, "TINYSE_BENCH_ROOT": str(Path(checkout).resolve())}
        subprocess.run([sys.executable, __file__, "--presets", *presets, "--frames", str(frames),
                        "--threads", str(threads), "--json", str(out)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def _median_of_rounds(reports) -> dict:
    """One report whose medians are the median over rounds (same presets and files)."""
    merged = json.loads(json.dumps(reports[0]))
    for i, r in enumerate(merged["results"]):
        for k in TIMINGS:
            r[k]["median_us"] = float(np.median([rep["results"][i][k]["median_us"]
                                                 for rep in reports]))
        r["rtf"] = r["hop"]["median_us"] / HOP_US
    merged["int8_over_float32"] = _int8_ratios(merged["results"])
    merged["rounds"] = len(reports)
    return merged


def compare(current, baseline) -> dict:
    """Per preset and dtype, this tree / baseline of the median invoke and hop times."""
    base = {(r["preset"], r["dtype"]): r for r in baseline["results"]}
    out = {}
    for r in current["results"]:
        b = base.get((r["preset"], r["dtype"]))
        if b:
            out[f"{r['preset']} {r['dtype']}"] = {
                k: {"this_us": r[k]["median_us"], "baseline_us": b[k]["median_us"],
                    "ratio": round(r[k]["median_us"] / b[k]["median_us"], 3)}
                for k in TIMINGS if k in b}
    return out


def table(report) -> str:
    head = ("preset", "dtype", "params", "MMACs/frame", "KiB", "invoke med us", "invoke p99 us",
            "hop med us", "hop p99 us", "file us/hop", "RTF", "invoke/16ms", "XNNPACK parts")
    file_us = lambda r: f"{r['file_hop']['median_us']:.1f}" if "file_hop" in r else "-"
    rows = [(r["preset"], r["dtype"], f"{r['parameters']:,}", f"{r['macs_per_frame'] / 1e6:.3f}",
             f"{r['size_kib']:.0f}", f"{r['invoke']['median_us']:.1f}",
             f"{r['invoke']['p99_us']:.1f}", f"{r['hop']['median_us']:.1f}",
             f"{r['hop']['p99_us']:.1f}", file_us(r), f"{r['rtf']:.4f}",
             f"{100 * r['invoke_fraction_of_hop']:.2f} %", str(r.get("xnnpack_partitions", "-")))
            for r in report["results"]]
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
    p.add_argument("--baseline", help="another tinyse_tf checkout to measure side by side")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --baseline: alternating runs of each (default 3)")
    p.add_argument("--shipped", action="store_true",
                   help="time the shipped int8 and float32 files (alternating, --rounds rounds)")
    args = p.parse_args(argv)
    if args.shipped:
        report = run_shipped(args.frames, args.threads, args.rounds)
    elif args.baseline:
        ours, theirs = [], []
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}: baseline, then this tree", file=sys.stderr)
            theirs.append(run_baseline(args.baseline, args.presets, args.frames, args.threads))
            ours.append(run(args.presets, args.frames, args.threads, args.keep))
        report = _median_of_rounds(ours)
        report["baseline"] = {"checkout": str(args.baseline), **_median_of_rounds(theirs)}
        report["this_over_baseline"] = compare(report, report["baseline"])
    else:
        report = run(args.presets, args.frames, args.threads, args.keep)
    student = [r for r in report["results"] if r["preset"] == "student" and r["dtype"] == "int8"
               and not args.shipped]
    if student:
        r = student[0]
        report["student_int8_summary"] = (
            f"62k student int8: invoke {r['invoke']['median_us']:.1f} us median = "
            f"{100 * r['invoke_fraction_of_hop']:.2f} % of the 16 ms hop; full hop "
            f"{r['hop']['median_us']:.1f} us (RTF {r['rtf']:.4f})")
    emit_json(report, args.json)
    print(table(report))
    if args.baseline:
        print(f"\nbaseline ({args.baseline}):")
        print(table(report["baseline"]))
        print("\nthis tree / baseline (median over rounds):")
        for key, v in report["this_over_baseline"].items():
            print(f"  {key:22s} " + "  ".join(f"{k} {v[k]['ratio']:.2f}" for k in TIMINGS if k in v))
    print("int8 / float32 (median):", json.dumps(report["int8_over_float32"]))
    if student:
        print(report["student_int8_summary"])


if __name__ == "__main__":
    main()
