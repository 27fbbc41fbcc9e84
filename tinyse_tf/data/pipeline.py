"""On-the-fly noisy/clean mixtures as a ``tf.data.Dataset``, streamed from prepared shards.

Speech and noise are two streams of int16 clips. Per pass over a split the shards are visited in
a seeded random order; ``interleave`` reads ``CYCLE`` of them at a time (whole files,
``read_file`` + ``decode_raw``) and each gives one random crop per utterance (``NOISE_USES`` for
noise), utterances in a seeded random order. The streams are zipped, batched, and each batch is
mixed in a parallel ``map``. Every random number comes from stateless ops seeded by ``(seed,
worker, pass, shard)`` or ``(seed, worker, batch index)``, never from TensorFlow's global seed,
so a seed always gives the same batches; memory holds a few shards per stream whatever the size
of the corpus (``benchmarks/data_pipeline.py`` measures both).
"""
from __future__ import annotations

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data.audio_io import DataError
from tinyse_tf.data.augment import augment_batch
from tinyse_tf.data.mixing import mix_tf
from tinyse_tf.data.shards import Shards

#: Shards read at the same time per stream (``interleave`` cycle length): a batch mixes
#: utterances of this many shards, and this many (plus as many read ahead) are in memory.
CYCLE = 4
#: Crops taken from each noise utterance per pass: noise is reused across speech anyway (the
#: built-in corpus has 13x fewer noise files), and each crop needs the whole file read.
NOISE_USES = 4


