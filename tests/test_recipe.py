"""The recipe as users run it: `python recipes/two_step.py` in a subprocess, smoke preset."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ["teacher", "student", "one-step KD", "two-step KD"]
INT8_ROWS = ["student int8 PTQ", "student int8 QAT", "two-step KD int8 PTQ", "two-step KD int8 QAT"]


def _recipe(*args, timeout=900, script="two_step.py"):
    """``recipes/<script> args`` in a subprocess, as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "recipes" / script), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def _check_recordings(folder):
    """Two 'speech' (voiced harmonics) and two noise files, standing in for real recordings."""
    import numpy as np

    from tinyse_tf.data import write_audio

    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    for k in range(2):
        f0 = 120 + 40 * k
        voiced = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
        write_audio(folder / "speech" / f"s{k}.wav",
                    0.1 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)))
        write_audio(folder / "noise" / f"n{k}.wav", 0.05 * rng.standard_normal(t.size))
    return folder / "speech", folder / "noise"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    out = base / "run"
    speech, noise = _check_recordings(base / "check")
    # QAT is not a default (PTQ only); asked for here so the recipe's QAT path runs end to end.
    proc = _recipe("--preset", "smoke", "--out", str(out), "--data-dir", str(base / "data"),
                   "--int8-check-speech", str(speech), "--int8-check-noise", str(noise),
                   "--int8", "ptq,qat", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, out, proc


def test_smoke_run_writes_the_report(smoke_run):
    _, out, proc = smoke_run
    report = json.loads((out / "report" / "report.json").read_text())
    assert list(report["models"]) == MODELS + INT8_ROWS
    for model in MODELS + INT8_ROWS:
        labels = set(report["models"][model]["summary"])
        assert {"-5", "0", "5", "mixed", "all"} <= {l.replace("snr_", "") for l in labels}
    md = (out / "report" / "report.md").read_text()
    for model in MODELS:
        assert f"| {model} |" in md
    assert "ΔSI-SDR" in md and "PESQ" in md
    for png in ("spectrogram.png", "gain_vs_snr_si_sdr.png"):
        assert (out / "report" / png).read_bytes()[:4] == b"\x89PNG"
    for stage in ("teacher", "student", "one_step", "two_step"):
        assert (out / "models" / f"{stage}.keras").is_file()
        assert (out / "train" / stage / "history.csv").is_file()
    assert "wall time" in proc.stdout


def test_ship_models_ships_a_smoke_run_into_a_folder(smoke_run, tmp_path, monkeypatch):
    """recipes/ship_models.py on the smoke run, into a folder that holds an earlier models.json:
    files named by size and preset with their hashes and I/O contracts, cards with the data note
    and the training cost; the earlier registry's files that the new one does not list are
    deleted, and nothing else; the folder loads with tinyse_tf.pretrained."""
    import hashlib

    import numpy as np

    import tinyse_tf.models  # noqa: F401  registers the custom layers .keras files name
    from tinyse_tf import shipped
    from tinyse_tf._tf import keras

    _, out, _ = smoke_run
    into, cards, note = tmp_path / "shipped", tmp_path / "cards", tmp_path / "note.md"
    into.mkdir()
    note.write_text("Data: the smoke preset's built-in corpus (generated, no licence terms).\n")
    # An earlier ship: a release student (to be replaced under other names) and a teacher file
    # that the new ship writes again; an unrelated file beside them stays.
    old_stem = "student_62k_two_step_release"
    old = {"student": {"files": {
               "keras": {"file": f"{old_stem}_float32.npz"},
               "int8": {"file": f"{old_stem}_stream_int8.tflite",
                        "io_contract": {"file": f"{old_stem}_stream_int8.io_contract.json"}}}},
           "teacher": {"files": {"keras": {"file": "teacher_1.9m_smoke_float16.npz"}}}}
    for name in shipped.listed_files(old) | {"notes.txt"}:
        (into / name).write_text("old")
    (into / "models.json").write_text(json.dumps({"models": old}))
    proc = _recipe(str(out), "--into", str(into), "--cards", str(cards), "--data-note",
                   str(note), "--commit", "abc1234", script="ship_models.py", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = json.loads((into / "models.json").read_text())["models"]
    stem = "student_62k_two_step_smoke"
    assert {k: r["file"] for k, r in models["student"]["files"].items()} == {
        "keras": f"{stem}_float32.npz", "int8": f"{stem}_stream_int8.tflite",
        "float32": f"{stem}_stream_float32.tflite"}
    assert models["teacher"]["files"]["keras"]["file"] == "teacher_1.9m_smoke_float16.npz"
    assert models["teacher"]["description"] == "1.9 M teacher (smoke)"
    assert models["teacher"]["build"] == {"preset": "teacher", "norm": "frame_ln"}
    for kind in ("int8", "float32"):
        assert models["student"]["files"][kind]["io_contract"]["file"] == \
            f"{stem}_stream_{kind}.io_contract.json"
    listed = shipped.listed_files(models)
    for entry in models.values():
        for record in entry["files"].values():
            for r in (record, record.get("io_contract")):
                if r:
                    assert hashlib.sha256((into / r["file"]).read_bytes()).hexdigest() == \
                        r["sha256"], r["file"]
    assert sorted(p.name for p in into.iterdir()) == sorted(listed | {"models.json",
                                                                      "notes.txt"})
    assert "removed the replaced" in proc.stdout and old_stem in proc.stdout
    for name in ("student", "teacher"):
        text = (cards / f"{name}.md").read_text()
        assert "--preset smoke" in text and "CPU h" in text and "(generated, no licence" in text
        assert "abc1234" in text and str(tmp_path) not in text
    assert "plus the teacher's" in (cards / "student.md").read_text()
    assert (cards / "student.md").read_text().startswith("# 62 k two-step KD student (smoke)")
    # The folder is a package folder: tinyse_tf.pretrained loads the teacher it shipped.
    monkeypatch.setattr(shipped, "FOLDER", into)
    monkeypatch.setattr(shipped, "REGISTRY", into / "models.json")
    assert shipped.verify() == []
    run_teacher = keras.models.load_model(out / "models" / "teacher.keras")
    for got, want in zip(shipped.pretrained("teacher").get_weights(), run_teacher.get_weights()):
        np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))


