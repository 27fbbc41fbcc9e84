"""Representative data for int8 calibration: real noisy audio run through the float streaming model.

A streaming model's inputs are the current feature frame *and* its states, so a representative
sample must hold states the model itself produces. ``closed_loop_samples`` runs the float
streaming ``.tflite`` over whole noisy signals through the runtime's frame loop, feeding each
frame's new states back in, and keeps (a subset of) the (features, states) it saw: exactly the
inputs the int8 model will meet at run time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyse_tf.constants import HOP, SAMPLE_RATE


def _as_audio(item) -> np.ndarray:
    if isinstance(item, (str, Path)):
        from tinyse_tf.data.audio_io import load_audio

        return load_audio(item)
    audio = np.asarray(item, dtype=np.float32)
    if audio.ndim != 1 or audio.size < HOP:
        raise ValueError(f"expected 1-D audio of at least {HOP} samples, got shape {audio.shape}")
    return audio


def noisy_mixtures(speech, noise, n_clips: int = 8, seconds: float = 4.0, snr_db=(-5.0, 20.0),
                   seed: int = 0, sources=None):
    """Random (noisy, clean) pairs mixed from speech and noise recordings.

    Args:
        speech, noise: sequences of 1-D float arrays at 16 kHz, or of audio file paths.
        n_clips: number of pairs; seconds: length of each (shorter sources are looped).
        sources: optional ``[(speech index, noise index), ...]`` naming the recordings of each
            pair (e.g. every speech x every noise) instead of ``n_clips`` random draws; the
            crops and SNRs are still drawn from ``seed``.
        snr_db: (low, high) uniform SNR range in dB, or a single number.
        seed: the pairs depend only on it and the sources.
    Returns:
        list of (noisy [n], clean [n]) float32 arrays, n = seconds * 16000.
    """
    rng = np.random.default_rng(seed)
    speech, noise = list(speech), list(noise)
    if not speech or not noise:
        raise ValueError("noisy_mixtures needs at least one speech and one noise signal")
    loaded = {}  # only the sources drawn are read (a folder may hold hundreds of files)

    def source(items, kind, i):
        if (kind, i) not in loaded:
            loaded[kind, i] = _as_audio(items[i])
        return loaded[kind, i]

    n = int(seconds * SAMPLE_RATE)
    lo, hi = (snr_db, snr_db) if np.isscalar(snr_db) else snr_db
    pairs = []
    for k in range(n_clips if sources is None else len(sources)):
        # Random draws keep their order (index, crop, index, crop): same seed, same pairs.
        i = rng.integers(len(speech)) if sources is None else sources[k][0]
        s = _crop(source(speech, "speech", i), n, rng)
        j = rng.integers(len(noise)) if sources is None else sources[k][1]
        v = _crop(source(noise, "noise", j), n, rng)
        snr = rng.uniform(lo, hi)
        gain = np.sqrt(np.mean(s ** 2) / (np.mean(v ** 2) + 1e-12) / 10 ** (snr / 10))
        noisy = s + gain * v
        peak = max(1.0, float(np.abs(noisy).max()) / 0.99)
        pairs.append(((noisy / peak).astype(np.float32), (s / peak).astype(np.float32)))
    return pairs


def _crop(x, n, rng):
    if x.size < n:
        x = np.tile(x, int(np.ceil(n / x.size)))
    start = rng.integers(0, x.size - n + 1)
    return x[start:start + n].astype(np.float32)


def closed_loop_samples(float_model_content: bytes, audios, max_samples: int = 1000,
                        seed: int = 0) -> list[dict]:
    """Representative samples of a streaming model: inputs seen while enhancing ``audios``.

    Each signal runs through the runtime's frame loop (``tinyse_tf.runtime.run_frames``) on the
    float streaming file, states starting at zero, with the features the streaming runtime
    computes (``signal_features``); the inputs of every frame are recorded.

    Args:
        float_model_content: the float32 streaming ``.tflite`` (inputs ``features`` + states,
            outputs ``mask`` + ``<state>_out``).
        audios: noisy signals (1-D arrays at 16 kHz or file paths).
        max_samples: keep at most this many frames, drawn uniformly without replacement over all
            frames of all signals.
    Returns:
        list of ``{input name: float32 array}`` dicts (signature names).
    """
    from tinyse_tf.runtime import TfliteFrameModel, run_frames, signal_features

    model = TfliteFrameModel(model_content=float_model_content)
    shape = model.inputs["features"].shape
    samples = []

    def record(frame_model, frame):
        samples.append({"features": frame.reshape(shape), **frame_model.states()})

    for audio in audios:
        model.reset()
        run_frames(model, signal_features(_as_audio(audio)), observe=record)
    if not samples:
        raise ValueError("no audio given for calibration")
    if len(samples) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), max_samples, replace=False))
        samples = [samples[i] for i in keep]
    return samples
