"""Streaming-aware layers (tinyse_tf/models/layers.py, gru.py): golden values with constant initialisers,
frame-by-frame == sequence for every layer with state, config round trips."""
import numpy as np
import pytest

from tinyse_tf._tf import keras, tf
from tinyse_tf.models.gru import GroupedGRU, GroupedGRUCell
from tinyse_tf.models.layers import (CausalConv2D, CausalConv2DTranspose, CumulativeLayerNorm,
                                     FrameLayerNorm, EdgeLeakyReLU, StreamingLayer)

ONES, ZEROS = keras.initializers.Ones(), keras.initializers.Zeros()


# --------------------------------------------------------------------------- golden values
def test_causal_conv_golden(run_frames):
    layer = CausalConv2D(1, kernel_initializer=ONES, bias_initializer=ZEROS)
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 4, 1)  # frames [0 1 2 3], [4 5 6 7]
    # y[t, m] = sum of x over frames t-1..t and bins 2m..2m+2 (zeros outside)
    want = np.array([[3, 5], [18, 18]], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(layer(x).numpy(), want)
    np.testing.assert_array_equal(run_frames(layer, x), want)


def test_causal_transposed_conv_golden(run_frames):
    layer = CausalConv2DTranspose(1, kernel_initializer=ONES, bias_initializer=ZEROS)
    x = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 2, 2, 1)
    # y[t, j] = sum of x[t', m] over t' in {t-1, t} and m with 0 <= j - 2m <= 2
    want = np.array([[1, 1, 3, 2], [4, 4, 10, 6]], np.float32).reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(layer(x).numpy(), want)
    np.testing.assert_array_equal(run_frames(layer, x), want)


def test_edge_leaky_relu_golden():
    np.testing.assert_allclose(EdgeLeakyReLU(0.2)(np.array([-1.0, 0.0, 2.0], np.float32)).numpy(),
                               [-0.2, 0.0, 2.0])
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(EdgeLeakyReLU(0.3)(x).numpy(), np.maximum(x, 0.3 * x), rtol=1e-6)
    with pytest.raises(ValueError, match="0 < alpha < 1"):
        EdgeLeakyReLU(1.5)


def test_models_saved_with_the_old_activation_name_load():
    """Files saved before the PRELU form name the layer MaxLeakyReLU (same config)."""
    layer = keras.layers.deserialize({"class_name": "tinyse_tf>MaxLeakyReLU",
                                      "config": {"name": "enc_1", "alpha": 0.2}})
    assert isinstance(layer, EdgeLeakyReLU) and layer.alpha == 0.2


def test_cumulative_layer_norm_matches_numpy(run_frames):
    x = np.random.default_rng(4).standard_normal((2, 6, 5, 3)).astype(np.float32) * 3 + 1
    layer = CumulativeLayerNorm()
    ref = np.empty_like(x)
    for b in range(2):
        for t in range(6):
            past = x[b, :t + 1]
            ref[b, t] = (x[b, t] - past.mean()) / np.sqrt(past.var() + 1e-5)
    np.testing.assert_allclose(layer(x).numpy(), ref, atol=1e-4)
    np.testing.assert_allclose(run_frames(layer, x), ref, atol=1e-4)


def test_frame_layer_norm_matches_numpy():
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 3)).astype(np.float32)
    y = FrameLayerNorm()(x).numpy()
    mean = x.mean(axis=(2, 3), keepdims=True)
    ref = (x - mean) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize("make", [lambda: EdgeLeakyReLU(0.3), lambda: FrameLayerNorm()],
                         ids=["leaky_relu", "frame_ln"])
