"""``tinyse evaluate --clean DIR --enhanced DIR [--noisy DIR] [-o OUTDIR]``: the paper's metrics.

Files are matched by relative path (the suffix may differ: a.wav matches a.flac). Each file is
read at any rate and channel count and brought to 16 kHz mono (``load_audio``) before scoring.

* With ``--noisy``: ``compute_metrics(clean, noisy, enhanced)``: absolute scores of noisy and
  enhanced, and the improvement delta = enhanced - noisy.
* Without ``--noisy``: absolute scores of the enhanced files only. ``compute_metrics`` always
  scores a noisy signal too, so this command scores the enhanced side alone with the same metric
  functions (half the work); the CSV and JSON then have no ``noisy.*`` / ``delta.*`` columns.

No TensorFlow is imported. Files are scored in parallel worker processes (``--workers``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from tinyse_tf.cli._common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, say)

PROG = "tinyse evaluate"
AUDIO_SUFFIXES = (".wav", ".flac")
METRIC_GROUPS = ("si_sdr", "sdr", "pesq", "estoi", "dnsmos")  # = evaluation.DEFAULT_METRICS


def add_parser(sub):
    p = sub.add_parser(
        "evaluate", prog=PROG, help="score enhanced files against clean references",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score enhanced files against clean references with the paper's metrics: "
                    "SI-SDR, BSS-eval SDR, PESQ-WB, eSTOI (%), DNSMOS P.835. Files are matched "
                    "by relative path; any rate or channel count is read as 16 kHz mono.",
        epilog="Without --noisy only absolute scores of the enhanced files are reported (no "
               "improvement columns). Outputs in OUTDIR: metrics.csv (one row per file) and "
               "summary.json (mean, std, count per metric); the summary table is printed.\n"
               "Exit status: 0 every metric of every file computed; 1 some files or metrics "
               "failed (see the errors column); 2 bad usage or no file pair to score.")
    p.add_argument("--clean", required=True, metavar="DIR", help="clean reference folder")
    p.add_argument("--enhanced", required=True, metavar="DIR", help="enhanced files folder")
    p.add_argument("--noisy", metavar="DIR", help="noisy input folder (adds noisy and delta)")
    p.add_argument("-o", "--output-dir", metavar="OUTDIR",
                   help="write metrics.csv and summary.json here (default: print only)")
    p.add_argument("--metrics", nargs="+", choices=METRIC_GROUPS, default=list(METRIC_GROUPS),
                   metavar="METRIC",
                   help=f"metric groups, any of {', '.join(METRIC_GROUPS)} (default: all; "
                        "dnsmos is the slowest)")
    p.add_argument("--group-by-folder", action="store_true",
                   help="also summarise per first sub-folder (e.g. one folder per input SNR)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: CPU count; 0: score in this process)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace metrics.csv / summary.json in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------- matching
def _index(root: Path, what: str) -> dict[str, Path]:
    """``{relative path without suffix: file}`` of the audio files under ``root``."""
    if not root.exists():
        raise CliError(f"{root}: {what} folder not found; check the path")
    if not root.is_dir():
        raise CliError(f"{root}: --{what} must be a folder, not a file")
    index = {}
    for f in sorted(root.rglob("*")):
        if f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith(".") and f.is_file():
            index.setdefault(f.relative_to(root).with_suffix("").as_posix(), f)
    if not index:
        raise CliError(f"{root}: no .wav or .flac files in the {what} folder (searched "
                       "recursively); point to the folder that holds them")
    return index


def match_items(clean_dir: Path, enhanced_dir: Path, noisy_dir: Path | None, by_folder: bool):
    """Items ``{id, snr_label, clean_path, enhanced_path[, noisy_path]}`` and the unmatched."""
    clean = _index(clean_dir, "clean")
    enhanced = _index(enhanced_dir, "enhanced")
    noisy = _index(noisy_dir, "noisy") if noisy_dir is not None else None
    items, missing = [], {"clean": [], "noisy": []}
    for key, enh in enhanced.items():
        if key not in clean:
            missing["clean"].append(enh)
            continue
        if noisy is not None and key not in noisy:
            missing["noisy"].append(enh)
            continue
        parts = key.split("/")
        item = {"id": key, "snr_label": parts[0] if by_folder and len(parts) > 1 else "all",
                "clean_path": str(clean[key]), "enhanced_path": str(enh)}
        if noisy is not None:
            item["noisy_path"] = str(noisy[key])
        items.append(item)
    if not items:
        example = next(iter(enhanced.values()))
        raise CliError(f"{enhanced_dir}: no enhanced file has a clean reference at the same "
                       f"relative path under {clean_dir} (e.g. {example.relative_to(enhanced_dir)}"
                       f" has none){' and noisy input under ' + str(noisy_dir) if noisy else ''}; "
                       "the folders must mirror each other")
    return items, missing


# --------------------------------------------------------------------------- outputs
def _sides(with_noisy: bool) -> tuple[str, ...]:
    return ("noisy", "enhanced", "delta") if with_noisy else ("enhanced",)


def summary_of(records, with_noisy: bool) -> dict:
    """``{label: {side: {key: {mean, std, n}}}}`` (labels: folders if grouped, then "all")."""
    from tinyse_tf.evaluation.runner import summarize

    full = summarize(records)
    return {label: {side: per[side] for side in _sides(with_noisy)} for label, per in full.items()}


def _keys(metrics) -> list[str]:
    from tinyse_tf.evaluation.metrics import metric_keys

    return metric_keys(metrics)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def format_table(summary_label: dict, metrics, with_noisy: bool) -> str:
    from tinyse_tf.evaluation.metrics import METRIC_NAMES

    def cell(v):
        if v["n"] == 0 or not math.isfinite(v["mean"]):
            return "-"
        return f"{v['mean']:.2f} ± {v['std']:.2f}"

    heads = {"noisy": "noisy", "enhanced": "enhanced", "delta": "Δ (enh - noisy)"}
    sides = _sides(with_noisy)
    rows = [["metric", *(heads[s] for s in sides), "files"]]
    for k in _keys(metrics):
        n = max(summary_label[s][k]["n"] for s in sides)
        rows.append([METRIC_NAMES.get(k, k), *(cell(summary_label[s][k]) for s in sides), str(n)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command
def run(args) -> int:
    clean_dir, enh_dir = Path(args.clean), Path(args.enhanced)
    noisy_dir = Path(args.noisy) if args.noisy else None
    metrics = list(dict.fromkeys(args.metrics))
    with_noisy = noisy_dir is not None
    if args.workers is not None and args.workers < 0:
        raise CliError(f"--workers {args.workers}: must be 0 (in this process) or more")
    items, missing = match_items(clean_dir, enh_dir, noisy_dir, args.group_by_folder)
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise CliError(f"{out_dir}: exists and is not a folder; choose another -o")
        targets = [out_dir / "metrics.csv", out_dir / "summary.json"]
        if not args.overwrite and any(t.exists() for t in targets):
            t = next(t for t in targets if t.exists())
            raise CliError(f"{t}: already exists; pass --overwrite to replace it, or choose "
                           "another -o")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CliError(f"{out_dir}: cannot create the output folder "
                           f"({e.strerror or e}); choose a writable -o") from None
    for side, files in missing.items():
        if files and not args.quiet:
            say(PROG, "note", f"{len(files)} enhanced file(s) have no {side} counterpart and are "
                              f"skipped (first: {files[0]})")
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    from tinyse_tf.evaluation.runner import evaluate_files

    records = evaluate_files(items, metrics, workers=workers,
                             progress=not args.quiet and sys.stderr.isatty())

    failed_files = [r for r in records if "input" in r["errors"] or "worker" in r["errors"]]
    metric_errors = [r for r in records if r["errors"]]
    for r in metric_errors[:5]:
        msg = " | ".join(f"{k}: {v}" for k, v in r["errors"].items())
        say(PROG, "error" if r in failed_files else "warning", f"{r['enhanced_path']}: {msg}")
    if len(metric_errors) > 5:
        say(PROG, "warning", f"... {len(metric_errors) - 5} more files with errors "
                             "(errors column of metrics.csv)")
    summary = summary_of(records, with_noisy)
    labels = [lab for lab in summary if lab != "all"] if args.group_by_folder else []
    for label in labels + ["all"]:
        if labels:
            print(f"\n[{label if label != 'all' else 'all files'}]")
        print(format_table(summary[label], metrics, with_noisy))
    print(f"{len(records)} files scored"
          + (f", {len(failed_files)} could not be read" if failed_files else "")
          + (f", {len(metric_errors) - len(failed_files)} with failed metrics"
             if len(metric_errors) > len(failed_files) else "")
          + ("" if with_noisy else "; absolute scores of the enhanced files (no --noisy: "
                                   "no improvement columns)"))
    if out_dir is not None:
        from tinyse_tf.evaluation.runner import write_records_csv

        write_records_csv(records, out_dir / "metrics.csv", sides=_sides(with_noisy),
                          id_header=("file", "group"))
        from tinyse_tf.atomic import atomic_open

        doc = {"clean": str(clean_dir), "enhanced": str(enh_dir),
               "noisy": str(noisy_dir) if noisy_dir else None, "metrics": metrics,
               "sides": list(_sides(with_noisy)), "files": len(records),
               "failed_files": len(failed_files), "files_with_errors": len(metric_errors),
               "unmatched": {k: [str(f) for f in v] for k, v in missing.items()},
               "summary": summary}
        with atomic_open(out_dir / "summary.json") as f:
            f.write(json.dumps(_json_safe(doc), indent=1, allow_nan=False) + "\n")
        if not args.quiet:
            say(PROG, "note", f"wrote {out_dir / 'metrics.csv'} and {out_dir / 'summary.json'}")
    if len(failed_files) == len(records):
        return EXIT_USAGE
    return EXIT_FAILED if metric_errors else EXIT_OK
