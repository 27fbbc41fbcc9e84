"""Adapt a trained model to one noise in minutes: ``tinyse_tf.adapt(noise, out)`` / ``tinyse adapt``.

Starts from the shipped student (or a given CRUSE Keras model, model file or run folder), mixes
the user's noise with speech (a given folder, else the built-in corpus) at the recipe's SNR range,
fine-tunes for a wall-clock budget, keeps the epoch that does best on held-out data, exports what
the recipe exports and writes a before/after report. Layout of ``out``::

    settings.json          what was asked (a rerun with other settings is refused)
    work/noise/            the training / held-out noise segments (tinyse_tf.data.holdout)
    work/data/             their shards (and the speech folder's), written once
    work/train/            checkpoints, history.csv, best.h5 (fit_resumable, KeepBest)
    adapted.keras          the adapted sequence model, features [b, t, 80, 1] -> mask
    export/                adapted_stream_float32.tflite, adapted_stream_int8_ptq.tflite (each
                           with .io_contract.json), with target "micro" the TFLite Micro sources
    report.md, report.json before/after, per input SNR, on the held-out noise and built-in clips
    timings.json           wall and CPU seconds per stage

Every stage is skipped when its output exists and training resumes from its last epoch, so the
same call after an interruption continues (the wall-time budget counts the earlier invocations).

Forgetting guard (docs/ADAPT.md has the measurement behind the defaults): the loss is
``gamma * KD + (1 - gamma) * PSA`` of ``tinyse_tf.Distiller`` with the *starting* model, frozen,
as the teacher (``guard``: ``"output"`` mask matching, ``"gtf"`` G_tf of all 9 blocks,
``"teacher"`` G_tf from the shipped 1.9 M teacher, ``"none"``); ``general_share`` of the training
clips come from the built-in corpus (as the release recipe mixes it); Adam at the release
schedule's final learning rate; and the epoch kept is the best by validation SI-SDR on held-out
noise (half of the validation clips: built-in noise), the starting weights included, so a run
that does not help returns the start.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import sys
import time
import types

from tinyse_tf.atomic import atomic_path, atomic_write_json, atomic_write_text

GUARDS = ("none", "output", "gtf", "teacher")
TARGETS = ("edgetpu", "micro")


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """How an adaptation trains; stored in ``settings.json``."""

    minutes: float = 4.0  # wall-clock budget of the training stage
    guard: str = "output"
    gamma: float = 0.8  # KD weight (unused with guard "none")
    general_share: float = 0.2  # training clips (speech and noise each) from the built-in corpus
    # Adam's rate: the release schedule's final rate (1e-3 cosine to a tenth); 3e-4 was tried
    # and gained nothing on the benchmark while forgetting more (docs/ADAPT.md).
    learning_rate: float = 1e-4
    batch_size: int = 8
    clip_seconds: float = 2.0
    steps_per_epoch: int = 20
    validation_steps: int = 4
    snr_range: tuple = (-5.0, 15.0)  # the recipe's
    holdout_fraction: float = 0.25
    report_clips: int = 8  # mixtures per input SNR and set in the report
    report_snrs: tuple = (-5, 0, 5)
    seed: int = 0

    def __post_init__(self):
        if self.guard not in GUARDS:
            raise ValueError(f"guard must be one of {', '.join(GUARDS)}, got {self.guard!r}")
        for name in ("minutes", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("gamma", "general_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.guard == "none" and self.gamma:
            object.__setattr__(self, "gamma", 0.0)
        for name in ("batch_size", "steps_per_epoch", "validation_steps", "report_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        object.__setattr__(self, "snr_range", tuple(float(x) for x in self.snr_range))
        object.__setattr__(self, "report_snrs", tuple(self.report_snrs))


@dataclasses.dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt` wrote: ``model`` (the adapted Keras file), ``files`` (``{"float32",
    "int8_ptq": .tflite path}``), ``report`` (the content of ``report.json``), ``out``."""

    out: pathlib.Path
    model: pathlib.Path
    files: dict
    report: dict


