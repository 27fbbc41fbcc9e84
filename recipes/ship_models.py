"""Put a recipe run's models into the package (tinyse_tf/shipped/) with their model cards.

    python recipes/two_step.py --preset flagship --teacher student_350k \
        --students baseline,two_step --speech-dir ../shared/audio/speech \
        --noise-dir ../shared/audio/noise --out runs/flagship
    python benchmarks/vs_peers.py runs/flagship/export/two_step_stream_int8_ptq.tflite \
        runs/flagship/export/two_step_stream_float32.tflite runs/flagship/models/teacher.keras \
        --json bench.json
    python recipes/ship_models.py runs/flagship --benchmark bench.json [--benchmark high_snr.json]

Any finished run ships: the file names and titles say each model's size (from the parameter count
of its CRUSE preset) and the run's recipe preset (``student_62k_two_step_flagship_*``,
``teacher_350k_flagship_*``). The cards' data section is the preset's note (``release``,
``flagship``) or, for any other preset, the markdown paragraph of ``--data-note FILE``. The
shipped .tflite files are byte copies of the run's, so the benchmark can equally be run on them
after shipping (``python benchmarks/vs_peers.py``, as README's table is). A second ``--benchmark``
(e.g. ``vs_peers.py ... --snrs 10 20 30``) adds its quality table for those input SNRs; the
student card's "Limitations" lists every input SNR at which one of our rows lowers SI-SDR.

When the code around the shipped files changes (the signal path, say) and the run folder is
gone, ``python recipes/ship_models.py --refresh --benchmark bench.json [--benchmark ...]``
rewrites only the cards' benchmark sections (and the Limitations bullets drawn from them) from
a vs_peers.py run on the shipped files, and notes in "Metrics" that the run's own table is
from shipping; files, registry and everything else stay as shipped.

A run that reused the teacher of an earlier run (``--teacher-checkpoint RUN0/models/teacher.keras``,
e.g. a long teacher run, then the students) ships too: the teacher's card takes its schedule,
training cost and kept epoch from RUN0, and both cards print the two commands that reproduce them.

Writes the two-step student (Keras weights, streaming int8 PTQ and float32 .tflite with their
I/O contracts) and the teacher (Keras weights in float16) into ``--into`` (default
tinyse_tf/shipped), ``models.json`` there (sizes, SHA-256; the names stay ``student`` and
``teacher``) and ``<--cards>/<name>.md`` (data, schedule, training cost, commit, metrics of the
run's test set with standard errors, size, MACs and µs per frame). Every file is written
atomically; then the files the previous ``models.json`` listed and the new one does not (a model
replaced under other file names) are deleted, and nothing else. A run folder that lacks a file
stops the script with one line (exit 2) before anything is written.
"""
from __future__ import annotations

import argparse
import csv
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
from tinyse_tf.shipped import (FOLDER, REGISTRY, file_record, listed_files,  # noqa: E402
                               save_weights_npz, tflite_record)

PROG = "ship_models.py"
_SPEECH_NOTE = (
    "Speech: the 226 LibriSpeech train-clean-100 utterances of `../shared/audio/speech/train` "
    "(one per speaker, about 47 min; LibriSpeech, Panayotov et al. 2015, CC BY 4.0), 11 of them "
    "held out for validation; a fifth of the training clips from tinyse_tf's built-in corpus "
    "(espeak-ng synthetic speech, procedural noise; generated, no licence terms).")
_RELEASE_NOISE_SOURCES = (
    "(Speech Commands background noise, CC BY 4.0; recordings from the felixchenfy "
    "Speech-Commands-Classification repository, MIT; Freesound clips from IBM "
    "MAX-Audio-Classifier samples, CC0 / CC BY)")
