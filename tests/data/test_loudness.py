"""BS.1770 loudness in the graph (tinyse_tf.data.loudness) and mixing at a loudness SNR."""
import numpy as np
import pytest

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import mix_tf, mixture_dataset
from tinyse_tf.data.loudness import loudness_tf

pyloudnorm = pytest.importorskip("pyloudnorm")  # in the test extra; the reference


def _signals(seconds=2.0):
    """float32 [k, n]: signals that exercise the filter and both gates."""
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    white = rng.standard_normal(n) * 0.05
    brown = np.cumsum(rng.standard_normal(n)) * 0.002
    hum = 0.3 * np.sin(2 * np.pi * 50 * t)
    high = 0.1 * np.sin(2 * np.pi * 5000 * t)
    bursts = white * (np.sin(2 * np.pi * 1.5 * t) > 0.3)  # pauses: the relative gate drops them
    quiet_start = white.copy()
    quiet_start[:n // 2] *= 1e-3
    return np.stack([white, brown - brown.mean(), hum, high, bursts, quiet_start]).astype(
        np.float32)


def test_matches_pyloudnorm():
    signals = _signals()
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    expected = [meter.integrated_loudness(x.astype(np.float64)) for x in signals]
    got = loudness_tf(signals).numpy()[:, 0]
    np.testing.assert_allclose(got, expected, atol=0.01)
    assert np.isneginf(loudness_tf(np.zeros((1, SAMPLE_RATE), np.float32)).numpy()).all()


def test_mix_tf_sets_the_loudness_snr():
    signals = _signals()
    clean = np.repeat(signals[4:5], 4, axis=0)  # speech-like: bursts with pauses
    noise = signals[:4]
    snr = np.array([-5.0, 0.0, 5.0, 10.0], np.float32)
    level = np.full(4, -25.0, np.float32)
    noisy, target = mix_tf(clean, noise, snr, level, snr_measure="loudness")
    got = (loudness_tf(target) - loudness_tf(noisy - target)).numpy()[:, 0]
    np.testing.assert_allclose(got, snr, atol=0.01)
    # The energy SNR of the same mixtures differs most for the low-frequency noises
    # (K-weighting discounts them): hum and brown noise are mixed louder by energy.
    noisy_e, target_e = mix_tf(clean, noise, snr, level)
    by_loudness = (loudness_tf(target_e) - loudness_tf(noisy_e - target_e)).numpy()[:, 0]
    assert by_loudness[1] > snr[1] + 3 and by_loudness[2] > snr[2] + 3
    with pytest.raises(ValueError, match="snr_measure"):
        mix_tf(clean, noise, snr, level, snr_measure="lufs")


def test_pipeline_mixes_at_loudness_snr(tiny_prepared):
    ds = mixture_dataset(*tiny_prepared.split("train"), clip_seconds=1.0, batch_size=4,
                         snr_range=(3, 3), seed=0, snr_measure="loudness")
    noisy, clean = (x.numpy() for x in next(iter(ds)))
    speaking = np.isfinite(loudness_tf(clean).numpy()[:, 0])
    assert speaking.any()
    got = (loudness_tf(clean) - loudness_tf(noisy - clean)).numpy()[speaking, 0]
    np.testing.assert_allclose(got, 3.0, atol=0.02)
