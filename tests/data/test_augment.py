"""Release-preset data: simulated RIRs, augmentation of a batch, a second source in the stream."""
import numpy as np
import pytest

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import mixture_dataset
from tinyse_tf.data.augment import (EARLY_SECONDS, LOWPASS_HZ, NOISE_MIX_DB,
                                    NOISE_SPEED_OCTAVES, RIR_SECONDS, Augmentation, augment_batch,
                                    room_impulse_responses, speed_warp)


@pytest.fixture(scope="module")
def rirs(tmp_path_factory):
    return room_impulse_responses(4, seed=3, cache_dir=tmp_path_factory.mktemp("rirs"))


def test_rirs_start_at_the_direct_path_and_the_target_keeps_50_ms(rirs, tmp_path):
    full, early = rirs
    assert full.shape == early.shape == (4, int(RIR_SECONDS * SAMPLE_RATE))
    np.testing.assert_allclose(np.abs(full).max(axis=1), 1.0)
    assert np.all(np.abs(full[:, 0]) == 1.0)  # direct path at sample 0: input and target aligned
    cut = int(EARLY_SECONDS * SAMPLE_RATE)
    np.testing.assert_array_equal(early[:, :cut], full[:, :cut])
    assert not early[:, cut:].any() and np.abs(full[:, cut:]).sum() > 0  # the tail is reverb
    again = room_impulse_responses(4, seed=3, cache_dir=tmp_path)  # same seed, no cache: same
    np.testing.assert_array_equal(again, rirs)
    assert (tmp_path / "rirs-4-seed3.npy").exists()


def _batch(seed=0, n=8000):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((6, n)).astype(np.float32),
            rng.standard_normal((6, n)).astype(np.float32))


def test_nothing_on_is_the_identity():
    from tinyse_tf._tf import tf

    clean, noise = _batch()
    speech, target, noise_out = augment_batch(tf.constant(clean), tf.constant(noise),
                                              tf.constant([1, 2], tf.int64), Augmentation())
    for got, want in ((speech, clean), (target, clean), (noise_out, noise)):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_reverb_convolves_and_the_target_is_the_early_part(rirs):
    from tinyse_tf._tf import tf

    clean, noise = _batch()
    aug = Augmentation(rirs, reverb_prob=1.0)
    speech, target, _ = augment_batch(tf.constant(clean), tf.constant(noise),
                                      tf.constant([1, 2], tf.int64), aug)
    n = clean.shape[1]
    # Each example used one of the RIRs: find it and compare with a direct convolution.
    for i in range(len(clean)):
        errors = [np.abs(speech.numpy()[i] - np.convolve(clean[i], r)[:n]).max() for r in rirs[0]]
        k = int(np.argmin(errors))
        assert errors[k] < 1e-3
        np.testing.assert_allclose(target.numpy()[i], np.convolve(clean[i], rirs[1][k])[:n],
                                   atol=1e-3)


def test_bandlimit_removes_the_top_band_of_speech_and_noise():
    from tinyse_tf._tf import tf

    clean, noise = _batch(n=16000)
    _, target, noise_out = augment_batch(tf.constant(clean), tf.constant(noise),
                                         tf.constant([5, 6], tf.int64),
                                         Augmentation(bandlimit_prob=1.0))
    top = np.fft.rfftfreq(16000, 1 / SAMPLE_RATE) > LOWPASS_HZ[1] + 300
    for x, ref in ((target.numpy(), clean), (noise_out.numpy(), noise)):
        power = [(np.abs(np.fft.rfft(s)[:, top]) ** 2).sum() for s in (x, ref)]
        ratio = power[0] / power[1]
        assert ratio < 0.01


def test_speed_warp_moves_a_tone_and_reflects_at_the_end():
    from tinyse_tf._tf import tf

    n = 16000
    tone = np.sin(2 * np.pi * 1000 * np.arange(n) / SAMPLE_RATE).astype(np.float32)
    ramp = np.arange(n, dtype=np.float32)
    out = speed_warp(tf.constant(np.stack([tone, tone, tone, ramp])),
                     tf.constant([1.0, 1.3, 0.75, 1.5])).numpy()
    np.testing.assert_array_equal(out[0], tone)  # rate 1: untouched
    peaks = [np.argmax(np.abs(np.fft.rfft(x))) * SAMPLE_RATE / n for x in out[:3]]
    assert peaks == [1000.0, 1300.0, 750.0]
    # the ramp read at 1.5x: up to the last sample, then back down, never a jump
    assert out[3].max() <= n - 1 and np.abs(np.diff(out[3])).max() <= 1.5 + 1e-3
    np.testing.assert_allclose(out[3][:100], 1.5 * np.arange(100))
    np.testing.assert_allclose(out[3][-1], 2 * (n - 1) - 1.5 * (n - 1), rtol=1e-6)


