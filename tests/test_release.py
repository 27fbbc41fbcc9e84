"""The release preset's pieces: configuration, best-epoch selection, the shipped teacher."""
import dataclasses
import json

import numpy as np
import pytest

from tinyse_tf.recipe.presets import PRESETS, RecipeConfig, get_preset


def test_release_preset_and_its_checks():
    cfg = PRESETS["release"]
    assert cfg.augmented and cfg.keep == "best" and cfg.lr_schedule == "cosine"
    assert 0 < cfg.builtin_weight < 0.5  # recordings weighted up
    assert not RecipeConfig().augmented  # the demo is unchanged
    assert get_preset("smoke", noise_speed_prob=0.5).augmented
    for field, bad in (("builtin_weight", 1.5), ("reverb_prob", -0.1), ("lr_schedule", "step"),
                       ("keep", "first"), ("snr_measure", "lufs"), ("noise_speed_prob", 2.0),
                       ("noise_mix_prob", -1.0)):
        with pytest.raises(ValueError, match=field):
            get_preset("smoke", **{field: bad})


def test_release_needs_recordings(tmp_path):
    from tinyse_tf.recipe.two_step import main

    assert main(["--preset", "release", "--out", str(tmp_path / "r"), "--quiet"]) == 2


def test_keep_best_saves_the_best_eligible_epoch_and_resumes(tmp_path):
    from tinyse_tf.models import build_cruse
    from tinyse_tf.training import KeepBest

    model = build_cruse("student_30k", seed=0)
    keep = KeepBest(model, tmp_path, first_epoch=1)
    keep.on_epoch_end(0, {"val_si_sdr": 9.0})  # not eligible (step 1 of two-step KD)
    assert keep.best is None and not keep.path.exists()
    keep.on_epoch_end(1, {"val_si_sdr": 3.0})
    saved = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1 for w in saved])
    keep.on_epoch_end(2, {"val_si_sdr": 2.0})  # worse: the file keeps epoch 2's weights
    assert json.loads(keep.record_path.read_text()) == {"epoch": 2, "val_si_sdr": 3.0}
    again = KeepBest(model, tmp_path, first_epoch=1)  # a resumed stage compares with the file
    again.on_epoch_end(3, {"val_si_sdr": 2.5})
    assert again.best["epoch"] == 2
    model.load_weights(again.path)
    for a, b in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="val_si_sdr"):
        again.on_epoch_end(4, {"loss": 1.0})


def test_average_weights_is_the_mean_of_the_tail_and_resumes_without_double_counting(tmp_path):
    from tinyse_tf.models import build_cruse
    from tinyse_tf.training import AverageWeights

    model = build_cruse("student_30k", seed=0)
    start = [w.copy() for w in model.get_weights()]
    seen = {}
    average = AverageWeights(model, tmp_path, first_epoch=2)
    for epoch in range(4):  # epochs 0 and 1 are before the tail
        model.set_weights([w + epoch for w in start])
        seen[epoch] = model.get_weights()
        average.on_epoch_end(epoch)
    assert average.epochs == (3, 4)
    # Interrupted after epoch 4 and resumed: epoch 4 (0-based 3) is redone, then epoch 5.
    again = AverageWeights(model, tmp_path, first_epoch=2)
    assert again.epochs == (3, 4)
    model.set_weights([w + 100 for w in start])  # a redone epoch must not count twice
    again.on_epoch_end(3)
    model.set_weights([w + 4 for w in start])
    seen[4] = model.get_weights()
    again.on_epoch_end(4)
    assert again.epochs == (3, 5)
    for a, b in zip(model.get_weights(), seen[4]):  # writing the file put the weights back
        np.testing.assert_array_equal(a, b)
    model.load_weights(again.path)
    for i, got in enumerate(model.get_weights()):
        want = np.mean([seen[e][i] for e in (2, 3, 4)], axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_teacher_checkpoint_pretrained_is_the_shipped_teacher():
    from tinyse_tf.recipe.two_step import _load_checkpoint

    from tinyse_tf.models.complexity import count_params
    from tinyse_tf.shipped import shipped_models

    cfg = PRESETS["flagship"]  # the preset the shipped teacher was trained with
    teacher = _load_checkpoint("pretrained", cfg)
    assert teacher.count_params() == count_params(shipped_models()["teacher"]["build"]["preset"])
    with pytest.raises(ValueError, match="shipped teacher"):
        _load_checkpoint("pretrained", dataclasses.replace(cfg, norm="cln"))


def test_training_si_sdr_matches_the_evaluation_metric():
    from tinyse_tf.distill import si_sdr
    from tinyse_tf.evaluation.metrics import si_sdr as reference

    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3, 4000)).astype(np.float32)
    est = 0.5 * clean + rng.standard_normal((3, 4000)).astype(np.float32) * [[0.1], [0.5], [2.0]]
    got = si_sdr(clean, est.astype(np.float32)).numpy()
    want = [reference(c, e) for c, e in zip(clean, est)]
    np.testing.assert_allclose(got, want, atol=0.05)  # zero-mean signals: the same formula
    assert si_sdr(clean, np.zeros_like(clean)).numpy().min() == -50.0  # floored, not -inf