def mixture_dataset(speech: Shards, noise: Shards, clip_seconds: float = 2.0,
                    batch_size: int = 16, snr_range=(-5.0, 15.0), level_range_db=(-35.0, -15.0),
                    seed: int = 0, repeat: bool = True, input_context=None, extra=None,
                    augmentation=None, snr_measure: str = "energy", start_batch: int = 0):
    """Batches of ``(noisy, clean)`` mixed on the fly from prepared shards.

    Each example: the next speech utterance of the stream (each once per pass), a random crop
    of ``clip_seconds`` (a shorter one is zero-padded at a random position); the next noise
    utterance, cropped at a random offset and looped if shorter than the clip; SNR uniform in
    ``snr_range`` (by ``snr_measure``: energy over the clip, or the paper's BS.1770 loudness,
    see :mod:`tinyse_tf.data.mixing`); RMS level of the mixture uniform in ``level_range_db`` dBFS,
    the clean target scaled by the same gain; both scaled down together if a sample would
    exceed 0.99.

    Args:
        speech, noise: shards of one split, ``prepared.split("train")`` of a
            :class:`~tinyse_tf.data.PreparedData` (see :func:`~tinyse_tf.data.prepare_data`).
        clip_seconds: example length.
        batch_size: examples per batch (the global batch under a ``tf.distribute`` strategy).
        snr_range: ``(low, high)`` in dB; equal values give a fixed SNR.
        level_range_db: ``(low, high)`` RMS level of the noisy mixture in dBFS.
        seed: the same seed gives the same batches.
        repeat: ``True``: endless; every speech utterance once per pass, passes in different
            orders, every batch full. ``False``: one example per speech utterance in storage
            order (a fixed validation set for a seed); the last batch may be smaller.
        input_context: a ``tf.distribute.InputContext`` (see :func:`worker_input_context`):
            this worker reads every ``num_input_pipelines``-th speech shard from
            ``input_pipeline_id`` (all of them if there are fewer shards than workers) and draws
            its own random numbers; the dataset is then marked not to be auto-sharded again.
        extra: ``(speech, noise, weight)``, shards of a second source (e.g. the built-in corpus
            beside real recordings): each speech clip, and independently each noise clip, comes
            from it with probability ``weight`` (a seeded draw per clip). Endless streams only.
        augmentation: a :class:`~tinyse_tf.data.augment.Augmentation` (reverberation, EQ,
            band-limiting) applied to each batch before mixing; the clean output is then the
            early-reverberation target. Endless streams only (a validation set stays clean).
        snr_measure: ``"energy"`` (default) or ``"loudness"`` (:func:`~tinyse_tf.data.mix_tf`).
        start_batch: begin at this batch of the stream (a resumed training run): the same
            batches as ``.skip(start_batch)``, but the skipped ones are only cut, never mixed or
            augmented, which is most of a batch's cost.

    Returns:
        ``tf.data.Dataset`` of ``(noisy, clean)``, each float32 ``[batch, clip_samples]`` with
        ``clip_samples = round(clip_seconds * 16000)``.

    Raises:
        DataError: a split without audio. TypeError: file lists instead of shards.
    """
    from tinyse_tf._tf import tf

    for name, shards in (("speech", speech), ("noise", noise)):
        if not isinstance(shards, Shards):
            raise TypeError(f"mixture_dataset reads prepared shards, got {type(shards).__name__} "
                            f"for {name}: prepare the audio once with prepare_data(...) or "
                            "prepare_corpus(corpus, folder), then pass *prepared.split('train')")
        if not shards.utterances:
            raise DataError(f"no {name} audio in this split of the prepared data; prepare it "
                            "from folders that hold enough files for every split")
    clip = int(round(clip_seconds * SAMPLE_RATE))
    if clip <= 0 or batch_size <= 0:
        raise ValueError("clip_seconds and batch_size must be positive")
    if snr_range[0] > snr_range[1] or level_range_db[0] > level_range_db[1]:
        raise ValueError("ranges are (low, high)")
    workers, worker = ((input_context.num_input_pipelines, input_context.input_pipeline_id)
                       if input_context is not None else (1, 0))
    if len(speech.files) >= workers:
        speech = Shards(speech.files[worker::workers], speech.lengths[worker::workers])
    key = tf.constant([seed, worker], tf.int64)
    fold = tf.random.experimental.stateless_fold_in

    snr_lo, snr_hi = float(snr_range[0]), float(snr_range[1])
    lvl_lo, lvl_hi = float(level_range_db[0]), float(level_range_db[1])

    if (extra is not None or augmentation is not None) and not repeat:
        raise ValueError("extra sources and augmentation are for endless training streams "
                         "(repeat=True)")
    augment = augmentation is not None and augmentation.active

    def mix(index, clean, noise):  # a batch: int16 [b, clip] each
        seeds = tf.random.experimental.stateless_split(fold(fold(key, 0), index), num=2)
        size = tf.shape(clean)[:1]
        clean, noise = _to_float(clean), _to_float(noise)
        clean.set_shape([None, clip])  # static length: the loudness blocks are framed from it
        noise.set_shape([None, clip])
        target = None
        if augment:
            clean, target, noise = augment_batch(clean, noise, fold(fold(key, 3), index),
                                                 augmentation)
        snr = tf.random.stateless_uniform(size, seeds[0], snr_lo, snr_hi) if snr_hi > snr_lo \
            else tf.fill(size, snr_lo)
        level = tf.random.stateless_uniform(size, seeds[1], lvl_lo, lvl_hi) \
            if lvl_hi > lvl_lo else tf.fill(size, lvl_lo)
        return mix_tf(clean, noise, snr, level, target=target, snr_measure=snr_measure)

    def stream(index, kind, shards):  # clips of one kind, from `extra` with probability weight
        loop = kind == "noise"
        clips = _clips(shards, fold(key, index), clip, shuffle=repeat or loop, loop=loop,
                       uses=NOISE_USES if loop else 1)
        if extra is None:
            return clips
        other = {"speech": extra[0], "noise": extra[1]}[kind]
        others = _clips(other, fold(key, index + 10), clip, shuffle=True, loop=loop,
                        uses=NOISE_USES if loop else 1)
        choose = tf.data.Dataset.counter().map(lambda i: tf.cast(
            tf.random.stateless_uniform([], fold(fold(key, index + 20), i)) < float(extra[2]),
            tf.int64))
        return tf.data.Dataset.choose_from_datasets([clips, others], choose)

    clips = tf.data.Dataset.zip((stream(1, "speech", speech), stream(2, "noise", noise)))
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, got {start_batch}")
    batches = clips.batch(batch_size, drop_remainder=repeat).skip(start_batch)
    ds = tf.data.Dataset.zip((tf.data.Dataset.counter(start_batch), batches)).map(
        lambda index, pair: mix(index, *pair), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).prefetch(tf.data.AUTOTUNE)
    if input_context is not None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    return ds


