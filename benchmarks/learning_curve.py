"""Learning curves: validation quality of training stages against the CPU hours they took.

    python benchmarks/learning_curve.py runs/campaign/teacher_1.9m/train/teacher \
        runs/campaign/teacher_350k/train/teacher --png curve.png --json curve.json

Each argument is a stage folder of a recipe run (``<run>/train/<stage>``) or its
``history.csv``, written by ``tinyse_tf.training.fit_resumable``: per epoch the validation
SI-SDR of the enhanced validation batches (``val_si_sdr``, dB) and the stage's cumulative
process CPU time and wall time (``cpu_hours``, ``wall_hours``; summed over resumed
invocations). An epoch that took more than ``RESUME_FACTOR`` times the stage's median CPU time
is where a run resumed (restoring, compiling, and reaching its data position): the curve counts
it at the median and reports the rest as ``resume_overhead_hours``, so how often a run was
interrupted does not move its curve (``cpu_hours_raw`` keeps the clock). Label a curve with
``LABEL=PATH``. Prints a markdown table of the best validation
SI-SDR reached within CPU-hour budgets (``--budgets``), writes the curves as JSON and a plot.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
from pathlib import Path

from machine import emit_json


def read_curve(path) -> dict:
    """``{"epoch": [...], "cpu_hours": [...], "wall_hours": [...], "val_si_sdr": [...]}`` of a
    stage folder or history.csv; SystemExit naming the file when it lacks those columns."""
    path = Path(path)
    if path.is_dir():
        path = path / "history.csv"
    if not path.is_file():
        raise SystemExit(f"learning_curve.py: error: {path}: no such file; give a stage folder "
                         "(<run>/train/<stage>) or its history.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    keys = ("epoch", "cpu_hours", "wall_hours", "val_si_sdr")
    if not rows or any(k not in rows[0] for k in keys):
        raise SystemExit(f"learning_curve.py: error: {path}: needs columns {', '.join(keys)} "
                         "(written by this version of the recipe, with validation data)")
    curve = {k: [float(r[k]) for r in rows] for k in keys}
    curve["cpu_hours_raw"] = curve["cpu_hours"]
    curve["cpu_hours"], curve["resume_overhead_hours"] = without_resume_overhead(curve["cpu_hours"])
    return curve


RESUME_FACTOR = 3.0


def without_resume_overhead(cpu_hours):
    """``(cumulative CPU hours with each resumed epoch counted at the median epoch, hours
    removed)``; see the module docstring."""
    steps = [b - a for a, b in zip([0.0, *cpu_hours], cpu_hours)]
    median = statistics.median(steps)
    kept = [min(s, median) if s > RESUME_FACTOR * median else s for s in steps]
    return list(itertools.accumulate(kept)), sum(steps) - sum(kept)


def best_within(curve, budget):
    """Best validation SI-SDR among the epochs that ended within ``budget`` CPU hours; None
    when the curve has not reached the budget yet (or has no epoch within it)."""
    if curve["cpu_hours"][-1] < budget:
        return None
    values = [v for v, h in zip(curve["val_si_sdr"], curve["cpu_hours"]) if h <= budget]
    return max(values) if values else None


def table(curves, budgets) -> str:
    head = ["stage", "epochs", "CPU h", "resume overhead h", "wall h", "best val SI-SDR"] + [
        f"best by {b:g} CPU h" for b in budgets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, c in curves.items():
        cells = [f"{len(c['epoch'])}", f"{c['cpu_hours'][-1]:.2f}",
                 f"{c['resume_overhead_hours']:.2f}", f"{c['wall_hours'][-1]:.2f}",
                 f"{max(c['val_si_sdr']):.2f} dB"]
        cells += ["-" if (v := best_within(c, b)) is None else f"{v:.2f}" for b in budgets]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def plot(curves, path, levels=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        ax.plot(c["cpu_hours"], c["val_si_sdr"], marker=".", label=name)
    for (label, value), style in zip(levels, ("--", ":", "-.")):
        ax.axhline(value, color="gray", linestyle=style, label=label)
    ax.set_xlabel("CPU hours (process time, all threads)")
    ax.set_ylabel("validation SI-SDR (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stages", nargs="+", help="[LABEL=]stage folder or history.csv")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    p.add_argument("--png", help="write the plot here")
    p.add_argument("--level", action="append", default=[], metavar="LABEL=DB",
                   help="draw a horizontal line, e.g. another model's validation SI-SDR on the "
                        "same stream (benchmarks/validation_score.py); repeatable")
    p.add_argument("--json", help="write the curves here instead of stdout")
    args = p.parse_args(argv)
    curves = {}
    for item in args.stages:
        label, _, path = item.rpartition("=")
        stage = Path(path) if Path(path).is_dir() else Path(path).parent  # <run>/train/<stage>
        curves[label or f"{stage.parent.parent.name}/{stage.name}"] = read_curve(path)
    print(table(curves, args.budgets))
    levels = []
    for item in args.level:
        label, _, value = item.rpartition("=")
        try:
            levels.append((label, float(value)))
        except ValueError:
            p.error(f"--level {item}: give LABEL=DB, e.g. 'shipped student=7.95'")
    if args.png:
        plot(curves, args.png, levels)
    emit_json({"curves": curves}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
