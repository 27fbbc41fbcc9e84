"""Numpy half of the signal path (docs/DESIGN.md, A.1): windows, mel matrices and the
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
    overlap-add reconstructs the input exactly (docs/DESIGN.md, B.1).
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
    transpose of ``mel_matrix``), so a mask in (0, 1) stays in (0, 1). No band covers the two
    bins below the filterbank's 50 Hz: the DC bin gets mask 0 (its window's main lobe spans
    0-47 Hz: rumble, hum and offsets, no speech), bin 1 (31 Hz, main lobe up to 78 Hz, into low
    voices) copies the lowest band's mask (docs/DESIGN.md, B.2; chosen on validation,
    docs/RESULTS.md section 12).
    """
    fb = mel_matrix().T.astype(np.float64)  # [80, 257]
    weight = fb.sum(axis=0)
    out = fb / np.where(weight > 0, weight, 1.0)  # uncovered bins: all 0
    copies = weight <= 0
    copies[0] = False  # the DC bin stays 0
    out[0, copies] = 1.0
    return out.astype(np.float32)


def rowwise_matmul(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix`` one row at a time: [k, n] @ [n, m] -> [k, m] float32.

    A dense ``x @ m`` goes through BLAS, whose summation order depends on the number of rows, so
    a stream's output would change in the last bit with its chunk sizes (one hop or a block of
    hops per call). Row by row, every frame is computed the same way, whatever the chunking.
    """
    x = np.asarray(x, np.float32).reshape(-1, matrix.shape[0])
    if len(x) == 1:
        return np.dot(x[0], matrix)[None]
    out = np.empty((x.shape[0], matrix.shape[1]), np.float32)
    for i, row in enumerate(x):
        np.dot(row, matrix, out=out[i])
    return out


def np_mel_features(spec_frames: np.ndarray) -> np.ndarray:
    """Compressed mel features of STFT frames: complex [..., 257] -> float32 [..., 80]
    (computed frame by frame, see ``rowwise_matmul``)."""
    spec_frames = np.asarray(spec_frames)
    mel = rowwise_matmul(np.abs(spec_frames), mel_matrix())
    mel = np.power(np.maximum(mel, MEL_FLOOR), COMPRESSION, dtype=np.float32)
    return mel.reshape(spec_frames.shape[:-1] + (N_MELS,))


class _FrameTail:
    """Base of the streaming analysis / synthesis: the sqrt-Hann window and a tail of
    ``N_FFT - HOP`` samples carried from one call to the next (zeros at start)."""

    def __init__(self):
        self._window = sqrt_hann()
        self.reset()

    def reset(self):
        self._tail = np.zeros(N_FFT - HOP, dtype=np.float32)


class FrameAnalyzer(_FrameTail):
    """Streaming analysis: push k hops (k * HOP samples), get their k STFT frames (complex64
    [k, 257]), computed in one vectorised rfft.

    Keeps the last ``N_FFT - HOP`` samples as state (zeros at start, as in ``stft``).
    """

    def push(self, hops: np.ndarray) -> np.ndarray:
        hops = np.asarray(hops, np.float32).reshape(-1)
        if hops.size % HOP:
            raise ValueError(f"FrameAnalyzer.push expects a multiple of {HOP} samples, "
                             f"got {hops.size}")
        if not hops.size:
            return np.zeros((0, N_BINS), np.complex64)
        buf = np.concatenate([self._tail, hops])  # (k + 1) hops; N_FFT = 2 * HOP
        self._tail = buf[buf.size - (N_FFT - HOP):]
        frames = np.concatenate([buf[:-HOP].reshape(-1, HOP), buf[HOP:].reshape(-1, HOP)], axis=1)
        return np.fft.rfft(frames * self._window, axis=-1).astype(np.complex64, copy=False)


class FrameSynthesizer(_FrameTail):
    """Streaming overlap-add: push k STFT frames (complex [k, 257]), get k * HOP finished samples.

    The samples returned for frame ``t`` are the input samples of frame ``t - 1``'s second half,
    i.e. the output lags the input by ``N_FFT - HOP`` samples (``N_FFT = 2 * HOP``).
    """

    def push(self, spec_frames: np.ndarray) -> np.ndarray:
        spec_frames = np.asarray(spec_frames)
        if spec_frames.ndim != 2 or spec_frames.shape[1] != N_BINS:
            raise ValueError(f"FrameSynthesizer.push expects frames of {N_BINS} bins [k, "
                             f"{N_BINS}], got shape {spec_frames.shape}")
        frames = np.fft.irfft(spec_frames, n=N_FFT, axis=-1).astype(np.float32) * self._window
        heads, tails = frames[:, :HOP], frames[:, HOP:]
        out = heads.copy()
        if len(frames):
            out[0] += self._tail
            out[1:] += tails[:-1]
            self._tail = tails[-1].copy()
        return out.reshape(-1)