def test_ship_models_cards_take_further_benchmarks_and_list_where_ours_loses():
    """A second --benchmark (other input SNRs) adds its quality table under its SNRs; the
    Limitations section names the training SNR range and every SNR where one of our rows
    lowers SI-SDR on average, and nothing where none does."""
    spec = importlib.util.spec_from_file_location("ship_models", ROOT / "recipes" / "ship_models.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)

    def bench(snrs, ours):
        return {"machine": {"processor": "cpu", "cpus": 2, "platform": "linux", "python": "3.11"},
                "date": "2026-12-07", "mixtures_per_snr": 3, "seconds": 4, "lead_in_s": 1,
                "tables": {"quality and cost": f"| table {snrs} |", "paired": "| paired |"},
                "results": {"GTCRN": {s: {"si_sdr": {"mean": 1.0}} for s in snrs},
                            "ours: student int8": {s: {"si_sdr": {"mean": v}}
                                                   for s, v in zip(snrs, ours)}}}

    main, high = bench(["-5", "0"], [7.0, 6.0]), bench(["10", "30"], [4.4, -7.71])
    text = ship.benchmark_table([main, high])
    assert "| table ['-5', '0'] |" in text and "| paired |" in text
    assert "### At input SNRs 10 / 30 dB" in text and "| table ['10', '30'] |" in text
    assert text.count("| paired |") == 1  # a further benchmark shows its quality table only
    cfg = {"snr_range": [-5.0, 15.0]}
    limits = ship.limitations(cfg, [main, high])
    assert "energy SNR -5 to 15 dB" in limits
    assert "ours: student int8 lowers SI-SDR on average at input SNR 30 dB (-7.71 dB)" in limits
    assert "GTCRN" not in limits and "10 dB (" not in limits
    assert "lowers" not in ship.limitations(cfg, [main])


def test_ship_models_refresh_rewrites_only_the_benchmark_sections(tmp_path):
    """--refresh on the cards as shipped: the student card's benchmark section and benchmark
    bullets come from the new JSON, both cards' Metrics say so once (a second refresh replaces
    the line), and every other line stays; a missing benchmark stops it with one line."""
    cards = tmp_path / "cards"
    cards.mkdir()
    for name in ("student", "teacher"):
        (cards / f"{name}.md").write_text((ROOT / "docs" / "models" / f"{name}.md").read_text())
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({
        "machine": {"processor": "cpu", "cpus": 2, "platform": "linux", "python": "3.11"},
        "date": "2026-12-08", "mixtures_per_snr": 3, "seconds": 4, "lead_in_s": 1,
        "tables": {"quality and cost": "| new table |"},
        "results": {"ours: student int8": {"30": {"si_sdr": {"mean": -1.5}}}}}))
    before = {n: (cards / f"{n}.md").read_text() for n in ("student", "teacher")}
    for _ in range(2):
        proc = _recipe("--refresh", "--benchmark", str(bench), "--cards", str(cards),
                       "--commit", "abc1234", script="ship_models.py")
        assert proc.returncode == 0, proc.stderr[-2000:]
    student, teacher = ((cards / f"{n}.md").read_text() for n in ("student", "teacher"))
    for old, new in ((before["student"], student), (before["teacher"], teacher)):
        assert new.count("**Re-measured since shipping** (commit `abc1234`, 2026-12-08") == 1
        kept = [line for line in old.split("\n") if "±" in line and "| two-step" in line
                or line.startswith(("# ", "| `", "## "))]
        assert kept and all(line in new for line in kept)
    body = student.split("## Against log-MMSE")[1].split("\n## ")[0]
    assert "| new table |" in body and "GTCRN | 48.2 k" not in body
    limits = student.split("## Limitations\n")[1]
    assert limits.startswith("- Trained on mixtures at energy SNR")
    assert "ours: student int8 lowers SI-SDR on average at input SNR 30 dB (-1.50 dB)" in limits
    assert "the teacher's rows" in teacher
    proc = _recipe("--refresh", "--benchmark", str(tmp_path / "no.json"), "--cards", str(cards),
                   script="ship_models.py")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("ship_models.py: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ship_models_ships_a_run_that_reused_another_runs_teacher(smoke_run, tmp_path):
    """A students' run with --teacher-checkpoint RUN0/models/teacher.keras ships: the teacher's
    card takes its schedule and history from RUN0, and the cards print both commands, which
    parse back to the two runs' configurations. A checkpoint that is no run's teacher: one line."""
    import shlex
    import shutil

    from tinyse_tf.recipe.two_step import config_from_args, parse_args

    _, teacher_run, _ = smoke_run
    run = tmp_path / "students"
    for rel in ("report", "export", "train/two_step", "train/student"):
        shutil.copytree(teacher_run / rel, run / rel)
    (run / "models").mkdir()
    shutil.copy(teacher_run / "models" / "two_step.keras", run / "models")
    cfg = {**json.loads((teacher_run / "config.json").read_text()), "student_epochs": 5,
           "teacher_checkpoint": str(teacher_run / "models" / "teacher.keras")}
    (run / "config.json").write_text(json.dumps(cfg))
    note = tmp_path / "note.md"
    note.write_text("Data: the smoke preset's built-in corpus (generated, no licence terms).\n")
    args = ["--into", str(tmp_path / "shipped"), "--cards", str(tmp_path / "cards"),
            "--data-note", str(note), "--commit", "abc1234"]
    proc = _recipe(str(run), *args, script="ship_models.py", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cards = {name: (tmp_path / "cards" / f"{name}.md").read_text()
             for name in ("student", "teacher")}

    def commands(text):
        block = text.split("```bash\n")[1].split("\n```")[0]
        return [shlex.split(line) for line in block.splitlines()]

    teacher_cmd, students_cmd = commands(cards["student"])
    assert commands(cards["teacher"]) == [teacher_cmd]
    assert teacher_cmd[-2:] == ["--stop-after", "teacher"]
    assert config_from_args(parse_args(teacher_cmd[2:])).student_epochs == 4  # RUN0's (smoke)
    students = parse_args(students_cmd[2:])
    assert config_from_args(students).student_epochs == 5 and students.teacher_checkpoint
    teacher_epochs = len((teacher_run / "train" / "teacher" / "history.csv").read_text()
                         .splitlines()) - 1
    assert f"the last epoch is kept (epoch {teacher_epochs}" in cards["teacher"]
    assert "CPU h" in cards["teacher"] and "plus the teacher's" in cards["student"]
    # A teacher checkpoint that is not a run's models/teacher.keras is refused in one line.
    (run / "config.json").write_text(json.dumps({**cfg, "teacher_checkpoint": str(note)}))
    proc = _recipe(str(run), *args, script="ship_models.py")
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "is not the models/teacher.keras of a recipe run" in line


def test_ship_models_refuses_an_unfinished_run_with_one_line(tmp_path):
    """A run folder without report.json, and a preset without a built-in data note and no
    --data-note: one line naming the missing file or option, exit 2, nothing written."""
    run, into = tmp_path / "run", tmp_path / "shipped"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"preset": "smoke"}))
    args = [str(run), "--into", str(into), "--cards", str(tmp_path / "cards")]
    proc = _recipe(*args, script="ship_models.py")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"ship_models.py: error: {run / 'report' / 'report.json'}: ")
    for rel in ("report/report.json", "models/two_step.keras", "models/teacher.keras",
                *(f"export/two_step_stream_{kind}{suffix}" for kind in ("int8_ptq", "float32")
                  for suffix in (".tflite", ".io_contract.json"))):
        (run / rel).parent.mkdir(exist_ok=True)
        (run / rel).write_text("")
    proc = _recipe(*args, script="ship_models.py")
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and line.startswith("ship_models.py: error: --data-note: ")
    assert not into.exists() and not (tmp_path / "cards").exists()


