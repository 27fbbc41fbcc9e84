"""The experiment grid (recipes/experiments/run.py) and its summary, as users run them."""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from tinyse_tf.recipe.experiments import Condition, plan
from tinyse_tf.recipe.summary import Results, _cell

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script(name, *args, timeout=900):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "recipes" / "experiments" / name), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_plan_orders_groups_and_names_each_condition_once():
    keys = [c.key for c in plan(["table3:0,1", "step1:0", "table3:1"], student_epochs=8,
                                step1_epochs=2)]
    assert keys[:4] == ["teacher", "student-frame_ln-baseline-seed0",
                        "student-frame_ln-one_step-gtf-seed0", "student-frame_ln-two_step-gtf-seed0"]
    assert keys.count("teacher") == 1 and len(keys) == len(set(keys)) == 1 + 3 * 2 + 3
    assert keys[-3:] == [f"student-frame_ln-two_step-gtf-step1_{n}-seed0" for n in (1, 4, 6)]
    sizes = plan(["size:2"])
    assert {c.student for c in sizes} == {"student_30k", "student_240k"}
    assert all(c.int8 == ("ptq",) and c.seed == 2 for c in sizes)
    assert Condition("two_step", 3, norm="cln", granularity="t").key == \
        "student-cln-two_step-gt-seed3"


def test_kd_reduction_group_shares_table3_conditions():
    conds = plan(["kd_reduction:0,1"])
    assert [c.key for c in conds] == [
        f"student-frame_ln-{m}-seed{s}" for s in (0, 1)
        for m in ("baseline", "one_step-gtf", "one_step-gtf-rsum")]
    assert not any(c.dnsmos or c.int8 for c in conds)
    assert conds[2].kd_reduction == "sum" and conds[1].kd_reduction is None
    # The config's reduction is the unsuffixed (table3) condition: with "sum" it is "mean" that
    # gets the suffix.
    assert [c.key for c in plan(["kd_reduction:0"], kd_reduction="sum")][1:] == [
        "student-frame_ln-one_step-gtf-seed0", "student-frame_ln-one_step-gtf-rmean-seed0"]
    # Shared with table3 (in either order): scored with table3's DNSMOS and int8 files.
    for specs in (["kd_reduction:0", "table3:0"], ["table3:0", "kd_reduction:0"]):
        by_key = {c.key: c for c in plan(specs)}
        assert len(by_key) == 5
        assert by_key["student-frame_ln-baseline-seed0"].dnsmos
        assert by_key["student-frame_ln-baseline-seed0"].int8 == ("ptq", "qat")
        assert by_key["student-frame_ln-one_step-gtf-seed0"].dnsmos
        assert not by_key["student-frame_ln-one_step-gtf-rsum-seed0"].dnsmos


def test_int8_group_is_table3s_int8_students():
    table3 = {c.key: c for c in plan(["table3:1"])}
    conds = plan(["int8:1"])
    assert [c.method for c in conds] == ["baseline", "two_step"]
    assert all(c.key in table3 and c.int8 == table3[c.key].int8 == ("ptq", "qat") for c in conds)


def test_snr_group_adds_a_loudness_baseline_to_table3s():
    table3 = {c.key for c in plan(["table3:0"])}
    energy, loudness = plan(["snr:0"])
    assert energy.key in table3 and energy.snr_measure is None
    assert loudness.key == "student-frame_ln-baseline-snr_loudness-seed0"
    assert loudness.snr_measure == "loudness"


