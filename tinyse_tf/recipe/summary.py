"""Tables and plots of an experiment folder written by :mod:`tinyse_tf.recipe.experiments`.

Statistics over seeds, never over files alone: for each condition and seed, the mean improvement
over the noisy input on the test files; a cell is the mean of those per-seed values ± their
standard deviation across seeds (n = seeds). A paired cell is, per seed, the mean per-file
difference to the reference condition of the same seed (same files, same initial weights, same
training stream), then mean ± standard deviation across seeds, and in how many seeds it was > 0.
"""
from __future__ import annotations

import json
import math
import pathlib
import re
import sys

import numpy as np

from tinyse_tf.atomic import atomic_write_text
from tinyse_tf.evaluation.runner import snr_value

_SEED = re.compile(r"-seed(\d+)")
STUDENT = "student-frame_ln-"
BASELINE = STUDENT + "baseline"
TWO_STEP = STUDENT + "two_step-gtf"
ONE_STEP = STUDENT + "one_step-gtf"
LABELS = ("snr_-5", "snr_0", "snr_5", "all")
SHORT = {"si_sdr": "SI-SDR", "sdr": "SDR", "pesq": "PESQ", "estoi": "eSTOI %",
         "dnsmos_ovrl": "DNSMOS OVRL"}


def family(eval_key: str) -> tuple[str, int | None]:
    """``(condition without its seed, seed)`` of an eval key; the teacher has seed None."""
    m = _SEED.search(eval_key)
    return (_SEED.sub("", eval_key), int(m.group(1))) if m else (eval_key, None)


class Results:
    """Per-file records of every evaluated model in an experiment folder."""

    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.manifest = json.loads((self.out / "experiments.json").read_text())
        self.records: dict[str, dict[int | None, list]] = {}
        for entry in self.manifest.values():
            for key in entry["evals"]:
                path = self.out / "eval" / f"{key}.json"
                fam, seed = family(key)
                self.records.setdefault(fam, {})[seed] = json.loads(path.read_text())

    def seeds(self, fam: str, only=None) -> list:
        """Seeds evaluated for ``fam`` (None = seedless), restricted to ``only`` if given."""
        seeds = sorted(self.records.get(fam, {}), key=lambda s: -1 if s is None else s)
        return [s for s in seeds if only is None or s is None or s in only]

    def common_seeds(self, fams) -> set | None:
        """Seeds that every seeded family of ``fams`` has (None if none is seeded)."""
        sets = [set(self.records[f]) - {None} for f in fams if f in self.records]
        sets = [s for s in sets if s]
        return set.intersection(*sets) if sets else None

    def _per_file(self, fam, seed, metric, label):
        recs = self.records[fam][seed]
        return {(r["id"], r["snr_label"]): r["delta"].get(metric, math.nan)
                for r in recs if label == "all" or r["snr_label"] == label}

    def per_seed(self, fam, metric, label="all", only=None) -> list[float]:
        """Mean Δ over the files of ``label``, one value per seed (in ``only`` if given; seeds
        without a finite value left out)."""
        means = [[v for v in self._per_file(fam, s, metric, label).values() if math.isfinite(v)]
                 for s in self.seeds(fam, only)]
        return [float(np.mean(m)) for m in means if m]

    def paired(self, fam, ref, metric, label="all", only=None) -> list[float]:
        """Per seed: mean over files of Δ(fam) - Δ(ref). A seedless row (the teacher) pairs with
        every seed of the other."""
        def pick(name, seed):
            return seed if seed in self.records[name] else None

        seeds = [s for s in self.seeds(fam, only) + self.seeds(ref, only) if s is not None]
        seeds = seeds or [None]
        out = []
        for s in dict.fromkeys(seeds):
            if pick(fam, s) not in self.records[fam] or pick(ref, s) not in self.records[ref]:
                continue
            a = self._per_file(fam, pick(fam, s), metric, label)
            b = self._per_file(ref, pick(ref, s), metric, label)
            d = [a[k] - b[k] for k in a if k in b and math.isfinite(a[k] - b[k])]
            if d:
                out.append(float(np.mean(d)))
        return out


def _cell(values, paired=False) -> str:
    if not values:
        return "—"
    mean = float(np.mean(values))
    text = f"{mean:+.2f}"
    if len(values) > 1:
        text += f" ± {float(np.std(values, ddof=1)):.2f}"
    if paired:
        text += f" ({sum(v > 0 for v in values)}/{len(values)})"
    return text


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _label_name(label):
    return "all" if label == "all" else f"{snr_value(label):g} dB"


