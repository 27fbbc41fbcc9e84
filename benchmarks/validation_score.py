"""Score Keras models on a recipe run's validation stream, as the run scores its own epochs.

    python benchmarks/validation_score.py runs/campaign/teacher_350k student teacher \
        runs/campaign/teacher_350k/models/teacher.keras --data-dir runs/campaign/data

The run folder's ``config.json`` fixes the validation stream (speakers, noises, SNRs, seed,
``validation_steps`` batches); each model (a shipped name, a ``.keras`` file, or a
``best.h5`` of a stage folder, built as the run's teacher or student preset) is scored with
``Distiller.evaluate``: the ``val_si_sdr`` a learning curve of that run plots (mean SI-SDR in dB
of the enhanced validation batches). So models from elsewhere (e.g. the shipped student) can be
drawn on a run's learning curve. ``--snrs -5 0 5`` scores the same speech and noise draws at each
fixed SNR instead of the run's SNR range (e.g. to see where a training choice helps).
``--cross-splits`` (with ``--snrs``) scores instead on the run's recordings alone, training
and validation speech crossed with training and validation noise, without augmentation: how
much better a model does on the speech or noise it trained on than on unseen speech or noise.
Reads the run folder; writes nothing there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from machine import emit_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def load(model, cfg):
    """A shipped name, a .keras file, or a stage's ``best.h5``: built as the run's teacher preset
    when the stage folder is ``teacher``, else as its student preset."""
    from tinyse_tf import pretrained
    from tinyse_tf._tf import keras
    from tinyse_tf.models import build_cruse

    path = Path(model)
    if path.suffix == ".h5":
        preset = cfg.teacher if path.parent.name == "teacher" else cfg.student
        net = build_cruse(preset, norm=cfg.norm)
        net.load_weights(path)
        return net
    return keras.models.load_model(path) if path.suffix == ".keras" else pretrained(model)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="recipe run folder (its config.json fixes the validation stream)")
    p.add_argument("models", nargs="+", help="shipped names, .keras files or stage best.h5 files")
    p.add_argument("--data-dir", help="the run's --data-dir, if it had one")
    p.add_argument("--snrs", type=float, nargs="+", metavar="DB",
                   help="score at each of these fixed SNRs instead of the run's range")
    p.add_argument("--cross-splits", action="store_true",
                   help="with --snrs: score on {train, valid} speech x {train, valid} noise of the "
                        "run's recordings instead of its validation stream")
    p.add_argument("--json", help="write the scores here instead of stdout")
    args = p.parse_args(argv)
    if args.cross_splits and not args.snrs:
        p.error("--cross-splits needs --snrs")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tinyse_tf._tf import keras
    from tinyse_tf.data import mixture_dataset
    from tinyse_tf.distill import Distiller
    from tinyse_tf.recipe.presets import RecipeConfig
    from tinyse_tf.recipe.two_step import Run

    run = Path(args.run)
    try:
        record = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as err:
        p.error(f"{run / 'config.json'}: {err}; give a recipe run folder")
    fields = {f.name for f in dataclasses.fields(RecipeConfig)}
    cfg = RecipeConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in record.items() if k in fields})
    keras.utils.set_random_seed(cfg.seed)
    ranges = {"range": cfg.snr_range} if not args.snrs else {f"{s:g}": (s, s) for s in args.snrs}
    distillers = {}
    for model in args.models:  # built once, scored at every SNR
        distillers[model] = Distiller(load(model, cfg))
        distillers[model].compile(optimizer=keras.optimizers.Adam())
    scores = {}
    for name, snr_range in ranges.items():
        r = Run(dataclasses.replace(cfg, snr_range=snr_range), run, record.get("speech_dir"),
                record.get("noise_dir"), args.data_dir, verbose=0)
        r.prepare_data()
        if args.cross_splits:  # the validation stream's seed; endless, so valid speech repeats
            streams = {f"{sp} speech, {nz} noise": mixture_dataset(
                r.data.split(sp)[0], r.data.split(nz)[1], clip_seconds=cfg.clip_seconds,
                batch_size=cfg.batch_size, snr_range=snr_range, seed=cfg.seed + 1)
                for sp in ("train", "valid") for nz in ("train", "valid")}
        else:
            streams = {"validation stream": r.dataset("valid", 1)}
        for stream, data in streams.items():
            for model, distiller in distillers.items():
                logs = distiller.evaluate(data, steps=cfg.validation_steps, return_dict=True,
                                          verbose=0)
                score = round(float(logs["si_sdr"]), 3)
                if args.cross_splits:
                    scores.setdefault(name, {}).setdefault(stream, {})[model] = score
                else:
                    scores.setdefault(name, {})[model] = score
                print(f"{model} at SNR {name}, {stream}: SI-SDR {score:.2f} dB", file=sys.stderr)
    result = {"run": run.name, "validation_steps": cfg.validation_steps}
    if args.cross_splits:
        result["si_sdr_at_snr_by_splits"] = scores
    elif args.snrs:
        result["val_si_sdr_at_snr"] = scores
    else:
        result["snr_range"], result["val_si_sdr"] = list(cfg.snr_range), scores["range"]
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