def test_summary_has_a_kd_reduction_section(tmp_path):
    from tinyse_tf.recipe.summary import write_summary

    base, one, rsum = ("student-frame_ln-baseline", "student-frame_ln-one_step-gtf",
                       "student-frame_ln-one_step-gtf-rsum")
    # The baseline has one seed only: the reductions still compare on the two they share.
    _fake_folder(tmp_path, {f"{base}-seed0": [1, 1],
                            f"{one}-seed0": [2, 2], f"{one}-seed1": [3, 3],
                            f"{rsum}-seed0": [1.5, 1.5], f"{rsum}-seed1": [3.5, 3.5]})
    (tmp_path / "config.json").write_text(json.dumps(
        {"step1_epochs": 2, "student_epochs": 8, "one_step_gamma": 0.5}))  # pre-field folder
    md = write_summary(tmp_path, tmp_path / "summary").read_text()
    assert "## KD reduction (one step, γ = 0.5, G_tf)" in md
    rows = {}
    for line in md[md.index("## KD reduction"):].splitlines():
        rows.setdefault(line.split(" | ")[0], []).append(line)
    first, second = rows["| one-step, sum"]  # reductions alone, then beside the baseline
    assert "| 2 |" in first and "| +2.50 ± 1.41 |" in first
    assert "| 1 |" in second and "| +1.50 |" in second
    assert "| +0.00 ± 0.71 (1/2) |" in rows["| one-step, sum − one-step, mean (config)"][0]
    assert "| +0.50 (1/1) |" in rows["| one-step, sum − student"][0]
    assert "one-step, sum: -0.50, +0.50" in md


@pytest.mark.parametrize("spec", ["tabel3:0", "table3:a", "size:0,x"])
def test_plan_refuses_bad_specs(spec):
    with pytest.raises(ValueError, match="table3"):
        plan([spec])


def _fake_folder(tmp_path, deltas):
    """An experiment folder with per-file ΔSI-SDR ``deltas[key] = [values per file]``."""
    (tmp_path / "eval").mkdir()
    manifest = {}
    for key, values in deltas.items():
        records = [{"id": f"f{i}", "snr_label": "snr_0" if i % 2 else "snr_5",
                    "delta": {"si_sdr": v}} for i, v in enumerate(values)]
        (tmp_path / "eval" / f"{key}.json").write_text(json.dumps(records))
        manifest[key] = {"evals": [key]}
    (tmp_path / "experiments.json").write_text(json.dumps(manifest))
    return Results(tmp_path)