def gain_table(res: Results, rows, columns) -> str:
    """Rows ``(name, family)``; columns ``(metric, label)``: mean Δ over noisy ± sd over seeds,
    over the seeds that all rows have (so a 1-seed ablation row meets its own seed's baseline)."""
    only = res.common_seeds([fam for _, fam in rows])
    header = ["model", "seeds"] + [f"Δ{SHORT.get(m, m)} {_label_name(lab)}" for m, lab in columns]
    body = [[name, str(len(res.seeds(fam, only)))] + [_cell(res.per_seed(fam, m, lab, only))
                                                      for m, lab in columns]
            for name, fam in rows if fam in res.records]
    return _table(header, body)


def paired_table(res: Results, rows, columns) -> str:
    """Rows ``(name, family, reference family)``: paired difference ± sd (seeds better/n), over
    the seeds that all rows have."""
    only = res.common_seeds([f for _, fam, ref in rows for f in (fam, ref)])
    header = ["comparison"] + [f"{SHORT.get(m, m)} {_label_name(lab)}" for m, lab in columns]
    body = [[name] + [_cell(res.paired(fam, ref, m, lab, only), paired=True)
                      for m, lab in columns]
            for name, fam, ref in rows if fam in res.records and ref in res.records]
    return _table(header, body)


def _size_rows(res):
    from tinyse_tf.models.complexity import count_params

    sizes = [("student_30k", "student_30k-frame_ln-"), ("student", STUDENT),
             ("student_240k", "student_240k-frame_ln-")]
    return [(preset, count_params(preset), prefix) for preset, prefix in sizes
            if prefix + "baseline" in res.records]


