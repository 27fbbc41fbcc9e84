"""Two-step KD end to end: data -> teacher -> students -> evaluation -> report.

The students (``cfg.students``) are the baseline (PSA only), one-step and two-step KD students,
all from the same initial weights for the same number of steps; the flagship preset trains the
baseline and the two-step student only.

Stages write into ``--out`` and are skipped when their output exists, and training stages resume
from their last epoch checkpoint, so rerunning the same command after an interruption continues
where it stopped. Layout of ``--out``::

    config.json            the RecipeConfig and data sources of this run
    testsets/              fixed test sets as wav pairs (snr_-5, snr_0, snr_5, mixed)
    models/                teacher.keras, student_init.h5, student.keras, one_step.keras, ...
    train/<stage>/         checkpoints, history.csv, TensorBoard logs
    enhanced/<model>/      enhanced test files
    eval/<model>.json      per-file metrics (int8 rows: all but DNSMOS, see without_dnsmos)
    report/                report.md, report.json, PNG plots
"""
import argparse
import contextlib
import dataclasses
import json
import pathlib
import sys
import time

from tinyse_tf.atomic import atomic_path, atomic_write_json
from tinyse_tf.data.mixing import SNR_MEASURES
from tinyse_tf.recipe.command import config_overrides
from tinyse_tf.recipe.presets import (LEGACY_VALUES, PRESETS, SPEED_CHOICES, get_preset,
                                      speed_settings)

#: (stage key, report row name) of the models compared, in table order.
MODELS = (("teacher", "teacher"), ("student", "student"), ("one_step", "one-step KD"),
          ("two_step", "two-step KD"))


def without_dnsmos(metrics):
    """``metrics`` less DNSMOS: what the int8 rows are scored with.

    DNSMOS is most of the scoring time (a 4 s test clip: 4 windows of 0.3-0.6 s of one core,
    against about 0.5 s for SI-SDR, SDR, PESQ and eSTOI together). An int8 row is there to show
    what quantisation costs against its float row, which the reference-based metrics measure on
    the same files; DNSMOS stays on the noisy input and the float rows, which compare methods.
    """
    return tuple(m for m in metrics if m != "dnsmos")


