"""Resumable training: per-epoch checkpoints of student, optimizer and epoch, and a data stream
that continues at the batch where an interrupted run stopped.

``fit_resumable`` is what the recipe uses for every stage. Rerunning the same call after a crash
or a kill restores the newest readable checkpoint (falling back to the one before when the newest
is corrupt), skips the batches already consumed, and trains the remaining epochs, so the result
equals an uninterrupted run of the same seed up to floating-point reduction order.
"""
import json
import os
import pathlib
import time

import numpy as np

from tinyse_tf._tf import keras, tf
from tinyse_tf.atomic import atomic_open, atomic_path, atomic_write_json

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name="default"):
    """A ``tf.distribute`` strategy by name.

    ``default``: one device. ``mirrored``: all local GPUs (``MirroredStrategy``).
    ``multiworker``: ``MultiWorkerMirroredStrategy`` over the cluster in ``TF_CONFIG``; start the
    same command on every worker. The G_tf Gram matrices are computed per replica, so the b in
    G_tf is the per-replica batch.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (cluster and task) in the "
                             "environment of every worker; see docs/RECIPE.md, 'Scale out'")
        json.loads(os.environ["TF_CONFIG"])  # a clear JSON error beats one from deep inside TF
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def worker_id(strategy):
    """None on the chief (or without a cluster), else this worker's task id."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0):
        return None
    return int(resolver.task_id)


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves the checkpoint at the end of every epoch (TF writes the files, then the index)."""

    def __init__(self, manager, epoch_var):
        super().__init__()
        self.manager, self.epoch_var = manager, epoch_var

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class CpuClock(keras.callbacks.Callback):
    """Adds ``cpu_hours`` and ``wall_hours`` to every epoch's logs (so ``history.csv`` has them):
    this process's CPU time (all threads: training step and input pipeline) and wall time spent
    in the stage so far, summed over resumed invocations through ``<workdir>/clock.json``. Used
    for learning curves of quality against compute (benchmarks/learning_curve.py)."""

    def __init__(self, workdir, done_epochs, write=True):
        super().__init__()
        self.path, self.write = pathlib.Path(workdir) / "clock.json", write
        # Written after each epoch's checkpoint: a kill between the two writes counts that
        # epoch's time twice at most. No checkpoint restored (``done_epochs`` 0): start at 0.
        record = (json.loads(self.path.read_text())
                  if done_epochs and self.path.exists() else {})
        self.base = {k: float(record.get(k, 0.0)) for k in ("cpu_s", "wall_s")}

    def on_train_begin(self, logs=None):
        self.cpu0, self.wall0 = time.process_time(), time.time()

    def on_epoch_end(self, epoch, logs=None):
        cpu = self.base["cpu_s"] + time.process_time() - self.cpu0
        wall = self.base["wall_s"] + time.time() - self.wall0
        if logs is not None:
            logs["cpu_hours"], logs["wall_hours"] = cpu / 3600, wall / 3600
        if self.write:
            atomic_write_json(self.path, {"epoch": epoch + 1, "cpu_s": round(cpu, 1),
                                          "wall_s": round(wall, 1)})


class KeepBest(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest ``monitor`` (from ``first_epoch`` on,
    0-based) in ``<workdir>/best.h5``, with ``best.json`` ({"epoch": 1-based, monitor: value});
    reads ``best.json`` back, so a resumed stage keeps comparing against the best so far."""

    def __init__(self, model, workdir, monitor="val_si_sdr", first_epoch=0, write=True):
        super().__init__()
        self.target, self.monitor, self.first_epoch, self.write = model, monitor, first_epoch, write
        self.path = pathlib.Path(workdir) / "best.h5"
        self.record_path = self.path.with_name("best.json")
        self.best = json.loads(self.record_path.read_text()) if self.record_path.exists() else None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"KeepBest: no {self.monitor!r} in the epoch's logs; give "
                             "validation data")
        value = float(value)
        if epoch < self.first_epoch or (self.best and value <= self.best[self.monitor]):
            return
        self.best = {"epoch": epoch + 1, self.monitor: value}
        if self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                self.target.save_weights(tmp)
            atomic_write_json(self.record_path, self.best)


