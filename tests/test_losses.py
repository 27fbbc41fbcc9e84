"""Tests of tinyse_tf.losses against plain numpy references written independently below."""
import numpy as np
import pytest

from tinyse_tf._tf import tf
from tinyse_tf.losses import gram, psa_loss, similarity_kd_loss

B, T, F = 4, 5, 6
GRAM_GRANULARITIES = ("tf", "t", "f", "batch")


def _act(c, seed, shape=(B, T, F)):
    return np.random.default_rng(seed).standard_normal(shape + (c,)).astype(np.float32)


# ---------------------------------------------------------------- numpy references

def ref_gram(x, granularity):
    """Gram matrices by explicit loops over the bins."""
    b, t, f, _ = x.shape
    if granularity == "tf":
        out = np.zeros((t, f, b, b))
        for i in range(t):
            for j in range(f):
                rows = x[:, i, j, :].astype(np.float64)
                out[i, j] = rows @ rows.T
        return out
    if granularity == "t":
        return np.stack([x[:, i].reshape(b, -1).astype(np.float64) @ x[:, i].reshape(b, -1).T
                         for i in range(t)])
    if granularity == "f":
        return np.stack([x[:, :, j].reshape(b, -1).astype(np.float64) @ x[:, :, j].reshape(b, -1).T
                         for j in range(f)])
    flat = x.reshape(b, -1).astype(np.float64)
    return flat @ flat.T


def ref_kd(teachers, students, granularity, normalize, reduction):
    total = 0.0
    for xt, xs in zip(teachers, students):
        b = xt.shape[0]
        if granularity == "output":
            sq = (xt.astype(np.float64) - xs) ** 2
            total += sq.mean() if reduction == "mean" else sq.sum() / b
            continue
        gt, gs = ref_gram(xt, granularity), ref_gram(xs, granularity)
        if normalize:
            gt = gt / np.sqrt(np.maximum((gt ** 2).sum(-1, keepdims=True), 1e-12))
            gs = gs / np.sqrt(np.maximum((gs ** 2).sum(-1, keepdims=True), 1e-12))
        sq = (gt - gs) ** 2
        total += sq.mean() if reduction == "mean" else sq.sum() / b ** 2
    return total


def ref_psa(clean, noisy, mask):
    """PSA with the textbook angle form, independent of the Re(S conj Y) trick."""
    target = np.abs(clean) * np.cos(np.angle(clean) - np.angle(noisy))
    target = np.clip(target, 0.0, np.abs(noisy))
    return np.mean((mask * np.abs(noisy) - target) ** 2)


# ---------------------------------------------------------------- gram

@pytest.mark.parametrize("granularity,shape", [
    ("tf", (T, F, B, B)), ("t", (T, B, B)), ("f", (F, B, B)), ("batch", (B, B))])
def test_gram_matches_reference(granularity, shape):
    x = _act(7, 0)
    g = gram(x, granularity).numpy()
    assert g.shape == shape
    np.testing.assert_allclose(g, ref_gram(x, granularity), rtol=1e-4, atol=1e-4)


def test_gram_rejects_output_granularity():
    with pytest.raises(ValueError, match="granularity"):
        gram(_act(3, 0), "output")


# ---------------------------------------------------------------- similarity KD vs reference

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("channels", [(3, 3), (7, 3)])
@pytest.mark.parametrize("granularity", GRAM_GRANULARITIES)
def test_kd_matches_reference(granularity, channels, normalize, reduction):
    c_teacher, c_student = channels
    # Two layers with different frequency sizes, to check the sum over layers.
    teachers = [_act(c_teacher, 1), _act(c_teacher + 1, 2, (B, T, 3))]
    students = [_act(c_student, 3), _act(c_student, 4, (B, T, 3))]
    got = similarity_kd_loss(teachers, students, granularity, normalize, reduction)
    assert got.dtype == tf.float32 and got.shape == ()
    want = ref_kd(teachers, students, granularity, normalize, reduction)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("normalize", [True, False])
def test_output_matching_matches_reference(normalize, reduction):
    teachers, students = [_act(3, 1), _act(1, 2)], [_act(3, 3), _act(1, 4)]
    got = similarity_kd_loss(teachers, students, "output", normalize, reduction)
    np.testing.assert_allclose(got.numpy(), ref_kd(teachers, students, "output", normalize, reduction),
                               rtol=1e-5)


def test_kd_reductions_differ_by_bin_count():
    # "sum" = (#bins * b^2 / b^2) * "mean" for G_tf: guards that the two reductions stay distinct.
    teachers, students = [_act(7, 1)], [_act(3, 2)]
    mean = similarity_kd_loss(teachers, students, "tf", reduction="mean").numpy()
    total = similarity_kd_loss(teachers, students, "tf", reduction="sum").numpy()
    np.testing.assert_allclose(total, mean * T * F, rtol=1e-5)


# ---------------------------------------------------------------- invariances

@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("granularity", GRAM_GRANULARITIES + ("output",))
def test_kd_self_distance_is_zero(granularity, normalize):
    x = _act(3, 5)
    assert similarity_kd_loss([x], [x.copy()], granularity, normalize).numpy() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("granularity", GRAM_GRANULARITIES)
def test_kd_scale_invariant_only_when_normalized(granularity):
    x = _act(3, 6)
    scaled = 3.0 * x
    assert similarity_kd_loss([x], [scaled], granularity, True).numpy() == pytest.approx(0.0, abs=1e-6)
    assert similarity_kd_loss([x], [scaled], granularity, False).numpy() > 1.0


