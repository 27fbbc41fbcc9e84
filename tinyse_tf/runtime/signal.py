"""The per-hop signal path around a frame model: one frame loop for every runtime (numpy only).

::

    chunk -> hop buffer (256) -> FrameAnalyzer (512-sample sqrt-Hann frames, rfft)
          -> mel features [k, 80] -> run_frames(frame model, states carried) -> mel masks [k, 80]
          -> masks @ mel_to_linear_matrix -> masked STFT frames -> FrameSynthesizer -> 256 k samples

Everything but the model is vectorised over the k hops that a chunk completes; the model runs
frame by frame in ``run_frames``, the only frame loop of the package. A *frame model* is any
object with ``name``, ``reset()`` (zero its states) and ``step(features [80]) -> mask [80]``
(float32): ``tinyse_tf.runtime.tflite.TfliteFrameModel`` (an exported file, optionally on the
Edge TPU) or ``tinyse_tf.runtime.keras.KerasFrameModel`` (the Keras single-frame graph).

Latency: the output stream is the input stream delayed by ``latency_samples = N_FFT - HOP = 256``
samples (16 ms), i.e. output sample ``k + 256`` is the enhanced input sample ``k``. On top of that
a sample waits until its 256-sample hop is complete before it is processed, so the algorithmic
latency is ``algorithmic_latency_samples = N_FFT = 512`` samples (32 ms), plus the compute time.
"""
from __future__ import annotations

import numpy as np

from tinyse_tf.constants import HOP, N_MELS, SAMPLE_RATE
from tinyse_tf.dsp import (FrameAnalyzer, FrameSynthesizer, mel_to_linear_matrix, np_mel_features,
                           rowwise_matmul)
from tinyse_tf.runtime.contract import ALGORITHMIC_LATENCY_SAMPLES, STREAM_DELAY_SAMPLES


def run_frames(frame_model, features, observe=None) -> np.ndarray:
    """Run a frame model over feature frames, carrying its states; the one frame loop.

    Args:
        features: [t, 80] float32.
        observe: optional ``observe(frame_model, frame [80])`` called before each step (e.g. to
            record the inputs the model sees, for int8 calibration).
    Returns:
        masks [t, 80] float32. The model's states are not reset first.
    """
    features = np.asarray(features, np.float32).reshape(-1, N_MELS)
    masks = np.empty_like(features)
    step = frame_model.step
    for t, frame in enumerate(features):
        if observe is not None:
            observe(frame_model, frame)
        masks[t] = step(frame)
    return masks


class FrameStream:
    """Enhance audio chunk by chunk with a frame model (see module docstring).

    Shape:
        ``process(chunk [n]) -> [256 * k]``: any n >= 0; k = number of hops completed. The
        output stream lags the input by ``latency_samples``.
    Attributes:
        latency_samples (also ``latency``): output lags input by this many samples (256).
        algorithmic_latency_samples: frame length, 512 (hop buffering + overlap-add delay).
        name: what runs the model, for messages.
    """

    latency_samples = latency = STREAM_DELAY_SAMPLES
    algorithmic_latency_samples = ALGORITHMIC_LATENCY_SAMPLES
    hop = HOP
    sample_rate = SAMPLE_RATE

    def __init__(self, frame_model):
        self.frame_model = frame_model
        self.name = frame_model.name
        self._m2l = mel_to_linear_matrix()
        self._analyzer, self._synth = FrameAnalyzer(), FrameSynthesizer()
        self.reset()

    def reset(self):
        """Forget everything: zero states, empty buffers (start of a new stream)."""
        self.frame_model.reset()
        self._analyzer.reset()
        self._synth.reset()
        self._pending = np.zeros(0, np.float32)
        self._n_in = 0
        self._n_out = 0

    def run_frame(self, features) -> np.ndarray:
        """Run the model on one feature frame [80], advancing the states; return the mask [80]."""
        return self.frame_model.step(np.asarray(features, np.float32).reshape(N_MELS))

    def process(self, chunk) -> np.ndarray:
        """Push any number of samples; return the enhanced samples completed so far.

        Returns ``256 * k`` samples where k is the number of hops that became complete; they
        continue the output stream, which lags the input by ``latency_samples``.
        """
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        self._n_in += chunk.size
        buf = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        n = buf.size - buf.size % HOP
        self._pending = buf[n:].copy()
        if not n:
            return np.zeros(0, np.float32)
        spec = self._analyzer.push(buf[:n])
        masks = run_frames(self.frame_model, np_mel_features(spec))
        out = self._synth.push(spec * rowwise_matmul(masks, self._m2l))
        self._n_out += out.size
        return out

    def flush(self) -> np.ndarray:
        """End the stream: push zeros until every input sample has left, then ``reset()``.

        The concatenation of all ``process`` outputs and this one has exactly
        ``latency_samples + samples pushed`` samples; dropping the first ``latency_samples``
        gives the enhanced input, aligned and of the same length.
        """
        need = self._n_in + self.latency_samples - self._n_out  # = pending + 256 > 0
        n_zeros = -(-need // HOP) * HOP - self._pending.size
        out = self.process(np.zeros(n_zeros, np.float32))[:need]
        self.reset()
        return out

    def enhance(self, audio) -> np.ndarray:
        """Enhance a whole signal through the stream (reset, process, flush, drop the latency).

        Shape: audio [n] -> [n], aligned with the input.
        """
        self.reset()
        out = np.concatenate([self.process(audio), self.flush()])
        return out[self.latency_samples:]


def signal_features(audio) -> np.ndarray:
    """Compressed mel features of a whole signal, frame for frame what ``FrameStream`` feeds the
    model: audio [n] -> [ceil(n / 256), 80] float32 (the trailing partial hop zero-padded)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    padded = np.concatenate([audio, np.zeros((-audio.size) % HOP, np.float32)])
    return np_mel_features(FrameAnalyzer().push(padded))
