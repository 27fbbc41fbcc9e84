"""DNS-style training augmentation: room reverberation, random EQ and band-limiting, and two
ways to more distinct noises: a change of the noise's playback speed, and a second noise added.

Room impulse responses (RIRs) come from pyroomacoustics' image-source simulation of random
shoebox rooms, generated once per seed and cached as ``.npy``; each RIR is kept twice, whole
(``full``, what the microphone hears) and cut 50 ms after the direct path (``early``, the
target: the model learns to remove noise and late reverberation but not the room's early
reflections, as in the DNS Challenge recipes). Pre-delay is removed so that the direct path is
at sample 0 in both, which keeps input and target aligned.

:func:`augment_batch` applies everything in the frequency domain of one FFT per signal, in the
``tf.data`` map that mixes a batch: reverberant speech ``X·R_full·H_s``, target ``X·R_early·H_s``,
noise ``N·H_n``, with ``H`` a random smooth EQ (low and high shelf, ±``EQ_DB`` dB) times, for a
band-limited example, one low-pass shared by speech and noise. The filters are zero-phase
(data, not a model: causality does not matter) and every random number is stateless.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from tinyse_tf.atomic import atomic_path
from tinyse_tf.constants import SAMPLE_RATE

RIR_SECONDS = 0.5  # RIRs are cut here (RT60 <= 0.8 s: the tail left out is below -37 dB)
EARLY_SECONDS = 0.05  # the target keeps the direct path and the reflections of the first 50 ms
RT60_RANGE = (0.2, 0.8)
ROOM_RANGE = ((3.0, 10.0), (3.0, 8.0), (2.4, 4.0))  # metres, x / y / z
EQ_DB = 6.0  # shelf gains drawn in [-EQ_DB, EQ_DB]
LOWPASS_HZ = (3500.0, 7500.0)  # band-limited examples: cut-off drawn in this range
NOISE_SPEED_OCTAVES = 0.5  # sped-up / slowed-down noise: rate 2**u, u uniform in +-this
NOISE_MIX_DB = (-10.0, 0.0)  # a second noise added: its energy relative to the first, uniform
#: The per-example probabilities of :class:`Augmentation`, also fields of the recipe's config.
PROBABILITIES = ("reverb_prob", "eq_prob", "bandlimit_prob", "noise_speed_prob", "noise_mix_prob")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Probabilities per training example, and the RIRs to draw from.

    Attributes:
        rirs: float32 ``[2, n_rirs, RIR_SECONDS * 16000]``: ``[0]`` full, ``[1]`` early part;
            ``None`` when ``reverb_prob`` is 0.
        reverb_prob, eq_prob, bandlimit_prob: probabilities of reverberation, random EQ (speech
            and noise drawn independently) and a shared low-pass.
        noise_speed_prob: probability that the noise plays at another speed (``speed_warp``,
            rate ``2**u``, ``u`` uniform in ``±NOISE_SPEED_OCTAVES``): its spectrum and tempo move
            together, so a few hundred recordings give many more distinct noises.
        noise_mix_prob: probability that a second noise is added to the noise: the next
            example's noise clip of the batch (usually another recording), at an
            energy ``NOISE_MIX_DB`` relative to the first; the mixture's SNR is then set on the sum.
    """

    rirs: np.ndarray | None = None
    reverb_prob: float = 0.0
    eq_prob: float = 0.0
    bandlimit_prob: float = 0.0
    noise_speed_prob: float = 0.0
    noise_mix_prob: float = 0.0

    def __post_init__(self):
        for name in PROBABILITIES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.reverb_prob > 0 and (self.rirs is None or np.ndim(self.rirs) != 3
                                     or len(self.rirs) != 2):
            raise ValueError("reverb_prob > 0 needs rirs of shape [2, n_rirs, samples] "
                             "(room_impulse_responses)")

    @property
    def active(self) -> bool:
        return max(getattr(self, name) for name in PROBABILITIES) > 0