#: The cards' data section per recipe preset; other presets need ``--data-note FILE``.
DATA_NOTES = {
    "release": (
        f"{_SPEECH_NOTE} Noise: the 22 recordings of `../shared/audio/noise/train` "
        f"{_RELEASE_NOISE_SOURCES}, one held out for validation. Test: the 25 other speakers of "
        "`speech/test` with the 5 noises of `noise/test`, never seen in training or model "
        "selection."),
    "flagship": (
        f"{_SPEECH_NOTE} Noise: all 199 recordings of `../shared/audio/noise/train`, 10 of them "
        f"held out for validation: the 22 of the release set {_RELEASE_NOISE_SOURCES} and 177 "
        "`deb_*` recordings (about 83 min) cut from the sound files of Debian data packages: "
        "0ad-data 0.0.26 (CC BY-SA 3.0), ufoai-sound 2.5 (GPL-2+ / CC BY(-SA) 3.0 / public "
        "domain, per file), megaglest-data 3.13.0 (CC BY-SA 3.0), widelands-data 1.1 (GPL-2+ / "
        "CC BY-SA), sonic-pi-samples (CC0); per-file origin in `noise/debian_manifest.json` "
        "([DATA.md](../DATA.md), \"Real recordings\"). **This model is derived from CC BY-SA "
        "and GPL material** (those recordings). Test: the 25 other speakers of `speech/test` "
        "with the 7 noises of `noise/test` (the 5 of the release set and `lincity_city_a`, "
        "`lincity_city_b`: city sounds from Debian's lincity-ng-data 2.9, GPL-2+), never used "
        "for training or model selection."),
}
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


def benchmark_table(benches):
    """Markdown: the tables of ``benchmarks/vs_peers.py`` JSONs (quality, cost and paired
    differences to log-MMSE, GTCRN and DTLN on the real test split) with their set-up lines: all
    of the first, the quality table of each further one (other input SNRs)."""
    if not benches:
        return "(not measured: pass --benchmark)"
    parts = []
    for k, bench in enumerate(benches):
        m = bench["machine"]
        tables = bench["tables"] if k == 0 else dict(list(bench["tables"].items())[:1])
        snrs = " / ".join(next(iter(bench["results"].values())))  # the first row's SNRs
        heading = "" if k == 0 else f"### At input SNRs {snrs} dB\n\n"
        parts.append(heading + "\n\n".join(f"**{title[0].upper() + title[1:]}**\n\n{text}"
                                             for title, text in tables.items())
                     + f"\n\n`benchmarks/vs_peers.py`: {bench['mixtures_per_snr']} mixtures per "
                     f"SNR of the real test split ({bench['seconds']:g} s of speech after "
                     f"{bench['lead_in_s']:g} s of noise alone); CPU time of one thread, "
                     f"STFT/mel/mask path included, on {m['processor']} ({m['cpus']} CPUs), "
                     f"{m['platform']}, Python {m['python']}, {bench['date']}.")
    return "\n\n".join(parts)


def limitations(cfg, benches) -> str:
    """Markdown bullets: what the card's numbers cover, and every input SNR of the benchmarks at
    which one of our rows (``ours: ...``) lowers SI-SDR on average."""
    low, high = cfg["snr_range"]
    return "\n".join([f"- Trained on mixtures at energy SNR {low:g} to {high:g} dB; the test set "
                      "above is at -5 / 0 / +5 dB. Other conditions are measured only where a "
                      "table says so.", *benchmark_limits(benches)])


def benchmark_limits(benches) -> list[str]:
    """The Limitations bullets that come from the benchmarks (see ``limitations``)."""
    lines = []
    for bench in benches:
        ours = {name: per_snr for name, per_snr in bench["results"].items()
                if name.startswith("ours")}
        for name, per_snr in ours.items():
            losses = [f"{snr} dB ({stat['si_sdr']['mean']:+.2f} dB)"
                      for snr, stat in per_snr.items() if stat["si_sdr"]["mean"] < 0]
            if losses:
                lines.append(f"- {name} lowers SI-SDR on average at input SNR "
                             f"{', '.join(losses)}: there its distortion of the speech outweighs "
                             "the noise it removes, by SI-SDR (PESQ and eSTOI: the tables above).")
    return lines


