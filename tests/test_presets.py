"""RecipeConfig's KD options: validation, the recipe's flags, and where they end up."""
import dataclasses
import json

import pytest

from tinyse_tf.recipe.presets import LEGACY_VALUES, RecipeConfig, get_preset, speed_settings
from tinyse_tf.recipe.two_step import Run, config_from_args, open_run, parse_args


def test_defaults_are_todays_behaviour():
    cfg = get_preset("demo")
    assert (cfg.kd_reduction, cfg.kd_normalize, cfg.kd_layers, cfg.reset_optimizer) == (
        "mean", True, (), False)
    # The defaults are what a folder written before the fields existed ran with.
    assert {k: getattr(cfg, k) for k in LEGACY_VALUES} == LEGACY_VALUES


@pytest.mark.parametrize("overrides,needle", [
    (dict(kd_reduction="median"), "kd_reduction must be one of ('mean', 'sum')"),
    (dict(kd_layers=("enc_1", "enc_9")), "kd_layers must be distinct names from enc_1"),
    (dict(kd_layers=("mask", "mask")), "kd_layers must be distinct names"),
    (dict(kd_layers="enc_1"), "kd_layers must be a tuple of block names"),
    (dict(kd_granularity="output", kd_layers=("enc_1",)), "only 'mask'"),
    (dict(kd_normalize="no"), "kd_normalize must be true or false"),
    (dict(reset_optimizer=1), "reset_optimizer must be true or false"),
    (dict(int8=("ptq", "int4")), "int8 must be distinct names from ptq, qat"),
    (dict(int8=("qat", "qat")), "int8 must be distinct names"),
])
def test_bad_kd_options_give_one_line(overrides, needle):
    with pytest.raises(ValueError) as err:
        get_preset("smoke", **overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_kd_layers_are_a_tuple_in_block_order():
    assert RecipeConfig(kd_layers=None).kd_layers == ()
    assert RecipeConfig(kd_layers=["mask", "enc_1"]).kd_layers == ("enc_1", "mask")
    assert RecipeConfig(kd_granularity="output", kd_layers=("mask",)).kd_layers == ("mask",)


def test_int8_files_default_to_ptq_in_a_fixed_order():
    assert get_preset("demo").int8 == ("ptq",)  # docs/RESULTS.md section 8: QAT is opt-in
    assert RecipeConfig(int8=["qat", "ptq"]).int8 == ("ptq", "qat")  # config.json holds a list
    assert RecipeConfig(int8="qat").int8 == ("qat",)
    assert config_from_args(parse_args(["--int8", "qat, ptq"])).int8 == ("ptq", "qat")
    assert config_from_args(parse_args(["--int8", "none"])).int8 == ()


def test_recipe_flags_reach_the_config():
    args = parse_args(["--preset", "smoke", "--kd-reduction", "sum", "--no-kd-normalize",
                       "--kd-layers", "mask,enc_2, bottleneck", "--reset-optimizer"])
    cfg = config_from_args(args)
    assert (cfg.kd_reduction, cfg.kd_normalize, cfg.kd_layers, cfg.reset_optimizer) == (
        "sum", False, ("enc_2", "bottleneck", "mask"), True)
    assert config_from_args(parse_args(["--preset", "smoke"])) == get_preset("smoke")
    assert config_from_args(parse_args(["--preset", "smoke", "--snr-measure", "loudness"])) == \
        get_preset("smoke", snr_measure="loudness")


def test_a_stage_can_mix_at_another_snr_measure(monkeypatch, tmp_path):
    """The experiment grid's ``snr`` group trains one student at loudness SNR in a run whose
    config says energy: the stage's training and validation streams both get it."""
    cfg = get_preset("smoke")
    seen = _capture(monkeypatch, cfg, tmp_path, "baseline", snr_measure="loudness")
    assert [d["snr_measure"] for d in seen["datasets"]] == ["loudness"]  # validation; fit stops
    seen = _capture(monkeypatch, cfg, tmp_path, "two_step")
    assert [d["snr_measure"] for d in seen["datasets"]] == [None]  # None: the config's


class _Stop(Exception):
    pass


def _capture(monkeypatch, cfg, tmp_path, method, speed=None, teacher=object(), stage=None,
             **kwargs):
    """Run.train_student up to fit: the Distiller's kwargs, its compile kwargs and the callbacks
    it would get."""
    import tinyse_tf.distill
    import tinyse_tf.training

    seen = {}

    class FakeDistiller:
        def __init__(self, student, teacher=None, **kw):
            seen["distiller"] = kw

        def compile(self, **kw):
            seen["compile"] = kw

    def fake_fit(distiller, make_dataset, epochs, steps_per_epoch, workdir, callbacks=(), **kw):
        seen["callbacks"] = list(callbacks)
        raise _Stop

    monkeypatch.setattr(tinyse_tf.distill, "Distiller", FakeDistiller)
    monkeypatch.setattr(tinyse_tf.training, "fit_resumable", fake_fit)
    run = Run(cfg, tmp_path, verbose=0)
    run.speed.update(speed or {})
    run.dataset = lambda *args, **kw: seen.setdefault("datasets", []).append(kw)  # no corpus
    with pytest.raises(_Stop):
        run.train_student(stage or method, method, lambda: None, teacher=teacher, **kwargs)
    return seen


def test_kd_options_reach_distiller_and_phase_switch(monkeypatch, tmp_path):
    cfg = get_preset("smoke", kd_reduction="sum", kd_normalize=False,
                     kd_layers=("enc_1", "mask"), reset_optimizer=True)
    seen = _capture(monkeypatch, cfg, tmp_path, "two_step")
    assert seen["distiller"]["kd_reduction"] == "sum"
    assert seen["distiller"]["kd_normalize"] is False
    assert seen["distiller"]["kd_layers"] == ("enc_1", "mask")
    (switch,) = seen["callbacks"]
    assert switch.reset_optimizer is True and switch.switch_epoch == cfg.step1_epochs
    # Defaults: Distiller's own defaults (None = all blocks), no reset; a condition may override
    # the reduction (the experiment grid's kd_reduction group).
    seen = _capture(monkeypatch, get_preset("smoke"), tmp_path, "one_step", kd_reduction="sum")
    assert seen["distiller"] == dict(gamma=0.5, kd_granularity="tf", kd_reduction="sum",
                                     kd_normalize=True, kd_layers=None)
    seen = _capture(monkeypatch, get_preset("smoke"), tmp_path, "two_step")
    assert seen["distiller"]["kd_reduction"] == "mean"
    assert seen["callbacks"][0].reset_optimizer is False


def test_each_stage_compiles_with_its_own_xla_choice(monkeypatch, tmp_path):
    speed = {"jit_teacher": False, "jit_student": True, "jit_kd": False}
    for stage, method, teacher, want in (("student", "baseline", None, True),
                                         ("one_step", "one_step", object(), False),
                                         ("teacher", "baseline", None, False)):
        seen = _capture(monkeypatch, get_preset("smoke"), tmp_path / stage, method, speed=speed,
                        teacher=teacher, stage=stage)
        assert seen["compile"]["jit_compile"] is want, stage


def test_config_json_round_trips_and_old_folders_resume(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    cfg = get_preset("smoke", kd_reduction="sum", kd_layers=("enc_1", "mask"),
                     reset_optimizer=True)
    open_run("smoke", cfg, out, data_dir=data, verbose=0)
    record = json.loads((out / "config.json").read_text())
    assert record["kd_layers"] == ["enc_1", "mask"] and record["kd_reduction"] == "sum"
    assert RecipeConfig(kd_layers=record["kd_layers"]).kd_layers == cfg.kd_layers  # list -> tuple
    open_run("smoke", cfg, out, data_dir=data, verbose=0)  # same config: resumes
    with pytest.raises(ValueError, match="another configuration"):
        open_run("smoke", dataclasses.replace(cfg, kd_reduction="mean"), out, data_dir=data,
                 verbose=0)

    # A folder written before the KD fields existed resumes with the defaults ...
    old = tmp_path / "old"
    open_run("smoke", get_preset("smoke"), old, data_dir=data, verbose=0)
    record = json.loads((old / "config.json").read_text())
    for key in LEGACY_VALUES:
        del record[key]
    (old / "config.json").write_text(json.dumps(record))
    open_run("smoke", get_preset("smoke"), old, data_dir=data, verbose=0)
    assert json.loads((old / "config.json").read_text())["kd_reduction"] == "mean"
    # ... and is refused with anything else, since it was trained with the defaults.
    (old / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="another configuration"):
        open_run("smoke", get_preset("smoke", kd_reduction="sum"), old, data_dir=data, verbose=0)


def test_speed_settings_pick_per_device_and_obey_the_user():
    auto = speed_settings()
    picked = lambda s: (s["jit_student"], s["jit_kd"], s["jit_teacher"],  # noqa: E731
                        s["mixed_precision"])
    if auto["device"] == "cpu":  # no GPU: XLA for the PSA-only stages, float16 off
        assert picked(auto) == (True, False, True, False)
    else:
        assert picked(auto) == (False, False, False, True)
    short = speed_settings(steps=12)  # too short to pay for compiling
    assert not short["jit_student"] and not short["jit_teacher"]
    assert picked(speed_settings(jit="on", mixed_precision="on")) == (True, True, True, True)
    assert picked(speed_settings(jit="off", mixed_precision="off")) == (False,) * 4
    with pytest.raises(ValueError, match="jit must be one of"):
        speed_settings(jit="yes")
    args = parse_args(["--jit", "off", "--mixed-precision", "off"])
    assert (args.jit, args.mixed_precision) == ("off", "off")


@pytest.mark.parametrize("argv", [
    ["--preset", "smoke"],
    ["--preset", "flagship", "--teacher-epochs", "450", "--student-epochs", "300",
     "--step1-epochs", "75", "--clip-seconds", "1", "--steps-per-epoch", "200",
     "--learning-rate", "3e-05", "--snr-range", "-10", "7.5", "--builtin-weight", "0",
     "--noise-speed-prob", "0.5", "--noise-mix-prob", "0.25"],
    ["--preset", "demo", "--no-kd-normalize", "--kd-layers", "mask,enc_2", "--reset-optimizer",
     "--int8", "none", "--students", "baseline", "--teacher", "student_350k", "--seed", "3",
     "--kd-reduction", "sum", "--snr-measure", "loudness", "--norm", "cln"],
])
def test_recipe_command_reproduces_the_runs_config(argv):
    """The command a model card prints for a run's config.json parses back to that config."""
    import shlex

    from tinyse_tf.recipe.command import recipe_command

    cfg = config_from_args(parse_args(argv))
    record = json.loads(json.dumps({"preset": argv[1], **dataclasses.asdict(cfg),
                                    "speech_dir": "/data/my speech", "noise_dir": None,
                                    "teacher_checkpoint": "pretrained"}))
    command = recipe_command(record, "runs/x", show=lambda p: "../" + p.split("/")[-1],
                             extra=["--stop-after", "students"])
    words = shlex.split(command)
    assert words[:2] == ["python", "recipes/two_step.py"] and words[-4:] == [
        "--out", "runs/x", "--stop-after", "students"]
    args = parse_args(words[2:])
    assert config_from_args(args) == cfg
    assert (args.speech_dir, args.noise_dir, args.teacher_checkpoint) == (
        "../my speech", None, "pretrained")
    if argv == ["--preset", "smoke"]:  # only what differs from the preset is spelled out
        assert words[2:-4] == ["--preset", "smoke", "--speech-dir", "../my speech",
                               "--teacher-checkpoint", "pretrained"]


def test_recipe_command_refuses_a_config_the_command_line_cannot_give():
    from tinyse_tf.recipe.command import recipe_command

    record = json.loads(json.dumps({"preset": "demo", **dataclasses.asdict(
        get_preset("demo", validation_steps=3))}))
    with pytest.raises(ValueError, match="validation_steps differ from the demo preset"):
        recipe_command(record, "runs/x")
