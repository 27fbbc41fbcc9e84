"""Two-step knowledge distillation: the ``Distiller`` model and the ``PhaseSwitch`` callback.

Loss (docs/DESIGN.md, A.3): ``L = gamma * L_KD + (1 - gamma) * L_PSA``, with gamma a non-trainable
variable. Schedules:

* baseline student: no teacher, gamma = 0;
* one-step KD: constant gamma (the paper uses 0.5);
* two-step KD: ``PhaseSwitch(switch_epoch)`` sets gamma = 1 (KD only, the clean target is not used)
  before ``switch_epoch`` and gamma = 0 (PSA only, the teacher is not run) from it on.
"""
from tinyse_tf._tf import keras, tf
from tinyse_tf.features import analyze, stft, synthesize
from tinyse_tf.losses import GRANULARITIES, psa_mel_loss, similarity_kd_loss
from tinyse_tf.models.cruse import BLOCK_NAMES, block_outputs_model


class Distiller(keras.Model):
    """Trains a CRUSE ``student`` on audio pairs, optionally distilling a frozen ``teacher``.

    Args:
        student: CRUSE sequence model (features [b, t, 80, 1] -> mask [b, t, 80, 1]).
        teacher: trained CRUSE model of the same depth, or None for supervised training only.
            It is frozen (``trainable = False``, run with ``training=False``).
        gamma: initial KD weight in [0, 1]; a ``tf.Variable`` (``distiller.gamma``) so callbacks
            can move it between epochs without retracing.
        kd_granularity: ``"tf"`` (paper), ``"t"``, ``"f"``, ``"batch"`` or ``"output"``.
        kd_normalize, kd_reduction: passed to ``similarity_kd_loss``.
        kd_layers: block names to distil (default: all 9 ``BLOCK_NAMES`` for Gram
            granularities, only ``("mask",)`` for ``"output"`` since channel counts differ).
    Data:
        ``fit`` takes ``(noisy, clean)`` float32 audio batches [b, n] at 16 kHz.
    Logs:
        ``loss``, ``kd_loss``, ``psa_loss`` (epoch means) and ``gamma``; on validation data also
        ``si_sdr``, the mean SI-SDR (dB) of the enhanced signals (mask applied, inverse STFT).
    Speed options (``compile``):
        ``jit_compile=True`` compiles the whole train step with XLA; under a
        ``mixed_float16`` Keras policy (set before the models are built) the layers compute in
        float16, variables and losses stay float32, and ``compile`` wraps the optimizer in a
        ``LossScaleOptimizer`` whose loss scaling this ``train_step`` applies.
    Distribution:
        under a ``tf.distribute`` strategy each replica computes its losses (and the G_tf Gram
        matrices) on its own per-replica batch; gradients are summed across replicas of the loss
        divided by the replica count, i.e. averaged.
    """

    def __init__(self, student, teacher=None, gamma=0.0, kd_granularity="tf", kd_normalize=True,
                 kd_reduction="mean", kd_layers=None, **kwargs):
        super().__init__(**kwargs)
        if kd_granularity not in GRANULARITIES:
            raise ValueError(f"kd_granularity must be one of {GRANULARITIES}, got {kd_granularity!r}")
        if teacher is None and float(gamma) != 0.0:
            raise ValueError("gamma > 0 needs a teacher: pass teacher=... or gamma=0")
        if kd_layers is None:
            kd_layers = ("mask",) if kd_granularity == "output" else BLOCK_NAMES
        unknown = set(kd_layers) - set(BLOCK_NAMES)
        if unknown:
            raise ValueError(f"unknown kd_layers {sorted(unknown)}; choose from {BLOCK_NAMES}")
        self.student = student
        self.teacher = teacher
        self.kd_granularity, self.kd_normalize, self.kd_reduction = (
            kd_granularity, kd_normalize, kd_reduction)
        self._kd_index = [BLOCK_NAMES.index(n) for n in kd_layers]
        self._student_blocks = block_outputs_model(student)
        if teacher is not None:
            teacher.trainable = False
            self._teacher_blocks = block_outputs_model(teacher)
        self.gamma = tf.Variable(float(gamma), trainable=False, dtype=tf.float32, name="gamma")
        self._trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "kd_loss", "psa_loss")}
        self._si_sdr = keras.metrics.Mean(name="si_sdr")  # validation only

    @property
    def metrics(self):
        return list(self._trackers.values()) + [self._si_sdr]

    def call(self, features, training=False):
        """The student's mask: features [b, t, 80, 1] -> mask [b, t, 80, 1]."""
        return self.student(features, training=training)

    def _compute_losses(self, data, training):
        noisy, clean = data
        (noisy_spec, feats), clean_spec = analyze(noisy), stft(clean)
        # Losses and Gram matrices in float32 also when the layers compute in float16.
        student_out = _float32(self._student_blocks(feats, training=training))
        mask = student_out[-1]
        gamma = self.gamma
        if self.teacher is None:
            kd = tf.zeros([], tf.float32)
        else:
            def kd_fn():
                teacher_out = _float32(self._teacher_blocks(feats, training=False))
                return similarity_kd_loss([teacher_out[i] for i in self._kd_index],
                                          [student_out[i] for i in self._kd_index],
                                          self.kd_granularity, self.kd_normalize, self.kd_reduction)
            # Step 2 (gamma == 0) skips the teacher forward pass entirely.
            kd = tf.cond(gamma > 0.0, kd_fn, lambda: tf.zeros([], tf.float32))
        # Step 1 (gamma == 1) takes only the KD branch and PSA is computed inside the other one:
        # the clean target cannot reach the gradient, not even as 0 * NaN.
        loss = tf.cond(gamma >= 1.0, lambda: kd,
                       lambda: gamma * kd + (1.0 - gamma) * psa_mel_loss(clean_spec, noisy_spec, mask))
        # Logged in every phase, outside the gradient.
        psa = psa_mel_loss(clean_spec, noisy_spec, tf.stop_gradient(mask))
        return loss, kd, psa, (noisy_spec, mask)

    def _record(self, loss, kd, psa):
        for name, value in (("loss", loss), ("kd_loss", kd), ("psa_loss", psa)):
            self._trackers[name].update_state(value)
        return {**{n: m.result() for n, m in self._trackers.items()}, "gamma": self.gamma.value()}

    def train_step(self, data):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scaling = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            loss, kd, psa, _ = self._compute_losses(data, training=True)
            scaled = loss / replicas
            if scaling:  # mixed precision: keep float16 gradients from underflowing
                scaled = self.optimizer.get_scaled_loss(scaled)
        variables = self.student.trainable_variables
        grads = tape.gradient(scaled, variables)
        if scaling:
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._record(loss, kd, psa)

    def test_step(self, data):
        loss, kd, psa, (noisy_spec, mask) = self._compute_losses(data, training=False)
        clean = data[1]
        self._si_sdr.update_state(si_sdr(clean, synthesize(noisy_spec, mask, tf.shape(clean)[-1])))
        return {**self._record(loss, kd, psa), "si_sdr": self._si_sdr.result()}