def size_label(n_params: int, title: bool = False) -> str:
    """A parameter count to two significant figures, as file names say it (62,313 -> ``62k``,
    347,633 -> ``350k``, 1,867,041 -> ``1.9m``) or, with ``title``, as titles do (``62 k``,
    ``350 k``, ``1.9 M``)."""
    rounded = float(f"{n_params:.2g}")
    for scale, unit, title_unit in ((1e6, "m", "M"), (1e3, "k", "k"), (1, "", "")):
        if rounded >= scale or scale == 1:
            number = f"{rounded / scale:g}"
            return f"{number} {title_unit}".strip() if title else number + unit


def shown(path) -> str:
    """``path`` as the cards and models.json give it: relative to the repository (``../...`` for
    a folder beside it, such as ``../shared``), else by its name: never a machine's absolute
    path (tests/test_repo.py)."""
    path = pathlib.Path(path).resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return path.name


def last_epoch(run, stage) -> dict:
    """The last row of ``RUN/train/<stage>/history.csv`` (strings by column; ``cpu_hours`` and
    ``wall_hours`` are the stage's totals so far), {} if none."""
    path = run / "train" / stage / "history.csv"
    rows = list(csv.DictReader(path.read_text().splitlines())) if path.is_file() else []
    return rows[-1] if rows else {}


def _hours(value: str) -> str:
    return f"{float(value):.3g}"


def training_cost(run, stage, timings) -> tuple[str, str | None]:
    """(the training cost of a stage for its card, the same in short or None): CPU and wall
    hours of the last epoch of its history.csv, else the minutes of timings.json (older runs)."""
    last = last_epoch(run, stage)
    if last.get("cpu_hours") and last.get("wall_hours"):
        cpu = f"{_hours(last['cpu_hours'])} CPU h"
        return f"{cpu} ({_hours(last['wall_hours'])} h of wall time) of training", cpu
    if f"train_{stage}_s" in timings:
        minutes = f"{timings[f'train_{stage}_s'] / 60:.0f} min"
        return f"{minutes} of training", minutes
    return "training time not recorded", None


def read_timings(run) -> dict:
    """A run's ``timings.json`` (seconds per stage), {} if there is none."""
    path = run / "timings.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def kept_epoch(run, stage) -> str:
    """Which epoch's weights the stage kept, with its validation SI-SDR."""
    best = run / "train" / stage / "best.json"
    if best.is_file():
        best = json.loads(best.read_text())
        return ("the epoch with the best validation SI-SDR is kept "
                f"(epoch {best['epoch']}, {best['val_si_sdr']:.2f} dB)")
    last = last_epoch(run, stage)
    if last.get("val_si_sdr"):  # history.csv counts epochs from 0, best.json from 1
        return (f"the last epoch is kept (epoch {int(last['epoch']) + 1}, validation SI-SDR "
                f"{float(last['val_si_sdr']):.2f} dB)")
    return "the last epoch is kept"


