"""The single-frame graph (tinyse_tf/models/streaming.py): the sequence model's layers in frame
mode, every state explicit; equal to the sequence model for every preset and norm."""
import numpy as np
import pytest

from tinyse_tf._tf import tf
from tinyse_tf.models import PRESETS, build_cruse, build_streaming_model, state_specs, zero_states
from tinyse_tf.runtime import run_frames
from tinyse_tf.runtime.keras import KerasFrameModel


def _features(t, seed=0):
    return np.random.default_rng(seed).uniform(0, 3, (1, t, 80, 1)).astype(np.float32)


CASES = ([("student", norm) for norm in ("cln", "frame_ln", "batch", "none")]
         + [(preset, "frame_ln") for preset in sorted(PRESETS) if preset != "student"])


@pytest.mark.parametrize("preset,norm", CASES)
def test_frame_graph_equals_sequence_model(preset, norm, randomise_norms):
    """Every norm on the student, every other preset with the int8 norm (same wiring)."""
    model = randomise_norms(build_cruse(preset, norm=norm, seed=1), seed=2)
    x = _features(8)
    got = run_frames(KerasFrameModel(model), x[0, :, :, 0])
    np.testing.assert_allclose(got, model(x).numpy()[0, :, :, 0], atol=1e-5)


def test_states_named_after_their_layers():
    specs = state_specs(build_cruse("student", norm="frame_ln"))
    assert list(specs) == ["enc1_conv_state", "enc2_conv_state", "enc3_conv_state",
                           "enc4_conv_state", "gru_state", "dec1_deconv_state",
                           "dec2_deconv_state", "dec3_deconv_state", "dec4_deconv_state"]
    assert specs["enc2_conv_state"] == (1, 40, 8) and specs["gru_state"] == (160,)
    assert specs["dec1_deconv_state"] == (1, 5, 32) and specs["dec4_deconv_state"] == (1, 40, 8)
    cln = state_specs(build_cruse("student", norm="cln"))
    assert cln["enc1_norm_state"] == (3,) and "dec3_norm_state" in cln
    assert "dec4_norm_state" not in cln  # the last decoder block has no norm


def test_state_sources_and_io_names():
    model = build_cruse("student_30k", norm="frame_ln")
    stream = build_streaming_model(model, batch_size=2)
    specs = state_specs(model)
    assert [i.name for i in stream.inputs] == ["features"] + list(specs)
    assert stream.output_names == ["mask"] + [f"{n}_out" for n in specs]
    assert stream.state_sources == {
        "enc1_conv_state": "features", "enc2_conv_state": "enc_1", "enc3_conv_state": "enc_2",
        "enc4_conv_state": "enc_3", "gru_state": "gru", "dec1_deconv_state": "dec1_in",
        "dec2_deconv_state": "dec2_in", "dec3_deconv_state": "dec3_in",
        "dec4_deconv_state": "dec4_in"}
    assert all(z.shape[0] == 2 and not z.any() for z in zero_states(stream).values())


def test_frame_graph_shares_the_models_weights():
    model = build_cruse("student_30k", norm="frame_ln")
    stream = build_streaming_model(model)
    kernel = model.get_layer("enc1_conv").kernel
    assert any(w is kernel for w in stream.weights)
    assert len(stream.weights) == len(model.weights)


def test_frame_graph_converts_to_one_subgraph_without_while():
    from ai_edge_litert.interpreter import Interpreter

    stream = build_streaming_model(build_cruse("student"))
    flat = tf.lite.TFLiteConverter.from_keras_model(stream).convert()
    interp = Interpreter(model_content=flat)
    ops = {d["op_name"] for d in interp._get_ops_details()}
    assert "WHILE" not in ops and "TRANSPOSE_CONV" not in ops and "LEAKY_RELU" not in ops
    assert "FULLY_CONNECTED" in ops and interp.num_subgraphs() == 1
    runner = interp.get_signature_runner()
    outputs = runner(**{d: np.zeros(s["shape"], np.float32)
                        for d, s in runner.get_input_details().items()})
    assert outputs["mask"].shape == (1, 1, 80, 1)
