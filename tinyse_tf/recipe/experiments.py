"""Experiment grid on top of the recipe: many students, one teacher, one fixed test set.

Every condition trains one student (or the teacher) in the same ``--out`` folder as a recipe
:class:`~tinyse_tf.recipe.two_step.Run`, so data, test set, teacher and the noisy-input metrics are
shared, and every per-file result is paired across conditions. Each condition writes
``models/<key>.keras`` and ``eval/<key>.json`` (and ``eval/<key>_stream_int8_*.json``) and is
skipped when they exist; training resumes from its last epoch checkpoint. ``experiments.json``
lists the conditions run, for :mod:`tinyse_tf.recipe.summary`.

Groups (the paper's tables and the open questions of docs/RESULTS.md):

================  =================================================================================
``teacher``       the teacher alone (train it once before shards run in parallel), every metric
``table3``        teacher; baseline, one-step and two-step 62 k students, every metric incl. DNSMOS;
                  int8 PTQ and QAT streaming files of the baseline and two-step students
``size``          baseline and two-step students of 30 k and 240 k parameters (62 k is in table3)
``granularity``   one-step KD with the output / batch (G) / t / f similarity (tf is in table3)
``step1``         two-step KD with 1/8, 1/2, 3/4 of the student epochs in step 1 (table3: preset's)
``norm``          baseline and two-step students with cLN (float only: cLN has no int8 export)
``kd_reduction``  baseline and one-step KD students with each KD reduction ("mean", "sum"); the
                  config's reduction keeps table3's keys (the same conditions), the other gets
                  ``-r<reduction>``; no DNSMOS
``int8``          baseline and two-step 62 k students (table3's keys) with int8 PTQ and QAT files,
                  no one-step and no DNSMOS: the seeds of docs/RESULTS.md's int8 fidelity study
``snr``           baseline students trained on mixtures at energy SNR (table3's key) and at the
                  paper's BS.1770 loudness SNR (``-snr_loudness``); the test set stays at energy SNR
================  =================================================================================
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

from tinyse_tf.atomic import atomic_write_json
from tinyse_tf.recipe.presets import get_preset

METHODS = ("teacher", "baseline", "one_step", "two_step")
GROUPS = ("teacher", "table3", "size", "granularity", "step1", "norm", "kd_reduction", "int8",
          "snr")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One trained model of the grid; ``key`` names its files."""

    method: str  # one of METHODS
    seed: int = 0
    student: str = "student"
    norm: str = "frame_ln"
    granularity: str = "tf"
    step1_epochs: int | None = None  # epochs of KD only in two-step; None = the preset's
    int8: tuple = ()
    dnsmos: bool = False
    kd_reduction: str | None = None  # None = the config's (key unchanged); else key "-r<value>"
    snr_measure: str | None = None  # None = the config's (key unchanged); else "-snr_<value>"

    @property
    def key(self) -> str:
        if self.method == "teacher":
            return "teacher"
        parts = [self.student, self.norm, self.method]
        if self.method != "baseline":
            parts.append(f"g{self.granularity}")
        if self.method == "two_step" and self.step1_epochs is not None:
            parts.append(f"step1_{self.step1_epochs}")
        if self.method != "baseline" and self.kd_reduction is not None:
            parts.append(f"r{self.kd_reduction}")
        if self.snr_measure is not None:
            parts.append(f"snr_{self.snr_measure}")
        return "-".join(parts + [f"seed{self.seed}"])