def card(name, title, run, cfg, commit, report, rows, files, extra):
    preset = cfg[name]  # the CRUSE preset of config.json's "student" / "teacher"
    schedule = (f"{cfg['teacher_epochs']} epochs" if name == "teacher" else
                f"{cfg['student_epochs']} epochs, the first {cfg['step1_epochs']} KD only "
                "(G_tf self-similarity to the teacher), then PSA only")
    file_lines = "\n".join(f"| `{r['file']}` | {kind} | {r['bytes']:,} | `{r['sha256']}` |"
                           for kind, r in files.items())
    lr_schedule = cfg.get("lr_schedule", "constant")
    extra = {**extra, "decay": " (to a tenth)" if lr_schedule == "cosine" else ""}
    return f"""# {title}

Shipped as `tinyse_tf.pretrained("{name}")`{' and the default model of `tinyse enhance`' if name == 'student' else ''}.
Written by `python recipes/ship_models.py {run}` from the recipe run under "Reproduce", at commit
`{commit}`.

## Files ({extra['folder']}/)

| file | kind | bytes | SHA-256 |
|---|---|---|---|
{file_lines}

## Model
CRUSE preset `{preset}`, normalisation `{cfg['norm']}`: {extra['params']:,} parameters,
{extra['macs']:,} MACs per 16 ms frame (tinyse_tf.macs_per_frame). Causal; the
streaming file holds its GRU and convolution state inside (one hop of 256 samples in, one out).

## Data
{extra['data']}
Augmentation per training example: reverberation {cfg.get("reverb_prob", 0.0)} (pyroomacoustics shoebox
rooms, RT60 0.2-0.8 s; target = direct path + 50 ms), random EQ {cfg.get("eq_prob", 0.0)}, band-limiting
{cfg.get("bandlimit_prob", 0.0)}, noise played 0.71-1.41x as fast {cfg.get("noise_speed_prob", 0.0)},
a second noise added {cfg.get("noise_mix_prob", 0.0)}; energy SNR uniform in {cfg['snr_range']} dB; {cfg['clip_seconds']} s clips.

## Schedule
{schedule}; {cfg['steps_per_epoch']} steps of batch {cfg['batch_size']} per epoch; Adam,
learning rate {cfg['learning_rate']} {lr_schedule}{extra['decay']}; {extra['kept']}.
Seed {cfg['seed']}. Trained on the 2 cores of an AMD EPYC VM (no GPU): {extra['train']}.

## Reproduce
{extra['reproduce']}

## Metrics
The run's test set: {cfg['test_clips']} speakers of `speech/test` × the `noise/test` noises at
each input SNR, {cfg['test_clip_seconds']} s each; mean improvement over the noisy input ±
standard error over files (from `{run}/report/report.json`).

{metrics_table(report, rows)}

{BENCH_HEADING}
{extra['bench']}

## Limitations
{extra['limits']}
"""


BENCH_HEADING = "## Against log-MMSE and the public tiny enhancers (GTCRN, DTLN), and cost"
REMEASURED = "**Re-measured since shipping**"


