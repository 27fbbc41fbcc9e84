"""Numpy half of the signal path (METHOD.md section 1): windows, mel matrices and the
frame-by-frame analysis/synthesis used by the streaming wrapper.

This module needs only numpy, so the streaming wrapper runs on a device without TensorFlow or
librosa. ``tinyse_tf.features`` builds the TensorFlow path on the same constants, and the tests
check both paths against each other.

Framing convention: frame ``t`` covers samples ``[t*HOP - (N_FFT-HOP), t*HOP + HOP)`` of the input,
i.e. the signal is left-padded with ``N_FFT - HOP`` zeros so that frame 0 ends at sample ``HOP`` and
the output of the streaming path is the input delayed by exactly ``N_FFT - HOP`` samples (the
algorithmic latency is one frame, 32 ms: a hop of buffering plus that delay).
"""
import functools

import numpy as np

from tinyse_tf.constants import COMPRESSION, HOP, MEL_FMAX, MEL_FMIN, N_BINS, N_FFT, N_MELS, SAMPLE_RATE

MEL_FLOOR = 1e-10  # keeps x**0.3 finite at digital silence


def sqrt_hann(n: int = N_FFT) -> np.ndarray:
    """Periodic square-root Hann window [n]; used for analysis and synthesis.

    With 50 % overlap the product of the two windows (a periodic Hann) sums to exactly 1, so
    overlap-add reconstructs the input exactly (METHOD.md choice).
    """
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=None)
def mel_matrix() -> np.ndarray:
    """HTK mel filterbank as a [257, 80] float32 matrix (linear bins -> mel bands, 50-8000 Hz).

    Triangles on the HTK mel scale evaluated at the bin frequencies, peak 1, no area
    normalisation: the same matrix as ``librosa.filters.mel(htk=True, norm=None)`` (a test checks
    it), written here in numpy so that streaming on a device needs neither librosa nor numba.
    With 31.25 Hz bins every one of the 80 bands covers at least one bin.
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(MEL_FMAX), N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_BINS)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))  # [80, 257]
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


def np_mel_features(spec_frame: np.ndarray) -> np.ndarray:
    """Compressed mel features of STFT frames: complex [..., 257] -> float32 [..., 80]."""
    mel = np.abs(spec_frame).astype(np.float32) @ mel_matrix()
    return np.power(np.maximum(mel, MEL_FLOOR), COMPRESSION).astype(np.float32)


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
