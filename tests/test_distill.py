import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinyse_tf._tf import keras, tf
from tinyse_tf.distill import Distiller, PhaseSwitch
from tinyse_tf.models import build_cruse


def _data(seed=0, n=8, samples=2000):
    rng = np.random.default_rng(seed)
    clean = (0.1 * rng.standard_normal((n, samples))).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal((n, samples))).astype(np.float32)
    return noisy, clean


def _dataset(noisy, clean, batch=4):
    return tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(batch)


def _distiller(gamma, seed=1, teacher=True, **kwargs):
    t = build_cruse("student", seed=100) if teacher else None  # a small CRUSE stands in for the teacher
    s = build_cruse("student_30k", seed=seed)
    d = Distiller(s, t, gamma=gamma, **kwargs)
    d.compile(optimizer=keras.optimizers.Adam(1e-2))
    return d


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.fixture(scope="module")
def kd_distiller():
    """One KD distiller whose training step is traced once (tracing costs ~25 s on 2 cores) and
    ``restart(gamma)``: initial student weights, zeroed optimizer state, ``gamma`` set (a variable,
    so the traced step is reused). Every test that uses it restarts it first."""
    d = _distiller(1.0)
    initial = [w.copy() for w in d.student.get_weights()]

    def restart(gamma):
        d.student.set_weights(initial)
        for var in d.optimizer.variables():
            var.assign(tf.zeros_like(var))
        d.gamma.assign(gamma)
        return d

    return restart


def test_teacher_weights_never_change(kd_distiller):
    d = kd_distiller(0.5)
    before = [w.copy() for w in d.teacher.get_weights()]
    student_before = [w.copy() for w in d.student.get_weights()]
    d.fit(_dataset(*_data()), epochs=1, verbose=0)
    assert _same(before, d.teacher.get_weights())
    assert not _same(student_before, d.student.get_weights())
    assert not d.teacher.trainable


def test_step1_ignores_the_clean_target(kd_distiller):
    noisy, clean = _data()
    garbage = np.random.default_rng(5).uniform(-50, 50, clean.shape).astype(np.float32)
    garbage[:, ::7] = np.nan
    weights = []
    for target in (clean, garbage):
        d = kd_distiller(1.0)
        d.fit(_dataset(noisy, target), epochs=1, verbose=0)
        weights.append(d.student.get_weights())
    assert _same(*weights)
    assert not _same(weights[0], kd_distiller(1.0).student.get_weights())  # it did train
    assert all(np.isfinite(w).all() for w in weights[0])


def _gradients(distiller, noisy, clean):
    with tf.GradientTape() as tape:
        loss, _, _, _ = distiller._compute_losses((noisy, clean), training=True)
    return [g.numpy() for g in tape.gradient(loss, distiller.student.trainable_variables)]


def test_clean_target_matters_when_gamma_below_one():
    """Guards the test above: with a supervised share the same garbage does change the update."""
    noisy, clean = _data(n=4)
    garbage = np.random.default_rng(5).uniform(-50, 50, clean.shape).astype(np.float32)
    d = _distiller(0.5)
    assert not _same(_gradients(d, noisy, clean), _gradients(d, noisy, garbage))
    d.gamma.assign(1.0)
    assert _same(_gradients(d, noisy, clean), _gradients(d, noisy, garbage))


def test_phase_switch_happens_exactly_at_the_epoch(kd_distiller):
    d = kd_distiller(0.3)
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(d.gamma.numpy())))
    hist = d.fit(_dataset(*_data(n=4)), epochs=4, verbose=0, callbacks=[PhaseSwitch(2), probe])
    assert hist.history["gamma"] == [1.0, 1.0, 0.0, 0.0]
    assert seen == [1.0, 1.0, 0.0, 0.0]  # one batch per epoch
    kd, psa, loss = (hist.history[k] for k in ("kd_loss", "psa_loss", "loss"))
    assert kd[0] > 0 and kd[1] > 0 and kd[2] == kd[3] == 0.0  # step 2 skips the teacher
    np.testing.assert_allclose(loss[:2], kd[:2], rtol=1e-6)
    np.testing.assert_allclose(loss[2:], psa[2:], rtol=1e-6)
    # A resumed fit (initial_epoch) gets the phase of the epoch index, not of its first epoch.
    # (The same distiller: its traced step is reused, which keeps this test cheap.)
    d.gamma.assign(0.3)
    hist = d.fit(_dataset(*_data(n=4)), epochs=4, initial_epoch=2, verbose=0,
                 callbacks=[PhaseSwitch(3)])
    assert hist.history["gamma"] == [1.0, 0.0]


