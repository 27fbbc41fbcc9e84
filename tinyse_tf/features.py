"""TensorFlow half of the signal path (docs/DESIGN.md, A.1): STFT, mel features,
mel-mask -> linear-mask and inverse STFT on whole sequences, inside training graphs.

The numpy frame-by-frame path with the same maths is ``tinyse_tf.dsp``; tests check that both give
the same frames, features and reconstruction. Framing convention: see ``tinyse_tf.dsp``.
"""
from tinyse_tf._tf import tf
from tinyse_tf.constants import COMPRESSION, HOP, N_FFT
from tinyse_tf.dsp import MEL_FLOOR, mel_matrix, mel_to_linear_matrix, sqrt_hann


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
    return tf.pow(tf.maximum(mel, MEL_FLOOR), COMPRESSION)[..., tf.newaxis]


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


def analyze(audio):
    """The model's view of a signal: (STFT, features).

    Shape: audio [b, n] float32 -> (complex64 [b, t, 257], float32 [b, t, 80, 1]), t = ceil(n/256)+1.
    """
    spec = stft(audio)
    return spec, mel_features(spec)


def synthesize(spec, mel_mask, length):
    """Apply a model's mel-grid mask to the noisy STFT (noisy phase kept) and return the signal.

    Shape: spec complex64 [b, t, 257], mel_mask [b, t, 80, 1] -> float32 [b, length].
    """
    return istft(apply_mask(spec, mel_mask_to_linear(mel_mask)), length)
