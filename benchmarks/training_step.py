"""Training-step speed, side by side: old code vs this tree, graph vs XLA, and the input pipeline.

    python benchmarks/training_step.py                                  # this tree only
    git worktree add ../base fc2d6f1                                    # the code to compare with
    python benchmarks/training_step.py --baseline ../base --rounds 3    # old vs new in one run
    python benchmarks/training_step.py --batch-size 32 --variants graph,xla   # e.g. on a GPU

Configurations (the recipe's steps): student PSA, student G_tf KD (teacher forward + student step),
teacher PSA; frame_ln norm as in the demo and the int8 exports. Each (configuration, variant) runs
in its own child process, so its peak memory is its own; rounds alternate the variants so a noisy
machine slows all of them alike, and the fastest round counts. Variants:

* ``base``: the ``--baseline`` tree (another checkout of tinyse_tf), plain graph step;
  ``base_xla``: the same tree with ``compile(jit_compile=True)``;
* ``graph``: this tree, plain graph step; ``xla``: this tree, ``compile(jit_compile=True)``;
* ``mixed``: this tree, ``mixed_float16`` policy (meant for GPUs: float16 is emulated on CPUs);
* ``bf16``: this tree, ``mixed_bfloat16`` policy (CPUs with bfloat16 units, e.g. Intel AMX).

Prints one JSON object and a markdown table: seconds per step, training examples/s, speed-up over
the first variant, peak resident memory, the projected wall time of one epoch of the ``paper``
preset (5,000 steps x batch 32; linear in the batch when measured at another batch size), and
the input pipeline's examples/s on the built-in corpus.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from machine import cpu_name  # benchmarks/machine.py: the script folder is on sys.path

CONFIGS = {
    "student PSA": {"student": "student", "teacher": None},
    "student G_tf KD": {"student": "student", "teacher": "teacher"},
    "teacher PSA": {"student": "teacher", "teacher": None},
}
VARIANTS = ("base", "base_xla", "graph", "xla", "mixed", "bf16")
POLICIES = {"mixed": "mixed_float16", "bf16": "mixed_bfloat16"}
PAPER_EPOCH = (5000, 32)  # steps, batch size


def build_step(name, variant, batch_size, clip_seconds, norm):
    """``(train function, iterator)`` of one configuration and variant on a fixed random batch."""
    from tinyse_tf._tf import keras, tf
    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse

    if variant in POLICIES:
        keras.mixed_precision.set_global_policy(POLICIES[variant])
    cfg = CONFIGS[name]
    n = int(clip_seconds * 16000)
    noisy = tf.random.stateless_normal([batch_size, n], seed=[0, 0]) * 0.1
    clean = tf.random.stateless_normal([batch_size, n], seed=[0, 1]) * 0.1
    teacher = build_cruse(cfg["teacher"], norm=norm) if cfg["teacher"] else None
    d = Distiller(build_cruse(cfg["student"], seed=0, norm=norm), teacher,
                  gamma=0.5 if teacher else 0.0, kd_granularity="tf")
    d.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=variant in ("xla", "base_xla"))
    return d.make_train_function(), iter(tf.data.Dataset.from_tensors((noisy, clean)).repeat())


def _time_config(name, variant, batch_size, clip_seconds, steps, warmup, norm):
    """Run in a child process: time ``steps`` train steps of one configuration and variant."""
    step, ds = build_step(name, variant, batch_size, clip_seconds, norm)
    start = time.perf_counter()
    for _ in range(warmup):
        out = step(ds)
    float(out["loss"])
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        out = step(ds)
    float(out["loss"])  # wait for the last step
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_step": round(seconds, 4), "examples_per_s": round(batch_size / seconds, 1),
            "warmup_s": round(first_s, 1), "peak_rss_mb": round(peak_mb)}


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


def _child(args, name, variant):
    """Time one configuration in a fresh process of this tree or of the baseline tree."""
    tree = os.path.abspath(args.baseline if variant.startswith("base") else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": tree}
    # The child runs this file (the baseline tree may not have this benchmark's options).
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--variant", variant,
           "--batch-size", str(args.batch_size), "--clip-seconds", str(args.clip_seconds),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--norm", args.norm]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if out.returncode:
        raise SystemExit(f"training_step: {name} / {variant} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline",
                   help="another tinyse_tf checkout to compare with (variants base, base_xla)")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: base if "
                        "--baseline is given, graph, xla)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configurations")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=10, help="timed steps per child")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (tracing, XLA)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds; the fastest counts")
    p.add_argument("--norm", default="frame_ln")
    p.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline row")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="graph", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_time_config(args.child, args.variant, args.batch_size,
                                      args.clip_seconds, args.steps, args.warmup, args.norm)))
        return None

    variants = (args.variants.split(",") if args.variants else
                (["base"] if args.baseline else []) + ["graph", "xla"])
    configs = args.configs.split(",")
    unknown = sorted(set(variants) - set(VARIANTS)) + sorted(set(configs) - set(CONFIGS))
    if unknown:
        p.error(f"unknown variant/configuration {unknown}; variants {VARIANTS}, "
                f"configurations {list(CONFIGS)}")
    if any(v.startswith("base") for v in variants) and not args.baseline:
        p.error("variants base and base_xla need --baseline PATH (a checkout of the code to "
                "compare with)")
    runs = {(c, v): [] for c in configs for v in variants}
    for r in range(args.rounds):
        for c in configs:
            for v in variants:
                runs[c, v].append(_child(args, c, v))
                print(f"round {r + 1}/{args.rounds} {c} / {v}: "
                      f"{runs[c, v][-1]['s_per_step']:.3f} s/step", file=sys.stderr, flush=True)
    steps, batch = PAPER_EPOCH
    results = {}
    for c in configs:
        first = min(x["s_per_step"] for x in runs[c, variants[0]])
        for v in variants:
            best = min(runs[c, v], key=lambda x: x["s_per_step"])
            results[f"{c} / {v}"] = {
                **best, "config": c, "variant": v, "rounds": [x["s_per_step"] for x in runs[c, v]],
                "speedup": round(first / best["s_per_step"], 2),
                "paper_epoch_h": round(steps * best["s_per_step"] * batch / args.batch_size / 3600,
                                       2)}
    report = {"batch_size": args.batch_size, "clip_seconds": args.clip_seconds,
              "steps": args.steps, "rounds": args.rounds, "norm": args.norm,
              "baseline": args.baseline, "train": results, "cpus": os.cpu_count(),
              "machine": platform.machine(), "processor": cpu_name()}
    if not args.no_pipeline:
        report["pipeline_examples_per_s"] = _pipeline(args.batch_size,
                                                      args.clip_seconds)["examples_per_s"]
    print(json.dumps(report))
    print(f"\n| step (batch {args.batch_size} x {args.clip_seconds:g} s, {args.norm}) | variant "
          f"| s/step | examples/s | speed-up vs {variants[0]} | peak RSS MB "
          f"| paper epoch (h) |\n|---|---|---|---|---|---|---|")
    for r in results.values():
        print(f"| {r['config']} | {r['variant']} | {r['s_per_step']:.3f} | "
              f"{r['examples_per_s']:.1f} | {r['speedup']:.2f} | {r['peak_rss_mb']} | "
              f"{r['paper_epoch_h']:.2f} |")
    if "pipeline_examples_per_s" in report:
        print(f"| input pipeline (mixing only) | | | {report['pipeline_examples_per_s']:.0f} "
              f"| | | |")
    return report


if __name__ == "__main__":
    main()