def _span(text: str, heading: str) -> tuple[int, int]:
    """Start and end of the body of markdown section ``heading`` (up to the next ``## `` or the
    end of ``text``); ValueError if there is no such section."""
    start = text.find(heading + "\n")
    if start < 0:
        raise ValueError(f"no section {heading!r}")
    start += len(heading) + 1
    end = text.find("\n## ", start)
    return start, end if end >= 0 else len(text)


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the body of its markdown section ``heading`` replaced by ``body``."""
    start, end = _span(text, heading)
    return text[:start] + body.rstrip("\n") + "\n" + text[end:]


def section(text: str, heading: str) -> str:
    """The body of the markdown section ``heading`` of ``text``."""
    start, end = _span(text, heading)
    return text[start:end]


def refresh_card(text: str, name: str, benches, commit: str, date: str) -> str:
    """A card with its benchmark sections rewritten from ``benches`` and a line in "Metrics"
    saying so; the models, their files and the run's own test-set table stay as shipped. For a
    change of the code around the shipped files (e.g. the signal path) once the run is gone."""
    where = ("in the section below" if name == "student" else
             "in the student card's benchmark ([student.md](student.md), the teacher's rows)")
    note = (f"{REMEASURED} (commit `{commit}`, {date}, `python recipes/ship_models.py --refresh "
            f"--benchmark ...`): the table above is the run's own report at shipping; the files "
            f"are unchanged, and what today's code makes of them is {where}.")
    metrics = [line for line in section(text, "## Metrics").split("\n")
               if not line.startswith(REMEASURED)]
    text = replace_section(text, "## Metrics", "\n".join(metrics).rstrip("\n") + f"\n\n{note}\n")
    if name != "student":
        return text
    text = replace_section(text, BENCH_HEADING, benchmark_table(benches) + "\n")
    kept = [line for line in section(text, "## Limitations").split("\n")
            if line.startswith("- Trained on")]
    return replace_section(text, "## Limitations", "\n".join(kept + benchmark_limits(benches)))


STAGES = (  # registry name, run stage, weights dtype, title after the size, in the file stem
    # after the size, report rows of the card
    ("student", "two_step", "float32", "two-step KD student", "two_step_",
     ["two-step KD", "two-step KD int8 PTQ"]),
    ("teacher", "teacher", "float16", "teacher", "", ["teacher"]))
EXPORTS = (("int8", "int8_ptq", "int8 PTQ"), ("float32", "float32", "float32"))  # kind, file, what
FINISH = ("finish the run: rerun its recipes/two_step.py command without --stop-after "
          "(finished stages are skipped)")


def missing_input(run, data_note, benchmark) -> str | None:
    """``<path>: <what is missing>; <what to do>`` for the first file the script needs and does
    not find, None when all are there."""
    if not run.is_dir():
        return f"{run}: no such folder; give the --out folder of a recipes/two_step.py run"
    needs = [("config.json", "no config.json, so not a recipe run folder",
              "give the --out folder of a recipes/two_step.py run"),
             ("report/report.json", "no test-set report: the run has not finished", FINISH),
             ("models/two_step.keras", "no trained two-step student", FINISH)]
    for _, exported, what in EXPORTS:
        for suffix in (".tflite", ".io_contract.json"):
            needs.append((f"export/two_step_stream_{exported}{suffix}",
                          f"no streaming {what} export of the two-step student",
                          "ship a finished run with --int8 ptq (the default)"))
    for rel, what, todo in needs:
        if not (run / rel).is_file():
            return f"{run / rel}: {what}; {todo}"
    for flag, path in (("--data-note", data_note), *(("--benchmark", b) for b in benchmark)):
        if path and not pathlib.Path(path).is_file():
            return f"{path}: no such file; give {flag} an existing file"
    return None


def teacher_run(run, cfg) -> pathlib.Path:
    """The run folder that trained the teacher: ``run`` itself, or for a ``--teacher-checkpoint``
    run, the recipe run whose ``models/teacher.keras`` that checkpoint is (its config.json and
    training history go into the teacher's card). ValueError (one line) for any other."""
    checkpoint = cfg.get("teacher_checkpoint")
    if not checkpoint:
        if not (run / "models" / "teacher.keras").is_file():
            raise ValueError(f"{run / 'models' / 'teacher.keras'}: no trained teacher; {FINISH}")
        return run
    source = pathlib.Path(checkpoint)
    if not (source.name == "teacher.keras" and source.parent.name == "models"
            and (source.parents[1] / "config.json").is_file() and source.is_file()):
        raise ValueError(f"{run / 'config.json'}: its teacher ({checkpoint}) is not the "
                         "models/teacher.keras of a recipe run folder on this machine; ship a run "
                         "that trained its teacher, or one whose --teacher-checkpoint is such a file")
    return source.parents[1]


def reproduce(run, cfg, teacher_dir, teacher_cfg, name) -> str:
    """Markdown: the recipes/two_step.py command(s) that reproduce model ``name``: the run's, or
    for students that reused a teacher run's teacher, that run's (with --stop-after teacher)
    and then theirs."""
    from tinyse_tf.recipe.command import recipe_command

    students = recipe_command(cfg, shown(run), shown)
    if teacher_dir == run:
        return f"```bash\n{students}\n```"
    teacher = recipe_command(teacher_cfg, shown(teacher_dir), shown,
                             extra=["--stop-after", "teacher"])
    if name == "teacher":
        return (f"Its own run (the students' run `{shown(run)}` reused it with "
                f"`--teacher-checkpoint`):\n```bash\n{teacher}\n```")
    return ("Two runs, the teacher's and then the students' reusing it (`--teacher-checkpoint`; "
            f"finished stages are skipped on a rerun):\n```bash\n{teacher}\n{students}\n```")


def data_note(preset, path) -> str:
    """The cards' data paragraph: ``--data-note`` FILE if given, else the preset's note."""
    if path:
        text = pathlib.Path(path).read_text().strip()
        if not text:
            raise ValueError(f"{path}: empty; give --data-note a markdown paragraph on the run's "
                             "data and their licences")
        return text
    if preset not in DATA_NOTES:
        raise ValueError(f"--data-note: required for a --preset {preset} run (notes are built in "
                         f"for {', '.join(DATA_NOTES)} only); give a markdown file with a "
                         "paragraph on the run's training, validation and test data and their "
                         "licences")
    return DATA_NOTES[preset]


def read_registry(path) -> dict:
    """The ``models`` of an existing models.json, {} if there is none."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())["models"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a models.json ({type(err).__name__}); restore it "
                         "(git checkout) or delete it") from err


def ship_model(model, run, stage, stem, dtype, folder) -> dict:
    """Write one model's files into ``folder``: ``{kind: record}`` of models.json."""
    weights = folder / f"{stem}_{dtype}.npz"
    save_weights_npz(model, weights, dtype)
    files = {"keras": file_record(weights)}
    if stage == "two_step":
        for kind, exported, _ in EXPORTS:
            src = run / "export" / f"{stage}_stream_{exported}.tflite"
            dst = folder / f"{stem}_stream_{kind}.tflite"
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            contract = json.loads((src.parent / f"{src.stem}.io_contract.json").read_text())
            atomic_write_json(folder / f"{dst.stem}.io_contract.json",
                              {**contract, "file": dst.name})
            files[kind] = tflite_record(dst)  # with its io_contract.json
    return files


def remove_unlisted(folder, old, new) -> list[str]:
    """Delete from ``folder`` the files the registry ``old`` lists and ``new`` does not (bare
    file names only: nothing outside the folder); their names."""
    removed = []
    for name in sorted(listed_files(old) - listed_files(new)):
        path = folder / name
        if pathlib.Path(name).name == name and path.is_file():
            path.unlink()
            removed.append(name)
    return removed


def refresh(cards: pathlib.Path, benchmarks: list[str], commit: str) -> int:
    """``--refresh``: rewrite the cards' benchmark sections in place (atomically); exit 2 with
    one line when a card or benchmark is missing or unreadable, before anything is written."""
    try:
        if not benchmarks:
            raise ValueError("--refresh needs --benchmark (a vs_peers.py --json output)")
        benches = [json.loads(pathlib.Path(path).read_text()) for path in benchmarks]
        names = ("student", "teacher")
        texts = {name: refresh_card((cards / f"{name}.md").read_text(), name, benches, commit,
                                    benches[0]["date"]) for name in names}
    except (OSError, ValueError, KeyError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for name, text in texts.items():
        atomic_write_text(cards / f"{name}.md", text)
    print(f"refreshed the benchmark sections of {', '.join(f'{n}.md' for n in names)} in {cards}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("run", nargs="?", help="a finished recipe run folder (recipes/two_step.py --out)")
    p.add_argument("--refresh", action="store_true",
                   help="instead of shipping a run: rewrite the benchmark sections of the cards "
                        "in --cards from the --benchmark JSONs (run on the shipped files with "
                        "today's code), keeping the rest of each card as shipped")
    p.add_argument("--benchmark", action="append", default=[],
                   help="vs_peers.py --json output for the peers section; repeat for more input "
                        "SNRs (e.g. a --snrs 10 20 30 run)")
    p.add_argument("--commit", help="commit of the code that ran (default: git HEAD)")
    p.add_argument("--cards", default=str(ROOT / "docs" / "models"),
                   help="folder of the model cards (default docs/models)")
    p.add_argument("--into", default=str(FOLDER),
                   help="package folder to write, with its models.json (default tinyse_tf/shipped)")
    p.add_argument("--data-note", metavar="FILE",
                   help="markdown paragraph on the training, validation and test data and their "
                        "licences, for the cards; required unless the run's preset is "
                        + " or ".join(DATA_NOTES) + " (built-in notes, which it replaces)")
    args = p.parse_args(argv)
    if args.refresh == bool(args.run):
        p.error("give a run folder to ship, or --refresh (not both)")
    commit = args.commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                            "HEAD"], capture_output=True, text=True).stdout.strip()
    if args.refresh:
        return refresh(pathlib.Path(args.cards), args.benchmark, commit)
    run, folder, cards = pathlib.Path(args.run), pathlib.Path(args.into), pathlib.Path(args.cards)
    registry_path = folder / REGISTRY.name
    try:
        problem = missing_input(run, args.data_note, args.benchmark)
        if problem:
            raise ValueError(problem)
        cfg = json.loads((run / "config.json").read_text())
        if "preset" not in cfg:
            raise ValueError(f"{run / 'config.json'}: no recipe preset in it; give the --out "
                             "folder of a recipes/two_step.py run")
        teacher_dir = teacher_run(run, cfg)
        teacher_cfg = json.loads((teacher_dir / "config.json").read_text())
        notes = {"student": data_note(cfg["preset"], args.data_note),
                 "teacher": data_note(teacher_cfg.get("preset"), args.data_note)}
        previous = read_registry(registry_path)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    report = json.loads((run / "report" / "report.json").read_text())
    benches = [json.loads(pathlib.Path(path).read_text()) for path in args.benchmark]
    from tinyse_tf._tf import keras
    import tinyse_tf.models  # noqa: F401  (registers the custom layers)
    from tinyse_tf.export.complexity import macs_per_frame
    from tinyse_tf.export.tflite_ops import weight_macs
    from tinyse_tf.models.complexity import count_params

    folder.mkdir(parents=True, exist_ok=True)
    teacher_cost, teacher_short = training_cost(teacher_dir, "teacher", read_timings(teacher_dir))
    registry = {}
    for name, stage, dtype, what, tag, rows in STAGES:
        # The run that trained this model: the teacher's may be another (--teacher-checkpoint).
        stage_run, stage_cfg = (teacher_dir, teacher_cfg) if name == "teacher" else (run, cfg)
        model_preset = stage_cfg[name]  # config.json's "student" / "teacher": a CRUSE preset
        n_params = count_params(model_preset)
        stem = f"{name}_{size_label(n_params)}_{tag}{cfg['preset']}"
        title = f"{size_label(n_params, title=True)} {what} ({cfg['preset']})"
        model = keras.models.load_model(stage_run / "models" / f"{stage}.keras")
        files = ship_model(model, run, stage, stem, dtype, folder)
        train = teacher_cost if name == "teacher" else (
            training_cost(run, stage, read_timings(run))[0]
            + (f", plus the teacher's {teacher_short}" if teacher_short else
               " (plus the teacher's, not recorded)"))
        # MACs counted on the float32 streaming file: the shipped one for the student (what
        # macs_per_frame converts in memory, seconds per model), the teacher's converted.
        macs = (sum(weight_macs((folder / files["float32"]["file"]).read_bytes()).values())
                if "float32" in files else macs_per_frame(model_preset))
        extra = {"kept": kept_epoch(stage_run, stage), "train": train, "data": notes[name],
                 "reproduce": reproduce(run, cfg, teacher_dir, teacher_cfg, name),
                 "params": n_params, "macs": macs,
                 "folder": shown(folder),
                 "bench": benchmark_table(benches) if name == "student" else
                 "Not exported for devices (a training target for your own students).",
                 "limits": limitations(stage_cfg, benches if name == "student" else [])}
        card_path = cards / f"{name}.md"
        atomic_write_text(card_path, card(name, title, shown(run), stage_cfg, commit, report,
                                          rows, files, extra))
        registry[name] = {"description": title, "card": shown(card_path),
                          "build": {"preset": model_preset, "norm": stage_cfg["norm"]},
                          "commit": commit, "files": files}
    atomic_write_json(registry_path, {"models": registry})
    removed = remove_unlisted(folder, previous, registry)
    print(f"shipped {', '.join(registry)} into {folder}; cards in {cards}"
          + (f"; removed the replaced {', '.join(removed)}" if removed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
