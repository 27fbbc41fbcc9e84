"""Signal path of METHOD.md section 1: STFT, mel features, mel-mask -> linear-mask, inverse STFT.

Two implementations of the same maths:

* the TensorFlow path (``stft``, ``istft``, ``mel_features``, ``mel_mask_to_linear``) used inside
  training graphs on whole sequences;
* the frame-by-frame numpy path (``FrameAnalyzer``, ``FrameSynthesizer``) used by the streaming
  wrapper, one 256-sample hop at a time.

Tests check that both give the same frames, features and reconstruction.

Framing convention: frame ``t`` covers samples ``[t*HOP - (N_FFT-HOP), t*HOP + HOP)`` of the input,
i.e. the signal is left-padded with ``N_FFT - HOP`` zeros so that frame 0 ends at sample ``HOP`` and
the output of the streaming path is the input delayed by exactly ``N_FFT - HOP`` samples (the
algorithmic latency is one frame, 32 ms: a hop of buffering plus that delay).
"""
import functools

import numpy as np

from tinyse_tf._tf import tf
from tinyse_tf.constants import COMPRESSION, HOP, MEL_FMAX, MEL_FMIN, N_BINS, N_FFT, N_MELS, SAMPLE_RATE

_MEL_FLOOR = 1e-10  # keeps x**0.3 finite at digital silence


def sqrt_hann(n: int = N_FFT) -> np.ndarray:
    """Periodic square-root Hann window [n]; used for analysis and synthesis.

    With 50 % overlap the product of the two windows (a periodic Hann) sums to exactly 1, so
    overlap-add reconstructs the input exactly (METHOD.md choice).
    """
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def mel_matrix() -> np.ndarray:
    """HTK mel filterbank as a [257, 80] float32 matrix (linear bins -> mel bands, 50-8000 Hz).

    Built with librosa (``htk=True, norm=None``): with 31.25 Hz bins every one of the 80 bands
    gets at least one bin, which Slaney spacing or TF's bin-centre evaluation do not guarantee.
    """
    import librosa  # imported lazily: only needed once, to build the constant

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=MEL_FMIN,
                             fmax=MEL_FMAX, htk=True, norm=None)
    return np.ascontiguousarray(fb.T, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def mel_to_linear_matrix() -> np.ndarray:
    """[80, 257] float32 matrix mapping a mel-grid mask to the linear grid.

    Each linear bin gets the filterbank-weighted average of the mel masks (column-normalised
    transpose of ``mel_matrix``), so a mask in (0, 1) stays in (0, 1). Bins no band covers
    (below 50 Hz) copy the nearest band, the lowest one.
    """
    fb = mel_matrix().T.astype(np.float64)  # [80, 257]
    weight = fb.sum(axis=0)
    uncovered = weight <= 0
    out = np.where(uncovered, 0.0, fb / np.where(uncovered, 1.0, weight))
    out[0, uncovered] = 1.0
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- TensorFlow path
def _tf_window(frame_length, dtype=tf.float32):
    del frame_length  # tf.signal passes it as a tensor; it is always N_FFT here
    return tf.constant(sqrt_hann(N_FFT), dtype=dtype)


def stft(audio):
    """Causal STFT of a batch of signals.

    Shape:
        audio: [b, n] float32 -> complex64 [b, ceil(n / HOP) + 1, 257].
    The input is padded with ``N_FFT - HOP`` zeros on both sides (plus up to a whole hop on the
    right), so every sample is covered by two frames and ``istft`` reconstructs all of it.
    """
    n = tf.shape(audio)[-1]
    right = (-n) % HOP + (N_FFT - HOP)
    padded = tf.pad(audio, [[0, 0], [N_FFT - HOP, right]])
    return tf.signal.stft(padded, N_FFT, HOP, fft_length=N_FFT, window_fn=_tf_window, pad_end=False)


def istft(spec, length):
    """Inverse of ``stft``: overlap-add with the sqrt-Hann synthesis window, trimmed to ``length``.

    Shape:
        spec: complex64 [b, t, 257] -> float32 [b, length].
    """
    frames = tf.signal.inverse_stft(spec, N_FFT, HOP, fft_length=N_FFT, window_fn=_tf_window)
    return frames[:, N_FFT - HOP:N_FFT - HOP + length]


def mel_features(spec):
    """Compressed mel features of an STFT.

    Shape:
        spec: complex64 [b, t, 257] -> float32 [b, t, 80, 1] = (|spec| @ mel)^0.3.
    """
    mel = tf.tensordot(tf.abs(spec), tf.constant(mel_matrix()), axes=1)
    return tf.pow(tf.maximum(mel, _MEL_FLOOR), COMPRESSION)[..., tf.newaxis]


def mel_mask_to_linear(mask):
    """Map a mel-grid mask to the linear grid with the fixed ``mel_to_linear_matrix``.

    Shape:
        mask: float32 [b, t, 80, 1] (or [b, t, 80]) -> float32 [b, t, 257].
    """
    if mask.shape.rank == 4:
        mask = mask[..., 0]
    return tf.tensordot(mask, tf.constant(mel_to_linear_matrix()), axes=1)


def apply_mask(spec, mask_linear):
    """Apply a real linear-grid mask [b, t, 257] to a complex STFT [b, t, 257] (noisy phase kept)."""
    return spec * tf.cast(mask_linear, spec.dtype)


# ----------------------------------------------------------------------------- numpy frame path
def np_mel_features(spec_frame: np.ndarray) -> np.ndarray:
    """Compressed mel features of STFT frames: complex [..., 257] -> float32 [..., 80]."""
    mel = np.abs(spec_frame).astype(np.float32) @ mel_matrix()
    return np.power(np.maximum(mel, _MEL_FLOOR), COMPRESSION).astype(np.float32)


class FrameAnalyzer:
    """Streaming analysis: push HOP samples, get one STFT frame (complex64 [257]).

    Keeps the last ``N_FFT - HOP`` samples as state (zeros at start, as in ``stft``).
    """

    def __init__(self):
        self._window = sqrt_hann()
        self.reset()

    def reset(self):
        self._buffer = np.zeros(N_FFT, dtype=np.float32)

    def push(self, hop: np.ndarray) -> np.ndarray:
        if hop.shape != (HOP,):
            raise ValueError(f"FrameAnalyzer.push expects {HOP} samples, got shape {hop.shape}")
        self._buffer = np.concatenate([self._buffer[HOP:], hop.astype(np.float32)])
        return np.fft.rfft(self._buffer * self._window).astype(np.complex64)


class FrameSynthesizer:
    """Streaming overlap-add: push one STFT frame (complex [257]), get HOP finished samples.

    The samples returned for frame ``t`` are the input samples of frame ``t - 1``'s second half,
    i.e. the output lags the input by ``N_FFT - HOP`` samples.
    """

    def __init__(self):
        self._window = sqrt_hann()
        self.reset()

    def reset(self):
        self._tail = np.zeros(N_FFT - HOP, dtype=np.float32)

    def push(self, spec_frame: np.ndarray) -> np.ndarray:
        if spec_frame.shape != (N_BINS,):
            raise ValueError(f"FrameSynthesizer.push expects {N_BINS} bins, got {spec_frame.shape}")
        frame = np.fft.irfft(spec_frame, n=N_FFT).astype(np.float32) * self._window
        out = self._tail[:HOP] + frame[:HOP]
        self._tail = np.concatenate([self._tail[HOP:], np.zeros(HOP, np.float32)]) + frame[HOP:]
        return out
