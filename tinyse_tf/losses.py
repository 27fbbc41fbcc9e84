"""Training losses: phase-sensitive spectrum approximation and self-similarity KD
(docs/DESIGN.md, A.3 and B.3-B.6).

Memory of the G_tf loss, worked out for the teacher at batch 32 x 2 s clips: ``tinyse_tf.features.stft``
pads the 32,000 samples causally (256 zeros in front, 256 + up to a hop behind), giving
ceil(32000 / 256) + 1 = 126 frames. The first encoder output is [32, 126, 40, 32]; its G_tf is
[126, 40, 32, 32] float32 = 126*40*32*32*4 B = 20.6 MB. The largest Gram is the one of the 80-bin
decoder output [32, 126, 80, 1]: 126*80*32*32*4 B = 41.3 MB, independent of the channel count because
the contraction runs over channels. Grams are built by one transpose to [t, f, b, c] plus one
batched MatMul, so no [b, b, t, f, c] broadcast ever exists, and the loss is computed layer by
layer, so in the forward pass only one layer's teacher and student Grams (plus their normalised copies
and the difference, each of the same size) are alive at once. Under a GradientTape the student-side
tensors needed for the backward pass are kept for every layer: over the 9 distilled blocks (frequency
sizes 40+20+10+5 encoder, 5 bottleneck, 10+20+40+80 decoder = 230) one such buffer totals
126*230*32*32*4 B = 119 MB, and a few of them are retained.
"""
from tinyse_tf._tf import tf
from tinyse_tf.features import mel_mask_to_linear

# Gram layout per granularity: the axis order that puts the bins first and the batch next
# ([bins..., b, rest...]) and the number of bin axes; the rest (always including the channels, which
# differ between teacher and student) is flattened and contracted by one batched MatMul.
# (tf.einsum computes the same, but its CPU kernel does not use TensorFlow's oneDNN MatMul: a G_tf
# KD step took 0.168 s with it and 0.158 s with this, benchmarks/training_step.py side by side,
# 2-core Intel Xeon VM.)
_GRAM_LAYOUT = {
    "tf": ([1, 2, 0, 3], 2),
    "t": ([1, 0, 2, 3], 1),
    "f": ([2, 0, 1, 3], 1),
    "batch": ([0, 1, 2, 3], 0),
}
GRANULARITIES = tuple(_GRAM_LAYOUT) + ("output",)
REDUCTIONS = ("mean", "sum")

# Keeps |S| cos(dphi) = Re(S conj Y) / |Y| finite on silent bins, where |Y| = 0.
_PSA_EPS = 1e-8
# Squared-norm floor of tf.math.l2_normalize: all-zero Gram rows stay zero, with finite gradients.
_NORM_EPS = 1e-12


def psa_loss(clean_stft, noisy_stft, mask):
    """Phase-sensitive spectrum approximation loss (Erdogan et al. 2015) with a truncated target.

    L = mean over (b, t, k) of (m * |Y| - clip(|S| cos(angle S - angle Y), 0, |Y|))^2.

    |S| cos(angle S - angle Y) is computed as Re(S * conj(Y)) / (|Y| + eps), which avoids atan2 and
    is exact up to eps. The target is truncated to [0, |Y|] because the mask m lies in (0, 1): the
    masked noisy magnitude m*|Y| can only reach targets in that range, so the clip removes errors
    that no mask could fix (clean speech in opposite phase to the mixture, or louder than it).
    Reduction: mean over batch, frames and the 257 linear frequency bins.

    Args:
        clean_stft: complex STFT of the clean speech S.
        noisy_stft: complex STFT of the noisy mixture Y.
        mask: linear-grid mask m in (0, 1) predicted for the mixture.

    Shape:
        clean_stft, noisy_stft: complex64 [b, t, 257]; mask: float [b, t, 257].

    Returns:
        float32 scalar.
    """
    noisy_mag = tf.abs(noisy_stft)
    projection = tf.math.real(clean_stft * tf.math.conj(noisy_stft)) / (noisy_mag + _PSA_EPS)
    target = tf.minimum(tf.maximum(projection, 0.0), noisy_mag)
    # The model may run in mixed precision; the loss is always float32.
    estimate = tf.cast(mask, tf.float32) * noisy_mag
    return tf.reduce_mean(tf.square(estimate - target))


def psa_mel_loss(clean_stft, noisy_stft, mel_mask):
    """``psa_loss`` of a model's mel-grid mask, mapped to the linear grid first.

    Shape: clean_stft, noisy_stft complex64 [b, t, 257]; mel_mask float [b, t, 80, 1].
    """
    return psa_loss(clean_stft, noisy_stft, mel_mask_to_linear(mel_mask))


