"""Training-step cost, side by side: supervised vs G_t vs G_tf KD steps, and the input pipeline.

    python benchmarks/training_step.py                    # batch 8 x 2 s, 20 timed steps each
    python benchmarks/training_step.py --batch-size 32 --steps 10

Each configuration runs in its own process (so peak memory is its own): a student step with PSA
only, a KD step with G_t, a KD step with G_tf (teacher forward + student step), and a teacher PSA
step. Prints one JSON object and a table with seconds per step, training examples/s, the ratio to
the supervised student step, peak resident memory, and the mixing pipeline's examples/s from the
same corpus, so one run shows whether the input keeps the trainer fed.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CONFIGS = {
    "student PSA": {"student": "student", "teacher": None, "granularity": "tf"},
    "student G_t KD": {"student": "student", "teacher": "teacher", "granularity": "t"},
    "student G_tf KD": {"student": "student", "teacher": "teacher", "granularity": "tf"},
    "teacher PSA": {"student": "teacher", "teacher": None, "granularity": "tf"},
}


def _time_config(name, batch_size, clip_seconds, steps, warmup):
    """Run in a child process: time ``steps`` train steps of one configuration."""
    from tinyse_tf._tf import keras, tf
    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse

    cfg = CONFIGS[name]
    n = int(clip_seconds * 16000)
    noisy = tf.random.stateless_normal([batch_size, n], seed=[0, 0]) * 0.1
    clean = tf.random.stateless_normal([batch_size, n], seed=[0, 1]) * 0.1
    teacher = build_cruse(cfg["teacher"]) if cfg["teacher"] else None
    d = Distiller(build_cruse(cfg["student"], seed=0), teacher, gamma=1.0 if teacher else 0.0,
                  kd_granularity=cfg["granularity"])
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    step = d.make_train_function()
    ds = iter(tf.data.Dataset.from_tensors((noisy, clean)).repeat())
    for _ in range(warmup):
        step(ds)
    start = time.perf_counter()
    for _ in range(steps):
        out = step(ds)
    float(out["loss"])  # wait for the last step
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_step": round(seconds, 4), "examples_per_s": round(batch_size / seconds, 1),
            "peak_rss_mb": round(peak_mb)}


def _pipeline(batch_size, clip_seconds):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from data_pipeline import measure_pipeline

    from tinyse_tf.data import CORPUS_SIZES, build_corpus, mixture_dataset, prepare_corpus

    corpus = build_corpus(progress=False, **CORPUS_SIZES["default"])
    corpus = prepare_corpus(corpus, corpus.root.with_name(f"{corpus.root.name}-shards"),
                            progress=False)  # written once beside the cached corpus
    ds = mixture_dataset(*corpus.split("train"), clip_seconds=clip_seconds,
                         batch_size=batch_size, seed=0)
    return measure_pipeline(ds, n_batches=50, warmup=5)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_time_config(args.child, args.batch_size, args.clip_seconds, args.steps,
                                      args.warmup)))
        return None

    results = {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in CONFIGS:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name,
               "--batch-size", str(args.batch_size), "--clip-seconds", str(args.clip_seconds),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["student PSA"]["s_per_step"]
    for r in results.values():
        r["x_student_psa"] = round(r["s_per_step"] / base, 2)
    pipe = _pipeline(args.batch_size, args.clip_seconds)
    report = {"batch_size": args.batch_size, "clip_seconds": args.clip_seconds,
              "steps": args.steps, "train": results,
              "pipeline_examples_per_s": pipe["examples_per_s"],
              "cpus": os.cpu_count(), "machine": platform.machine()}
    print(json.dumps(report))
    print(f"\n| step (batch {args.batch_size} x {args.clip_seconds:g} s) | s/step | examples/s "
          f"| x student PSA | peak RSS MB |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['s_per_step']:.3f} | {r['examples_per_s']:.1f} | "
              f"{r['x_student_psa']:.2f} | {r['peak_rss_mb']} |")
    print(f"| input pipeline (mixing only) | | {pipe['examples_per_s']:.0f} | | |")
    return report


if __name__ == "__main__":
    main()