def room_impulse_responses(n: int = 300, seed: int = 0, cache_dir=None,
                           progress: bool = False) -> np.ndarray:
    """``n`` simulated RIRs, float32 ``[2, n, RIR_SECONDS * 16000]`` (full, early part).

    Random shoebox rooms (``ROOM_RANGE``), RT60 uniform in ``RT60_RANGE`` (Sabine absorption,
    image source order from pyroomacoustics' inverse Sabine formula), source and microphone at
    random positions at least 0.5 m from the walls and each other. Each RIR is scaled so that its
    direct path has unit peak. With ``cache_dir`` the result is kept in
    ``<cache_dir>/rirs-<n>-seed<seed>.npy`` and read back next time.
    """
    path = None if cache_dir is None else pathlib.Path(cache_dir) / f"rirs-{n}-seed{seed}.npy"
    if path is not None and path.exists():
        return np.load(path)
    try:
        import pyroomacoustics as pra
    except ImportError as err:  # an optional dependency: only reverberation needs it
        raise ImportError("reverberation needs pyroomacoustics: pip install "
                          "'tinyse_tf[release]' (or pip install pyroomacoustics)") from err
    rng = np.random.default_rng([seed, 0x4152])
    length, early = int(RIR_SECONDS * SAMPLE_RATE), int(EARLY_SECONDS * SAMPLE_RATE)
    out = np.zeros((2, n, length), np.float32)
    items = range(n)
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="room impulse responses", unit="RIR")
    for i in items:
        room_dim = np.array([rng.uniform(lo, hi) for lo, hi in ROOM_RANGE])
        rt60 = rng.uniform(*RT60_RANGE)
        absorption, max_order = pra.inverse_sabine(rt60, room_dim)
        room = pra.ShoeBox(room_dim, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                           max_order=min(max_order, 30))
        while True:
            src, mic = (rng.uniform(0.5, room_dim - 0.5) for _ in range(2))
            if np.linalg.norm(src - mic) >= 0.5:
                break
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], np.float64)
        start = int(np.argmax(np.abs(rir)))  # the direct path: drop the pre-delay
        rir = rir[start:start + length] / np.abs(rir[start])
        out[0, i, :len(rir)] = rir
        out[1, i, :min(early, len(rir))] = rir[:early]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out)
    return out