def group_conditions(group: str, seed: int, student_epochs: int = 8,
                     step1_epochs: int = 2, kd_reduction: str = "mean") -> list[Condition]:
    """The conditions of one group for one student seed (the teacher has none: seed 0).

    ``step1`` uses 1/8, 1/2 and 3/4 of ``student_epochs`` for step 1 (at least 1, at most
    ``student_epochs - 1``) other than the preset's ``step1_epochs``, which ``table3`` has.
    ``kd_reduction`` is the config's: that one-step condition is table3's."""
    two_step = dict(method="two_step", seed=seed)
    if group == "teacher":
        return [Condition("teacher", dnsmos=True)]
    if group == "table3":
        int8 = ("ptq", "qat")
        return [Condition("teacher", dnsmos=True),
                Condition("baseline", seed, int8=int8, dnsmos=True),
                Condition("one_step", seed, dnsmos=True),
                Condition(**two_step, int8=int8, dnsmos=True)]
    if group == "int8":  # docs/RESULTS.md, int8 fidelity: the two students Table 3 exports
        return [Condition("baseline", seed, int8=("ptq", "qat")),
                Condition(**two_step, int8=("ptq", "qat"))]
    if group == "size":
        return [Condition(m, seed, student=s, int8=("ptq",))
                for s in ("student_30k", "student_240k") for m in ("baseline", "two_step")]
    if group == "granularity":
        return [Condition("one_step", seed, granularity=g) for g in ("output", "batch", "t", "f")]
    if group == "step1":
        lengths = {min(max(1, round(f * student_epochs)), student_epochs - 1)
                   for f in (1 / 8, 1 / 2, 3 / 4)}
        return [Condition(**two_step, step1_epochs=n) for n in sorted(lengths - {step1_epochs})]
    if group == "norm":
        return [Condition(m, seed, norm="cln") for m in ("baseline", "two_step")]
    if group == "kd_reduction":
        from tinyse_tf.losses import REDUCTIONS

        return [Condition("baseline", seed), Condition("one_step", seed)] + [
            Condition("one_step", seed, kd_reduction=r) for r in REDUCTIONS if r != kd_reduction]
    if group == "snr":  # training mixtures at loudness SNR (BS.1770) against energy SNR
        return [Condition("baseline", seed), Condition("baseline", seed, snr_measure="loudness")]
    raise ValueError(f"unknown group {group!r}; choose from {', '.join(GROUPS)}")


def plan(specs, student_epochs: int = 8, step1_epochs: int = 2,
         kd_reduction: str = "mean") -> list[Condition]:
    """Conditions of ``["table3:0,1,2", "size:0", ...]`` in the given order, each key once; a key
    that two groups share is scored with everything either asks for (DNSMOS, int8 files)."""
    out: dict[str, Condition] = {}
    for spec in specs:
        group, _, seeds = spec.partition(":")
        try:
            seed_list = [int(s) for s in seeds.split(",")] if seeds else [0]
        except ValueError:
            raise ValueError(f"{spec!r}: seeds must be integers, e.g. table3:0,1,2") from None
        for seed in seed_list:
            for cond in group_conditions(group, seed, student_epochs, step1_epochs,
                                         kd_reduction):
                first = out.setdefault(cond.key, cond)
                out[cond.key] = dataclasses.replace(
                    first, dnsmos=first.dnsmos or cond.dnsmos,
                    int8=first.int8 + tuple(k for k in cond.int8 if k not in first.int8))
    return list(out.values())