def test_training_form_equals_frame_form(make):
    """The fused training form and the export (frame) form are one function: values and the
    gradients of input, gain and bias agree."""
    layer = make()
    rng = np.random.default_rng(6)
    x = tf.constant(rng.standard_normal((2, 3, 5, 4)).astype(np.float32) * 2 + 0.5)
    layer(x)
    for w in layer.weights:  # gains and biases away from 1 and 0, as in a trained model
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
    upstream = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    results = []
    for frame in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, frame=frame)
            loss = tf.reduce_sum(y * upstream)
        results.append([y] + tape.gradient(loss, [x] + layer.trainable_weights))
    for fused, export in zip(*results):
        np.testing.assert_allclose(fused.numpy(), export.numpy(), rtol=1e-5, atol=1e-5)


def test_streaming_graph_uses_the_frame_forms():
    """The frame graph calls the export form: the LeakyReLU is relu/neg/relu/mul/add (one PRELU
    after conversion), never the fused LeakyRelu op of the training form."""
    from tinyse_tf.models import build_cruse, build_streaming_model

    stream = build_streaming_model(build_cruse("student", norm="frame_ln"))
    graph = tf.function(stream).get_concrete_function(
        [tf.TensorSpec(i.shape, i.dtype) for i in stream.inputs]).graph
    types = {op.type for op in graph.get_operations()}
    assert "LeakyRelu" not in types and "Relu" in types
    train = tf.function(build_cruse("student", norm="frame_ln")).get_concrete_function(
        tf.TensorSpec([1, None, 80, 1])).graph
    assert "LeakyRelu" in {op.type for op in train.get_operations()}


# --------------------------------------------------------------------------- frame == sequence
STATEFUL = {
    "causal_conv": (lambda: CausalConv2D(4), (2, 9, 8, 3), (1, 8, 3)),
    "causal_deconv": (lambda: CausalConv2DTranspose(3), (2, 9, 5, 4), (1, 5, 4)),
    "cln": (lambda: CumulativeLayerNorm(), (2, 9, 5, 4), (3,)),
    "gru": (lambda: GroupedGRU(12, 3), (2, 9, 12), (12,)),
}


@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_frame_by_frame_equals_sequence(kind, run_frames):
    make, shape, state_shape = STATEFUL[kind]
    layer = make()
    assert isinstance(layer, StreamingLayer)
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    layer(x)  # build
    for w in layer.weights:  # non-trivial weights everywhere (biases, gains)
        w.assign(np.random.default_rng(7).uniform(-0.5, 1.5, w.shape).astype(np.float32))
    seq = layer(x).numpy()
    assert layer.state_shape(x[:, :1].shape) == state_shape
    np.testing.assert_allclose(run_frames(layer, x), seq, atol=1e-5)


def test_frame_state_holds_what_it_says():
    x = np.random.default_rng(8).standard_normal((1, 1, 8, 2)).astype(np.float32)
    conv = CausalConv2D(2)
    _, state = conv(x, state=np.zeros((1, 1, 8, 2), np.float32))
    np.testing.assert_array_equal(state.numpy(), x)  # the previous input frame
    gru = GroupedGRU(4, 2)
    h = np.random.default_rng(9).standard_normal((1, 1, 4)).astype(np.float32)
    y, state = gru(h, state=np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(state.numpy(), y.numpy()[:, 0])  # the output
    assert (conv.state_holds, gru.state_holds, CumulativeLayerNorm.state_holds) == (
        "input", "output", None)


# --------------------------------------------------------------------------- config round trips
@pytest.mark.parametrize("layer", [CausalConv2D(5), CausalConv2DTranspose(2), EdgeLeakyReLU(0.3),
                                   CumulativeLayerNorm(epsilon=1e-3), FrameLayerNorm(),
                                   GroupedGRUCell(12, 3), GroupedGRU(12, 3)],
                         ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_bad_kernel_shapes_are_refused():
    with pytest.raises(ValueError, match="time kernel 2"):
        CausalConv2D(4, kernel_size=(3, 3))
    with pytest.raises(ValueError, match=r"kernel \(2, 3\)"):
        CausalConv2DTranspose(4, kernel_size=(2, 5))
    with pytest.raises(ValueError, match="not divisible"):
        GroupedGRUCell(10, 3)
