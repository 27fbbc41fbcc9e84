import numpy as np
import pytest

from tinyse_tf._tf import tf
from tinyse_tf.constants import HOP, N_BINS, N_FFT, N_MELS
from tinyse_tf.dsp import (FrameAnalyzer, FrameSynthesizer, mel_matrix, mel_to_linear_matrix,
                           np_mel_features, rowwise_matmul, sqrt_hann)
from tinyse_tf.features import istft, mel_features, stft


@pytest.fixture
def audio():
    rng = np.random.default_rng(1)
    return (0.3 * rng.standard_normal(HOP * 20 + 77)).astype(np.float32)


def test_window_pair_overlap_adds_to_one():
    w2 = sqrt_hann() ** 2
    assert np.allclose(w2[:HOP] + w2[HOP:], 1.0, atol=1e-6)


def test_stft_istft_reconstructs_exactly(audio):
    x = tf.constant(audio[None])
    y = istft(stft(x), len(audio)).numpy()[0]
    assert y.shape == audio.shape
    np.testing.assert_allclose(y, audio, atol=1e-5)


def test_stft_shape_is_causal_framing(audio):
    spec = stft(tf.constant(audio[None]))
    assert spec.shape == (1, int(np.ceil(len(audio) / HOP)) + 1, N_BINS)


def test_mel_matrices():
    fb, inv = mel_matrix(), mel_to_linear_matrix()
    assert fb.shape == (N_BINS, N_MELS) and inv.shape == (N_MELS, N_BINS)
    assert (fb.sum(axis=0) > 0).all(), "every mel band must cover at least one bin"
    # A constant mel mask maps to the same constant on every bin but DC, which gets 0; bin 1
    # (31.25 Hz), which no band covers either, takes the lowest band's mask.
    assert np.flatnonzero(fb.sum(axis=1) <= 0).tolist() == [0, 1]
    linear = np.full(N_MELS, 0.7) @ inv
    assert linear[0] == 0
    np.testing.assert_allclose(linear[1:], 0.7, atol=1e-6)
    assert inv[:, 1].tolist() == [1.0] + [0.0] * (N_MELS - 1)
    assert (inv >= 0).all()


def test_mel_matrix_equals_librosa_htk():
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=N_MELS, fmin=50, fmax=8000, htk=True,
                              norm=None)
    np.testing.assert_allclose(mel_matrix(), ref.T, atol=1e-6)


def test_dsp_module_does_not_need_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tinyse_tf.dsp as d; d.FrameAnalyzer(); d.mel_to_linear_matrix(); "
            "print('tensorflow' in sys.modules, 'librosa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_mel_features_do_not_depend_on_how_many_frames_at_once(audio):
    spec = FrameAnalyzer().push(audio[:(len(audio) // HOP) * HOP])
    whole = np_mel_features(spec)
    np.testing.assert_array_equal(whole, np.stack([np_mel_features(s) for s in spec]))
    np.testing.assert_array_equal(rowwise_matmul(whole, mel_to_linear_matrix()),
                                  np.stack([w @ mel_to_linear_matrix() for w in whole]))


def test_frame_path_matches_tf_path(audio):
    n = (len(audio) // HOP) * HOP
    x = audio[:n]
    spec_tf = stft(tf.constant(x[None])).numpy()[0, :n // HOP]
    feats_tf = mel_features(tf.constant(spec_tf[None])).numpy()[0, ..., 0]
    ana = FrameAnalyzer()
    spec_np = np.concatenate([ana.push(x[i:i + HOP]) for i in range(0, n, HOP)])
    np.testing.assert_allclose(spec_np, spec_tf, atol=2e-4)
    np.testing.assert_array_equal(FrameAnalyzer().push(x), spec_np)  # k hops at once: same frames
    np.testing.assert_allclose(np_mel_features(spec_np), feats_tf, rtol=1e-4, atol=1e-4)


def test_frame_synthesis_reconstructs_with_fixed_delay(audio):
    n = (len(audio) // HOP) * HOP
    x = audio[:n]
    ana, syn = FrameAnalyzer(), FrameSynthesizer()
    y = np.concatenate([syn.push(ana.push(x[i:i + HOP])) for i in range(0, n, HOP)])
    delay = N_FFT - HOP
    np.testing.assert_allclose(y[delay:], x[:n - delay], atol=1e-5)
    ana.reset(), syn.reset()
    np.testing.assert_array_equal(syn.push(ana.push(x)), y)  # k hops at once: same samples


def test_frame_path_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="multiple of 256 samples"):
        FrameAnalyzer().push(np.zeros(100, np.float32))
    assert FrameAnalyzer().push(np.zeros(0, np.float32)).shape == (0, 257)
    with pytest.raises(ValueError, match="257 bins"):
        FrameSynthesizer().push(np.zeros(10, np.complex64))
