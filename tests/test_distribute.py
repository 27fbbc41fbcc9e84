"""Scale out: a two-worker MultiWorkerMirroredStrategy run on loopback, and strategy selection."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

_WORKER = textwrap.dedent("""
    import json, sys
    from tinyse_tf._tf import tf, keras
    from tinyse_tf.training import fit_resumable, make_strategy
    strategy = make_strategy("multiworker")
    from tinyse_tf.distill import Distiller
    from tinyse_tf.models import build_cruse
    with strategy.scope():
        d = Distiller(build_cruse("student_30k", seed=1), build_cruse("student", seed=2), gamma=0.5)
        d.compile(optimizer=keras.optimizers.Adam(1e-3))

    def make(start):
        ds = tf.data.Dataset.range(start * 4, 10**6).map(lambda i: (
            0.1 * tf.random.stateless_normal([2000], seed=tf.stack([i, 0])),
            0.1 * tf.random.stateless_normal([2000], seed=tf.stack([i, 1])))).batch(4)
        opt = tf.data.Options()
        opt.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(opt)

    hist = fit_resumable(d, make, epochs=2, steps_per_epoch=2, workdir=sys.argv[1], verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": hist.history["loss"]}))
""")


def _free_ports(n):
    ports = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return ports


# Slow (two TensorFlow workers in subprocesses, ~30 s on 2 cores): moved out of the default run to
# make room for the firmware host build (tests/export/test_firmware.py) within CI's 25 minutes.
@pytest.mark.slow
def test_two_worker_multiworker_mirrored_on_loopback(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=400)
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["loss"] == results[1]["loss"]  # one synchronous model
    assert (tmp_path / "ckpt" / "ckpt-2.index").exists()  # chief writes the real checkpoints
    assert (tmp_path / "ckpt-worker1").is_dir()  # the other worker keeps its own copy


def test_strategy_names_and_errors(monkeypatch):
    from tinyse_tf.training import make_strategy, worker_id

    assert worker_id(make_strategy("default")) is None
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("tpu")