def _log_to(progress):
    def log(msg):
        if progress:
            print(f"[adapt {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    return log


def adapt(noise, out, speech=None, model="student", target="edgetpu", progress=True,
          **settings) -> AdaptResult:
    """Fine-tune a CRUSE model to the noise in ``noise`` and export it (module docstring).

    Args:
        noise: folder of recordings of the noise (``.wav``/``.flac``, any rate and channel
            count: resampled to 16 kHz mono), or one file; at least a few seconds in total.
        out: output folder (resumable: the same call continues an interrupted run).
        speech: folder of clean speech, or None for the built-in corpus's (docs/ADAPT.md measures
            what this choice costs).
        model: ``"student"`` (the shipped 62 k student), a Keras CRUSE model (not modified), a
            ``.keras``/``.h5`` file, or a folder: a recipe run (``models/two_step.keras``) or an
            earlier adaptation (``adapted.keras``). Its norm must export to int8 (``frame_ln``).
        target: ``"edgetpu"`` (float32 + int8 streaming files, Edge TPU check) or ``"micro"``
            (also the TFLite Micro artefacts of the int8 file).
        progress: log lines and one line per epoch.
        **settings: fields of :class:`AdaptConfig` (``minutes``, ``guard``, ``gamma``, ...).
    Returns:
        :class:`AdaptResult`.
    Raises:
        DataError / AudioError: unusable noise or speech (one line naming the file or folder);
        ValueError: bad settings, a model that is not a CRUSE model, or ``out`` holding an
        adaptation with other settings.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    cfg = AdaptConfig(**settings)
    log = _log_to(progress)
    out = pathlib.Path(out)
    t0, c0 = time.time(), time.process_time()
    timings = {}

    def stage(name, fn, *args):
        s0, sc = time.time(), time.process_time()
        value = fn(*args)
        timings[name] = {"wall_s": round(time.time() - s0, 1),
                         "cpu_s": round(time.process_time() - sc, 1)}
        return value

    from tinyse_tf.data.holdout import load_noise, split_noise

    # Before anything is written or TensorFlow imported: a bad or too short noise stops here.
    audio = load_noise(noise)
    split = split_noise(audio, cfg.holdout_fraction)
    speech_files = _speech_split(speech) if speech is not None else None
    record = {"config": dataclasses.asdict(cfg),
              "noise": {"path": str(pathlib.Path(noise).absolute()),
                        "files": [[p.name, p.stat().st_size] for p in audio]},
              "speech": None if speech is None else str(pathlib.Path(speech).absolute())}
    _check_settings(out / "settings.json", record, write=False)
    start, start_id = _start_model(model)
    _config(start)
    _check_settings(out / "start.json", start_id, write=False)
    data = stage("data", _Data, audio, split, speech_files, cfg, out, log)
    _check_settings(out / "settings.json", record)  # once the inputs are known to be usable
    _check_settings(out / "start.json", start_id)
    adapted = stage("train", _train, start, data, cfg, out, log, progress)
    files = stage("export", _export, adapted, data, cfg, out, target, log)
    report = stage("report", _report, start, adapted, files, data, cfg, out, log)
    timings["total"] = {"wall_s": round(time.time() - t0, 1),
                        "cpu_s": round(time.process_time() - c0, 1)}
    atomic_write_json(out / "timings.json", timings)
    log(f"done in {timings['total']['wall_s'] / 60:.1f} min wall "
        f"({timings['total']['cpu_s'] / 60:.1f} min CPU); report: {out / 'report.md'}")
    return AdaptResult(out, out / "adapted.keras", files, report)


# --------------------------------------------------------------------------- settings, model
def _check_settings(path: pathlib.Path, record: dict, write: bool = True) -> None:
    """Refuse (ValueError) an output folder whose ``path`` holds another record; else write it."""
    record = json.loads(json.dumps(record))
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != record:
            keys = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
            raise ValueError(f"{path.parent} holds an adaptation with other settings "
                             f"({', '.join(keys)} differ in {path.name}); pass the same options, "
                             "choose another output folder or delete it")
    elif write:
        atomic_write_json(path, record)


def _start_model(model):
    """``(Keras model, identity)`` of the ``model`` argument of :func:`adapt`."""
    from tinyse_tf._tf import keras

    if isinstance(model, keras.Model):
        return model, {"keras": model.name, "weights_sha1": _weights_sha1(model)}
    from tinyse_tf.shipped import pretrained, shipped_models

    name = str(model)
    if name in shipped_models() and not pathlib.Path(name).exists():
        return pretrained(name), {"shipped": name}
    path = pathlib.Path(name)
    if path.is_dir():
        found = [p for p in (path / "adapted.keras", path / "models" / "two_step.keras")
                 if p.is_file()]
        if not found:
            raise ValueError(f"{path}: a folder without adapted.keras or models/two_step.keras; "
                             "give a recipe run folder, an adaptation folder or a .keras file")
        path = found[0]
    if not path.is_file():
        raise ValueError(f"{path}: no such model; give 'student' (the shipped model), a .keras "
                         "or .h5 file, or a run folder")
    try:
        import tinyse_tf.models  # noqa: F401  (registers the custom layers)

        loaded = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file
        raise ValueError(f"{path}: not a loadable Keras model ({type(err).__name__}); give a "
                         ".keras or .h5 file saved by tinyse_tf") from None
    return loaded, {"file": str(path.absolute()), "weights_sha1": _weights_sha1(loaded)}


def _weights_sha1(model) -> str:
    digest = hashlib.sha1()
    for w in model.get_weights():
        digest.update(w.tobytes())
    return digest.hexdigest()


def _config(model):
    """The CruseConfig of the start; ValueError (one line) if it is not a CRUSE model or its norm
    does not export to int8 (checked before training, not after)."""
    from tinyse_tf.models import config_from_model
    from tinyse_tf.models.config import check_int8_exportable

    try:
        cfg = config_from_model(model)
    except Exception as err:
        raise ValueError(f"model {model.name!r} is not a tinyse_tf CRUSE model "
                         f"({type(err).__name__}); give one built with tinyse_tf.build_cruse") \
            from None
    check_int8_exportable(cfg)
    return cfg


def _copy(model, name):
    """A float32 copy of a CRUSE ``model`` (same weights), so the start is never modified."""
    from tinyse_tf.models import build_cruse

    clone = build_cruse(_config(model), name=name)
    clone.set_weights(model.get_weights())
    return clone


# --------------------------------------------------------------------------- data
class _Data:
    """The user's noise (``{path: [n]}`` and its ``NoiseSplit``) and speech files prepared, and
    the built-in corpus."""

    def __init__(self, audio, split, speech_files, cfg: AdaptConfig, out: pathlib.Path, log):
        from tinyse_tf.data import Corpus, build_corpus, prepare_corpus
        from tinyse_tf.data.builtin import CORPUS_SIZES
        from tinyse_tf.data.holdout import segment_audio

        self.split = split
        log(self.split.describe())
        self.train_noise = [segment_audio(s, audio) for s in self.split.train]
        self.held_out_noise = [segment_audio(s, audio) for s in self.split.held_out]
        self.speech_files = speech_files  # {"train", "valid"} of a speech folder, or None
        log("built-in corpus: finding it (built and prepared once per user, about a minute)")
        builtin = build_corpus(None, seed=cfg.seed, progress=False, **CORPUS_SIZES["default"])
        self.builtin_corpus = builtin
        self.builtin = prepare_corpus(builtin, pathlib.Path(f"{builtin.root}-prepared"),
                                      progress=False)
        folder = out / "work" / "noise"
        noise_files = {part: _write_segments(folder / part, segs)
                       for part, segs in (("train", self.train_noise),
                                          ("valid", self.held_out_noise))}
        speech_files = self.speech_files or {"train": [], "valid": []}
        corpus = Corpus(speech={**speech_files, "test": []},
                        noise={**noise_files, "test": []}, manifest={"kind": "adaptation"})
        self.user = prepare_corpus(corpus, out / "work" / "data", progress=False)

    def speech(self, split):
        """Speech shards of ``split`` (train / valid): the given folder's, else built-in."""
        source = self.user if self.speech_files else self.builtin
        return source.split(split)[0]

    def dataset(self, split, cfg: AdaptConfig, seed_offset: int, start_batch: int = 0):
        """Training stream (``general_share`` from the built-in corpus) or the validation set
        (held-out noise, half the clips' noise built-in: selection must not forget)."""
        from tinyse_tf.data import mixture_dataset

        share = cfg.general_share if split == "train" else 0.5
        extra = (self.builtin.split(split)[0], self.builtin.split(split)[1], share) if share \
            else None
        return mixture_dataset(self.speech(split), self.user.split(split)[1],
                               clip_seconds=cfg.clip_seconds, batch_size=cfg.batch_size,
                               snr_range=cfg.snr_range, seed=cfg.seed + seed_offset, extra=extra,
                               start_batch=start_batch)

    def report_speech(self):
        """Speech files of the report's held-out-noise mixtures: the given folder's held-out
        files, else the built-in test split (heard neither in training nor in selection)."""
        if self.speech_files:
            return self.speech_files["valid"]
        return self.builtin_corpus.split("test")[0]


def _speech_split(folder) -> dict:
    """``{"train", "valid"}`` files of a speech folder: one file in ten held out (at least one)."""
    from tinyse_tf.data import DataError, list_audio
    from tinyse_tf.data.audio_io import usable_files

    files = list_audio(folder)
    if len(files) < 2:
        raise DataError(f"{folder}: {len(files)} .wav/.flac files; adaptation needs at least 2 "
                        "speech recordings (one is held out), or omit the speech folder to use "
                        "the built-in corpus")
    files = usable_files(files, what=str(folder))
    held = files[9::10] or files[-1:]
    return {"train": [f for f in files if f not in held], "valid": held}


def _write_segments(folder: pathlib.Path, segments) -> list:
    from tinyse_tf.data import write_audio

    paths = []
    for i, audio in enumerate(segments):
        path = folder / f"{i:04d}.wav"
        if not path.exists():
            write_audio(path, audio, subtype="FLOAT")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- training
def _train(start, data: _Data, cfg: AdaptConfig, out: pathlib.Path, log, progress):
    from tinyse_tf._tf import keras
    from tinyse_tf.distill import Distiller
    from tinyse_tf.training import KeepBest, WallBudget, fit_resumable

    path = out / "adapted.keras"
    if path.exists():
        log(f"training: done already ({path})")
        return keras.models.load_model(path, compile=False)
    student = _copy(start, "adapted")
    teacher, granularity = None, "tf"
    if cfg.guard in ("output", "gtf"):
        teacher, granularity = _copy(start, "start"), ("output" if cfg.guard == "output" else "tf")
    elif cfg.guard == "teacher":
        from tinyse_tf.shipped import pretrained

        teacher = pretrained("teacher")
    distiller = Distiller(student, teacher, gamma=cfg.gamma, kd_granularity=granularity)
    distiller.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
    workdir = out / "work" / "train"
    valid = data.dataset("valid", cfg, 1)
    if not (workdir / "best.json").exists():  # the start competes with every epoch
        value = distiller.evaluate(valid, steps=cfg.validation_steps, verbose=0,
                                   return_dict=True)["si_sdr"]
        workdir.mkdir(parents=True, exist_ok=True)
        with atomic_path(workdir / "best.h5") as tmp:
            student.save_weights(tmp)
        atomic_write_json(workdir / "best.json", {"epoch": 0, "val_si_sdr": float(value)})
        log(f"start: validation SI-SDR {value:.2f} dB")
    keep = KeepBest(student, workdir)
    budget = WallBudget(cfg.minutes * 60, log=log)
    log(f"fine-tuning for {cfg.minutes:g} min (guard {cfg.guard}, gamma {cfg.gamma:g}, "
        f"{cfg.general_share:.0%} built-in clips, Adam {cfg.learning_rate:g})")
    fit_resumable(distiller, lambda start: data.dataset("train", cfg, 0, start), epochs=100_000,
                  steps_per_epoch=cfg.steps_per_epoch, workdir=workdir, callbacks=[budget, keep],
                  validation_data=valid, validation_steps=cfg.validation_steps,
                  verbose=2 if progress else 0, log=log)
    student.load_weights(keep.path)
    log(f"keeping epoch {keep.best['epoch']} (validation SI-SDR {keep.best['val_si_sdr']:.2f} dB"
        f"{'; 0 = the start' if keep.best['epoch'] == 0 else ''})")
    with atomic_path(path) as tmp:
        student.save(tmp)
    return student


# --------------------------------------------------------------------------- export
def _export(model, data: _Data, cfg: AdaptConfig, out: pathlib.Path, target: str, log) -> dict:
    from tinyse_tf.export.calibration import noisy_mixtures
    from tinyse_tf.export.edgetpu_check import check_model
    from tinyse_tf.export.quantize import export_model

    folder, done = out / "export", out / "export" / "adapted.done.json"
    if done.exists():
        files = {k: pathlib.Path(v) for k, v in json.loads(done.read_text()).items()}
    else:
        speech = data.speech_files["train"] if data.speech_files else \
            data.builtin_corpus.split("valid")[0]
        calibration = [n for n, _ in noisy_mixtures(speech, data.train_noise, n_clips=8,
                                                    seed=cfg.seed)]
        files = export_model(model, folder, "adapted", int8=("ptq",),
                             representative_audio=calibration, seed=cfg.seed)
        atomic_write_json(done, {k: str(v) for k, v in files.items()})
    check = check_model(files["int8_ptq"])
    log(f"exported {', '.join(p.name for p in files.values())}; Edge TPU check: "
        f"{'ok' if check.ok else 'FAILS'} ({check.cpu_op_count} of {check.op_count} ops on the CPU)")
    if target == "micro":
        from tinyse_tf.export.micro import export_micro, micro_paths

        stem = files["int8_ptq"].stem
        if not all(p.exists() for p in micro_paths(folder, stem)):
            facts = export_micro(files["int8_ptq"], folder, stem)["facts"]
            log(f"TFLite Micro: {stem}_model_data.cc (flash {facts['flash_bytes']:,} B, arena "
                f"{facts['arena_bytes']:,} B)")
    return files


# --------------------------------------------------------------------------- report
def _report(start, adapted, files, data: _Data, cfg: AdaptConfig, out: pathlib.Path, log) -> dict:
    path = out / "report.json"
    if path.exists():
        return json.loads(path.read_text())
    from tinyse_tf.evaluation.paired import comparison_table, paired_difference
    from tinyse_tf.export.fidelity import mixtures_by_snr, score_enhancers
    from tinyse_tf.runtime import StreamingEnhancer
    from tinyse_tf.runtime.offline import enhance

    enhancers = {"start": lambda a: enhance(start, a), "adapted": lambda a: enhance(adapted, a),
                 "adapted int8": StreamingEnhancer(files["int8_ptq"]).enhance}
    builtin_test = data.builtin_corpus.split("test")
    sets = {"held-out noise": (data.report_speech(), data.held_out_noise),
            "built-in test clips": builtin_test}
    report = {"config": dataclasses.asdict(cfg), "split": data.split.describe(),
              "best": json.loads((out / "work" / "train" / "best.json").read_text()),
              "clips_per_snr": cfg.report_clips, "sets": {}}
    sections = []
    for name, (speech, noise) in sets.items():
        log(f"report: scoring {name} ({cfg.report_clips} mixtures per SNR)")
        pairs = mixtures_by_snr(speech, noise, cfg.report_snrs, n_clips=cfg.report_clips,
                                seconds=4.0, seed=cfg.seed)
        scores = score_enhancers(enhancers, pairs, metrics=("si_sdr", "pesq", "estoi"))
        report["sets"][name] = {
            "scores": {k: {str(s): v for s, v in per.items()} for k, per in scores.items()},
            "adapted_vs_start": {str(s): v for s, v in
                                 paired_difference(scores, "adapted", "start").items()},
            "int8_vs_float": {str(s): v for s, v in
                              paired_difference(scores, "adapted int8", "adapted").items()}}
        sections.append(f"## {name}\n\n{comparison_table(scores, 'start')}")
    held = ("the held-out noise also chose the epoch kept (with other speech); "
            "docs/ADAPT.md measures on noise neither saw")
    best = report["best"]
    atomic_write_text(out / "report.md", "\n".join([
        "# Adaptation report", "",
        f"{report['split']}; {held}. Kept epoch {best['epoch']} (0 = the start). Improvement over "
        f"the noisy input, mean over {cfg.report_clips} mixtures (4 s) per input SNR; the "
        "difference rows: mean ± standard error, paired clip by clip. 'adapted int8' is the "
        "exported int8 streaming file run frame by frame.", "", "\n\n".join(sections), ""]))
    atomic_write_json(path, report)
    return report


# ``tinyse_tf.adapt`` is this function even after ``import tinyse_tf.adapt`` (which makes the
# package attribute this module): calling the module calls ``adapt``.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__all__ = ["GUARDS", "TARGETS", "AdaptConfig", "AdaptResult", "adapt"]