def si_sdr(reference, estimate, floor_db=-50.0):
    """Scale-invariant SDR in dB per example: float32 [b, n] twice -> [b] (at least ``floor_db``;
    the training-time estimate beside :func:`tinyse_tf.evaluation.si_sdr`, which scores files)."""
    reference, estimate = tf.cast(reference, tf.float32), tf.cast(estimate, tf.float32)
    eps = 1e-8
    alpha = (tf.reduce_sum(estimate * reference, -1, keepdims=True)
             / (tf.reduce_sum(reference * reference, -1, keepdims=True) + eps))
    target = alpha * reference
    ratio = (tf.reduce_sum(target * target, -1) + eps) / (
        tf.reduce_sum(tf.square(estimate - target), -1) + eps)
    value = tf.maximum(10.0 * tf.math.log(ratio) / tf.math.log(10.0), floor_db)
    # A silent estimate would come out at 0 dB (0/0): it gets the floor.
    return tf.where(tf.reduce_sum(estimate * estimate, -1) > eps, value, floor_db)


def _float32(tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


class PhaseSwitch(keras.callbacks.Callback):
    """Sets ``distiller.gamma`` per epoch: ``step1_gamma`` before ``switch_epoch``, ``step2_gamma``
    from it on (0-based epochs, so ``switch_epoch=100`` gives the paper's 100 + 300 schedule).

    The value depends only on the epoch index, so a run resumed with ``initial_epoch`` gets the right
    phase. ``reset_optimizer=True`` zeroes the optimizer state (moments and step count) once at the
    switch; by default it carries over (docs/DESIGN.md, B.7).
    """

    def __init__(self, switch_epoch, step1_gamma=1.0, step2_gamma=0.0, reset_optimizer=False,
                 verbose=1):
        super().__init__()
        self.switch_epoch = int(switch_epoch)
        self.step1_gamma, self.step2_gamma = float(step1_gamma), float(step2_gamma)
        self.reset_optimizer = reset_optimizer
        self.verbose = verbose

    def gamma_for_epoch(self, epoch):
        return self.step1_gamma if epoch < self.switch_epoch else self.step2_gamma

    def on_epoch_begin(self, epoch, logs=None):
        gamma = self.gamma_for_epoch(epoch)
        switching = float(self.model.gamma.numpy()) != gamma
        self.model.gamma.assign(gamma)
        if switching and epoch == self.switch_epoch:
            if self.reset_optimizer:
                for var in self.model.optimizer.variables():
                    var.assign(tf.zeros_like(var))
            if self.verbose:
                print(f"\nPhaseSwitch: epoch {epoch + 1}: gamma -> {gamma}"
                      f"{' (optimizer state reset)' if self.reset_optimizer else ''}")
