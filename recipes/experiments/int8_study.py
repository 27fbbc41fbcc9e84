"""int8 fidelity study (docs/RESULTS.md, "int8 that keeps the distillation gain").

Three commands, on the models and streaming files of an experiment run folder
(``recipes/experiments/run.py int8:0,1,2 --out RUN``):

``score DIR... --speech S --noise N``
    every ``*_stream_float32.tflite`` in the folders and its int8 siblings enhance the same real
    mixtures (``S`` x ``N`` at each ``--snrs``), through ``StreamingEnhancer``; prints per file the
    improvement over the noisy input and int8 - float (paired), and writes ``--json``.
``layers FLOAT INT8... --speech S --noise N``
    per-tensor error of each int8 file against the float file (``tinyse_tf.export.int8_debug``):
    the ``--worst`` tensors by SQNR, a per-layer summary, and the closed-loop mask error.
``summary LABEL=SCORE.json...``
    the remedies table of docs/RESULTS.md from ``score`` outputs: per LABEL/folder and file kind,
    int8 - float of the baseline and two-step students and two-step - baseline, paired per
    seed, mean +- sd over seeds (files are grouped by ``baseline``/``two_step`` and ``seed<k>`` in
    their names; a name without a seed is seed 0).
``export RUN KEY... --variant NAME --calibration-speech S --calibration-noise N``
    int8 PTQ files of ``RUN/models/KEY.keras`` calibrated on other audio than the recipe's
    (e.g. real recordings), written to ``RUN/int8_study/NAME``.

Every random choice (which clips, offsets, noises, SNR draws) comes from ``--seed``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

def _files(folder) -> list:
    from tinyse_tf.data import DataError, list_audio

    try:
        files = list_audio(folder)
    except DataError as err:
        raise SystemExit(f"int8_study: error: {err}") from None
    if not files:
        raise SystemExit(f"int8_study: error: {folder}: no .wav or .flac files")
    return files


def _export_groups(folders) -> list[dict]:
    """``[{name: path}]``: one group per float32 file (itself and its int8 siblings)."""
    groups = []
    for folder in folders:
        for f in sorted(Path(folder).glob("*_stream_float32.tflite")):
            stem = f.name[:-len("_stream_float32.tflite")]
            where = "/".join(Path(folder).resolve().parts[-2:])  # e.g. run/export
            group = {f"{where}/{stem}_stream_float32": f}
            for q in sorted(Path(folder).glob(f"{stem}_stream_int8_*.tflite")):
                group[f"{where}/{q.stem}"] = q
            groups.append(group)
    if not groups:
        raise SystemExit(f"int8_study: error: no *_stream_float32.tflite in {', '.join(folders)}")
    return groups


def score(args):
    from tinyse_tf.export.fidelity import int8_criterion, mixtures_by_snr

    pairs = mixtures_by_snr(_files(args.speech), _files(args.noise), args.snrs, args.clips,
                            args.seconds, args.seed)
    result = {"speech": args.speech, "noise": args.noise, "snrs": args.snrs,
              "clips": args.clips, "seconds": args.seconds, "seed": args.seed, "groups": {}}
    for group in _export_groups(args.folders):
        float_name = next(iter(group))
        check = int8_criterion(group, pairs, float_name)
        print(check["table"], flush=True)
        for line in check["warnings"]:
            print("warning: " + line)
        result["groups"][float_name] = {"scores": check["scores"], "gaps": check["gaps"]}
    if args.json:
        from tinyse_tf.atomic import atomic_write_json

        atomic_write_json(args.json, result)


def layers(args):
    from tinyse_tf.export.fidelity import mixtures_by_snr
    from tinyse_tf.export.int8_debug import layer_table, mask_error, tensor_errors

    pairs = mixtures_by_snr(_files(args.speech), _files(args.noise), args.snrs, args.clips,
                            args.seconds, args.seed)
    audios = [noisy for snr_pairs in pairs.values() for noisy, _ in snr_pairs]
    result = {}
    for int8 in args.int8:
        errors = tensor_errors(args.float, int8, audios)
        per_layer = defaultdict(lambda: {"min_sqnr_db": float("inf"), "max_clipped": 0.0})
        for e in errors:
            row = per_layer[e.layer]
            row["min_sqnr_db"] = min(row["min_sqnr_db"], e.sqnr_db)
            row["max_clipped"] = max(row["max_clipped"], e.clipped)
        mask = mask_error(args.float, int8, audios)
        print(f"\n## {int8}\nclosed-loop mask: SQNR {mask['sqnr_db']:.1f} dB, "
              f"mean |error| {mask['mean_abs']:.4f}, max {mask['max_abs']:.3f}")
        print(layer_table(errors, worst=args.worst))
        print("\n| layer | lowest SQNR dB | most clipped % |\n|---|---:|---:|")
        for name, row in per_layer.items():
            print(f"| {name} | {row['min_sqnr_db']:.1f} | {100 * row['max_clipped']:.2f} |")
        result[int8] = {"mask": mask, "tensors": [vars(e) for e in errors],
                        "layers": dict(per_layer)}
    if args.json:
        from tinyse_tf.atomic import atomic_write_json

        atomic_write_json(args.json, result)


def _rows(label, path):
    """``{(variant, kind): {(method, seed): {snr: {metric: [per clip]}}}}`` of a score JSON."""
    import re

    result = json.loads(Path(path).read_text())
    rows = defaultdict(dict)
    for group in result["groups"].values():
        for name, per_snr in group["scores"].items():
            folder, _, stem = name.rpartition("/")
            seed = re.search(r"seed(\d+)", stem)
            method = "two_step" if "two_step" in stem else "baseline"
            kind = stem.rpartition("_stream_")[2]
            rows[(f"{label}/{folder}", kind)][(method, int(seed.group(1)) if seed else 0)] = {
                float(snr): v for snr, v in per_snr.items()}
    return rows


def _cell(values) -> str:
    import numpy as np

    v = np.asarray(values)
    sd = f" ± {v.std(ddof=1):.2f}" if v.size > 1 else ""
    return f"{v.mean():+.2f}{sd} ({int((v > 0).sum())}/{v.size})"


def summary(args):
    import numpy as np

    rows = {}
    for spec in args.scores:
        label, _, path = spec.rpartition("=")
        rows.update(_rows(label or Path(path).stem, path))
    for metric, unit in (("si_sdr", "dB SI-SDR"), ("estoi", "eSTOI points")):
        print(f"\n{unit}: mean ± sd over seeds (seeds > 0 / seeds), per input SNR")
        print("| files | kind | SNR | baseline int8 − float | two-step int8 − float | "
              "two-step − baseline |\n|---|---|---|---|---|---|")
        for (variant, kind), models in rows.items():
            floats = rows.get((variant, "float32"), {})
            for snr in sorted({s for m in models.values() for s in m}):
                mean = {k: np.mean(v[snr][metric]) for k, v in models.items()}
                fmean = {k: np.mean(v[snr][metric]) for k, v in floats.items()}
                seeds = sorted({s for _, s in models})
                cells = []
                for method in ("baseline", "two_step"):
                    d = [mean[(method, s)] - fmean[(method, s)] for s in seeds
                         if (method, s) in mean and (method, s) in fmean]
                    cells.append(_cell(d) if d and kind != "float32" else "")
                pair = [mean[("two_step", s)] - mean[("baseline", s)] for s in seeds
                        if ("two_step", s) in mean and ("baseline", s) in mean]
                cells.append(_cell(pair) if pair else "")
                print(f"| {variant} | {kind} | {snr:g} | " + " | ".join(cells) + " |")


def export(args):
    from tinyse_tf._tf import keras
    from tinyse_tf.export.calibration import noisy_mixtures
    from tinyse_tf.export.quantize import export_model

    run = Path(args.run)
    calibration = [n for n, _ in noisy_mixtures(_files(args.calibration_speech),
                                                 _files(args.calibration_noise),
                                                 n_clips=args.calibration_clips, seed=args.seed)]
    out = run / "int8_study" / args.variant
    for key in args.keys:
        path = run / "models" / f"{key}.keras"
        if not path.is_file():
            raise SystemExit(f"int8_study: error: {path}: no such model")
        paths = export_model(keras.models.load_model(path), out, key, int8=("ptq",),
                             representative_audio=calibration, seed=args.seed)
        print(f"{key}: " + ", ".join(str(p) for p in paths.values()), flush=True)


def _audio_args(p, clips):
    p.add_argument("--speech", required=True, help="clean speech folder (searched recursively)")
    p.add_argument("--noise", required=True, help="noise folder (searched recursively)")
    p.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    p.add_argument("--clips", type=int, default=clips, help="mixtures per SNR")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each mixture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")


def main(argv=None):
    p = argparse.ArgumentParser(prog="recipes/experiments/int8_study.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="int8 - float per SNR on real mixtures")
    s.add_argument("folders", nargs="+", help="export folders with *_stream_*.tflite files")
    _audio_args(s, clips=25)
    s.set_defaults(func=score)
    s = sub.add_parser("layers", help="per-tensor int8 error against the float file")
    s.add_argument("float", help="*_stream_float32.tflite")
    s.add_argument("int8", nargs="+", help="int8 files of the same weights")
    s.add_argument("--worst", type=int, default=20, help="tensors listed (lowest SQNR)")
    _audio_args(s, clips=4)
    s.set_defaults(func=layers)
    s = sub.add_parser("summary", help="remedies table from score outputs")
    s.add_argument("scores", nargs="+", metavar="LABEL=SCORE.json")
    s.set_defaults(func=summary)
    s = sub.add_parser("export", help="int8 PTQ calibrated on other audio")
    s.add_argument("run", help="experiment run folder (models/<key>.keras)")
    s.add_argument("keys", nargs="+", help="model keys, e.g. student-frame_ln-baseline-seed0")
    s.add_argument("--variant", required=True, help="output sub-folder name")
    s.add_argument("--calibration-speech", required=True)
    s.add_argument("--calibration-noise", required=True)
    s.add_argument("--calibration-clips", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=export)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