def gram(x, granularity):
    """Batch self-similarity (Gram) matrices of one activation, contracted over channels.

    Args:
        x: activation X, channels last.
        granularity: "tf" (one b x b matrix per time-frequency bin, the paper's G_tf), "t" (per
            frame, X[:, t] flattened to [b, f*c]), "f" (per frequency bin, X[:, :, f] flattened to
            [b, t*c]) or "batch" (X flattened to [b, t*f*c]).

    Shape:
        x: [b, t, f, c]. Result: "tf" [t, f, b, b]; "t" [t, b, b]; "f" [f, b, b]; "batch" [b, b].

    Returns:
        float32 tensor of Gram matrices.
    """
    if granularity not in _GRAM_LAYOUT:
        raise ValueError(f"gram granularity must be one of {tuple(_GRAM_LAYOUT)}, got {granularity!r}")
    perm, bins = _GRAM_LAYOUT[granularity]
    with tf.name_scope("gram"):
        # Mixed-precision activations are upcast so that the wide teacher's Gram cannot overflow
        # float16.
        x = tf.transpose(tf.cast(x, tf.float32), perm)
        x = tf.reshape(x, tf.concat([tf.shape(x)[:bins + 1], [-1]], axis=0))  # [bins..., b, k]
        return tf.matmul(x, x, transpose_b=True)


def _check_pair(index, teacher, student, granularity):
    """Raises ValueError when a teacher/student activation pair cannot be compared."""
    t_shape, s_shape = teacher.shape, student.shape
    if t_shape.rank != 4 or s_shape.rank != 4:
        raise ValueError(
            f"layer {index}: activations must be [b, t, f, c], got teacher {t_shape} and student {s_shape}")
    # Batch, time and frequency must agree; channels only when the activations are matched directly.
    compared = range(4) if granularity == "output" else range(3)
    for axis in compared:
        t_dim, s_dim = t_shape[axis], s_shape[axis]
        if t_dim is not None and s_dim is not None and t_dim != s_dim:
            what = "shapes must be equal for granularity 'output'" if granularity == "output" else (
                "batch, time and frequency sizes must agree")
            raise ValueError(f"layer {index}: {what}; got teacher {t_shape} and student {s_shape}")


def _layer_loss(teacher, student, granularity, normalize, reduction):
    """Similarity KD loss of one layer; see similarity_kd_loss."""
    batch = tf.cast(tf.shape(student)[0], tf.float32)
    if granularity == "output":
        sq = tf.square(tf.cast(teacher, tf.float32) - tf.cast(student, tf.float32))
        # No b x b matrix here: "sum" sums over (t, f, c) and averages over the batch.
        return tf.reduce_mean(sq) if reduction == "mean" else tf.reduce_sum(sq) / batch
    g_teacher, g_student = gram(teacher, granularity), gram(student, granularity)
    if normalize:
        g_teacher = tf.math.l2_normalize(g_teacher, axis=-1, epsilon=_NORM_EPS)
        g_student = tf.math.l2_normalize(g_student, axis=-1, epsilon=_NORM_EPS)
    sq = tf.square(g_teacher - g_student)
    return tf.reduce_mean(sq) if reduction == "mean" else tf.reduce_sum(sq) / (batch * batch)


def similarity_kd_loss(teacher_activations, student_activations, granularity="tf", normalize=True,
                       reduction="mean"):
    """Self-similarity knowledge-distillation loss, summed over the distilled layers.

    For each layer i the teacher and student Gram matrices (see ``gram``) are compared:
    "sum" is the paper's formula (1/b^2) * ||G^{T,i} - G^{S,i}||_F^2 with the Frobenius norm running
    over all bins (t, f, t-and-f, or none for "batch") and all b*b entries; "mean" instead averages
    the squared differences over bins and entries, which keeps layers with many bins from dominating.
    Granularity "output" is plain output matching: the squared difference of the activations
    themselves ("mean": mean over all elements; "sum": sum over (t, f, c), mean over the batch);
    no Gram is formed and ``normalize`` does not apply.

    Args:
        teacher_activations: list of teacher activations, one per distilled layer.
        student_activations: list of student activations, matched by position with the teacher's.
        granularity: "tf" (paper's G_tf), "t", "f", "batch" (whole-matrix G) or "output".
        normalize: L2-normalise each row of every b x b Gram matrix before the difference, as in
            similarity-preserving KD (Tung & Mori 2019); without it the wide teacher's Grams
            dominate by scale.
        reduction: "mean" or "sum", as above.

    Shape:
        each activation: [b, t, f, c]; teacher and student may differ in c (except for "output"),
        must agree in b, t and f.

    Returns:
        float32 scalar.

    Raises:
        ValueError: unknown granularity or reduction, lists of different or zero length, or a layer
            whose shapes cannot be compared.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if len(teacher_activations) != len(student_activations) or not teacher_activations:
        raise ValueError(
            f"need the same non-zero number of teacher and student activations, got "
            f"{len(teacher_activations)} and {len(student_activations)}")
    pairs = [(tf.convert_to_tensor(t), tf.convert_to_tensor(s))
             for t, s in zip(teacher_activations, student_activations)]
    for index, (teacher, student) in enumerate(pairs):
        _check_pair(index, teacher, student, granularity)
    # Layer by layer, so only one layer's Grams are alive at a time in the forward pass.
    return tf.add_n([_layer_loss(t, s, granularity, normalize, reduction) for t, s in pairs])
