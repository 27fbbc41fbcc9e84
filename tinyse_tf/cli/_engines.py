"""Enhancement engines used by ``tinyse enhance``: all take 16 kHz mono chunks and return the
enhanced stream, which lags the input by ``latency`` samples (the caller drops them).

* ``TfliteEngine``: an exported streaming ``.tflite`` through ``StreamingEnhancer``.
* ``KerasStreamEngine``: a Keras CRUSE model through its single-frame graph
  (``build_streaming_model``, every state explicit), frame by frame: bounded memory, any length.
* ``KerasOfflineEngine``: a Keras model on the whole (short) signal in one call (``enhance``).
"""
from __future__ import annotations

import numpy as np

from tinyse_tf.streaming import FrameStream


class TfliteEngine:
    """``StreamingEnhancer`` (see tinyse_tf.streaming): process / flush, lag ``latency``."""

    def __init__(self, enhancer):
        self.se = enhancer
        self.latency = int(enhancer.latency_samples)
        self.name = f"streaming TFLite ({enhancer.dtype})"

    def reset(self):
        self.se.reset()

    def process(self, x):
        return self.se.process(x)

    def flush(self):
        return self.se.flush()


class KerasStreamEngine(FrameStream):
    """The same per-hop signal path as ``StreamingEnhancer`` with the Keras single-frame graph."""

    name = "Keras streaming graph"

    def __init__(self, model):
        from tinyse_tf._tf import tf
        from tinyse_tf.models.streaming import build_streaming_model

        self._tf = tf
        self._stream = build_streaming_model(model)
        self._state_shapes = [tuple(int(d) for d in i.shape) for i in self._stream.inputs[1:]]
        self._step = tf.function(lambda f, s: self._stream([f] + list(s)))
        self.latency = self.latency_samples
        self._init_stream()

    def _reset_states(self):
        self._states = [self._tf.zeros(s) for s in self._state_shapes]

    def run_frame(self, features) -> np.ndarray:
        f = self._tf.constant(np.asarray(features, np.float32).reshape(1, 1, -1, 1))
        out = self._step(f, self._states)
        self._states = list(out[1:])
        return out[0].numpy().reshape(-1)


class KerasOfflineEngine:
    """Buffers the whole signal; ``flush`` enhances it in one call (no lag)."""

    latency = 0
    name = "Keras (whole file)"

    def __init__(self, model):
        from tinyse_tf.inference import enhance

        self._model, self._enhance = model, enhance
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
        return np.asarray(self._enhance(self._model, audio), np.float32)