def test_smoke_run_exports_checked_int8_streaming_files(smoke_run):
    from tinyse_tf.export.edgetpu_check import check_model

    _, out, _ = smoke_run
    for key in ("student", "two_step"):
        for kind in ("float32", "int8_ptq", "int8_qat"):
            path = out / "export" / f"{key}_stream_{kind}.tflite"
            assert path.is_file() and path.with_suffix(".io_contract.json").is_file()
            if kind != "float32":
                assert check_model(path).ok, path
    checks = json.loads((out / "report" / "report.json").read_text())["metadata"]["edgetpu_check"]
    assert len(checks) == 4 and all(c["ok"] and c["cpu_ops"] == 0 for c in checks.values())


def test_smoke_run_reports_int8_against_float(smoke_run):
    """The export stage's guard: int8 - float32 per input SNR on the validation split and on the
    --int8-check recordings, in the log, report.md and export/<key>.int8_check.json."""
    _, out, proc = smoke_run
    md = (out / "report" / "report.md").read_text()
    assert "## int8 files against their float32 file" in md
    for key in ("student", "two_step"):
        check = json.loads((out / "export" / f"{key}.int8_check.json").read_text())
        assert set(check) == {"validation split", "real recordings"}
        for kind in ("int8_ptq", "int8_qat"):
            gaps = check["validation split"]["gaps"][f"{key} {kind}"]
            assert sorted(float(s) for s in gaps) == [-5.0, 0.0, 5.0]
            assert all(abs(d["si_sdr"]) < 20 and abs(d["estoi"]) < 100 for d in gaps.values())
        assert f"**{key}, real recordings**" in md
    assert "int8 check two_step, real recordings" in proc.stdout