class Experiments:
    """Runs conditions in one recipe output folder (see the module docstring)."""

    def __init__(self, run):
        self.run = run
        # The experiments score the fixed-SNR sets only (-5 / 0 / 5 dB), as the paper's Table 3.
        labels = {f"snr_{s:g}" for s in run.cfg.test_snrs}
        run.test_items = [i for i in run.test_items if i["snr_label"] in labels]
        for path in sorted((run.out / "eval").glob("*.json")):
            run.remember_noisy(json.loads(path.read_text()))

    def train(self, cond: Condition, teacher):
        if cond.method == "teacher":
            return teacher
        build = self.run.student_builder(cond.student, cond.norm, cond.seed,
                                         f"init-{cond.student}-{cond.norm}-seed{cond.seed}.h5")
        return self.run.train_student(cond.key, cond.method, build, teacher, cond.granularity,
                                      cond.step1_epochs, cond.seed, cond.kd_reduction,
                                      cond.snr_measure)

    def evaluate(self, cond: Condition, model) -> dict:
        """Score the model and its int8 streaming files; returns ``{eval key: seconds}``."""
        from tinyse_tf.recipe.two_step import without_dnsmos
        from tinyse_tf.runtime.offline import enhance
        from tinyse_tf.runtime import StreamingEnhancer

        metrics = self.run.cfg.metrics if cond.dnsmos else without_dnsmos(self.run.cfg.metrics)
        rows = [(cond.key, lambda a: enhance(model, a), metrics)]
        if cond.int8:
            files = self.run.export(cond.key, model, cond.int8, seed=cond.seed)
            rows += [(path.stem, StreamingEnhancer(path).enhance, without_dnsmos(metrics))
                     for path in files.values()]
        seconds = {}
        with self.run.scoring():
            for key, enhance_fn, row_metrics in rows:
                t0 = time.time()
                self.run._evaluate_one(key, key, enhance_fn, row_metrics)
                seconds[key] = round(time.time() - t0, 1)
        return seconds

    def run_all(self, conditions, log=print):
        """Train and score ``conditions`` in order; ``experiments.json`` gets one entry each."""
        manifest_path = self.run.out / "experiments.json"
        teacher = self.run.train_teacher()
        for i, cond in enumerate(conditions, 1):
            log(f"[{i}/{len(conditions)}] {cond.key}")
            model = self.train(cond, teacher)
            seconds = self.evaluate(cond, model)
            # Re-read just before writing: another process may share this folder (--shard).
            manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
            entry = manifest.get(cond.key, {})
            entry.update(dataclasses.asdict(cond), evals=sorted(seconds))
            if f"train_{cond.key}_s" in self.run.timings:
                entry["train_s"] = self.run.timings[f"train_{cond.key}_s"]
            entry.setdefault("eval_s", {}).update({k: v for k, v in seconds.items() if v > 1})
            manifest[cond.key] = entry
            atomic_write_json(manifest_path, manifest)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="recipes/experiments/run.py",
        description="Train and score a grid of students against one teacher on one test set "
                    "(groups: " + ", ".join(GROUPS) + "). Rerun the same command to resume.")
    p.add_argument("groups", nargs="+", metavar="GROUP[:SEEDS]",
                   help="e.g. table3:0,1,2 step1:0 size:0,1 (run in this order)")
    p.add_argument("--out", required=True, help="run folder, shared by all groups")
    p.add_argument("--preset", default="demo", help="recipe preset of the schedule (default demo)")
    p.add_argument("--speech-dir", help="clean speech folder tree (default: built-in corpus)")
    p.add_argument("--noise-dir", help="noise folder tree (default: built-in corpus)")
    p.add_argument("--data-dir", help="cache of the built-in corpus; with --speech-dir/"
                                      "--noise-dir, their prepared shards (default: <out>/data)")
    p.add_argument("--teacher-epochs", type=int, help="override the preset's teacher epochs")
    p.add_argument("--test-clips", type=int, help="override the preset's test utterances")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="run every N-th condition from the I-th (several processes, one folder; "
                        "train the teacher first)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def folder_int8(out, default: tuple) -> tuple:
    """The ``int8`` recorded in ``out/config.json`` (``default`` when there is none): the grid
    exports each condition's own kinds (``Condition.int8``) and never reads ``cfg.int8``, so it
    takes the folder's value and extends a recipe folder whatever the recipe's default was."""
    path = pathlib.Path(out) / "config.json"
    try:
        return tuple(json.loads(path.read_text()).get("int8", default))
    except (OSError, ValueError, TypeError, AttributeError):
        return default  # no folder yet, or a broken one: open_run says what is wrong with it


def main(argv=None) -> int:
    from tinyse_tf.data import AudioError, DataError
    from tinyse_tf.recipe.two_step import log, open_run

    args = parse_args(argv)
    try:
        cfg = get_preset(args.preset, teacher_epochs=args.teacher_epochs,
                         test_clips=args.test_clips)
        cfg = dataclasses.replace(cfg, int8=folder_int8(args.out, cfg.int8))
        index, _, count = args.shard.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise ValueError(f"--shard {args.shard!r}: give I/N with 0 <= I < N, e.g. 1/2")
        conditions = plan(args.groups, cfg.student_epochs, cfg.step1_epochs,
                          cfg.kd_reduction)[int(index)::int(count)]
        # The same config record as recipes/two_step.py: a grid can extend a recipe run folder.
        run = open_run(args.preset, cfg, args.out, args.speech_dir, args.noise_dir,
                       args.data_dir, verbose=0 if args.quiet else 1)
        Experiments(run).run_all(conditions, log=log)
    except (DataError, AudioError, ValueError, FileNotFoundError) as err:
        print(f"experiments: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("experiments: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
