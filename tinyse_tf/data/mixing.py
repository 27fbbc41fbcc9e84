"""Mixing speech and noise at a given SNR and level, in numpy and in TensorFlow (same formula).

SNR is energy based over the whole clip: ``10 log10(sum(clean^2) / sum(noise^2))``, or, in
:func:`mix_tf` with ``snr_measure="loudness"``, the paper's: the difference of the two signals'
ITU-R BS.1770 gated loudness in LUFS (:mod:`tinyse_tf.data.loudness`). They differ mostly for
noise with much low-frequency energy (hum, brown noise, engines), which K-weighting discounts,
and for speech with pauses, which the gate leaves out. The level is the RMS of the noisy mixture
in dBFS; the clean target gets the same gain. If a sample of either signal would exceed
``peak``, both are scaled down together, which keeps the SNR.

A clip whose speech part is silent (energy below ``SILENCE``) gets the noise at unit gain, so it
becomes a noise-only example with a silent target rather than a silent pair.
"""
from __future__ import annotations

import numpy as np

PEAK = 0.99
SILENCE = 1e-8  # sum of squares below which the speech part counts as silent
_EPS = 1e-12


def mix_np(clean: np.ndarray, noise: np.ndarray, snr_db: float, level_db: float,
           peak: float = PEAK) -> tuple[np.ndarray, np.ndarray]:
    """Mix one clip.

    Args:
        clean: float [n] speech.
        noise: float [n] noise (same length).
        snr_db: energy SNR of the result.
        level_db: RMS of the noisy result in dBFS (before the peak limit).
        peak: largest absolute sample allowed in either output.

    Returns:
        ``(noisy, clean)`` float32 [n], scaled by the same gain.
    """
    clean = np.asarray(clean, np.float64)
    noise = np.asarray(noise, np.float64)
    e_clean = np.sum(clean ** 2)
    e_noise = np.sum(noise ** 2)
    g_noise = (np.sqrt(e_clean / (e_noise * 10 ** (snr_db / 10) + _EPS))
               if e_clean > SILENCE else 1.0)
    noisy = clean + g_noise * noise
    gain = 10 ** (level_db / 20) / (np.sqrt(np.mean(noisy ** 2)) + _EPS)
    top = max(np.max(np.abs(noisy)), np.max(np.abs(clean))) * gain
    if top > peak:
        gain *= peak / top
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32)


SNR_MEASURES = ("energy", "loudness")


def mix_tf(clean, noise, snr_db, level_db, peak: float = PEAK, target=None,
           snr_measure: str = "energy"):
    """TensorFlow version of :func:`mix_np`, for one clip (float32 ``[n]``, scalar dB) or a batch
    (``[batch, n]``, dB ``[batch]``): every formula runs over the last axis.

    ``target`` (same shape as ``clean``; default ``clean``) is what is returned as the clean
    signal, scaled by the same gain: augmented data mixes reverberant speech and returns its
    early part (:mod:`tinyse_tf.data.augment`). The SNR is that of ``clean`` in the mixture,
    by ``snr_measure``: ``"energy"`` or ``"loudness"`` (BS.1770 gated loudness; needs a static
    length of at least 0.4 s, a clip whose speech no block passes the gate counts as silent)."""
    from tinyse_tf._tf import tf

    if snr_measure not in SNR_MEASURES:
        raise ValueError(f"snr_measure must be one of {SNR_MEASURES}, got {snr_measure!r}")

    def total(x, reduce=tf.reduce_sum):
        return reduce(x, axis=-1, keepdims=True)

    snr_db, level_db = tf.expand_dims(snr_db, -1), tf.expand_dims(level_db, -1)
    if snr_measure == "loudness":
        from tinyse_tf.data.loudness import gated_power_tf

        e_clean, e_noise = gated_power_tf(clean), gated_power_tf(noise)
        speaking = e_clean > 0.0
    else:
        e_clean, e_noise = total(tf.square(clean)), total(tf.square(noise))
        speaking = e_clean > SILENCE
    g_noise = tf.where(speaking,
                       tf.sqrt(e_clean / (e_noise * tf.pow(10.0, snr_db / 10.0) + _EPS)), 1.0)
    noisy = clean + g_noise * noise
    gain = tf.pow(10.0, level_db / 20.0) / (tf.sqrt(total(tf.square(noisy), tf.reduce_mean))
                                            + _EPS)
    target = clean if target is None else target
    top = tf.maximum(total(tf.abs(noisy), tf.reduce_max), total(tf.abs(target), tf.reduce_max))
    top = top * gain
    gain = tf.where(top > peak, gain * peak / top, gain)
    return noisy * gain, target * gain