def test_bad_int8_check_folders_give_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for flags in (("--int8-check-speech", str(empty), "--int8-check-noise", str(empty)),
                  ("--int8-check-speech", str(empty))):
        proc = _recipe("--preset", "smoke", "--out", str(tmp_path / "o"), *flags, "--quiet")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "--int8-check" in proc.stderr.strip().splitlines()[-1]


def test_two_step_history_switches_phase(smoke_run):
    _, out, _ = smoke_run
    rows = (out / "train" / "two_step" / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    gammas = [float(r.split(",")[header.index("gamma")]) for r in rows[1:]]
    assert gammas == [1.0, 0.0, 0.0, 0.0]  # smoke: 1 of 4 epochs in step 1


def test_validation_score_reproduces_the_runs_own_validation_si_sdr(smoke_run):
    """benchmarks/validation_score.py scores a model on a run's validation stream exactly as the
    run scored its epochs: the teacher (smoke keeps the last epoch) gets its last val_si_sdr."""
    import csv

    base, out, _ = smoke_run
    scores = base / "scores.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation_score.py"),
                           str(out), str(out / "models" / "teacher.keras"), "--data-dir",
                           str(base / "data"), "--json", str(scores)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    score = json.loads(scores.read_text())["val_si_sdr"][str(out / "models" / "teacher.keras")]
    last = list(csv.DictReader((out / "train" / "teacher" / "history.csv").open()))[-1]
    assert score == pytest.approx(float(last["val_si_sdr"]), abs=2e-3)
    # --snrs: the same draws at fixed SNRs; the enhanced SI-SDR rises with the input SNR.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation_score.py"),
                           str(out), "teacher", "--data-dir", str(base / "data"), "--snrs", "-5",
                           "20", "--json", str(scores)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    at_snr = json.loads(scores.read_text())["val_si_sdr_at_snr"]
    assert set(at_snr) == {"-5", "20"}
    assert at_snr["-5"]["teacher"] + 10 < at_snr["20"]["teacher"]
    # --cross-splits: training and validation speech x noise, each at each SNR
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation_score.py"),
                           str(out), "teacher", "--data-dir", str(base / "data"), "--snrs", "-5",
                           "20", "--cross-splits", "--json", str(scores)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    crossed = json.loads(scores.read_text())["si_sdr_at_snr_by_splits"]
    streams = {f"{s} speech, {n} noise" for s in ("train", "valid") for n in ("train", "valid")}
    assert set(crossed) == {"-5", "20"} and set(crossed["-5"]) == streams
    for stream in streams:
        assert crossed["-5"][stream]["teacher"] + 10 < crossed["20"][stream]["teacher"]
    assert len({crossed["-5"][stream]["teacher"] for stream in streams}) == 4  # four data sets


