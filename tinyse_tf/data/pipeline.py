"""On-the-fly noisy/clean mixtures as a ``tf.data.Dataset``.

All audio is loaded once into two flat float32 tensors (speech, noise) with per-file offsets;
every example is cut and mixed in a parallel ``map`` with stateless random ops seeded by
``(seed, example index)``, so a seed always gives the same examples in the same order, and the
CPU work runs beside the training step thanks to ``prefetch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data.audio_io import load_files
from tinyse_tf.data.mixing import mix_tf


def _pack(clips) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clips = list(clips)
    lengths = np.array([len(c) for c in clips], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.concatenate(clips).astype(np.float32), starts, lengths


def mixture_dataset(speech_files: Sequence, noise_files: Sequence, clip_seconds: float = 2.0,
                    batch_size: int = 16, snr_range=(-5.0, 15.0), level_range_db=(-35.0, -15.0),
                    seed: int = 0, repeat: bool = True):
    """Batches of ``(noisy, clean)`` mixed on the fly.

    Each example: a random speech file, a random crop of ``clip_seconds`` (a shorter file is
    zero-padded at a random position); a random noise file, cropped at a random offset and looped
    if shorter than the clip; SNR uniform in ``snr_range`` (energy based over the clip; the paper
    uses LUFS, see :mod:`tinyse_tf.data.mixing`); RMS level of the mixture uniform in
    ``level_range_db`` dBFS, the clean target scaled by the same gain; both scaled down together
    if a sample would exceed 0.99.

    Args:
        speech_files: speech paths (loaded into memory; unreadable files are skipped with a
            warning).
        noise_files: noise paths.
        clip_seconds: example length.
        batch_size: examples per batch.
        snr_range: ``(low, high)`` in dB; equal values give a fixed SNR.
        level_range_db: ``(low, high)`` RMS level of the noisy mixture in dBFS.
        seed: the same seed gives the same batches.
        repeat: ``True``: endless, speech file drawn at random for each example, every batch
            full. ``False``: one example per speech file, in file order (a fixed validation
            set for a seed); the last batch may be smaller.

    Returns:
        ``tf.data.Dataset`` of ``(noisy, clean)``, each float32 ``[batch, clip_samples]`` with
        ``clip_samples = round(clip_seconds * 16000)``.
    """
    from tinyse_tf._tf import tf

    clip = int(round(clip_seconds * SAMPLE_RATE))
    if clip <= 0 or batch_size <= 0:
        raise ValueError("clip_seconds and batch_size must be positive")
    if snr_range[0] > snr_range[1] or level_range_db[0] > level_range_db[1]:
        raise ValueError("ranges are (low, high)")
    s_flat, s_start, s_len = _pack(load_files(speech_files, what="speech files").values())
    n_flat, n_start, n_len = _pack(load_files(noise_files, what="noise files").values())
    n_speech, n_noise = len(s_len), len(n_len)

    s_flat, s_start, s_len = tf.constant(s_flat), tf.constant(s_start), tf.constant(s_len)
    n_flat, n_start, n_len = tf.constant(n_flat), tf.constant(n_start), tf.constant(n_len)
    clip_t = tf.constant(clip, tf.int64)
    snr_lo, snr_hi = float(snr_range[0]), float(snr_range[1])
    lvl_lo, lvl_hi = float(level_range_db[0]), float(level_range_db[1])

    def uniform_int(seed_pair, high):  # integer in [0, high)
        return tf.random.stateless_uniform([], seed_pair, 0, high, dtype=tf.int64)

    def example(index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), index]), num=7)
        si = uniform_int(seeds[0], n_speech) if repeat else index
        length, start = s_len[si], s_start[si]
        take = tf.minimum(length, clip_t)
        offset = uniform_int(seeds[1], length - take + 1)
        left = uniform_int(seeds[2], clip_t - take + 1)
        clean = tf.pad(tf.slice(s_flat, [start + offset], [take]),
                       [[left, clip_t - take - left]])
        ni = uniform_int(seeds[3], n_noise)
        noise_offset = uniform_int(seeds[4], n_len[ni])
        positions = n_start[ni] + (noise_offset + tf.range(clip_t, dtype=tf.int64)) % n_len[ni]
        noise = tf.gather(n_flat, positions)
        snr = tf.random.stateless_uniform([], seeds[5], snr_lo, snr_hi) if snr_hi > snr_lo \
            else tf.constant(snr_lo)
        level = tf.random.stateless_uniform([], seeds[6], lvl_lo, lvl_hi) if lvl_hi > lvl_lo \
            else tf.constant(lvl_lo)
        noisy, clean = mix_tf(tf.reshape(clean, [clip]), noise, snr, level)
        return noisy, clean

    indices = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(n_speech)
    ds = indices.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    return ds.prefetch(tf.data.AUTOTUNE)