def write_summary(out, dest, latency_json=None, title="Experiments") -> pathlib.Path:
    """Write ``dest/summary.md`` and PNG plots from the experiment folder ``out``."""
    res, dest = Results(out), pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    main_cols = [("si_sdr", lab) for lab in LABELS] + [
        (m, "all") for m in ("sdr", "pesq", "estoi", "dnsmos_ovrl")]
    short_cols = [("si_sdr", "all"), ("pesq", "all"), ("estoi", "all")]
    int8 = "_stream_int8_"
    t3_rows = [("teacher (1.87 M)", "teacher"), ("student 62 k, PSA only", BASELINE),
               ("one-step KD (G_tf)", ONE_STEP), ("two-step KD (G_tf -> PSA)", TWO_STEP),
               ("student int8 PTQ", BASELINE + int8 + "ptq"),
               ("student int8 QAT", BASELINE + int8 + "qat"),
               ("two-step int8 PTQ", TWO_STEP + int8 + "ptq"),
               ("two-step int8 QAT", TWO_STEP + int8 + "qat")]
    paired_rows = [("two-step − student", TWO_STEP, BASELINE),
                   ("one-step − student", ONE_STEP, BASELINE),
                   ("teacher − student", "teacher", BASELINE),
                   ("two-step − student, both int8 PTQ", TWO_STEP + int8 + "ptq",
                    BASELINE + int8 + "ptq"),
                   ("two-step − student, both int8 QAT", TWO_STEP + int8 + "qat",
                    BASELINE + int8 + "qat"),
                   ("student int8 PTQ − float", BASELINE + int8 + "ptq", BASELINE),
                   ("two-step int8 PTQ − float", TWO_STEP + int8 + "ptq", TWO_STEP),
                   ("student int8 QAT − float", BASELINE + int8 + "qat", BASELINE),
                   ("two-step int8 QAT − float", TWO_STEP + int8 + "qat", TWO_STEP)]
    sections = [f"# {title}", f"Source: `{out}` ({len(res.manifest)} conditions).",
                "## Table 3 analogue: improvement over the noisy input",
                gain_table(res, t3_rows, main_cols),
                "## Paired differences (same seed, same files)",
                paired_table(res, paired_rows, [("si_sdr", lab) for lab in LABELS]
                             + [("pesq", "all"), ("estoi", "all"), ("dnsmos_ovrl", "all")]),
                "Per seed (ΔSI-SDR all, paired): " + "; ".join(
                    f"{name}: " + ", ".join(f"{v:+.2f}" for v in res.paired(fam, ref, "si_sdr"))
                    for name, fam, ref in paired_rows[:3] if fam in res.records)]
    sizes = _size_rows(res)
    if len(sizes) > 1:
        rows, prs = [], []
        for preset, params, prefix in sizes:
            two = prefix + "two_step-gtf"
            rows += [(f"{preset} ({params:,}) baseline", prefix + "baseline"),
                     (f"{preset} ({params:,}) two-step", two),
                     (f"{preset} baseline int8 PTQ", prefix + "baseline" + int8 + "ptq"),
                     (f"{preset} two-step int8 PTQ", two + int8 + "ptq")]
            prs += [(f"{preset}: two-step − baseline", two, prefix + "baseline"),
                    (f"{preset}: two-step − baseline, int8 PTQ", two + int8 + "ptq",
                     prefix + "baseline" + int8 + "ptq")]
        sections += ["## Table 4 analogue: student size", gain_table(res, rows, short_cols),
                     paired_table(res, prs, short_cols)]
    gran = [(f"one-step, {g}", f"{STUDENT}one_step-g{g}") for g in ("output", "batch", "t", "f", "tf")]
    if sum(f in res.records for _, f in gran) > 1:
        sections += ["## Table 1 analogue: similarity granularity (one step, γ = 0.5)",
                     gain_table(res, [("student, PSA only", BASELINE)] + gran, short_cols),
                     paired_table(res, [(n + " − student", f, BASELINE) for n, f in gran],
                                  short_cols)]
    cfg = json.loads((res.out / "config.json").read_text())
    step1 = sorted([(int(f.rsplit("_", 1)[1]), f) for f in res.records
                    if f.startswith(TWO_STEP + "-step1_") and "_stream_" not in f]
                   + [(cfg["step1_epochs"], TWO_STEP)])
    step1 = [(f"two-step, {n} of {cfg['student_epochs']} epochs KD", f) for n, f in step1]
    if sum(f in res.records for _, f in step1) > 1:
        sections += [f"## Step-1 length (same {cfg['student_epochs']} epochs in total)",
                     gain_table(res, [("student, PSA only (0 epochs KD)", BASELINE)] + step1,
                                short_cols),
                     paired_table(res, [(n + " − student", f, BASELINE) for n, f in step1],
                                  short_cols)]
    default = cfg.get("kd_reduction", "mean")
    others = sorted(f for f in res.records if f.startswith(ONE_STEP + "-r") and "_stream_" not in f)
    if others and ONE_STEP in res.records:
        red = [(f"one-step, {default} (config)", ONE_STEP)] + [
            (f"one-step, {f[len(ONE_STEP) + 2:]}", f) for f in others]
        cols = [("si_sdr", lab) for lab in LABELS] + [("pesq", "all"), ("estoi", "all")]
        # Reductions against each other on the seeds they share, then against the baseline on
        # the seeds all three share (the baseline may have fewer).
        sections += [f"## KD reduction (one step, γ = {cfg['one_step_gamma']:g}, G_tf)",
                     gain_table(res, red, cols),
                     paired_table(res, [(f"{n} − {red[0][0]}", f, ONE_STEP) for n, f in red[1:]],
                                  cols),
                     gain_table(res, [("student, PSA only", BASELINE)] + red, cols),
                     paired_table(res, [(n + " − student", f, BASELINE) for n, f in red], cols),
                     "Per seed (ΔSI-SDR all, paired with the config's reduction): " + "; ".join(
                         f"{n}: " + ", ".join(f"{v:+.2f}" for v in res.paired(f, ONE_STEP, "si_sdr"))
                         for n, f in red[1:])]
    cln = "student-cln-"
    if cln + "baseline" in res.records:
        sections += ["## Normalisation: cLN (paper) vs frame LN (int8-friendly), float",
                     gain_table(res, [("cLN student", cln + "baseline"),
                                      ("cLN two-step", cln + "two_step-gtf"),
                                      ("frame-LN student", BASELINE), ("frame-LN two-step", TWO_STEP),
                                      ("frame-LN two-step int8 PTQ", TWO_STEP + int8 + "ptq")],
                                short_cols),
                     paired_table(res, [("cLN: two-step − student", cln + "two_step-gtf",
                                         cln + "baseline"),
                                        ("cLN − frame-LN student", cln + "baseline", BASELINE),
                                        ("cLN − frame-LN two-step", cln + "two_step-gtf",
                                         TWO_STEP)], short_cols)]
    plots = _plots(res, dest, sizes, latency_json)
    sections += [f"![{name}]({name})" for name in plots]
    path = dest / "summary.md"
    atomic_write_text(path, "\n\n".join(sections) + "\n")
    return path


