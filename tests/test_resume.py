"""Training survives SIGKILL: the rerun resumes and ends where an uninterrupted run ends."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

# Trains a KD student for 4 epochs x 3 steps with PhaseSwitch(2) through fit_resumable and prints
# a digest of the final student weights. Data: batch i is drawn from stateless seeds (i, 0), so
# skipping batches restores the data position exactly.
_TRAIN = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from tinyse_tf._tf import keras, tf
    from tinyse_tf.distill import Distiller, PhaseSwitch
    from tinyse_tf.models import build_cruse
    from tinyse_tf.training import fit_resumable

    workdir, slow = sys.argv[1], float(sys.argv[2])
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()

    def batch(i):
        clean = 0.1 * tf.random.stateless_normal([2, 2000], seed=tf.stack([i, 0]))
        noise = 0.05 * tf.random.stateless_normal([2, 2000], seed=tf.stack([i, 1]))
        return clean + noise, clean

    class Slow(keras.callbacks.Callback):  # gives the test time to kill mid-epoch
        def on_train_batch_end(self, b, logs=None):
            time.sleep(slow)

    d = Distiller(build_cruse("student_30k", seed=1), build_cruse("student", seed=2), gamma=1.0)
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    make = lambda start: tf.data.Dataset.range(start, 10**6).map(batch)
    fit_resumable(d, make, epochs=4, steps_per_epoch=3, workdir=workdir,
                  callbacks=[PhaseSwitch(2, verbose=0), Slow()], verbose=0)
    w = d.student.get_weights()
    print(json.dumps({"sum": [float(np.abs(x).sum()) for x in w],
                      "iterations": int(d.optimizer.iterations.numpy()),
                      "gamma": float(d.gamma.numpy())}))
""")

_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _train(workdir, slow=0.0):
    out = subprocess.run([sys.executable, "-c", _TRAIN, str(workdir), str(slow)],
                         capture_output=True, text=True, env=_ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out, json.loads(out.stdout.strip().splitlines()[-1])


def _wait_for(path, proc, timeout=300):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() - start < timeout, f"{path} never appeared"
        time.sleep(0.2)


def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted(tmp_path):
    _, reference = _train(tmp_path / "straight")

    workdir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _TRAIN, str(workdir), "1.0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
    try:
        # Epoch 2 is checkpointed; the kill lands during epoch 3 (step 2's phase, gamma 0).
        _wait_for(workdir / "ckpt" / "ckpt-2.index", proc)
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (workdir / "ckpt" / "ckpt-4.index").exists()

    out, resumed = _train(workdir)
    # Same final weights (tolerance: float reduction order; op determinism makes it exact here),
    # same optimizer step count and the phase of the last epoch.
    np.testing.assert_allclose(resumed["sum"], reference["sum"], rtol=1e-5)
    assert resumed["iterations"] == reference["iterations"] == 12
    assert resumed["gamma"] == reference["gamma"] == 0.0
    # The stage's clock sums both invocations: the killed one slept 1 s a batch, so its two
    # checkpointed epochs took >= 6 s of wall time, and the resumed epochs continue from there.
    import csv
    rows = list(csv.DictReader((workdir / "history.csv").open()))
    wall = [float(r["wall_hours"]) * 3600 for r in rows]
    cpu = [float(r["cpu_hours"]) for r in rows]
    assert len(rows) == 4 and wall[1] >= 6.0 and wall == sorted(wall) and cpu == sorted(cpu)
    assert json.loads((workdir / "clock.json").read_text())["epoch"] == 4


def test_corrupt_last_checkpoint_falls_back_to_previous(tmp_path):
    from tinyse_tf._tf import keras, tf
    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse
    from tinyse_tf.training import _restore

    _train(tmp_path)
    ckpt_dir = pathlib.Path(tmp_path / "ckpt")
    for data in ckpt_dir.glob("ckpt-4.data-*"):
        data.write_bytes(b"\0" * 64)  # truncated garbage
    d = Distiller(build_cruse("student_30k"))
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    d.optimizer.build(d.student.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(student=d.student, optimizer=d.optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
    messages = []
    assert _restore(ckpt, manager, messages.append) == 3
    assert "ckpt-4" in messages[0] and "unreadable" in messages[0]
