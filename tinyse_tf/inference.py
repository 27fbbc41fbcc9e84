"""Offline enhancement with a CRUSE sequence model (whole signals at once)."""
import numpy as np

from tinyse_tf._tf import tf
from tinyse_tf.features import apply_mask, istft, mel_features, mel_mask_to_linear, stft


@tf.function(reduce_retracing=True)
def _enhance_batch(model, audio):
    spec = stft(audio)
    mask = model(mel_features(spec), training=False)
    return istft(apply_mask(spec, mel_mask_to_linear(mask)), tf.shape(audio)[-1])


def enhance(model, audio):
    """Enhance noisy 16 kHz audio with a CRUSE model.

    The output is aligned with the input (no delay) and has the same length.

    Shape:
        audio: float [n] or [b, n] -> float32 of the same shape.
    """
    audio = np.asarray(audio, dtype=np.float32)
    batch = audio[None] if audio.ndim == 1 else audio
    out = _enhance_batch(model, tf.constant(batch)).numpy()
    return out[0] if audio.ndim == 1 else out