def test_noise_speed_changes_only_the_noise_and_keeps_the_other_draws():
    from tinyse_tf._tf import tf

    clean, noise = _batch(n=16000)
    seed = tf.constant([3, 4], tf.int64)
    base = augment_batch(tf.constant(clean), tf.constant(noise), seed, Augmentation(eq_prob=1.0))
    sped = augment_batch(tf.constant(clean), tf.constant(noise), seed,
                         Augmentation(eq_prob=1.0, noise_speed_prob=1.0))
    for a, b in zip(base[:2], sped[:2]):  # speech and target: the same EQ draws as without it
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert all(np.abs(a - b).max() > 0.1 for a, b in zip(base[2].numpy(), sped[2].numpy()))
    # white noise band-limited to 4 kHz: each example's edge moves to 4 kHz x its rate
    band = np.fft.irfft(np.fft.rfft(noise) * (np.fft.rfftfreq(16000, 1 / SAMPLE_RATE) < 4000),
                        16000).astype(np.float32)
    out = augment_batch(tf.constant(clean), tf.constant(band), seed,
                        Augmentation(noise_speed_prob=1.0))[2].numpy()
    power = np.abs(np.fft.rfft(out)) ** 2
    edge = [np.searchsorted(np.cumsum(p) / p.sum(), 0.99) for p in power]  # in Hz (1 s clips)
    assert all(4000 * 2 ** -NOISE_SPEED_OCTAVES * 0.95 < e < 4000 * 2 ** NOISE_SPEED_OCTAVES * 1.05
               for e in edge)
    assert max(edge) - min(edge) > 500  # rates differ between examples


def test_noise_mix_adds_the_next_examples_noise_weaker():
    from tinyse_tf._tf import tf

    clean, noise = _batch(n=16000)
    noise *= np.arange(1, 7, dtype=np.float32)[:, None]  # other levels per example
    seed = tf.constant([5, 6], tf.int64)
    speech, _, out = augment_batch(tf.constant(clean), tf.constant(noise), seed,
                                   Augmentation(noise_mix_prob=1.0))
    np.testing.assert_allclose(speech.numpy(), clean, atol=1e-4)  # speech untouched
    for i, added in enumerate(out.numpy() - noise):
        other = noise[i - 1]  # the previous example's noise (a roll by one)
        gain = added @ other / (other @ other)
        np.testing.assert_allclose(added, gain * other, atol=1e-4)
        relative_db = 10 * np.log10(gain ** 2 * (other @ other) / (noise[i] @ noise[i]))
        assert NOISE_MIX_DB[0] - 0.01 <= relative_db <= NOISE_MIX_DB[1] + 0.01


def test_probabilities_are_checked():
    with pytest.raises(ValueError, match="reverb_prob"):
        Augmentation(reverb_prob=1.5)
    with pytest.raises(ValueError, match="rirs"):
        Augmentation(reverb_prob=0.5)
    with pytest.raises(ValueError, match="noise_speed_prob"):
        Augmentation(noise_speed_prob=-0.1)
    with pytest.raises(ValueError, match="noise_mix_prob"):
        Augmentation(noise_mix_prob=1.1)


def test_extra_source_and_augmentation_in_the_stream(tiny_prepared, rirs):
    speech, noise = tiny_prepared.split("train")
    kwargs = dict(clip_seconds=0.5, batch_size=4, seed=1)
    plain = next(iter(mixture_dataset(speech, noise, **kwargs)))
    # weight 0: never the second source, the same batches as without it
    same = next(iter(mixture_dataset(speech, noise, extra=(speech, noise, 0.0), **kwargs)))
    np.testing.assert_array_equal(plain[0].numpy(), same[0].numpy())
    aug = Augmentation(rirs, reverb_prob=1.0, eq_prob=1.0, bandlimit_prob=1.0)
    batches = [b for b in mixture_dataset(speech, noise, extra=(speech, noise, 0.5),
                                          augmentation=aug, **kwargs).take(2)]
    again = [b for b in mixture_dataset(speech, noise, extra=(speech, noise, 0.5),
                                        augmentation=aug, **kwargs).take(2)]
    for (noisy, clean), (noisy2, clean2) in zip(batches, again):  # seeded: reproducible
        np.testing.assert_array_equal(noisy.numpy(), noisy2.numpy())
        assert noisy.shape == clean.shape == (4, 8000)
        assert np.abs(noisy.numpy()).max() <= 0.99 + 1e-6
        assert np.all(np.isfinite(noisy.numpy())) and np.all(np.isfinite(clean.numpy()))
    with pytest.raises(ValueError, match="endless"):
        mixture_dataset(speech, noise, repeat=False, augmentation=aug, **kwargs)