def test_seed_statistics_and_pairing(tmp_path):
    res = _fake_folder(tmp_path, {"a-seed0": [1, 2, 3, 4], "a-seed1": [2, 2, 2, 2],
                                  "b-seed0": [2, 2, 4, 4], "b-seed1": [1, 1, 1, 1],
                                  "teacher": [0, 0, 0, 0]})
    assert res.seeds("a") == [0, 1] and res.seeds("teacher") == [None]
    assert res.per_seed("a", "si_sdr") == [2.5, 2.0]
    assert res.per_seed("a", "si_sdr", "snr_0") == [3.0, 2.0]  # files 1 and 3
    assert res.paired("b", "a", "si_sdr") == [0.5, -1.0]
    assert res.paired("a", "teacher", "si_sdr") == [2.5, 2.0]  # a seedless row pairs with all
    assert res.paired("teacher", "a", "si_sdr") == [-2.5, -2.0]
    assert res.per_seed("a", "pesq") == [] and _cell(res.per_seed("a", "pesq")) == "—"
    assert _cell([0.5, -1.0], paired=True) == f"-0.25 ± {np.std([0.5, -1.0], ddof=1):.2f} (1/2)"
    assert _cell([]) == "—" and _cell([1.0]) == "+1.00"


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    base = tmp_path_factory.mktemp("grid")
    args = ("step1:0", "norm:0", "--preset", "smoke", "--out", str(base / "run"),
            "--data-dir", str(base / "data"), "--quiet")
    proc = _script("run.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, args


# The grid trains a teacher and four students end to end (several minutes on 2 cores); the
# recipe's smoke test keeps one end-to-end run in the default suite, so these two are slow.
@pytest.mark.slow
def test_grid_trains_scores_and_resumes(grid):
    base, args = grid
    out = base / "run"
    manifest = json.loads((out / "experiments.json").read_text())
    # smoke: 4 student epochs, 1 of them KD in the preset; the step1 group adds 2 and 3.
    assert sorted(manifest) == ["student-cln-baseline-seed0", "student-cln-two_step-gtf-seed0",
                                "student-frame_ln-two_step-gtf-step1_2-seed0",
                                "student-frame_ln-two_step-gtf-step1_3-seed0"]
    for key, entry in manifest.items():
        assert (out / "models" / f"{key}.keras").is_file()
        records = json.loads((out / "eval" / f"{key}.json").read_text())
        assert {r["snr_label"] for r in records} == {"snr_-5", "snr_0", "snr_5"}  # no "mixed"
        assert all(np.isfinite(r["delta"]["si_sdr"]) for r in records)
        assert entry["evals"] == [key]
    history = (out / "train" / "student-frame_ln-two_step-gtf-step1_3-seed0" / "history.csv")
    gammas = [line.split(",")[1] for line in history.read_text().splitlines()[1:]]
    assert [float(g) for g in gammas] == [1.0, 1.0, 1.0, 0.0]
    again = _script("run.py", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done already") == 5 and "Epoch" not in again.stdout


@pytest.mark.slow
def test_summary_tables_match_the_eval_files(grid):
    base, _ = grid
    proc = _script("summarize.py", str(base / "run"), "--dest", str(base / "summary"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (base / "summary" / "summary.md").read_text()
    assert "## Step-1 length (same 4 epochs in total)" in md and "## Normalisation" in md
    # The cLN paired cell, recomputed from the per-file records.
    ev = {k: {(r["id"], r["snr_label"]): r["delta"]["si_sdr"]
              for r in json.loads((base / "run" / "eval" / f"{k}.json").read_text())}
          for k in ("student-cln-baseline-seed0", "student-cln-two_step-gtf-seed0")}
    a, b = ev.values()
    expected = np.mean([b[k] - a[k] for k in a])
    row = next(line for line in md.splitlines() if line.startswith("| cLN: two-step − student |"))
    assert re.split(r"\s*\|\s*", row)[2].startswith(f"{expected:+.2f}")
    assert (base / "summary" / "gain_vs_snr.png").read_bytes()[:4] == b"\x89PNG"


def test_grid_extends_a_folder_whatever_int8_its_recipe_exported(tmp_path):
    """The grid never reads cfg.int8 (each condition has its own), so it adopts the folder's:
    a folder written when the recipe exported PTQ and QAT by default is not refused."""
    import dataclasses

    from tinyse_tf.recipe.experiments import folder_int8
    from tinyse_tf.recipe.presets import get_preset
    from tinyse_tf.recipe.two_step import open_run

    out, data = tmp_path / "run", tmp_path / "data"
    assert folder_int8(out, ("ptq",)) == ("ptq",)  # no folder yet
    old = get_preset("smoke", int8=("ptq", "qat"))
    open_run("smoke", old, out, data_dir=data, verbose=0)
    now = get_preset("smoke")
    assert now.int8 == ("ptq",) and folder_int8(out, now.int8) == ("ptq", "qat")
    open_run("smoke", dataclasses.replace(now, int8=folder_int8(out, now.int8)), out,
             data_dir=data, verbose=0)  # resumes: same record
    (out / "config.json").write_text("{not json")
    assert folder_int8(out, ("ptq",)) == ("ptq",)


def test_bad_arguments_give_one_line(tmp_path):
    for args in (("tabel3", "--out", str(tmp_path / "o")),
                 ("step1", "--out", str(tmp_path / "o"), "--shard", "2/2")):
        proc = _script("run.py", *args, "--preset", "smoke")
        assert proc.returncode == 2
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("experiments: error:") and "Traceback" not in proc.stderr
    proc = _script("summarize.py", str(tmp_path), "--dest", str(tmp_path / "d"))
    assert proc.returncode == 2 and "experiments.json not found" in proc.stderr


def test_tables_compare_rows_on_the_seeds_they_share(tmp_path):
    from tinyse_tf.recipe.summary import gain_table, paired_table

    res = _fake_folder(tmp_path, {"base-seed0": [1, 1], "base-seed1": [3, 3], "abl-seed0": [2, 2]})
    assert res.common_seeds(["base", "abl"]) == {0}
    table = gain_table(res, [("base", "base"), ("abl", "abl")], [("si_sdr", "all")])
    assert "| base | 1 | +1.00 |" in table and "| abl | 1 | +2.00 |" in table
    assert "+1.00 (1/1)" in paired_table(res, [("abl − base", "abl", "base")], [("si_sdr", "all")])
    assert "+2.00 ± 1.41" in gain_table(res, [("base", "base")], [("si_sdr", "all")])