def log(msg):
    """Print one time-stamped line of the recipe's log (stdout, flushed)."""
    print(f"[two_step {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _save_model(model, path):
    """Keras save through a temp name, so an existing file is always complete."""
    with atomic_path(path) as tmp:
        model.save(tmp)


class Run:
    """One recipe run in an output folder."""

    def __init__(self, cfg, out, speech_dir=None, noise_dir=None, data_dir=None,
                 teacher_checkpoint=None, verbose=1, strategy="default", jit="auto",
                 mixed_precision="auto", int8_check_dirs=None):
        from tinyse_tf._tf import keras
        from tinyse_tf.training import make_strategy, worker_id

        self.cfg, self.out = cfg, pathlib.Path(out)
        # Execution only (not in config.json): results agree to float rounding either way.
        self.speed = speed_settings(jit, mixed_precision,
                                    steps=cfg.student_epochs * cfg.steps_per_epoch)
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if self.speed["mixed_precision"] else "float32")
        self.strategy = make_strategy(strategy)
        self.is_chief = worker_id(self.strategy) is None
        self.speech_dir, self.noise_dir, self.data_dir = speech_dir, noise_dir, data_dir
        self.teacher_checkpoint = teacher_checkpoint
        self.verbose = verbose
        self.models_dir = self.out / "models"
        # Seconds per stage, kept from earlier invocations in this folder: a resumed or repeated
        # run skips finished stages, and timings.json / the report still show what they took.
        self.timings = _stage_timings(self.out / "timings.json")
        self.edgetpu = {}  # .tflite name -> Edge TPU check (and compiler) result
        # (speech files, noise files) of real recordings for the int8 check, besides the
        # validation split; execution only, like the speed settings. Listed (and checked) now,
        # so that an unusable folder fails before training.
        self.int8_check_files = _int8_check_files(*int8_check_dirs) if int8_check_dirs else None
        self.int8_check = {}  # model key -> {set name: int8 - float per SNR}
        self._noisy_values = {}  # (id, snr label) -> metrics of the noisy input
        self._pool = None  # the ScoringPool of `scoring()`, while it is open
        self.extra_data = None  # prepared built-in corpus, with cfg.builtin_weight and folders
        self.augmentation = None  # tinyse_tf.data.augment.Augmentation, if the config has one

    # ------------------------------------------------------------------ data
    def prepare_data(self):
        from tinyse_tf.data import (CORPUS_SIZES, build_corpus, load_test_set, prepare_corpus,
                                    prepare_data, write_test_sets)

        # Training streams int16 shards written once (<out>/data unless --data-dir names them).
        if self.speech_dir or self.noise_dir:
            if not (self.speech_dir and self.noise_dir):
                raise ValueError("--speech-dir and --noise-dir go together: give both folders")
            self.data = prepare_data(self.speech_dir, self.noise_dir,
                                     self.data_dir or self.out / "data", seed=self.cfg.seed,
                                     progress=bool(self.verbose))
            if self.cfg.builtin_weight > 0:  # a share of the training clips: built-in corpus
                builtin = build_corpus(None, seed=self.cfg.seed, progress=bool(self.verbose),
                                       **CORPUS_SIZES[self.cfg.corpus_size])
                self.extra_data = prepare_corpus(builtin, self.out / "builtin-data",
                                                 progress=bool(self.verbose))
        else:
            if self.cfg.builtin_weight > 0:
                raise ValueError("this configuration mixes recordings with the built-in corpus "
                                 f"(builtin_weight {self.cfg.builtin_weight}): give --speech-dir "
                                 "and --noise-dir, folders of clean speech and of noise")
            corpus = build_corpus(self.data_dir, seed=self.cfg.seed, progress=bool(self.verbose),
                                  **CORPUS_SIZES[self.cfg.corpus_size])
            self.data = prepare_corpus(corpus, self.out / "data", progress=bool(self.verbose))
        if self.cfg.augmented:
            from tinyse_tf.data.augment import PROBABILITIES, Augmentation, room_impulse_responses

            rirs = (room_impulse_responses(seed=self.cfg.seed, cache_dir=self.out / "augment",
                                           progress=bool(self.verbose))
                    if self.cfg.reverb_prob > 0 else None)
            self.augmentation = Augmentation(
                rirs, **{name: getattr(self.cfg, name) for name in PROBABILITIES})
        corpus = self.corpus = self.data.corpus  # source files: test sets, int8 calibration
        speech, noise = corpus.split("test")
        write_test_sets(speech[:self.cfg.test_clips], noise, self.out / "testsets",
                        snrs=self.cfg.test_snrs, seed=self.cfg.seed,
                        clip_seconds=self.cfg.test_clip_seconds, progress=bool(self.verbose))
        self.test_items = load_test_set(self.out / "testsets")
        counts = corpus.counts()
        log(f"data: {counts}; {len(self.test_items)} test files")
        return counts

    def dataset(self, split, seed_offset, repeat=True, seed=None, snr_measure=None,
                start_batch=0):
        """The run's ``(noisy [b, n], clean [b, n])`` batches of ``split`` ("train", "valid"),
        seeded by the config's seed (or ``seed``) + ``seed_offset``: the training stream
        (with the built-in share and augmentation; from batch ``start_batch`` on) or the
        validation stream every stage scores."""
        from tinyse_tf.data import mixture_dataset, worker_input_context

        seed = self.cfg.seed if seed is None else seed
        # The built-in share and the augmentation are for training; validation stays as recorded,
        # but half its noise clips come from the built-in validation noises when there are some:
        # a folder's validation split may hold a single noise recording (../shared/audio: one
        # piece of music), too narrow to select checkpoints on.
        train = split == "train" and repeat
        extra = None
        if self.extra_data and train:
            extra = (*self.extra_data.split(split), self.cfg.builtin_weight)
        elif self.extra_data and split == "valid":
            extra = (self.data.split(split)[0], self.extra_data.split(split)[1], 0.5)
        # Multi-worker runs: each worker streams its own share of the speech shards.
        return mixture_dataset(*self.data.split(split), clip_seconds=self.cfg.clip_seconds,
                               batch_size=self.cfg.batch_size, snr_range=self.cfg.snr_range,
                               seed=seed + seed_offset, repeat=repeat,
                               input_context=worker_input_context(self.strategy), extra=extra,
                               augmentation=self.augmentation if train else None,
                               snr_measure=snr_measure or self.cfg.snr_measure,
                               start_batch=start_batch)

    # ------------------------------------------------------------------ training
    def _train(self, stage, build_student, teacher=None, gamma=0.0, callbacks=(), epochs=None,
               kd_granularity=None, seed=None, kd_reduction=None, first_eligible_epoch=0,
               snr_measure=None):
        """Train (or load, when done) one model; ``build_student`` runs inside the strategy scope.

        ``kd_granularity``, ``kd_reduction``, ``seed`` (of the training stream) and
        ``snr_measure`` (of its mixtures, training and validation) default to the config's;
        ``kd_normalize`` and ``kd_layers`` are the config's. With ``cfg.keep == "best"`` the
        stage keeps the weights of its best epoch by validation SI-SDR from
        ``first_eligible_epoch`` (0-based) on."""
        from tinyse_tf._tf import keras
        from tinyse_tf.distill import Distiller
        from tinyse_tf.models import float32_copy
        from tinyse_tf.training import AverageWeights, KeepBest, fit_resumable

        path = self.models_dir / f"{stage}.keras"
        if path.exists():
            log(f"{stage}: done already ({path})")
            with self.strategy.scope():
                return keras.models.load_model(path)
        t0 = time.time()
        with self.strategy.scope():
            student = build_student()
            distiller = Distiller(student, teacher, gamma=gamma,
                                  kd_granularity=kd_granularity or self.cfg.kd_granularity,
                                  kd_reduction=kd_reduction or self.cfg.kd_reduction,
                                  kd_normalize=self.cfg.kd_normalize,
                                  kd_layers=self.cfg.kd_layers or None)
            jit = self.speed["jit_teacher" if stage == "teacher" else
                             "jit_kd" if teacher is not None else "jit_student"]
            epochs = epochs or self.cfg.student_epochs
            distiller.compile(optimizer=keras.optimizers.Adam(self._learning_rate(epochs)),
                              jit_compile=jit)
        workdir = self.out / "train" / stage
        keep = average = None
        if self.cfg.keep == "best":
            keep = KeepBest(student, workdir, "val_si_sdr", first_eligible_epoch, self.is_chief)
            # The mean of the last fifth of the (eligible) epochs competes with the best epoch.
            average = AverageWeights(student, workdir, max(first_eligible_epoch,
                                                           epochs - max(1, epochs // 5)),
                                     self.is_chief)
        # Every stage sees the same training stream (seed), so students differ only by objective.
        data = dict(seed=seed, snr_measure=snr_measure)
        fit_resumable(distiller, lambda start: self.dataset("train", 0, start_batch=start, **data),
                      epochs=epochs, steps_per_epoch=self.cfg.steps_per_epoch,
                      workdir=workdir, callbacks=[*callbacks, *([keep, average] if keep else [])],
                      validation_data=self.dataset("valid", 1, **data),
                      validation_steps=self.cfg.validation_steps, verbose=self.verbose, log=log)
        if keep is not None and keep.best:
            self._keep_best_or_average(stage, distiller, keep, average, epochs, data)
        if self.speed["mixed_precision"]:  # saved and exported in float32
            student = float32_copy(student)
        if self.is_chief:
            _save_model(student, path)
        self.timings[f"train_{stage}_s"] = round(time.time() - t0, 1)
        log(f"{stage}: trained in {self.timings[f'train_{stage}_s']} s -> {path}")
        return student

    def _keep_best_or_average(self, stage, distiller, keep, average, epochs, data):
        """Load the better of the best epoch's weights and the average of the last epochs into
        the stage's student, by validation SI-SDR (the stream every epoch was scored on); the
        choice is recorded in ``train/<stage>/kept.json``."""
        student, kept = distiller.student, {"best": keep.best}
        if average.epochs:
            average.load_mean()
            logs = distiller.evaluate(self.dataset("valid", 1, **data),
                                      steps=self.cfg.validation_steps, return_dict=True, verbose=0)
            kept["average"] = {"epochs": list(average.epochs),
                               "val_si_sdr": float(logs["si_sdr"])}
        use_average = "average" in kept and \
            kept["average"]["val_si_sdr"] > keep.best["val_si_sdr"]
        kept["kept"] = "average" if use_average else "best"
        if not use_average:
            student.load_weights(keep.path)
        if self.is_chief:
            atomic_write_json(keep.path.with_name("kept.json"), kept)
        what = (f"the mean of epochs {kept['average']['epochs'][0]}-{kept['average']['epochs'][1]}"
                if use_average else f"epoch {keep.best['epoch']}")
        others = "; ".join(f"{k}: {v['val_si_sdr']:.2f} dB" for k, v in kept.items() if k != "kept")
        log(f"{stage}: keeping {what} of {epochs} by validation SI-SDR ({others})")

    def _learning_rate(self, epochs):
        """Adam's learning rate: the config's, constant or cosine-decayed to a tenth over the
        stage's steps (the step count is in the checkpoint, so a resumed stage continues it)."""
        from tinyse_tf._tf import keras

        if self.cfg.lr_schedule == "constant":
            return self.cfg.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            self.cfg.learning_rate, decay_steps=epochs * self.cfg.steps_per_epoch, alpha=0.1)

    def train_all(self):
        self.models_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        if not {"one_step", "two_step"} & set(cfg.students):
            teacher = None  # a baseline-only run (e.g. a probe's PSA-only reference) needs none
        elif self.teacher_checkpoint:
            with self.strategy.scope():
                teacher = _load_checkpoint(self.teacher_checkpoint, cfg)
            log(f"teacher: reusing {self.teacher_checkpoint}")
        else:
            teacher = self.train_teacher()
        student = self.student_builder(cfg.student, cfg.norm, cfg.seed, "student_init.h5")
        models = {"teacher": teacher} if teacher is not None else {}
        for method in cfg.students:
            stage = "student" if method == "baseline" else method
            models[stage] = self.train_student(stage, method, student, teacher)
        return models

    def train_student(self, stage, method, build, teacher, kd_granularity=None,
                      step1_epochs=None, seed=None, kd_reduction=None, snr_measure=None):
        """Train (or load) one student: ``method`` "baseline" (PSA only), "one_step" (PSA + KD
        with ``cfg.one_step_gamma``) or "two_step" (KD only for ``step1_epochs``, then PSA, the
        optimizer state reset at the switch if ``cfg.reset_optimizer``). ``kd_granularity``,
        ``kd_reduction``, ``step1_epochs``, ``seed`` and ``snr_measure`` default to the config's."""
        from tinyse_tf.distill import PhaseSwitch

        options = dict(kd_granularity=kd_granularity, seed=seed, kd_reduction=kd_reduction,
                       snr_measure=snr_measure)
        if method == "baseline":
            return self._train(stage, build, seed=seed, snr_measure=snr_measure)
        if method == "one_step":
            return self._train(stage, build, teacher, gamma=self.cfg.one_step_gamma, **options)
        step1 = step1_epochs or self.cfg.step1_epochs
        switch = PhaseSwitch(step1, reset_optimizer=self.cfg.reset_optimizer)
        return self._train(stage, build, teacher, gamma=1.0, callbacks=[switch],
                           first_eligible_epoch=step1, **options)

    def train_teacher(self):
        """Train (or load) the teacher: ``cfg.teacher`` preset, ``cfg.teacher_epochs`` epochs."""
        from tinyse_tf.models import build_cruse

        cfg = self.cfg
        return self._train("teacher", lambda: build_cruse(cfg.teacher, seed=cfg.seed, norm=cfg.norm),
                           epochs=cfg.teacher_epochs)

    def student_builder(self, preset, norm, seed, init_name):
        """A zero-argument builder of ``preset`` students that all start from the same weights,
        drawn with ``seed + 1`` once and kept in ``models/<init_name>``."""
        from tinyse_tf.models import build_cruse

        init = self.models_dir / init_name
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(init) as tmp:
                build_cruse(preset, seed=seed + 1, norm=norm).save_weights(tmp)

        def student():
            model = build_cruse(preset, norm=norm, name="student")
            model.load_weights(init)
            return model
        return student

    # ------------------------------------------------------------------ export
    def export_all(self, models):
        """Streaming float32 / int8 files of the baseline and two-step students, checked for the
        Edge TPU (and compiled when ``edgetpu_compiler`` is installed). Returns
        ``{row name: .tflite path}`` of the files to evaluate."""
        from tinyse_tf.models.config import Int8ExportError, check_int8_exportable
        from tinyse_tf.models import config_from_model

        int8 = tuple(self.cfg.int8)
        try:
            check_int8_exportable(config_from_model(models["student"]))
        except Int8ExportError as err:
            log(f"export: float32 only ({err})")
            int8 = ()
        files = {}
        for key, row in (("student", "student"), ("two_step", "two-step KD")):
            for kind, path in self.export(key, models[key], int8).items():
                files[f"{row} int8 {kind.split('_')[1].upper()}"] = path
        return files

    def export(self, key, model, int8, seed=None):
        """Streaming files of one model (cached in ``export/<key>.done.json``), each int8 file
        checked for the Edge TPU. Returns ``{"int8_ptq" | "int8_qat": path}``."""
        from tinyse_tf.export.calibration import noisy_mixtures
        from tinyse_tf.export.edgetpu_check import check_model, format_table
        from tinyse_tf.export.quantize import export_model

        seed = self.cfg.seed if seed is None else seed
        out, done = self.out / "export", self.out / "export" / f"{key}.done.json"
        if done.exists():
            paths = {k: pathlib.Path(v) for k, v in json.loads(done.read_text()).items()}
        else:
            t0 = time.time()
            speech, noise = self.corpus.split("valid")
            calibration = [n for n, _ in noisy_mixtures(speech, noise, n_clips=8, seed=seed)]
            qat_data = self.dataset("train", 2, seed=seed).take(self.cfg.qat_steps)
            paths = export_model(model, out, key, int8=int8, representative_audio=calibration,
                                 qat_dataset=qat_data, qat_steps=self.cfg.qat_steps, seed=seed)
            atomic_write_json(done, {k: str(v) for k, v in paths.items()})
            self.timings[f"export_{key}_s"] = round(time.time() - t0, 1)
        if len(paths) > 1:
            self.int8_check[key] = self.check_int8(key, paths, seed)
        files = {}
        for kind, path in paths.items():
            if kind == "float32":
                continue  # equals the Keras model to 1e-7 (tests/runtime/test_tflite.py)
            report = check_model(path)
            self.edgetpu[path.name] = {"ok": report.ok, "cpu_ops": report.cpu_op_count,
                                       "ops": report.op_count}
            log(f"Edge TPU check {path.name}: {'ok' if report.ok else 'FAILS'}\n"
                + format_table(report))
            self._compile_edgetpu(path)
            files[kind] = path
        return files

    @property
    def int8_check_clips(self):
        """Mixtures per SNR of the int8 check: 8, or fewer when the test set is smaller (smoke)."""
        return min(8, self.cfg.test_clips)

    def check_int8(self, key, paths, seed):
        """int8 - float32 of the streaming files, per input SNR (``cfg.test_snrs``), on mixtures
        of the validation split and, with ``int8_check_dirs``, of those real recordings; cached
        in ``export/<key>.int8_check.json``. Logs the table and one warning line per file over
        ``INT8_BUDGET``. Returns ``{set name: {"table", "gaps", "warnings"}}``."""
        from tinyse_tf.export.fidelity import int8_criterion, mixtures_by_snr

        path = self.out / "export" / f"{key}.int8_check.json"
        sets = {"validation split": self.corpus.split("valid")}
        if self.int8_check_files:
            sets["real recordings"] = self.int8_check_files
        result = json.loads(path.read_text()) if path.exists() else {}
        if not set(sets) <= set(result):
            t0 = time.time()
            files = {f"{key} {kind}": p for kind, p in paths.items()}
            result = {}
            for name, (speech, noise) in sets.items():
                pairs = mixtures_by_snr(speech, noise, self.cfg.test_snrs,
                                        n_clips=self.int8_check_clips, seconds=4.0, seed=seed)
                check = int8_criterion(files, pairs, f"{key} float32", where=f" on the {name}")
                result[name] = {k: check[k] for k in ("table", "gaps", "warnings")}
            atomic_write_json(path, result)
            self.timings[f"int8_check_{key}_s"] = round(time.time() - t0, 1)
        for name, check in result.items():
            log(f"int8 check {key}, {name} ({self.int8_check_clips} mixtures per SNR, "
                "StreamingEnhancer):\n"
                + check["table"])
            for line in check["warnings"]:
                log("WARNING: " + line)
        return result

    def _compile_edgetpu(self, path):
        """``edgetpu_compiler`` on one int8 file (package code: also from an installed wheel),
        into ``export/edgetpu/``; only the static check above when the compiler is absent."""
        from tinyse_tf.export.edgetpu import compile_model, find_compiler

        if find_compiler() is None:
            log(f"edgetpu_compiler not installed: {path.name} has the static check only "
                "(docs/EDGETPU.md says how to install the compiler)")
            return
        lines = []
        code = compile_model(path, path.parent / "edgetpu", echo=lines.append, prog="two_step")
        self.edgetpu[path.name]["compiler_exit"] = code
        log(f"edgetpu_compiler {path.name}: exit {code}\n" + "\n".join(lines)[-2000:])

    # ------------------------------------------------------------------ evaluation
    def _evaluate_one(self, key, row, enhance_fn, metrics=None):
        """Enhance every test file with ``enhance_fn`` (audio [n] -> [n]) and score it with
        ``metrics`` (default: the config's); cached in ``eval/<key>.json``."""
        from tinyse_tf.data import load_audio, write_audio
        from tinyse_tf.evaluation import evaluate_files

        eval_path = self.out / "eval" / f"{key}.json"
        if eval_path.exists():
            records = json.loads(eval_path.read_text())
        else:
            t0 = time.time()
            items = []
            for item in self.test_items:
                enhanced = self.out / "enhanced" / key / item["snr_label"] / f"{item['id']}.wav"
                if not enhanced.exists():
                    write_audio(enhanced, enhance_fn(load_audio(item["noisy_path"])))
                noisy = self._noisy_values.get((item["id"], item["snr_label"]))
                items.append({**item, "enhanced_path": str(enhanced),
                              **({"noisy_values": noisy} if noisy else {})})
            log(f"evaluating {row} on {len(items)} files")
            records = evaluate_files(items, metrics=metrics or self.cfg.metrics,
                                     progress=bool(self.verbose), pool=self._pool)
            atomic_write_json(eval_path, records)
            self.timings[f"eval_{key}_s"] = round(time.time() - t0, 1)
        self.remember_noisy(records)
        return records

    def remember_noisy(self, records):
        """Keep the noisy-input metrics of ``records``: every row scores the same noisy inputs,
        so later rows reuse these values instead of recomputing them (DNSMOS above all)."""
        for rec in records:
            key = (rec["id"], rec["snr_label"])
            if (not any(k.startswith("noisy.") or k == "input" for k in rec.get("errors", {}))
                    and len(rec["noisy"]) > len(self._noisy_values.get(key, {}))):
                self._noisy_values[key] = rec["noisy"]  # the one with the most metrics

    @contextlib.contextmanager
    def scoring(self):
        """Rows evaluated in the block share one ScoringPool: its worker processes start, and
        load DNSMOS, once rather than once per row. Each row is still saved when it is done."""
        from tinyse_tf.evaluation import ScoringPool

        with ScoringPool() as self._pool:
            try:
                yield
            finally:
                self._pool = None

    def evaluate(self, models, streaming_files):
        from tinyse_tf.data import load_audio
        from tinyse_tf.evaluation import write_report
        from tinyse_tf.runtime.offline import enhance
        from tinyse_tf.runtime import StreamingEnhancer

        with self.scoring():
            results = {row: self._evaluate_one(key, row, lambda a, m=models[key]: enhance(m, a))
                       for key, row in MODELS if key in models}
            for row, path in streaming_files.items():
                results[row] = self._evaluate_one(path.stem, row, StreamingEnhancer(path).enhance,
                                                  without_dnsmos(self.cfg.metrics))

        first = next(i for i in self.test_items if i["snr_label"] == "snr_0")
        two_step = self.out / "enhanced" / "two_step" / "snr_0" / f"{first['id']}.wav"
        spectrogram = {"noisy": load_audio(first["noisy_path"]), "enhanced": load_audio(two_step),
                       "clean": load_audio(first["clean_path"]),
                       "title": f"{first['id']} at 0 dB: noisy / two-step KD / clean"}
        checks = {f"{key}, {name}": c for key, sets in self.int8_check.items()
                  for name, c in sets.items()}
        clips = self.int8_check_clips
        section = "\n\n".join(f"**{where}** ({clips} mixtures per input SNR, not the test set)\n\n"
                                + c["table"] + "".join(f"\n\nWARNING: {w}" for w in c["warnings"])
                                for where, c in checks.items())
        files = write_report(results, self.out / "report", title="Two-step KD: results",
                             metadata=self.metadata(), spectrogram=spectrogram,
                             sections={"int8 files against their float32 file": section}
                             if checks else None)
        return results, files

    def metadata(self):
        from tinyse_tf.export.complexity import macs_per_frame
        from tinyse_tf.export.tflite_ops import MACS_RULE
        from tinyse_tf.models.complexity import count_params

        return {"config": dataclasses.asdict(self.cfg), "timings_s": self.timings,
                "speech_dir": self.speech_dir, "noise_dir": self.noise_dir,
                "params": {n: count_params(getattr(self.cfg, n)) for n in ("teacher", "student")},
                "macs_per_frame": {n: macs_per_frame(getattr(self.cfg, n))
                                   for n in ("teacher", "student")},
                "macs_rule": MACS_RULE, "edgetpu_check": self.edgetpu}


def _int8_check_files(speech_dir, noise_dir):
    """``(speech files, noise files)`` of the int8 check's folders; DataError (one line) when a
    folder is unusable."""
    from tinyse_tf.data import DataError, list_audio

    files = []
    for flag, folder in (("--int8-check-speech", speech_dir), ("--int8-check-noise", noise_dir)):
        files.append(list_audio(folder))
        if not files[-1]:
            raise DataError(f"{flag} {folder}: no .wav or .flac files; give a folder of "
                            "recordings (searched recursively)")
    return tuple(files)


def _load_checkpoint(path, cfg):
    """The teacher of ``--teacher-checkpoint``: a .keras file, the weights of a stage (``.h5``,
    e.g. ``train/teacher/best.h5``) built as the configuration's teacher preset and
    normalisation, or ``pretrained`` (the shipped teacher, when its ``build`` in models.json is
    that preset and normalisation)."""
    from tinyse_tf._tf import keras

    if str(path) == "pretrained":
        from tinyse_tf.shipped import pretrained, shipped_models

        build = shipped_models().get("teacher", {}).get("build")
        if build is None:
            raise ValueError("--teacher-checkpoint pretrained: the package ships no teacher "
                             "(none in tinyse_tf/shipped/models.json); train a teacher (omit "
                             "the option) or give a .keras file")
        if build != {"preset": cfg.teacher, "norm": cfg.norm}:
            raise ValueError(f"--teacher-checkpoint pretrained: the shipped teacher is preset "
                             f"{build['preset']!r} with norm {build['norm']!r} (its build in "
                             f"models.json), this run's is {cfg.teacher!r} with {cfg.norm!r}; "
                             f"pass --teacher {build['preset']} --norm {build['norm']}, train a "
                             "teacher (omit the option) or give a .keras file")
        return pretrained("teacher")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--teacher-checkpoint {path}: no such file; give a .keras model "
                                f"saved by a previous run (models/teacher.keras)")
    if path.suffix == ".h5":
        from tinyse_tf.models import build_cruse

        teacher = build_cruse(cfg.teacher, norm=cfg.norm, name="teacher")
        try:
            teacher.load_weights(path)
        except Exception as err:  # h5py / Keras raise many types for a bad or mismatched file
            raise ValueError(f"--teacher-checkpoint {path}: not the weights of a {cfg.teacher!r} "
                             f"model with norm {cfg.norm!r} ({type(err).__name__}); pass the "
                             "--teacher and --norm it was trained with") from err
        return teacher
    import tinyse_tf.models  # noqa: F401  registers the custom layers a .keras file names

    try:
        return keras.models.load_model(path)
    except Exception as err:  # Keras raises many types for a bad file; report one line
        raise ValueError(f"--teacher-checkpoint {path}: not a loadable Keras model "
                         f"({type(err).__name__}); give a .keras file from models/") from err