class AverageWeights(keras.callbacks.Callback):
    """Running mean of ``model``'s weights at the end of every epoch from ``first_epoch``
    (0-based) on: checkpoint averaging along the tail of a decaying learning rate (Izmailov et
    al. 2018, stochastic weight averaging). Kept in ``<workdir>/average.npz`` (the mean in
    float64 and the 1-based ``epochs`` it spans) and as weights in ``average.h5``; a resumed
    stage continues the mean, and an epoch redone after an interruption is not counted twice.
    ``epochs`` is None until the first epoch is averaged."""

    def __init__(self, model, workdir, first_epoch, write=True):
        super().__init__()
        self.target, self.first_epoch, self.write = model, first_epoch, write
        self.path = pathlib.Path(workdir) / "average.h5"
        self.state_path = self.path.with_suffix(".npz")
        self.mean, self.epochs = None, None
        if self.state_path.exists():
            with np.load(self.state_path) as state:
                self.epochs = tuple(int(e) for e in state["epochs"])
                self.mean = [state[f"w{i}"] for i in range(len(state.files) - 1)]

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch or (self.epochs and epoch + 1 <= self.epochs[1]):
            return
        weights = [w.astype(np.float64) for w in self.target.get_weights()]
        if self.mean is None:
            self.mean, self.epochs = weights, (epoch + 1, epoch + 1)
        else:
            self.epochs = (self.epochs[0], epoch + 1)
            count = self.epochs[1] - self.epochs[0] + 1
            self.mean = [m + (w - m) / count for m, w in zip(self.mean, weights)]
        if self.write:
            with atomic_open(self.state_path, "wb") as f:
                np.savez(f, epochs=np.array(self.epochs),
                         **{f"w{i}": m for i, m in enumerate(self.mean)})
            self.save(self.path)

    def load_mean(self):
        """Set the model's weights to the mean."""
        self.target.set_weights([m.astype(w.dtype)
                                 for m, w in zip(self.mean, self.target.get_weights())])

    def save(self, path):
        """Write the mean as the model's weights file ``path`` (atomically); the model's own
        weights are put back."""
        current = self.target.get_weights()
        self.load_mean()
        try:
            with atomic_path(path) as tmp:
                self.target.save_weights(tmp)
        finally:
            self.target.set_weights(current)


class WallBudget(keras.callbacks.Callback):
    """Ends training once the stage's wall time (``wall_hours`` of :class:`CpuClock`, summed over
    resumed invocations) would pass ``seconds`` by the end of another epoch as long as the
    last one; ``budget.exhausted`` tells whether it did. Put it after ``CpuClock`` (as
    :func:`fit_resumable` does with its ``callbacks``)."""

    def __init__(self, seconds, log=print):
        super().__init__()
        self.seconds, self.log, self.exhausted = float(seconds), log, False

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        used = float((logs or {}).get("wall_hours", 0.0)) * 3600
        if used + (time.time() - self.start) > self.seconds:
            self.exhausted = True
            self.model.stop_training = True
            self.log(f"wall-time budget reached after epoch {epoch + 1}: {used:.0f} s of "
                     f"{self.seconds:.0f} s")


def _restore(checkpoint, manager, log):
    """Restore the newest checkpoint that reads back; returns the epoch it ended (0 if none)."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, IndexError, OSError) as err:  # corrupt or truncated
            log(f"checkpoint {path} is unreadable ({type(err).__name__}); trying the previous one")
            continue
        return int(checkpoint.epoch.numpy())
    return 0


def fit_resumable(distiller, make_dataset, epochs, steps_per_epoch, workdir, callbacks=(),
                  validation_data=None, validation_steps=None, verbose=1, log=print):
    """Train ``distiller`` for ``epochs`` epochs with checkpoints under ``workdir/ckpt``.

    Args:
        distiller: a compiled ``tinyse_tf.Distiller``.
        make_dataset: ``make_dataset(start)`` returns the (repeating, seeded) training dataset
            of ``(noisy, clean)`` batches from batch ``start`` on: 0 on a fresh start,
            ``done * steps_per_epoch`` on resume, so the data position continues (e.g.
            ``mixture_dataset(..., start_batch=start)``, which does not mix the batches it
            passes over; ``ds.skip(start)`` works for any dataset).
        epochs, steps_per_epoch: total epochs of the stage and batches per epoch.
        workdir: stage folder; holds ``ckpt/`` (two newest kept), ``tensorboard/`` and
            ``history.csv``.
        callbacks: extra Keras callbacks (e.g. ``PhaseSwitch``).
    Returns:
        The Keras ``History`` of the epochs run now (None when the stage was already complete).
    """
    workdir = pathlib.Path(workdir)
    worker = worker_id(distiller.distribute_strategy)
    # Every worker saves (collectives need all of them); only the chief writes the real folder.
    suffix = "" if worker is None else f"-worker{worker}"
    ckpt_dir = workdir / f"ckpt{suffix}"
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    # Adam's slots are created lazily; build them now so a restore fills them at once.
    distiller.optimizer.build(distiller.student.trainable_variables)
    checkpoint = tf.train.Checkpoint(student=distiller.student, optimizer=distiller.optimizer,
                                     epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=2)
    done = _restore(checkpoint, manager, log)
    if done >= epochs:
        return None
    if done:
        log(f"resuming {workdir.name} after epoch {done}/{epochs}")
    dataset = make_dataset(done * steps_per_epoch)
    # The clock first, so the CSV logger (and KeepBest) see its columns.
    cbs = [CpuClock(workdir, done, write=worker is None), *callbacks,
           _EpochCheckpoint(manager, epoch_var),
           keras.callbacks.CSVLogger(str(workdir / f"history{suffix}.csv"), append=True),
           keras.callbacks.TensorBoard(str(workdir / f"tensorboard{suffix}"), write_graph=False,
                                       profile_batch=0)]
    return distiller.fit(dataset, epochs=epochs, initial_epoch=done, steps_per_epoch=steps_per_epoch,
                         validation_data=validation_data, validation_steps=validation_steps,
                         callbacks=cbs, verbose=verbose)
