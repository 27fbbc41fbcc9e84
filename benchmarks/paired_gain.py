"""Paired per-file differences between report rows: is a gain larger than its noise?

    python benchmarks/paired_gain.py runs/demo/report/report.json
    python benchmarks/paired_gain.py runs/demo/report/report.json --baseline "two-step KD" --metric pesq
    python benchmarks/paired_gain.py runs/release/report/report.json \
        --add "loudness SNR=runs/release/eval/student-frame_ln-baseline-snr_loudness-seed0.json"

For every row of a recipe report, the difference of its per-file improvement over the noisy input
(default: SI-SDR) and the baseline row's, on the same test files: mean, standard error, the number
of files where the row is better, per input-SNR set and overall. Prints JSON and a table.
``--add NAME=FILE`` adds a row from an ``eval/<key>.json`` of the same run folder (a model the
experiment grid trained there, scored on the same test files).
"""
import argparse
import json
import math


def paired(report, baseline, metric):
    """``{row: {snr_label | "all": {mean, se, better, n}}}`` of per-file deltas vs ``baseline``."""
    def per_file(row):
        return {(r["id"], r["snr_label"]): r["delta"][metric]
                for r in report["models"][row]["records"]}

    base = per_file(baseline)
    out = {}
    for row in report["models"]:
        if row == baseline:
            continue
        other = per_file(row)
        diffs = {}
        for key, value in base.items():
            d = other.get(key, math.nan) - value
            if math.isfinite(d):
                diffs.setdefault(key[1], []).append(d)
                diffs.setdefault("all", []).append(d)
        out[row] = {label: _stats(values) for label, values in diffs.items()}
    return out


def _stats(values):
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
    return {"mean": round(mean, 3), "se": round(math.sqrt(var / n), 3),
            "better": sum(v > 0 for v in values), "n": n}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", help="report.json written by recipes/two_step.py")
    p.add_argument("--baseline", default="student", help="row to compare against")
    p.add_argument("--metric", default="si_sdr", help="si_sdr, sdr, pesq, estoi, dnsmos_ovrl, ...")
    p.add_argument("--add", action="append", default=[], metavar="NAME=FILE",
                   help="another row: the per-file records of an eval/<key>.json of the run")
    args = p.parse_args(argv)
    with open(args.report) as f:
        report = json.load(f)
    for spec in args.add:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            p.error(f"--add {spec!r}: give NAME=FILE")
        try:
            with open(path) as f:
                report["models"][name] = {"records": json.load(f)}
        except (OSError, ValueError) as err:
            p.error(f"--add {spec!r}: {err}")
    result = paired(report, args.baseline, args.metric)
    print(json.dumps(result))
    print(f"\n| row - {args.baseline} ({args.metric}) | set | mean | s.e. | better/n |\n"
          "|---|---|---|---|---|")
    for row, by_label in result.items():
        for label, s in by_label.items():
            print(f"| {row} | {label} | {s['mean']:+.2f} | {s['se']:.2f} | {s['better']}/{s['n']} |")
    return result


if __name__ == "__main__":
    main()