def _to_float(samples):
    from tinyse_tf._tf import tf

    return tf.cast(samples, tf.float32) * (1.0 / 32768.0)


def _clips(shards: Shards, key, clip: int, shuffle: bool, loop: bool, uses: int = 1):
    """``tf.data.Dataset`` of int16 ``[clip]``: ``uses`` random crops per utterance and pass.

    ``loop=False`` (speech): a crop of ``min(length, clip)`` samples at a random offset, placed
    at a random position in zeros. ``loop=True`` (noise): ``clip`` samples from a random offset,
    the utterance looped. ``shuffle``: endless passes; shards, utterances and crops drawn from
    ``(key, pass, shard)``. Else one pass in storage order (crops still random).
    """
    from tinyse_tf._tf import tf

    fold = tf.random.experimental.stateless_fold_in
    n = len(shards.files)
    files = tf.constant([str(f) for f in shards.files])
    flat = tf.constant([x for lengths in shards.lengths for x in lengths], tf.int32)
    bounds = tf.cumsum(tf.constant([0] + [len(x) for x in shards.lengths], tf.int64))

    def one_pass(p):
        ids = tf.range(n, dtype=tf.int64)
        if shuffle:
            ids = tf.random.experimental.stateless_shuffle(ids, fold(key, p))
        return tf.data.Dataset.from_tensor_slices((tf.fill([n], p), ids))

    def read_shard(p, i):
        samples = tf.io.decode_raw(tf.io.read_file(files[i]), tf.int16, little_endian=True)
        lengths = flat[bounds[i]:bounds[i + 1]]
        starts = tf.cumsum(lengths, exclusive=True)
        rows = tf.tile(tf.range(tf.size(lengths)), [uses])
        visit = fold(fold(key, p), i)
        if shuffle:
            rows = tf.random.experimental.stateless_shuffle(rows, visit)
        starts, lengths = tf.gather(starts, rows), tf.gather(lengths, rows)
        u = tf.random.stateless_uniform([tf.size(rows), 2], fold(visit, 1), dtype=tf.float64)

        def draw(column, high):  # integers in [0, high), one per row
            return tf.cast(u[:, column] * tf.cast(high, tf.float64), tf.int32)

        # Offsets are drawn for the whole shard at once; each element then only slices and
        # pads or tiles (memcpy speed, a handful of ops).
        if loop:
            offsets = draw(0, lengths)
            heads = tf.minimum(clip, lengths - offsets)
            periods = tf.minimum(lengths, clip)  # what follows the wrap: the start, repeated
            repeats = (clip - heads + periods - 1) // periods

            def crop(start, offset, head, period, repeat):
                wrapped = tf.tile(tf.slice(samples, [start], [period]), [repeat])
                return tf.concat([tf.slice(samples, [start + offset], [head]), wrapped], 0)[:clip]

            rows = (starts, offsets, heads, periods, repeats)
        else:
            takes = tf.minimum(lengths, clip)
            lefts = draw(1, clip - takes + 1)

            def crop(start, take, left):
                return tf.pad(tf.slice(samples, [start], [take]), [[left, clip - take - left]])

            rows = (starts + draw(0, lengths - takes + 1), takes, lefts)
        return tf.data.Dataset.from_tensor_slices(rows).map(
            lambda *row: tf.ensure_shape(crop(*row), [clip]))

    passes = tf.data.Dataset.counter() if shuffle else tf.data.Dataset.range(1)
    cycle = min(CYCLE, n) if shuffle else 1  # one pass: shard after shard, in storage order
    return passes.flat_map(one_pass).interleave(read_shard, cycle_length=cycle, block_length=1,
                                                num_parallel_calls=cycle, deterministic=True)


def worker_input_context(strategy):
    """The ``tf.distribute.InputContext`` of this worker under a multi-worker strategy (as
    ``MultiWorkerMirroredStrategy`` numbers them: the chief first, then the workers), or
    ``None`` on a single machine (default strategy, ``MirroredStrategy``)."""
    from tinyse_tf._tf import tf

    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief", []))
    workers = chiefs + len(cluster.get("worker", []))
    if workers <= 1:
        return None
    index = 0 if resolver.task_type == "chief" else chiefs + int(resolver.task_id)
    return tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=index,
                                      num_replicas_in_sync=strategy.num_replicas_in_sync)
