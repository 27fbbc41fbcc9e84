"""ITU-R BS.1770-4 gated loudness in the TensorFlow graph, for mixing at a loudness SNR.

The paper sets the SNR of its training mixtures by loudness (LUFS). ``pyloudnorm`` measures it
in numpy, one clip at a time, with ``scipy.signal.lfilter``; the training stream mixes batches
inside ``tf.data``, so this module computes the same quantity with TensorFlow ops (written by
hand for that reason; ``tests/data/test_loudness.py`` checks it against pyloudnorm 0.2.0):

* K-weighting: pyloudnorm's two biquads (high shelf +4 dB at 1.5 kHz, Q 1/sqrt(2); high pass
  38 Hz, Q 0.5; RBJ cookbook formulas at the signal's rate), applied as their frequency response
  on a zero-padded FFT (the padding holds the filters' decaying tails);
* 400 ms blocks every 100 ms (the blocks that fit in the clip), mean square per block;
* the absolute gate (-70 LUFS) and the relative gate (10 LU below the mean of the blocks above
  the absolute gate); the loudness is ``-0.691 + 10 log10`` of the mean square of the blocks
  that pass both.
"""
from __future__ import annotations

import numpy as np

from tinyse_tf.constants import SAMPLE_RATE

BLOCK_S, STEP_S = 0.4, 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
OFFSET_DB = -0.691  # BS.1770: loudness = -0.691 + 10 log10(mean square of the K-weighted signal)
TAIL = 4096  # samples of FFT padding for the filters' tails (the 38 Hz high pass rings longest)


def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int):
    """``(b, a)`` of one RBJ-cookbook biquad, as pyloudnorm's ``IIRfilter`` makes it."""
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * fc / rate
    alpha, cos = np.sin(w0) / (2 * q), np.cos(w0)
    if kind == "high_shelf":
        root = 2 * np.sqrt(a_) * alpha
        b = [a_ * ((a_ + 1) + (a_ - 1) * cos + root), -2 * a_ * ((a_ - 1) + (a_ + 1) * cos),
             a_ * ((a_ + 1) + (a_ - 1) * cos - root)]
        a = [(a_ + 1) - (a_ - 1) * cos + root, 2 * ((a_ - 1) - (a_ + 1) * cos),
             (a_ + 1) - (a_ - 1) * cos - root]
    else:  # high_pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


def k_weighting_response(n_fft: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """complex128 ``[n_fft // 2 + 1]``: the K-weighting filter's response at the rfft bins."""
    z = np.exp(-1j * np.pi * np.arange(n_fft // 2 + 1) / (n_fft // 2))  # z^-1 at each bin
    response = np.ones_like(z)
    for b, a in (_biquad("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0, rate),
                 _biquad("high_pass", 0.0, 0.5, 38.0, rate)):
        response *= np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    return response


def gated_power_tf(audio, rate: int = SAMPLE_RATE):
    """BS.1770 gated mean square of the K-weighted signal, over the last axis.

    Args:
        audio: float32 ``[..., n]`` with a static ``n`` of at least one 400 ms block.
    Returns:
        float32 ``[..., 1]``; the loudness in LUFS is ``-0.691 + 10 log10`` of it. 0 when no
        block passes the absolute gate (silence, or a clip shorter than a block).
    """
    from tinyse_tf._tf import tf

    if audio.shape[-1] is None:
        raise ValueError("gated_power_tf needs a static last dimension (the clip length)")
    n = int(audio.shape[-1])
    n_fft = 1 << int(np.ceil(np.log2(n + TAIL)))
    response = tf.constant(k_weighting_response(n_fft, rate), tf.complex64)
    weighted = tf.signal.irfft(tf.signal.rfft(audio, [n_fft]) * response, [n_fft])[..., :n]
    block, step = int(round(BLOCK_S * rate)), int(round(STEP_S * rate))
    if n < block:
        return tf.zeros_like(audio[..., :1])
    z = tf.reduce_mean(tf.square(tf.signal.frame(weighted, block, step)), axis=-1)  # [..., J]

    def gated_mean(mask):
        mask = tf.cast(mask, z.dtype)
        return tf.reduce_sum(z * mask, -1, keepdims=True) / tf.maximum(
            tf.reduce_sum(mask, -1, keepdims=True), 1.0)

    absolute = 10 ** ((ABSOLUTE_GATE_LUFS - OFFSET_DB) / 10)
    relative = gated_mean(z >= absolute) * 10 ** (RELATIVE_GATE_LU / 10)
    return gated_mean((z > relative) & (z > absolute))


def loudness_tf(audio, rate: int = SAMPLE_RATE):
    """Integrated loudness in LUFS, float32 ``[..., 1]`` (``-inf`` for silence)."""
    from tinyse_tf._tf import tf

    return OFFSET_DB + 10.0 * tf.math.log(gated_power_tf(audio, rate)) / tf.math.log(10.0)