def augment_batch(clean, noise, seed, augmentation: Augmentation):
    """Augment one batch: ``(speech, target, noise)``, float32 ``[batch, n]`` each.

    ``clean``, ``noise``: float32 ``[batch, n]``; ``seed``: a stateless seed (int ``[2]``).
    ``speech`` is what goes into the mixture, ``target`` what the model should output (equal to
    ``speech`` for an example without reverberation).
    """
    from tinyse_tf._tf import tf

    aug = augmentation
    n = tf.shape(clean)[-1]
    rir_len = 0 if aug.rirs is None else aug.rirs.shape[-1]
    n_fft = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(n + rir_len, tf.float32)) / np.log(2.0)),
                    tf.int32)
    batch = tf.shape(clean)[:1]
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    bins = n_fft // 2 + 1
    freqs = tf.linspace(0.0, SAMPLE_RATE / 2.0, bins)[tf.newaxis]  # [1, bins]

    def coin(s, p):
        return tf.random.stateless_uniform(batch, s) < p

    def uniform(s, lo, hi, shape=None):
        return tf.random.stateless_uniform(batch if shape is None else shape, s, lo, hi)

    def eq(s, on):  # smooth random shelves, [batch, bins] (1 where off)
        g = uniform(s, -EQ_DB, EQ_DB, tf.concat([batch, [4]], 0))  # low gain, high gain, corners
        f_low = 100.0 * 4.0 ** (g[:, 2:3] / (2 * EQ_DB) + 0.5)  # 100-400 Hz
        f_high = 2000.0 * 3.0 ** (g[:, 3:4] / (2 * EQ_DB) + 0.5)  # 2-6 kHz
        octaves = tf.math.log(tf.maximum(freqs, 1.0)) / np.log(2.0)
        db = (g[:, 0:1] * tf.sigmoid(-4.0 * (octaves - tf.math.log(f_low) / np.log(2.0)))
              + g[:, 1:2] * tf.sigmoid(4.0 * (octaves - tf.math.log(f_high) / np.log(2.0))))
        return tf.where(on[:, tf.newaxis], tf.pow(10.0, db / 20.0), 1.0)

    lowpass_on = coin(seeds[0], aug.bandlimit_prob)
    cutoff = uniform(seeds[1], *LOWPASS_HZ)[:, tf.newaxis]
    lowpass = tf.where(lowpass_on[:, tf.newaxis], tf.sigmoid((cutoff - freqs) / 100.0), 1.0)
    h_speech = eq(seeds[2], coin(seeds[3], aug.eq_prob)) * lowpass
    h_noise = eq(seeds[4], coin(seeds[5], aug.eq_prob)) * lowpass

    def spectrum(x):
        return tf.signal.rfft(x, [n_fft])

    def back(spec):
        return tf.signal.irfft(spec, [n_fft])[:, :n]

    def own_seeds(k):  # for options added later: the other draws stay as without them
        return tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(seed, k), num=2)

    def energy(x):
        return tf.reduce_sum(tf.square(x), -1, keepdims=True) + 1e-10

    if aug.noise_speed_prob > 0:
        speed_seeds = own_seeds(8)
        rate = tf.pow(2.0, uniform(speed_seeds[0], -NOISE_SPEED_OCTAVES, NOISE_SPEED_OCTAVES))
        noise = speed_warp(noise, tf.where(coin(speed_seeds[1], aug.noise_speed_prob), rate, 1.0))
    if aug.noise_mix_prob > 0:
        mix_seeds = own_seeds(9)
        second = tf.roll(noise, 1, axis=0)
        gain = tf.sqrt(energy(noise) / energy(second)
                       * tf.pow(10.0, uniform(mix_seeds[0], *NOISE_MIX_DB)[:, tf.newaxis] / 10.0))
        on = coin(mix_seeds[1], aug.noise_mix_prob)[:, tf.newaxis]
        noise = noise + tf.where(on, gain, 0.0) * second
    x = spectrum(clean)
    noise_out = back(spectrum(noise) * tf.cast(h_noise, tf.complex64))
    if aug.reverb_prob > 0:
        rirs = tf.constant(aug.rirs, tf.float32)
        pick = tf.random.stateless_uniform(batch, seeds[6], 0, aug.rirs.shape[1], tf.int32)
        reverb_on = coin(seeds[7], aug.reverb_prob)[:, tf.newaxis]
        full = tf.where(reverb_on, spectrum(tf.gather(rirs[0], pick)), tf.complex(1.0, 0.0))
        early = tf.where(reverb_on, spectrum(tf.gather(rirs[1], pick)), tf.complex(1.0, 0.0))
    else:
        full = early = tf.complex(1.0, 0.0)
    h = tf.cast(h_speech, tf.complex64)
    return back(x * full * h), back(x * early * h), noise_out


def speed_warp(x, rate):
    """``x`` played at ``rate`` times its speed: float32 ``[batch, n]`` -> ``[batch, n]``.

    ``rate``: float32 ``[batch]``; above 1 faster (spectrum shifted up by ``log2(rate)``
    octaves), 1 returns ``x`` exactly. Sample ``i`` of the output is ``x`` at position
    ``i * rate``, linearly interpolated (written out: ``tf.image`` resamplers work on images and
    ``soxr`` outside the graph); positions past the end are reflected back, so a sped-up clip
    continues backwards instead of jumping. Meant for noise: components pushed above 8 kHz fold
    back (aliasing) and stay noise.
    """
    from tinyse_tf._tf import tf

    n = tf.shape(x)[-1]
    last = tf.cast(n - 1, tf.float32)
    pos = tf.cast(tf.range(n), tf.float32)[tf.newaxis] * rate[:, tf.newaxis]
    period = tf.maximum(2.0 * last, 1.0)
    pos = tf.math.floormod(pos, period)
    pos = tf.where(pos > last, period - pos, pos)
    low = tf.floor(pos)
    frac = pos - low
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, n - 1)
    a = tf.gather(x, low, batch_dims=1)
    return a + frac * (tf.gather(x, high, batch_dims=1) - a)