def _stage_timings(path) -> dict:
    """The per-stage seconds of an earlier ``timings.json`` (not its ``total_s``); {} if none."""
    try:
        return {k: v for k, v in json.loads(pathlib.Path(path).read_text()).items()
                if k != "total_s"}
    except (OSError, ValueError, AttributeError):
        return {}


def _comma_list(text):
    """``--kd-layers`` / ``--int8`` value: comma-separated names (checked by RecipeConfig)."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _int8_kinds(text):
    """``--int8`` value: comma-separated kinds, or ``none`` (checked by RecipeConfig)."""
    return () if text.strip() == "none" else _comma_list(text)


def parse_args(argv=None, prog="two_step.py"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train teacher, baseline student, one-step and two-step KD students on the "
                    "same data and initialisation, evaluate them and write a report.")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS),
                   help="smoke (CI, ~2 min), demo (default, ~30 min on 2 CPU cores), paper (GPU)")
    p.add_argument("--out", help="run folder (default runs/<preset>)")
    p.add_argument("--speech-dir", help="folder tree of clean speech wav/flac (default: built-in)")
    p.add_argument("--noise-dir", help="folder tree of noise wav/flac (default: built-in)")
    p.add_argument("--data-dir",
                   help="built-in corpus: where it is cached (default: user cache); with "
                        "--speech-dir/--noise-dir: their prepared shards (`tinyse prepare-data "
                        "-o`), written there if missing (default: <out>/data)")
    p.add_argument("--student", help="student preset (student, student_30k, student_240k, ...)")
    p.add_argument("--teacher", help="teacher preset (teacher = the paper's 1.9 M, or a smaller "
                                     "CRUSE such as student_350k)")
    p.add_argument("--teacher-checkpoint", metavar="FILE|pretrained",
                   help="reuse a trained teacher: a .keras file, a stage's weights (.h5, e.g. "
                        "RUN/train/teacher/best.h5, built as --teacher), or 'pretrained' for the "
                        "shipped one (tinyse_tf.pretrained('teacher'))")
    p.add_argument("--students", type=_comma_list, metavar="METHOD,...",
                   help="students to train: baseline,one_step,two_step (default: all three; "
                        "the report needs baseline and two_step, fewer only with --stop-after "
                        "students)")
    p.add_argument("--teacher-epochs", type=int, help="epochs of the teacher (default: preset's)")
    p.add_argument("--student-epochs", type=int, help="epochs of each student (default: preset's)")
    p.add_argument("--step1-epochs", type=int,
                   help="of those, the two-step student's KD-only epochs (default: preset's)")
    p.add_argument("--learning-rate", type=float, metavar="LR",
                   help="Adam's (peak) learning rate of every stage (default: preset's)")
    p.add_argument("--batch-size", type=int, help="training clips per step (default: preset's)")
    p.add_argument("--clip-seconds", type=float, help="training clip length (default: preset's)")
    p.add_argument("--steps-per-epoch", type=int,
                   help="training steps per epoch (default: preset's); with --batch-size and "
                        "--clip-seconds it sets the audio each epoch sees")
    p.add_argument("--snr-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="SNR range of the training and validation mixtures, dB, drawn uniformly "
                        "(default: preset's, -5 15); test sets keep their fixed SNRs")
    p.add_argument("--kd-granularity", choices=("tf", "t", "f", "batch", "output"))
    p.add_argument("--kd-reduction", choices=("mean", "sum"),
                   help="G_tf KD over bins: mean (default) or sum, the paper's literal "
                        "(1/b^2)·Σ (docs/DESIGN.md, B.5)")
    p.add_argument("--kd-normalize", action=argparse.BooleanOptionalAction,
                   help="L2-normalise each Gram row before the difference (default: on)")
    p.add_argument("--kd-layers", type=_comma_list, metavar="NAME,...",
                   help="blocks to distil, e.g. enc_1,bottleneck,mask (default: all 9; "
                        "'mask' for --kd-granularity output)")
    p.add_argument("--reset-optimizer", action=argparse.BooleanOptionalAction,
                   help="two-step: zero the Adam state when step 2 starts (default: keep it)")
    p.add_argument("--snr-measure", choices=SNR_MEASURES,
                   help="SNR of the training mixtures: energy (default) or the paper's BS.1770 "
                        "loudness (LUFS); test sets stay at energy SNR")
    p.add_argument("--builtin-weight", type=float, metavar="SHARE",
                   help="with --speech-dir/--noise-dir: the share of training speech clips, and of "
                        "noise clips, drawn from the built-in corpus (default: preset's)")
    p.add_argument("--noise-speed-prob", type=float, metavar="P",
                   help="the share of training noise clips played 0.71-1.41x as fast, which moves "
                        "their spectrum (default: preset's)")
    p.add_argument("--noise-mix-prob", type=float, metavar="P",
                   help="the share of training noise clips with a second noise added, 0-10 dB "
                        "weaker (default: preset's)")
    p.add_argument("--norm", choices=("cln", "frame_ln", "batch", "none"),
                   help="normalisation of every model (cln = paper; frame_ln for int8)")
    p.add_argument("--seed", type=int)
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute strategy: mirrored = all local GPUs; multiworker = the "
                        "cluster in TF_CONFIG (run the same command on every worker)")
    p.add_argument("--jit", default="auto", choices=SPEED_CHOICES,
                   help="XLA-compile the training step (auto: the PSA-only stages without a GPU)")
    p.add_argument("--mixed-precision", default="auto", choices=SPEED_CHOICES,
                   help="float16 compute, float32 variables and losses (auto: on with a GPU)")
    p.add_argument("--int8", type=_int8_kinds, metavar="KIND,...",
                   help="int8 streaming files to export: ptq (default), qat, ptq,qat or none "
                        "(float32 only); QAT fine-tunes the weights (docs/RESULTS.md section 8)")
    p.add_argument("--int8-check-speech", metavar="DIR",
                   help="real speech recordings for the export stage's int8 check (with "
                        "--int8-check-noise): int8 - float32 per input SNR is reported on "
                        "mixtures of these as well as of the validation split")
    p.add_argument("--int8-check-noise", metavar="DIR", help="real noise recordings, see above")
    p.add_argument("--stop-after", choices=("teacher", "students"),
                   help="stop once the teacher (e.g. for learning curves) or the students are "
                        "trained (e.g. a KD probe scored on validation); rerun without it, same "
                        "options, to continue the run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def _resolved(**paths):
    """``{name: absolute path}`` of the given data and checkpoint paths (None and the shipped
    teacher's name ``pretrained`` as they are): what ``config.json`` records and compares."""
    return {k: v if v in (None, "pretrained") else str(pathlib.Path(v).resolve())
            for k, v in paths.items()}


def open_run(preset, cfg, out, speech_dir=None, noise_dir=None, data_dir=None,
             teacher_checkpoint=None, verbose=1, strategy="default", jit="auto",
             mixed_precision="auto", int8_check_dirs=None):
    """A :class:`Run` in ``out`` with its data prepared, seeded and deterministic.

    ``out/config.json`` records the configuration and data sources; a folder that holds another
    configuration is refused (ValueError), so the recipe and the experiment grid can share one.
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    record = {"preset": preset, **dataclasses.asdict(cfg), **_resolved(
        speech_dir=speech_dir, noise_dir=noise_dir, teacher_checkpoint=teacher_checkpoint)}
    if config_path.exists():
        # A folder written before a field existed ran with its LEGACY_VALUES; a folder given as a
        # relative path then and an absolute one now (or the other way) is the same folder.
        previous = {**json.loads(json.dumps(LEGACY_VALUES)), **json.loads(config_path.read_text())}
        previous.update(_resolved(**{k: previous.get(k) for k in
                                     ("speech_dir", "noise_dir", "teacher_checkpoint")}))
        now = json.loads(json.dumps(record))
        # Which students to train adds or leaves out stages without changing any: not compared.
        previous["students"] = now["students"]
        if previous != now:
            fields = ", ".join(f"{k} (there {previous.get(k)!r}, now {now.get(k)!r})"
                               for k in sorted(set(previous) | set(now))
                               if previous.get(k) != now.get(k))
            raise ValueError(f"{out} holds a run with another configuration: {fields}; pass the "
                             f"same options, use a new --out or delete {out}")
    from tinyse_tf._tf import keras, tf

    # Seeds flow from the config; deterministic kernels make two runs give the same metrics.
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    r = Run(cfg, out, speech_dir, noise_dir, data_dir, teacher_checkpoint, verbose=verbose,
            strategy=strategy, jit=jit, mixed_precision=mixed_precision,
            int8_check_dirs=int8_check_dirs)
    on_off = {True: "on", False: "off"}
    log(f"training on {r.speed['device']}: XLA {on_off[r.speed['jit_teacher']]} for the teacher, "
        f"{on_off[r.speed['jit_student']]} for the PSA-only student, "
        f"{on_off[r.speed['jit_kd']]} for the KD students; mixed precision "
        f"{on_off[r.speed['mixed_precision']]}")
    r.prepare_data()
    if r.is_chief:
        atomic_write_json(config_path, record)  # only once the data is usable, so a bad path can be fixed
    return r


def config_from_args(args):
    """The RecipeConfig of parsed arguments: the preset with the options given."""
    return get_preset(args.preset, **config_overrides(args))


def _int8_check_dirs(args):
    dirs = (args.int8_check_speech, args.int8_check_noise)
    if any(dirs) and not all(dirs):
        raise ValueError("give both --int8-check-speech and --int8-check-noise, or neither")
    return dirs if all(dirs) else None


def run(args):
    cfg = config_from_args(args)
    if args.stop_after != "students" and not {"baseline", "two_step"} <= set(cfg.students):
        raise ValueError(f"--students {','.join(cfg.students)}: the report compares the baseline "
                         "and the two-step student; train both, or add --stop-after students")
    out = pathlib.Path(args.out or f"runs/{args.preset}")
    t0 = time.time()
    r = open_run(args.preset, cfg, out, args.speech_dir, args.noise_dir, args.data_dir,
                 args.teacher_checkpoint, verbose=0 if args.quiet else 1, strategy=args.strategy,
                 jit=args.jit, mixed_precision=args.mixed_precision,
                 int8_check_dirs=_int8_check_dirs(args))
    if args.stop_after == "teacher":
        if not args.teacher_checkpoint:
            r.train_teacher()
        log(f"stopping after the teacher (--stop-after); {out / 'train' / 'teacher'} has its "
            "history.csv")
        return None
    models = r.train_all()
    if args.stop_after == "students":
        log(f"stopping after the students (--stop-after); their history.csv and best.json are in "
            f"{out / 'train'}")
        return None
    if not r.is_chief:
        log("worker done; the chief evaluates and writes the report")
        return None
    _, files = r.evaluate(models, r.export_all(models))
    total = time.time() - t0
    r.timings["total_s"] = round(total, 1)
    atomic_write_json(out / "timings.json", r.timings)
    print((out / "report" / "report.md").read_text())
    log(f"wall time {total / 60:.1f} min; report: {files['markdown']}")
    return files


def main(argv=None, prog="two_step.py"):
    """Run the recipe; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    args = parse_args(argv, prog)
    from tinyse_tf.data import AudioError, DataError

    try:
        run(args)
    except (DataError, AudioError, ValueError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