def test_phase_switch_can_reset_optimizer(kd_distiller):
    d = kd_distiller(1.0)
    ds = _dataset(*_data())
    d.fit(ds, epochs=1, verbose=0)
    assert int(d.optimizer.iterations.numpy()) == 2
    switch = PhaseSwitch(1, reset_optimizer=True, verbose=0)
    switch.set_model(d)
    switch.on_epoch_begin(1)
    assert float(d.gamma.numpy()) == 0.0
    assert int(d.optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in d.optimizer.variables())


def test_one_step_and_two_step_share_seeded_initialisation():
    one = _distiller(0.5, seed=11)
    two = _distiller(1.0, seed=11)
    assert _same(one.student.get_weights(), two.student.get_weights())


def test_baseline_without_teacher_and_argument_errors():
    d = _distiller(0.0, teacher=False)
    hist = d.fit(_dataset(*_data()), epochs=1, verbose=0)
    assert hist.history["kd_loss"] == [0.0]
    with pytest.raises(ValueError, match="needs a teacher"):
        Distiller(build_cruse("student_30k"), None, gamma=0.5)
    with pytest.raises(ValueError, match="kd_granularity"):
        Distiller(build_cruse("student_30k"), build_cruse("student"), kd_granularity="xyz")
    with pytest.raises(ValueError, match="kd_layers"):
        Distiller(build_cruse("student_30k"), build_cruse("student"), kd_layers=("enc_9",))


@pytest.mark.parametrize("granularity", ["t", "f", "batch", "output"])
def test_other_granularities_give_student_gradients(granularity):
    d = _distiller(1.0, kd_granularity=granularity)
    noisy, clean = _data(n=4)
    loss, kd, _, _ = d._compute_losses((noisy, clean), training=True)
    assert float(kd) > 0 and float(loss) == float(kd)
    assert any(np.abs(g).max() > 0 for g in _gradients(d, noisy, clean))


def _history(distiller, epochs=3):
    noisy, clean = _data(n=8)
    return distiller.fit(_dataset(noisy, clean), epochs=epochs, verbose=0).history


@pytest.mark.slow  # 225 s on 2 cores (XLA compiles teacher and student steps); the GRU kernel
# under jit_compile stays in the default run (tests/models/test_gru.py)
def test_xla_compiled_step_trains_like_the_graph_step():
    """``compile(jit_compile=True)``: the same KD + PSA losses, step after step (XLA only
    reorders float sums)."""
    plain, jitted = _distiller(0.5, seed=5), _distiller(0.5, seed=5)
    jitted.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    want, got = _history(plain), _history(jitted)
    for key in ("loss", "kd_loss", "psa_loss"):
        np.testing.assert_allclose(got[key], want[key], rtol=2e-3, err_msg=key)


@pytest.mark.slow  # float16 on a CPU is emulated and slow; CI stayed over 25 min with it
def test_mixed_precision_scales_the_loss_and_keeps_float32_where_it_matters():
    want = _history(_distiller(0.5, seed=6), epochs=1)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        d = _distiller(0.5, seed=6)
        assert isinstance(d.optimizer, keras.mixed_precision.LossScaleOptimizer)
        got = _history(d, epochs=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    s = d.student
    assert s.get_layer("enc1_conv").compute_dtype == "float16"
    assert s.get_layer("gru").compute_dtype == "float16"
    assert s.get_layer("enc1_norm").compute_dtype == "float32"  # sums of squares
    assert s.output.dtype == tf.float32  # the mask
    assert all(w.dtype == tf.float32 for w in s.weights)
    # float16 activations: the same losses to about 3 significant digits
    for key in ("loss", "kd_loss", "psa_loss"):
        np.testing.assert_allclose(got[key], want[key], rtol=2e-2, err_msg=key)


_MIRRORED = textwrap.dedent("""
    import json
    import numpy as np
    from tinyse_tf._tf import tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse
    rng = np.random.default_rng(0)
    clean = (0.1 * rng.standard_normal((8, 2000))).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal((8, 2000))).astype(np.float32)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    results = {}
    for n in (1, 2):
        strategy = tf.distribute.MirroredStrategy(devices[:n])
        with strategy.scope():
            d = Distiller(build_cruse("student_30k", seed=1))
            d.compile(optimizer=keras.optimizers.Adam(1e-3))
        ds = tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(8)
        hist = d.fit(ds, epochs=2, verbose=0)
        results[n] = {"replicas": strategy.num_replicas_in_sync, "loss": hist.history["loss"],
                      "weights": [w.tolist() for w in d.student.get_weights()[:4]]}
    print(json.dumps(results))
""")


@pytest.mark.slow  # a subprocess with two virtual devices, ~30 s: see tests/test_distribute.py
def test_mirrored_strategy_two_devices_matches_one():
    """Supervised steps: the loss is a mean over examples, so 2 replicas x 4 == 1 x 8."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True, text=True,
                         env=env, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = res["1"], res["2"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