def test_low_bins_scores_each_treatment_of_the_bins_below_the_filterbank(smoke_run):
    """benchmarks/low_bins.py: its ``dc_zero`` matrix is today's ``mel_to_linear_matrix``, ``copy``
    gives both low bins the lowest band's mask and ``both_zero`` neither; on the smoke run each
    treatment is scored on the same batches, today's exactly as validation_score.py scores it."""
    import numpy as np

    from tinyse_tf.dsp import mel_to_linear_matrix

    spec = importlib.util.spec_from_file_location("low_bins", ROOT / "benchmarks" / "low_bins.py")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        low = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(low)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    np.testing.assert_array_equal(low.matrix("dc_zero"), mel_to_linear_matrix())
    for treatment, first in (("copy", [1.0, 1.0]), ("both_zero", [0.0, 0.0])):
        m = low.matrix(treatment)
        assert m[0, :2].tolist() == first and not m[1:, :2].any()
        np.testing.assert_array_equal(m[:, 2:], mel_to_linear_matrix()[:, 2:])
    base, out, _ = smoke_run
    scores, today = base / "low_bins.json", base / "today.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for script, path in (("low_bins.py", scores), ("validation_score.py", today)):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), str(out),
                               "teacher", "--data-dir", str(base / "data"), "--snrs", "0",
                               "--json", str(path)], capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    by = json.loads(scores.read_text())["val_si_sdr_at_snr_by_treatment"]
    assert set(by) == {"copy", "dc_zero", "both_zero"}
    assert by["dc_zero"] == json.loads(today.read_text())["val_si_sdr_at_snr"]
    assert len({by[t]["0"]["teacher"] for t in by}) == 3  # the treatments differ