def _plots(res, dest, sizes, latency_json) -> list[str]:
    from tinyse_tf.evaluation.plots import new_figure, save_png

    written = []
    fig = new_figure(figsize=(13.0, 3.6), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 3), ("si_sdr", "pesq", "estoi")):
        for name, fam in (("teacher", "teacher"), ("student", BASELINE), ("one-step", ONE_STEP),
                          ("two-step", TWO_STEP)):
            if fam not in res.records:
                continue
            xs = [snr_value(lab) for lab in LABELS[:-1]]
            vals = [res.per_seed(fam, metric, lab) for lab in LABELS[:-1]]
            ax.errorbar(xs, [np.mean(v) for v in vals], capsize=3, marker="o", label=name,
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals])
        ax.set(xlabel="input SNR (dB)", ylabel=f"Δ{SHORT[metric]} over noisy",
               title=f"{SHORT[metric]} gain (mean ± sd over seeds)")
        ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, dest / "gain_vs_snr.png")
    written.append("gain_vs_snr.png")
    # Sizes on the seeds they share, as in the size table.
    only = res.common_seeds([prefix + "baseline" for _, _, prefix in sizes])
    if len(sizes) > 1:
        fig = new_figure(figsize=(5.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for name, suffix in (("baseline", "baseline"), ("two-step", "two_step-gtf"),
                             ("baseline int8", "baseline_stream_int8_ptq"),
                             ("two-step int8", "two_step-gtf_stream_int8_ptq")):
            pts = [(params, res.per_seed(prefix + suffix, "si_sdr", only=only))
                   for _, params, prefix in sizes if prefix + suffix in res.records]
            ax.errorbar([p for p, _ in pts], [np.mean(v) for _, v in pts], marker="o", capsize=3,
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for _, v in pts],
                        label=name, linestyle="--" if "int8" in name else "-")
        ax.set(xscale="log", xlabel="student parameters", ylabel="ΔSI-SDR over noisy (dB)",
               title=f"Gain vs student size (seeds {sorted(only or [])})")
        ax.set_xticks([params for _, params, _ in sizes],
                      [f"{params / 1000:.0f} k" for _, params, _ in sizes])
        ax.grid(alpha=0.3)
        ax.legend()
        save_png(fig, dest / "gain_vs_size.png")
        written.append("gain_vs_size.png")
    if latency_json and sizes:
        latency = {r["preset"]: r["invoke"]["median_us"]
                   for r in json.loads(pathlib.Path(latency_json).read_text())["results"]
                   if r["dtype"] == "int8"}
        fig = new_figure(figsize=(5.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for name, suffix in (("baseline int8 PTQ", "baseline_stream_int8_ptq"),
                             ("two-step int8 PTQ", "two_step-gtf_stream_int8_ptq")):
            pts = [(latency[p], float(np.mean(res.per_seed(prefix + suffix, "si_sdr", only=only))), p)
                   for p, _, prefix in sizes if p in latency and prefix + suffix in res.records]
            ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker="o", label=name)
            for x, y, p in pts:
                ax.annotate(p.replace("student_", "").replace("student", "62k"), (x, y),
                            textcoords="offset points", xytext=(4, -10), fontsize=8)
        if "teacher" in latency and "teacher" in res.records:
            ax.plot([latency["teacher"]], [np.mean(res.per_seed("teacher", "si_sdr"))], "k*",
                    markersize=10, label="teacher (float quality)")
        ax.set(xscale="log", xlabel="int8 TFLite invoke per 16 ms frame (µs, 1 CPU thread)",
               ylabel="ΔSI-SDR over noisy (dB)", title="Quality vs compute")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_png(fig, dest / "pareto.png")
        written.append("pareto.png")
    return written


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="recipes/experiments/summarize.py",
                                description="Tables (markdown) and plots of an experiment folder.")
    p.add_argument("out", help="experiment folder (recipes/experiments/run.py --out)")
    p.add_argument("--dest", required=True, help="folder for summary.md and the PNG plots")
    p.add_argument("--latency", help="JSON of benchmarks/streaming_latency.py (Pareto plot)")
    p.add_argument("--title", default="Experiments")
    args = p.parse_args(argv)
    if not (pathlib.Path(args.out) / "experiments.json").is_file():
        print(f"summarize: error: {args.out}/experiments.json not found; run "
              f"recipes/experiments/run.py --out {args.out} first", file=sys.stderr)
        return 2
    path = write_summary(args.out, args.dest, args.latency, args.title)
    print(path.read_text())
    return 0
