"""CRUSE builder, presets, config and complexity (tinyse_tf/models/{cruse,config,complexity}.py)."""
import numpy as np
import pytest

from tinyse_tf._tf import keras
from tinyse_tf.models import (BLOCK_NAMES, PRESETS, CruseConfig, block_outputs_model, build_cruse,
                              config_from_model, float32_copy, get_config)

PAPER_PARAMS = {"teacher": 1.9e6, "student": 62e3, "student_30k": 30e3, "student_240k": 240e3,
                "student_350k": 350e3}


def _features(t=9, b=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 3, (b, t, 80, 1)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts_match_paper(name):
    params = build_cruse(name).count_params()
    print(f"\n{name}: {params:,} parameters (paper {PAPER_PARAMS[name]:,.0f})")
    tolerance = 0.05 if name in ("teacher", "student") else 0.15  # sizes not given for the others
    assert abs(params - PAPER_PARAMS[name]) / PAPER_PARAMS[name] <= tolerance


def test_config_validation():
    with pytest.raises(ValueError, match="norm"):
        CruseConfig(norm="layer")
    with pytest.raises(ValueError, match="channels"):
        CruseConfig(channels=(8, 16, 32))
    with pytest.raises(ValueError, match="unknown model preset"):
        get_config("giant")
    assert get_config("student", norm="frame_ln").norm == "frame_ln"


@pytest.mark.parametrize("norm", ["cln", "frame_ln", "batch", "none"])
def test_config_recovered_from_model(norm):
    cfg = get_config("student_30k", norm=norm)
    assert config_from_model(build_cruse(cfg)) == cfg


@pytest.mark.parametrize("norm", ["cln", "frame_ln", "batch"])
def test_model_is_causal(norm, randomise_norms):
    model = randomise_norms(build_cruse("student", norm=norm))
    x = _features(t=12)
    changed = x.copy()
    changed[:, 7:] = np.random.default_rng(9).uniform(0, 3, changed[:, 7:].shape)
    y, y2 = model(x).numpy(), model(changed).numpy()
    np.testing.assert_allclose(y[:, :7], y2[:, :7], atol=1e-6)
    assert np.abs(y[:, 7:] - y2[:, 7:]).max() > 1e-4  # the change does reach later frames


def test_block_outputs_align_between_teacher_and_student():
    x = _features(t=4, b=2)
    teacher = block_outputs_model(build_cruse("teacher"))(x)
    student_model = build_cruse("student")
    student = block_outputs_model(student_model)(x)
    assert len(teacher) == len(student) == len(BLOCK_NAMES) == 9
    for t_out, s_out in zip(teacher, student):
        assert t_out.shape[:3] == s_out.shape[:3]
    assert [s.shape[2] for s in student] == [40, 20, 10, 5, 5, 10, 20, 40, 80]
    np.testing.assert_allclose(student[-1].numpy(), student_model(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_round_trip(tmp_path, suffix, randomise_norms):
    model = randomise_norms(build_cruse("student_30k", norm="cln"))
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _features(t=6)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    assert config_from_model(loaded) == config_from_model(model)


def test_same_seed_same_initialisation():
    a = build_cruse("student", seed=7).get_weights()
    b = build_cruse("student", seed=7).get_weights()
    c = build_cruse("student", seed=8).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_float32_copy_of_a_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_cruse("student_30k", seed=3, norm="frame_ln")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.get_layer("enc1_conv").compute_dtype == "float16"
    plain = float32_copy(mixed)
    assert {layer.compute_dtype for layer in plain.layers[1:]} == {"float32"}
    assert plain.name == mixed.name and config_from_model(plain) == config_from_model(mixed)
    for a, b in zip(plain.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(0, 1, (1, 20, 80, 1)).astype(np.float32)
    np.testing.assert_allclose(plain(x).numpy(), mixed(x).numpy(), atol=5e-3)  # float16 rounding
