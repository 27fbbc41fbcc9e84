"""Offline enhancement with a CRUSE sequence model: the whole signal in one TensorFlow call."""
import numpy as np

from tinyse_tf._tf import tf
from tinyse_tf.features import analyze, synthesize


@tf.function(reduce_retracing=True)
def _enhance_batch(model, audio):
    spec, features = analyze(audio)
    return synthesize(spec, model(features, training=False), tf.shape(audio)[-1])


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


class OfflineEnhancer:
    """The stream interface (``reset``/``process``/``flush``, ``latency`` 0) over ``enhance``:
    buffers the whole signal and enhances it in one call at ``flush``. For short files."""

    latency = 0
    name = "Keras (whole file)"

    def __init__(self, model):
        self._model = model
        self.reset()

    def reset(self):
        self._chunks = []

    def process(self, x):
        self._chunks.append(np.asarray(x, np.float32).reshape(-1))
        return np.zeros(0, np.float32)

    def flush(self):
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        self.reset()
        if audio.size == 0:
            return audio
        return np.asarray(enhance(self._model, audio), np.float32)
