"""Put a release run's models into the package (tinyse_tf/shipped/) with their model cards.

    python recipes/two_step.py --preset release --speech-dir ../shared/audio/speech \
        --noise-dir ../shared/audio/noise --out runs/release
    python benchmarks/vs_peers.py runs/release/export/two_step_stream_int8_ptq.tflite \
        runs/release/export/two_step_stream_float32.tflite runs/release/models/teacher.keras \
        --json bench.json
    python recipes/ship_models.py runs/release --benchmark bench.json

The shipped .tflite files are byte copies of the run's, so the benchmark can equally be run on
them after shipping (``python benchmarks/vs_peers.py``, as README's table is).

Writes the two-step student (Keras weights, streaming int8 PTQ and float32 .tflite with their
I/O contracts) and the teacher (Keras weights in float16), ``models.json`` (sizes, SHA-256) and
``docs/models/<name>.md`` (data, schedule, commit, metrics of the run's test set with standard
errors, size, MACs and µs per frame). Existing files of the same names are replaced, atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tinyse_tf.atomic import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402
from tinyse_tf.shipped import (FOLDER, REGISTRY, file_record, save_weights_npz,  # noqa: E402
                               tflite_record)

DATA_NOTE = (
    "Speech: the 226 LibriSpeech train-clean-100 utterances of `../shared/audio/speech/train` "
    "(one per speaker, about 47 min; LibriSpeech, Panayotov et al. 2015, CC BY 4.0), 11 of them "
    "held out for validation; a fifth of the training clips from tinyse_tf's built-in corpus "
    "(espeak-ng synthetic speech, procedural noise; generated, no licence terms). Noise: the 22 "
    "recordings of `../shared/audio/noise/train` (Speech Commands background noise, CC BY 4.0; "
    "recordings from the felixchenfy Speech-Commands-Classification repository, MIT; Freesound "
    "clips from IBM MAX-Audio-Classifier samples, CC0 / CC BY), one held out for validation. "
    "Test: the 25 other speakers of `speech/test` with the 5 noises of `noise/test`, never "
    "seen in training or model selection.")
METRICS = (("si_sdr", "ΔSI-SDR (dB)"), ("pesq", "ΔPESQ-WB"), ("estoi", "ΔeSTOI (points)"))


def _mean_se(stat):
    return f"{stat['mean']:+.2f} ± {stat['std'] / math.sqrt(max(stat['n'], 1)):.2f}"


def metrics_table(report, rows, labels=("snr_-5", "snr_0", "snr_5")):
    """Markdown: per report row and input SNR, mean improvement ± standard error."""
    lines = ["| model | input SNR | " + " | ".join(h for _, h in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for row in rows:
        summary = report["models"][row]["summary"]
        for label in labels:
            delta = summary[label]["delta"]
            lines.append(f"| {row} | {label[4:]} dB | "
                         + " | ".join(_mean_se(delta[m]) if m in delta else "-"
                                      for m, _ in METRICS) + " |")
    return "\n".join(lines)


def benchmark_table(bench):
    """Markdown: the tables of a ``benchmarks/vs_peers.py`` JSON (quality, cost and paired
    differences to log-MMSE, GTCRN and DTLN on the real test split) with their set-up line."""
    if not bench:
        return "(not measured: pass --benchmark)"
    m = bench["machine"]
    tables = "\n\n".join(f"**{title[0].upper() + title[1:]}**\n\n{text}"
                           for title, text in bench["tables"].items())
    return (tables + f"\n\n`benchmarks/vs_peers.py`: {bench['mixtures_per_snr']} mixtures per "
            f"SNR of the real test split ({bench['seconds']:g} s of speech after "
            f"{bench['lead_in_s']:g} s of noise alone); CPU time of one thread, STFT/mel/mask path "
            f"included, on {m['processor']} ({m['cpus']} CPUs), {m['platform']}, "
            f"Python {m['python']}, {bench['date']}.")


def card(name, title, run, cfg, commit, report, rows, files, extra):
    from tinyse_tf.export.complexity import macs_per_frame
    from tinyse_tf.models.complexity import count_params

    preset = cfg["teacher" if name == "teacher" else "student"]
    schedule = (f"{cfg['teacher_epochs']} epochs" if name == "teacher" else
                f"{cfg['student_epochs']} epochs, the first {cfg['step1_epochs']} KD only "
                "(G_tf self-similarity to the teacher), then PSA only")
    file_lines = "\n".join(f"| `{r['file']}` | {kind} | {r['bytes']:,} | `{r['sha256']}` |"
                           for kind, r in files.items())
    return f"""# {title}

Shipped as `tinyse_tf.pretrained("{name}")`{' and the default model of `tinyse enhance`' if name == 'student' else ''}.
Written by `python recipes/ship_models.py {run}` from a `--preset release` run of the recipe
at commit `{commit}`.

## Files (tinyse_tf/shipped/)

| file | kind | bytes | SHA-256 |
|---|---|---|---|
{file_lines}

