"""Where a training step's time goes: TensorFlow profiler, op time split by part of the model.

    python benchmarks/step_profile.py ["student G_tf KD"|"student PSA"|"teacher PSA"]
        [--variant graph|xla|mixed] [--steps 3] [--batch-size 8] [--json OUT]

Builds the step exactly as ``benchmarks/training_step.py`` times it (same configurations, fixed
random batch of ``--batch-size`` x 2 s, frame_ln), runs a few warm-up steps, then records
``--steps`` steps with ``tf.profiler`` and sums the executed ops' durations per step (over all
compute threads, so on 2 cores the total is up to twice the wall time) by part: teacher forward,
G_tf Gram matrices (forward and backward), the trained model's forward and backward (autodiff),
optimizer, other (features, losses, and the GRU's hand-written backward pass through time, whose
ops TensorFlow names outside the model's scope). Also the ten op types that cost most. Prints JSON
and a table. For XLA (``--variant xla``) the fused clusters cannot be attributed to parts and show
as "other".
"""
import argparse
import glob
import os
import re
import sys
import tempfile
import time
from collections import Counter

from machine import emit_json, machine  # benchmarks/: the script folder is on sys.path
from training_step import CONFIGS, build_step


_GRAM_SCOPE = re.compile(r"(^|/)gram(_\d+)?/")


def _part(op_name: str, trained: str) -> str:
    if _GRAM_SCOPE.search(op_name):  # tinyse_tf.losses.gram's name scope
        return "G_tf Grams (forward + backward)"
    if "teacher_blocks" in op_name and trained != "teacher" and "gradient_tape" not in op_name:
        return "teacher forward (frozen)"
    if "gradient_tape" in op_name:
        return f"{trained} backward"
    if f"{trained}_blocks" in op_name:
        return f"{trained} forward"
    if "Adam" in op_name or "AssignVariable" in op_name:
        return "optimizer"
    return "other (features, losses, GRU backward through time)"


def op_times(logdir: str, trained: str, steps: int) -> tuple[Counter, Counter]:
    """Milliseconds per step by part and by op type, from the profiler's XSpace files."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    by_part, by_type = Counter(), Counter()
    for path in glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue  # executor threads only: python and host lines nest these events
                for ev in line.events:
                    name = plane.event_metadata[ev.metadata_id].name
                    if ":" not in name:
                        continue
                    op_name, op_type = name.rsplit(":", 1)
                    if op_type == "Process" or op_name.startswith(("ExecutorState", "Iterator")):
                        continue
                    ms = ev.duration_ps / 1e9 / steps
                    by_part[_part(op_name, trained)] += ms
                    by_type[op_type] += ms
    return by_part, by_type


def profile(config, variant, steps, batch_size, clip_seconds=2.0, norm="frame_ln") -> dict:
    from tinyse_tf._tf import tf

    step, ds = build_step(config, variant, batch_size, clip_seconds, norm)
    for _ in range(3):
        out = step(ds)
    float(out["loss"])
    start = time.perf_counter()
    for _ in range(steps):
        out = step(ds)
    float(out["loss"])
    wall = (time.perf_counter() - start) / steps
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            out = step(ds)
        float(out["loss"])
        tf.profiler.experimental.stop()
        by_part, by_type = op_times(logdir, CONFIGS[config]["student"], steps)
    total = sum(by_part.values())
    return {"config": config, "variant": variant, "batch_size": batch_size,
            "wall_s_per_step_unprofiled": round(wall, 4), "op_ms_per_step": round(total, 1),
            "threads": os.cpu_count(), "machine": machine(),
            "parts": {k: {"ms": round(v, 1), "share": round(v / total, 3)}
                      for k, v in by_part.most_common()},
            "top_op_types": {k: round(v, 1) for k, v in by_type.most_common(10)}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?", default="student G_tf KD", choices=list(CONFIGS))
    p.add_argument("--variant", default="graph", choices=("graph", "xla", "mixed"))
    p.add_argument("--steps", type=int, default=3, help="profiled steps (default 3)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", help="write the JSON report here (default: print it)")
    args = p.parse_args(argv)
    report = profile(args.config, args.variant, args.steps, args.batch_size)
    emit_json(report, args.json)
    print(f"\n{args.config} / {args.variant}: {report['wall_s_per_step_unprofiled']:.3f} s per "
          f"step unprofiled, {report['op_ms_per_step']:.0f} ms of op time per step "
          f"({report['threads']} CPUs)\n\n| part | ms per step | share |\n|---|---|---|")
    for k, v in report["parts"].items():
        print(f"| {k} | {v['ms']:.1f} | {100 * v['share']:.1f} % |")
    print("\ncostliest op types (ms per step): " + ", ".join(
        f"{k} {v:.0f}" for k, v in report["top_op_types"].items()))


if __name__ == "__main__":
    sys.exit(main())