def test_kd_zero_activations_stay_finite():
    # All-zero rows must not divide by zero in the row normalisation, forward or backward.
    zeros = tf.Variable(np.zeros((B, T, F, 3), np.float32))
    with tf.GradientTape() as tape:
        loss = similarity_kd_loss([_act(7, 7)], [zeros], "tf", normalize=True)
    grad = tape.gradient(loss, zeros)
    assert np.isfinite(loss.numpy()) and loss.numpy() > 0
    assert np.all(np.isfinite(grad.numpy()))


# ---------------------------------------------------------------- gradients and graph mode

@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("granularity", GRAM_GRANULARITIES + ("output",))
def test_kd_gradient_reaches_student(granularity, normalize):
    c_teacher = 3 if granularity == "output" else 7
    student = tf.Variable(_act(3, 8))
    with tf.GradientTape() as tape:
        loss = similarity_kd_loss([_act(c_teacher, 9)], [student], granularity, normalize)
    grad = tape.gradient(loss, student)
    assert grad is not None and np.abs(grad.numpy()).max() > 0


def test_kd_in_graph_with_unknown_batch():
    # Training runs inside tf.function with a dynamic batch; "sum" then divides by the runtime b.
    spec = [tf.TensorSpec([None, T, F, 7]), tf.TensorSpec([None, T, F, 3])]
    fn = tf.function(lambda t, s: similarity_kd_loss([t], [s], "tf", reduction="sum"), input_signature=spec)
    teacher, student = _act(7, 10), _act(3, 11)
    np.testing.assert_allclose(fn(teacher, student).numpy(), ref_kd([teacher], [student], "tf", True, "sum"),
                               rtol=1e-4)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("student_shape", [(B, T + 1, F), (B, T, F + 1), (B + 1, T, F)])
def test_kd_rejects_mismatched_bins(student_shape):
    teachers, students = [_act(3, 0), _act(7, 1)], [_act(3, 2), _act(3, 3, student_shape)]
    with pytest.raises(ValueError, match=r"layer 1: .*\(4, 5, 6, 7\)"):
        similarity_kd_loss(teachers, students, "tf")


def test_kd_output_rejects_different_channels():
    with pytest.raises(ValueError, match="layer 0: .*output"):
        similarity_kd_loss([_act(7, 0)], [_act(3, 1)], "output")


@pytest.mark.parametrize("kwargs,message", [
    ({"granularity": "tft"}, "granularity"), ({"reduction": "max"}, "reduction")])
def test_kd_rejects_unknown_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        similarity_kd_loss([_act(3, 0)], [_act(3, 1)], **kwargs)


@pytest.mark.parametrize("n_students", [0, 2])
def test_kd_rejects_layer_count_mismatch(n_students):
    teachers = [] if n_students == 0 else [_act(3, 0)]
    with pytest.raises(ValueError, match="number of teacher and student"):
        similarity_kd_loss(teachers, [_act(3, i) for i in range(n_students)])


# ---------------------------------------------------------------- PSA

def _complex(seed, shape=(2, 3, 257)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _mask(seed, shape=(2, 3, 257)):
    return np.random.default_rng(seed).uniform(0.01, 0.99, shape).astype(np.float32)


def test_psa_matches_reference():
    clean, noisy, mask = _complex(0), _complex(1), _mask(2)
    loss = psa_loss(clean, noisy, mask)
    assert loss.dtype == tf.float32 and loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), ref_psa(clean, noisy, mask), rtol=1e-5)


def test_psa_truncates_opposite_phase_to_zero():
    noisy, mask = _complex(3), _mask(4)
    clean = -0.5 * noisy  # cos(pi) = -1: raw target -0.5 |Y|, truncated to 0
    want = np.mean((mask * np.abs(noisy)) ** 2)
    np.testing.assert_allclose(psa_loss(clean, noisy, mask).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(ref_psa(clean, noisy, mask), want, rtol=1e-5)


def test_psa_truncates_louder_clean_to_noisy_magnitude():
    noisy, mask = _complex(5), _mask(6)
    clean = 2.0 * noisy  # same phase, |S| = 2 |Y|: target truncated to |Y|
    want = np.mean(((mask - 1.0) * np.abs(noisy)) ** 2)
    np.testing.assert_allclose(psa_loss(clean, noisy, mask).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(ref_psa(clean, noisy, mask), want, rtol=1e-5)


def test_psa_is_zero_at_ideal_truncated_mask():
    clean, noisy = _complex(7), _complex(8)
    ideal = np.clip(np.abs(clean) * np.cos(np.angle(clean) - np.angle(noisy)) / np.abs(noisy), 0.0, 1.0)
    assert 0 < np.mean(ideal == 0) < 1 and 0 < np.mean(ideal == 1) < 1  # both truncations occur
    assert psa_loss(clean, noisy, ideal.astype(np.float32)).numpy() == pytest.approx(0.0, abs=1e-9)
    assert psa_loss(clean, noisy, _mask(9)).numpy() > 0.1


def test_psa_gradient_reaches_mask():
    mask = tf.Variable(_mask(10))
    with tf.GradientTape() as tape:
        loss = psa_loss(_complex(11), _complex(12), mask)
    grad = tape.gradient(loss, mask)
    assert grad is not None and np.abs(grad.numpy()).max() > 0
