import numpy as np
import pytest

from tinyse_tf._tf import keras, tf
from tinyse_tf.models import (BLOCK_NAMES, PRESETS, CruseConfig, CumulativeLayerNorm,
                              FrameLayerNorm, GroupedGRUCell, block_outputs_model, build_cruse,
                              config_from_model, get_config)
from tinyse_tf.models.complexity import MACS_RULE, macs_per_frame
from tinyse_tf.models.streaming import build_streaming_model, run_streaming

PAPER_PARAMS = {"teacher": 1.9e6, "student": 62e3, "student_30k": 30e3, "student_240k": 240e3,
                "student_350k": 350e3}


def _features(t=9, b=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 3, (b, t, 80, 1)).astype(np.float32)


def _randomise_norms(model, seed=0):
    """Give norm gains/biases non-trivial values so tests can see them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (CumulativeLayerNorm, FrameLayerNorm, keras.layers.BatchNormalization)):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                               for w in layer.get_weights()])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts_match_paper(name):
    params = build_cruse(name).count_params()
    macs = macs_per_frame(name)
    print(f"\n{name}: {params:,} parameters (paper {PAPER_PARAMS[name]:,.0f}), "
          f"{macs / 1e6:.3f} M MACs/frame [{MACS_RULE}]")
    tolerance = 0.05 if name in ("teacher", "student") else 0.15  # sizes not given for the others
    assert abs(params - PAPER_PARAMS[name]) / PAPER_PARAMS[name] <= tolerance


def test_macs_rule_counts_by_hand():
    # student: enc 40*8*6*1 + 20*16*6*8 + 10*32*6*16 + 5*32*6*32, GRU 4*6*40*40,
    # skips 5*32*32 + 10*32*32 + 20*16*16 + 40*8*8, deconvs 5*32*6*32 + 10*32*6*16 + 20*16*6*8 + 40*8*6*1
    enc = 40 * 8 * 6 + 20 * 16 * 6 * 8 + 10 * 32 * 6 * 16 + 5 * 32 * 6 * 32
    gru = 4 * 6 * 40 * 40
    skips = 5 * 32 * 32 + 10 * 32 * 32 + 20 * 16 * 16 + 40 * 8 * 8
    dec = 5 * 32 * 6 * 32 + 10 * 32 * 6 * 16 + 20 * 16 * 6 * 8 + 40 * 8 * 6 * 1
    assert macs_per_frame("student") == enc + gru + skips + dec


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


@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_gru_matches_keras_gru(groups):
    """Golden reference: each group equals keras.layers.GRU(reset_after=True) on its input slice."""
    units, b, t = 8, 2, 5
    rng = np.random.default_rng(3)
    x = rng.standard_normal((b, t, units)).astype(np.float32)
    ours = keras.layers.RNN(GroupedGRUCell(units, groups), return_sequences=True)
    y = ours(x).numpy()
    gu = units // groups
    for g, gates in enumerate(ours.cell.gates):
        ref = keras.layers.GRU(gu, return_sequences=True, reset_after=True)
        ref.build((None, None, gu))
        kx = np.concatenate([gates[k].kernel.numpy() for k in ("xz", "xr", "xn")], axis=1)
        kh = np.concatenate([gates[k].kernel.numpy() for k in ("hz", "hr", "hn")], axis=1)
        bias = np.stack([np.concatenate([gates[k].bias.numpy() for k in keys])
                         for keys in (("xz", "xr", "xn"), ("hz", "hr", "hn"))])
        bias += rng.standard_normal(bias.shape).astype(np.float32)
        for k, keys in enumerate((("xz", "xr", "xn"), ("hz", "hr", "hn"))):
            for j, key in enumerate(keys):
                gates[key].bias.assign(bias[k, j * gu:(j + 1) * gu])
        ref.set_weights([kx, kh, bias])
        np.testing.assert_allclose(ours(x).numpy()[..., g * gu:(g + 1) * gu],
                                   ref(x[..., g * gu:(g + 1) * gu]).numpy(), atol=1e-5)
    assert y.shape == (b, t, units)


def test_cumulative_layer_norm_matches_numpy():
    x = np.random.default_rng(4).standard_normal((2, 6, 5, 3)).astype(np.float32) * 3 + 1
    layer = CumulativeLayerNorm()
    y = layer(x).numpy()
    ref = np.empty_like(x)
    for b in range(2):
        for t in range(6):
            past = x[b, :t + 1]
            ref[b, t] = (x[b, t] - past.mean()) / np.sqrt(past.var() + 1e-5)
    np.testing.assert_allclose(y, ref, atol=1e-4)
    # Frame mode carries the same statistics as explicit state.
    state = np.zeros((2, 3), np.float32)
    for t in range(6):
        yt, state = layer(x[:, t:t + 1], state=state)
        np.testing.assert_allclose(yt.numpy(), ref[:, t:t + 1], atol=1e-4)


def test_frame_layer_norm_matches_numpy():
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 3)).astype(np.float32)
    y = FrameLayerNorm()(x).numpy()
    mean = x.mean(axis=(2, 3), keepdims=True)
    ref = (x - mean) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize("norm", ["cln", "frame_ln", "batch"])
def test_model_is_causal(norm):
    model = build_cruse("student", norm=norm)
    _randomise_norms(model)
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


@pytest.mark.parametrize("norm", ["cln", "frame_ln"])
def test_streaming_graph_matches_sequence_model(norm):
    model = build_cruse("student", norm=norm)
    _randomise_norms(model)
    x = _features(t=10)
    np.testing.assert_allclose(run_streaming(build_streaming_model(model), x).numpy(),
                               model(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_round_trip(tmp_path, suffix):
    model = build_cruse("student_30k", norm="cln")
    _randomise_norms(model)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _features(t=6)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    assert config_from_model(loaded) == config_from_model(model)


def test_custom_layers_config_round_trip():
    for layer in (GroupedGRUCell(12, 3), CumulativeLayerNorm(epsilon=1e-3), FrameLayerNorm()):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_same_seed_same_initialisation():
    a = build_cruse("student", seed=7).get_weights()
    b = build_cruse("student", seed=7).get_weights()
    c = build_cruse("student", seed=8).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_student_converts_to_tflite_without_while(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    stream = build_streaming_model(build_cruse("student"))
    flat = tf.lite.TFLiteConverter.from_keras_model(stream).convert()
    interp = Interpreter(model_content=flat)
    ops = {d["op_name"] for d in interp._get_ops_details()}
    assert "WHILE" not in ops and "FULLY_CONNECTED" in ops
    assert interp.num_subgraphs() == 1
    runner = interp.get_signature_runner()
    outputs = runner(**{d: np.zeros(s["shape"], np.float32)
                        for d, s in runner.get_input_details().items()})
    assert outputs["mask"].shape == (1, 1, 80, 1)
