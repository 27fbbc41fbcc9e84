"""Grouped GRU (tinyse_tf/models/gru.py): its three kernels compute one function.

The frame-mode cell (the export graph), the fast CPU sequence kernel (hoisted input projection,
batched groups, hand-written backward pass) and the Keras/cuDNN kernel agree in value and in
gradient, eagerly and under XLA.
"""
import numpy as np
import pytest

from tinyse_tf._tf import keras, tf
from tinyse_tf.models.gru import GroupedGRU, keras_gru_sequence, loop_sequence


def random_gru(units, groups, seed=0):
    gru = GroupedGRU(units, groups)
    gru.build((None, None, units))
    rng = np.random.default_rng(seed)
    for w in gru.weights:  # biases too, so every bias path is exercised
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype(np.float32))
    return gru


def cell_loop(gru, x):
    """Reference: the frame-mode cell stepped over time in Python (what the export runs)."""
    cell = gru.cell
    states = [tf.zeros([x.shape[0], cell.group_units])] * cell.groups
    out = []
    for t in range(x.shape[1]):
        y, states = cell(x[:, t], states)
        out.append(y)
    return tf.stack(out, axis=1)


def value_and_grads(fn, gru, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(tf.sin(3.0 * y))  # non-trivial upstream gradient per element
    return [y] + tape.gradient(loss, [x] + gru.trainable_variables)


def test_grouped_gru_golden_constant_weights(run_frames):
    """Zero kernels, input bias 1 on the candidate gate: z = r = 1/2, n = tanh(1), so
    h_t = n + (h_{t-1} - n) / 2 = tanh(1) (1 - 2^-t)."""
    gru = GroupedGRU(4, 2)
    x = np.zeros((1, 3, 4), np.float32)
    gru.build(x.shape)
    for gates in gru.cell.gates:
        gates["x"].set_weights([np.zeros((2, 6), np.float32),
                                np.array([0, 0, 0, 0, 1, 1], np.float32)])
        gates["h"].set_weights([np.zeros((2, 6), np.float32), np.zeros(6, np.float32)])
    want = np.tanh(1.0) * (1 - 0.5 ** np.arange(1, 4))
    np.testing.assert_allclose(gru(x).numpy()[0], np.repeat(want[:, None], 4, 1), atol=1e-6)
    np.testing.assert_allclose(run_frames(gru, x)[0], np.repeat(want[:, None], 4, 1), atol=1e-6)


@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_gru_matches_keras_gru(groups):
    """Each group is keras.layers.GRU(reset_after=True) on its input slice, with the same weights
    (our x / h Dense kernels are Keras' kernel / recurrent_kernel, gates z, r, n)."""
    units, b, t = 8, 2, 5
    x = np.random.default_rng(3).standard_normal((b, t, units)).astype(np.float32)
    ours = random_gru(units, groups)
    gu = units // groups
    for g, gates in enumerate(ours.cell.gates):
        ref = keras.layers.GRU(gu, return_sequences=True, reset_after=True)
        ref.build((None, None, gu))
        ref.set_weights([gates["x"].kernel.numpy(), gates["h"].kernel.numpy(),
                         np.stack([gates["x"].bias.numpy(), gates["h"].bias.numpy()])])
        np.testing.assert_allclose(ours(x).numpy()[..., g * gu:(g + 1) * gu],
                                   ref(x[..., g * gu:(g + 1) * gu]).numpy(), atol=1e-5)


@pytest.mark.parametrize("kernel", ["loop", "keras"])
def test_sequence_kernels_match_the_cell_in_value_and_gradient(kernel):
    """The hand-written backward pass of ``loop_sequence`` and the Keras kernel (cuDNN's weight
    layout) against autodiff through the frame-mode cell."""
    gru = random_gru(12, 3, seed=1)
    x = np.random.default_rng(2).standard_normal((3, 7, 12)).astype(np.float32)
    fn = {"loop": loop_sequence, "keras": keras_gru_sequence}[kernel]
    got = tf.function(lambda v: value_and_grads(lambda u: fn(gru.cell, u), gru, v))(x)
    want = value_and_grads(lambda v: cell_loop(gru, v), gru, x)
    names = ["output", "d input"] + [f"d {w.name}" for w in gru.trainable_variables]
    for name, g, w in zip(names, got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_loop_kernel_compiles_under_xla():
    """Inside ``jit_compile`` the layer takes the loop kernel (no cuDNN in XLA), gradients too."""
    gru = random_gru(8, 2, seed=4)
    x = np.random.default_rng(5).standard_normal((2, 6, 8)).astype(np.float32)
    jitted = tf.function(lambda v: value_and_grads(gru, gru, v), jit_compile=True)
    for g, w in zip(jitted(x), value_and_grads(lambda v: cell_loop(gru, v), gru, x)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_empty_and_single_frame_sequences():
    gru = random_gru(4, 2)
    assert gru(np.zeros((2, 0, 4), np.float32)).shape == (2, 0, 4)
    x = np.ones((2, 1, 4), np.float32)
    np.testing.assert_allclose(gru(x).numpy(), cell_loop(gru, x).numpy(), atol=1e-6)