def test_low_bins_energy_of_a_folder(tmp_path):
    """low_bins.py --energy-of: a tone at 1 kHz has next to nothing in bins 0 and 1; the same
    tone on a DC offset has most of its energy in bin 0; an empty folder is one line, exit 2."""
    import numpy as np

    from tinyse_tf.data import write_audio

    folder = tmp_path / "rec" / "noise"
    folder.mkdir(parents=True)
    tone = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(32000) / 16000).astype(np.float32)
    write_audio(folder / "tone.wav", tone)
    write_audio(folder / "offset.wav", tone + 0.5)
    out = tmp_path / "energy.json"
    script = [sys.executable, str(ROOT / "benchmarks" / "low_bins.py"), "--energy-of"]
    proc = subprocess.run([*script, str(folder), "--json", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shares = json.loads(out.read_text())["energy_share_bins_0_1"]["rec/noise"]
    assert sum(shares["tone.wav"]) < 1e-3 and shares["offset.wav"][0] > 0.5
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([*script, str(tmp_path / "empty")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no recordings there" in proc.stderr.strip().splitlines()[-1]


def test_stop_after_teacher_trains_the_chosen_teacher_only(tmp_path):
    out = tmp_path / "run"
    proc = _recipe("--preset", "smoke", "--out", str(out), "--teacher", "student_30k",
                   "--stop-after", "teacher", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["teacher"] == "student_30k"
    assert sorted(p.name for p in (out / "models").iterdir()) == ["teacher.keras"]
    header = (out / "train" / "teacher" / "history.csv").read_text().splitlines()[0]
    assert {"cpu_hours", "wall_hours", "val_si_sdr"} <= set(header.split(","))


def _teacher_weights(smoke_run, path):
    """The smoke run's teacher saved as stage weights (.h5), as ``train/teacher/best.h5`` is."""
    import tinyse_tf.models  # noqa: F401  registers the custom layers .keras files name
    from tinyse_tf._tf import keras

    _, out, _ = smoke_run
    keras.models.load_model(out / "models" / "teacher.keras").save_weights(path)
    return path


def test_schedule_and_data_options_reach_the_config():
    from tinyse_tf.recipe.two_step import config_from_args, parse_args

    cfg = config_from_args(parse_args(["--preset", "flagship", "--teacher-epochs", "450",
                                       "--student-epochs", "300", "--step1-epochs", "75",
                                       "--builtin-weight", "0"]))
    assert (cfg.teacher_epochs, cfg.student_epochs, cfg.step1_epochs, cfg.builtin_weight) == (
        450, 300, 75, 0.0)
    # The flagship's measured choices (docs/RESULTS.md section 11), unless overridden.
    assert cfg.teacher == "student_350k" and cfg.students == ("baseline", "two_step")
    cfg = config_from_args(parse_args(["--preset", "flagship", "--learning-rate", "2e-3",
                                       "--batch-size", "16", "--clip-seconds", "4",
                                       "--steps-per-epoch", "50", "--snr-range", "-10", "10"]))
    assert (cfg.learning_rate, cfg.batch_size, cfg.clip_seconds, cfg.steps_per_epoch,
            cfg.snr_range) == (2e-3, 16, 4.0, 50, (-10.0, 10.0))
    assert config_from_args(parse_args(["--preset", "flagship", "--snr-range", "5", "5"])
                            ).snr_range == (5.0, 5.0)  # a fixed SNR
    with pytest.raises(ValueError, match="low <= high"):
        config_from_args(parse_args(["--preset", "flagship", "--snr-range", "5", "0"]))
    for flag in ("--learning-rate", "--clip-seconds", "--batch-size"):
        with pytest.raises(ValueError, match="must be positive"):
            config_from_args(parse_args(["--preset", "flagship", flag, "0"]))


def test_kd_probe_trains_the_chosen_students_from_teacher_weights(smoke_run, tmp_path):
    base, _, _ = smoke_run
    out = tmp_path / "probe"
    weights = _teacher_weights(smoke_run, tmp_path / "best.h5")
    proc = _recipe("--preset", "smoke", "--out", str(out), "--data-dir", str(base / "data"),
                   "--teacher-checkpoint", str(weights), "--students", "two_step",
                   "--student-epochs", "3", "--step1-epochs", "1", "--stop-after", "students",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"teacher: reusing {weights}" in proc.stdout
    assert sorted(p.name for p in (out / "models").iterdir()) == ["student_init.h5",
                                                                  "two_step.keras"]
    rows = (out / "train" / "two_step" / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 3
    assert not (out / "report").exists()
    # A run's saved teacher (.keras) works too, in a fresh process (custom layers registered).
    saved = smoke_run[1] / "models" / "teacher.keras"
    proc = _recipe("--preset", "smoke", "--out", str(tmp_path / "from_keras"), "--data-dir",
                   str(base / "data"), "--teacher-checkpoint", str(saved), "--students",
                   "two_step", "--student-epochs", "2", "--step1-epochs", "1", "--stop-after",
                   "students", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"teacher: reusing {saved}" in proc.stdout


def test_keep_best_stage_keeps_the_better_of_best_epoch_and_tail_average(smoke_run, tmp_path):
    import numpy as np

    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse
    from tinyse_tf.recipe.presets import get_preset
    from tinyse_tf.recipe.two_step import open_run
    from tinyse_tf._tf import keras

    base, _, _ = smoke_run
    cfg = get_preset("smoke", keep="best", lr_schedule="cosine", student_epochs=5,
                     students=("baseline",))
    r = open_run("smoke", cfg, tmp_path / "run", data_dir=base / "data", verbose=0)
    model = r.train_student("student", "baseline",
                            r.student_builder(cfg.student, cfg.norm, cfg.seed, "init.h5"), None)
    workdir = tmp_path / "run" / "train" / "student"
    kept = json.loads((workdir / "kept.json").read_text())
    assert kept["average"]["epochs"] == [5, 5]  # the last fifth of 5 epochs
    assert kept["kept"] == ("average" if kept["average"]["val_si_sdr"] >
                            kept["best"]["val_si_sdr"] else "best")
    # Like with like: the best epoch's weights, scored again, give the score it was kept for.
    best = build_cruse(cfg.student, norm=cfg.norm)
    best.load_weights(workdir / "best.h5")
    distiller = Distiller(best)
    distiller.compile(optimizer=keras.optimizers.Adam())
    logs = distiller.evaluate(r.dataset("valid", 1), steps=cfg.validation_steps,
                              return_dict=True, verbose=0)
    assert logs["si_sdr"] == pytest.approx(kept["best"]["val_si_sdr"], abs=1e-3)
    chosen = build_cruse(cfg.student, norm=cfg.norm)
    chosen.load_weights(workdir / ("average.h5" if kept["kept"] == "average" else "best.h5"))
    for a, b in zip(model.get_weights(), chosen.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_same_folder_relative_or_absolute_or_other_students_is_the_same_run(
        smoke_run, tmp_path, capsys, monkeypatch):
    from tinyse_tf.recipe.two_step import main

    base, _, _ = smoke_run
    _teacher_weights(smoke_run, tmp_path / "best.h5")
    monkeypatch.chdir(tmp_path)
    common = ["--preset", "smoke", "--out", "run", "--data-dir", str(base / "data"),
              "--stop-after", "teacher", "--quiet"]
    assert main([*common, "--teacher-checkpoint", "best.h5"]) == 0
    assert main([*common, "--teacher-checkpoint", str(tmp_path / "best.h5")]) == 0
    # Other students add or leave out stages: the same run too.
    assert main([*common, "--teacher-checkpoint", "best.h5",
                 "--students", "baseline,two_step"]) == 0
    assert "another configuration" not in capsys.readouterr().err


def test_report_without_baseline_or_two_step_is_refused(tmp_path, capsys):
    code, line = _recipe_in_process(capsys, "--preset", "smoke", "--out", str(tmp_path / "o"),
                                    "--students", "baseline,one_step")
    assert code == 2
    assert line.startswith("two_step.py: error: --students baseline,one_step: the report")


def test_rerun_skips_finished_stages(smoke_run):
    base, out, _ = smoke_run
    proc = _recipe("--preset", "smoke", "--out", str(out), "--data-dir", str(base / "data"),
                   "--int8", "qat,ptq", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done already") == 4
    assert "Epoch" not in proc.stdout
    timings = json.loads((out / "timings.json").read_text())  # the first run's stage times kept
    assert {"train_teacher_s", "train_two_step_s", "export_two_step_s"} <= set(timings)
    assert timings["total_s"] < sum(v for k, v in timings.items() if k != "total_s")  # rerun's


def _recipe_in_process(capsys, *args):
    """``main(args)`` of the recipe in this process: ``(exit code, last stderr line)``. For the
    paths that fail before any work (no TensorFlow start-up per call, as a subprocess costs);
    each test that uses it also runs one case as a subprocess (the script as a user runs it)."""
    from tinyse_tf.recipe.two_step import main

    code = main(list(args))
    return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flags", [("--seed", "5"), ("--kd-reduction", "sum"),
                                   ("--no-kd-normalize",), ("--kd-layers", "enc_1,mask"),
                                   ("--reset-optimizer",), ("--int8", "ptq")])
def test_changed_config_in_same_folder_is_refused(smoke_run, flags, capsys):
    base, out, _ = smoke_run
    args = flags if flags[0] == "--int8" else (*flags, "--int8", "ptq,qat")
    if flags[0] == "--seed":  # as a user runs it: the script, in its own process
        proc = _recipe("--preset", "smoke", "--out", str(out), *args, "--quiet")
        code, line = proc.returncode, proc.stderr.strip().splitlines()[-1]
    else:
        code, line = _recipe_in_process(capsys, "--preset", "smoke", "--out", str(out), *args,
                                        "--quiet")
    assert code == 2
    assert "another configuration" in line
    field = {"--no-kd-normalize": "kd_normalize"}.get(flags[0], flags[0][2:].replace("-", "_"))
    assert f"{field} (there " in line, line  # names what differs


@pytest.mark.parametrize("flags,start", [(("--kd-layers", "enc_9"), "kd_layers must"),
                                         (("--int8", "ptq,int4"), "int8 must"),
                                         (("--students", "baseline,three_step"),
                                          "students must")])
def test_bad_recipe_option_gives_one_line(tmp_path, flags, start, capsys):
    if flags[0] != "--kd-layers":
        code, line = _recipe_in_process(capsys, "--preset", "smoke", "--out",
                                        str(tmp_path / "o"), *flags)
    else:  # as a user runs it
        proc = _recipe("--preset", "smoke", "--out", str(tmp_path / "o"), *flags)
        assert "Traceback" not in proc.stderr
        code, line = proc.returncode, proc.stderr.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"two_step.py: error: {start}")


def test_bad_inputs_give_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "noaudio").mkdir()
    (tmp_path / "noaudio" / "readme.txt").write_text("hello")
    for speech, noise in ((empty, empty), (tmp_path / "noaudio", empty),
                          (tmp_path / "missing", empty)):
        proc = _recipe("--preset", "smoke", "--out", str(tmp_path / "o"), "--speech-dir",
                       str(speech), "--noise-dir", str(noise), "--quiet")
        assert proc.returncode == 2, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("two_step.py: error:") and "Traceback" not in proc.stderr


def test_same_seed_gives_same_test_set(tmp_path):
    from tinyse_tf.recipe.presets import get_preset
    from tinyse_tf.recipe.two_step import Run

    manifests = []
    for name in ("a", "b"):
        run = Run(get_preset("smoke"), tmp_path / name, data_dir=tmp_path / "data", verbose=0)
        run.prepare_data()
        manifests.append(json.loads((tmp_path / name / "testsets" / "manifest.json").read_text()))
        noisy = [pathlib.Path(i["noisy_path"]).read_bytes() for i in run.test_items]
        manifests[-1]["_audio"] = [hash(b) for b in noisy]
    assert manifests[0] == manifests[1]


@pytest.mark.slow
def test_same_seed_gives_same_metrics(smoke_run, tmp_path):
    base, out, _ = smoke_run
    proc = _recipe("--preset", "smoke", "--out", str(tmp_path / "again"), "--data-dir",
                   str(base / "data"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for model in ("teacher", "student", "one_step", "two_step"):
        first = json.loads((out / "eval" / f"{model}.json").read_text())
        second = json.loads((tmp_path / "again" / "eval" / f"{model}.json").read_text())
        for a, b in zip(first, second):
            # Same weights and files; eSTOI's float sums may differ in the last digit (BLAS).
            assert a["enhanced"] == pytest.approx(b["enhanced"], rel=1e-9), model
