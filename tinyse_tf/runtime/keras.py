"""A Keras CRUSE model as a frame model: its single-frame graph, every state explicit."""
from __future__ import annotations

import numpy as np

from tinyse_tf.runtime.signal import FrameStream


class KerasFrameModel:
    """``step(features [80]) -> mask [80]`` through ``build_streaming_model(model)`` (float32,
    weights shared with ``model``): bounded memory, any stream length."""

    name = "Keras streaming graph"

    def __init__(self, model):
        from tinyse_tf._tf import tf
        from tinyse_tf.models.streaming import build_streaming_model, zero_states

        self._tf = tf
        self.stream_model = build_streaming_model(model)
        self._zeros = list(zero_states(self.stream_model).values())
        self._step = tf.function(lambda f, s: self.stream_model([f] + list(s)))
        self.reset()

    def reset(self):
        self._states = [self._tf.constant(z) for z in self._zeros]

    def step(self, features) -> np.ndarray:
        f = self._tf.constant(np.asarray(features, np.float32).reshape(1, 1, -1, 1))
        out = self._step(f, self._states)
        self._states = list(out[1:])
        return out[0].numpy().reshape(-1)


def keras_stream(model) -> FrameStream:
    """A ``FrameStream`` that runs a Keras CRUSE model frame by frame (``KerasFrameModel``)."""
    return FrameStream(KerasFrameModel(model))