## Model
CRUSE preset `{preset}`, normalisation `{cfg['norm']}`: {count_params(preset):,} parameters,
{macs_per_frame(preset):,} MACs per 16 ms frame (tinyse_tf.macs_per_frame). Causal; the
streaming file holds its GRU and convolution state inside (one hop of 256 samples in, one out).

## Data
{DATA_NOTE}
Augmentation per training example: reverberation {cfg.get("reverb_prob", 0.0)} (pyroomacoustics shoebox
rooms, RT60 0.2-0.8 s; target = direct path + 50 ms), random EQ {cfg.get("eq_prob", 0.0)}, band-limiting
{cfg.get("bandlimit_prob", 0.0)}; energy SNR uniform in {cfg['snr_range']} dB; {cfg['clip_seconds']} s clips.

## Schedule
{schedule}; {cfg['steps_per_epoch']} steps of batch {cfg['batch_size']} per epoch; Adam,
learning rate {cfg['learning_rate']} {cfg.get("lr_schedule", "constant")} (to a tenth); the epoch with the best
validation SI-SDR is kept ({extra['best']}). Seed {cfg['seed']}. Trained on the 2 cores of an
AMD EPYC VM (no GPU): {extra['train_s']}.

## Metrics
The run's test set: {cfg['test_clips']} speakers of `speech/test` × the `noise/test` noises at
each input SNR, {cfg['test_clip_seconds']} s each; mean improvement over the noisy input ±
standard error over files (from `{run}/report/report.json`).

{metrics_table(report, rows)}

## Against log-MMSE and the public tiny enhancers (GTCRN, DTLN), and cost
{extra['bench']}
"""


def main(argv=None):
    p = argparse.ArgumentParser(prog="ship_models.py", description=__doc__.split("\n")[0])
    p.add_argument("run", help="a finished --preset release run folder")
    p.add_argument("--benchmark", help="vs_peers.py --json output for the peers section")
    p.add_argument("--commit", help="commit of the code that ran (default: git HEAD)")
    p.add_argument("--cards", default=str(ROOT / "docs" / "models"))
    args = p.parse_args(argv)
    run = pathlib.Path(args.run)
    cfg = json.loads((run / "config.json").read_text())
    report = json.loads((run / "report" / "report.json").read_text())
    timings = json.loads((run / "timings.json").read_text())
    commit = args.commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                            "HEAD"], capture_output=True, text=True).stdout.strip()
    bench = json.loads(pathlib.Path(args.benchmark).read_text()) if args.benchmark else None
    from tinyse_tf._tf import keras
    import tinyse_tf.models  # noqa: F401  (registers the custom layers)

    FOLDER.mkdir(exist_ok=True)
    registry = {}
    for name, stage, dtype, title in (
            ("student", "two_step", "float32", "62 k two-step KD student (release)"),
            ("teacher", "teacher", "float16", "1.9 M teacher (release)")):
        model = keras.models.load_model(run / "models" / f"{stage}.keras")
        stem = f"{name}_{'62k_two_step' if name == 'student' else '1.9m'}_release"
        weights = FOLDER / f"{stem}_{dtype}.npz"
        save_weights_npz(model, weights, dtype)
        files = {"keras": file_record(weights)}
        if name == "student":
            for kind, exported in (("int8", "int8_ptq"), ("float32", "float32")):
                src = run / "export" / f"{stage}_stream_{exported}.tflite"
                dst = FOLDER / f"{stem}_stream_{kind}.tflite"
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
                contract = json.loads((src.parent / f"{src.stem}.io_contract.json").read_text())
                atomic_write_json(FOLDER / f"{dst.stem}.io_contract.json",
                                  {**contract, "file": dst.name})
                files[kind] = tflite_record(dst)  # with its io_contract.json
        best = json.loads((run / "train" / stage / "best.json").read_text()) \
            if (run / "train" / stage / "best.json").exists() else None
        rows = (["two-step KD", "two-step KD int8 PTQ"] if name == "student" else ["teacher"])
        extra = {"best": (f"epoch {best['epoch']}, {best['val_si_sdr']:.2f} dB" if best
                          else "the last epoch"),
                 "train_s": f"{timings.get(f'train_{stage}_s', 0) / 60:.0f} min of training"
                            + (" (plus the teacher's)" if name == "student" else ""),
                 "bench": benchmark_table(bench) if name == "student" else
                 "Not exported for devices (a training target for your own students)."}
        card_path = pathlib.Path(args.cards) / f"{name}.md"
        card_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(card_path, card(name, title, f"runs/{run.name}", cfg, commit, report,
                                          rows, files, extra))
        registry[name] = {"description": title, "card": f"docs/models/{name}.md",
                          "build": {"preset": cfg["teacher" if name == "teacher" else "student"],
                                    "norm": cfg["norm"]},
                          "commit": commit, "files": files}
    atomic_write_json(REGISTRY, {"models": registry})
    print(f"shipped {', '.join(registry)} into {FOLDER}; cards in {args.cards}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
