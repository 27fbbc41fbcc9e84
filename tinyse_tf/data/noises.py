"""Procedural noise with numpy: coloured, babble, mains hum, modulated, transients, mixtures.

Each generator takes a ``numpy.random.Generator`` and a length in samples (16 kHz) and returns
``(audio float32 [n], info dict)``; ``info`` records the drawn parameters for the corpus manifest.
Levels are arbitrary: :func:`generate_noise` normalises the result.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from tinyse_tf.constants import SAMPLE_RATE

NOISE_TYPES = ("coloured", "babble", "hum", "modulated", "transients", "mixture")
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}

UtteranceFn = Callable[[np.random.Generator], np.ndarray]


def _rfft_shape(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return np.fft.irfft(np.fft.rfft(x) * gain, n=len(x))


def _freqs(n: int) -> np.ndarray:
    return np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)


def _log_uniform(rng, lo, hi) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def coloured(rng: np.random.Generator, n: int, colour: str | None = None):
    """Noise with a power spectrum ~ 1/f^beta (white 0, pink 1, brown 2, blue -1; +-0.25 jitter),
    optionally band-limited by smooth high/low-pass slopes (spectral shaping of white noise)."""
    colour = colour or str(rng.choice(list(COLOURS)))
    beta = COLOURS[colour] + rng.uniform(-0.25, 0.25)
    f = _freqs(n)
    gain = np.maximum(f, 20.0) ** (-beta / 2)
    info = {"type": "coloured", "colour": colour, "beta": round(float(beta), 3)}
    if rng.random() < 0.5:
        fc = _log_uniform(rng, 1000, 7000)
        gain /= np.sqrt(1 + (f / fc) ** 4)
        info["lowpass_hz"] = round(fc)
    if rng.random() < 0.5:
        fc = _log_uniform(rng, 50, 300)
        gain /= np.sqrt(1 + (fc / np.maximum(f, 1.0)) ** 4)
        info["highpass_hz"] = round(fc)
    return _rfft_shape(rng.standard_normal(n), gain), info


def babble(rng: np.random.Generator, n: int, utterance: UtteranceFn):
    """3-8 synthetic talkers, each a stream of utterances with short pauses, summed at random
    levels (+-6 dB)."""
    talkers = int(rng.integers(3, 9))
    out = np.zeros(n)
    for _ in range(talkers):
        stream, total = [], 0
        target = n + int(rng.integers(0, SAMPLE_RATE))
        while total < target:
            speech = utterance(rng)
            gap = np.zeros(int(rng.uniform(0.05, 0.6) * SAMPLE_RATE))
            stream += [speech, gap]
            total += len(speech) + len(gap)
        track = np.concatenate(stream)
        start = int(rng.integers(0, len(track) - n + 1))
        track = track[start:start + n]
        out += track / _rms(track) * 10 ** (rng.uniform(-6, 0) / 20)
    return out, {"type": "babble", "talkers": talkers}


def hum(rng: np.random.Generator, n: int):
    """Mains hum: 50 or 60 Hz fundamental (+-0.3 %), 4-40 harmonics with random amplitudes
    (sometimes odd-dominant, as from transformers and rectifiers), slow wobble, faint hiss."""
    mains = int(rng.choice([50, 60]))
    f0 = mains * (1 + rng.uniform(-0.003, 0.003))
    n_harm = int(rng.integers(4, 41))
    decay = rng.uniform(0.3, 1.5)
    h = np.arange(1, n_harm + 1)
    h = h[h * f0 < 0.49 * SAMPLE_RATE]
    amps = rng.uniform(0.1, 1.0, len(h)) * h ** (-decay)
    odd = bool(rng.random() < 0.5)
    if odd:
        amps[h % 2 == 0] *= 0.15
    phases = rng.uniform(0, 2 * np.pi, len(h))
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n)
    for a, k, p in zip(amps, h, phases):
        x += a * np.sin(2 * np.pi * k * f0 * t + p)
    x *= 1 + rng.uniform(0, 0.2) * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)
    hiss, _ = coloured(rng, n, "white")
    x += hiss / _rms(hiss) * _rms(x) * 10 ** (rng.uniform(-45, -25) / 20)
    return x, {"type": "hum", "mains_hz": mains, "harmonics": len(h),
               "odd_dominant": odd}


def _smooth_envelope(rng, n: int, rate_hz: float, depth_db: float) -> np.ndarray:
    """Random smooth gain curve: points at ``rate_hz`` interpolated, spanning ``depth_db``."""
    n_points = max(int(n / SAMPLE_RATE * rate_hz) + 2, 2)
    points = rng.uniform(-depth_db, 0, n_points)
    curve = np.interp(np.arange(n), np.linspace(0, n - 1, n_points), points)
    return 10 ** (curve / 20)


def modulated(rng: np.random.Generator, n: int):
    """Non-stationary noise: amplitude modulated (periodic or random envelope), a band of noise
    whose centre frequency sweeps, or a siren-like frequency-modulated tone."""
    kind = str(rng.choice(["am_periodic", "am_random", "band_sweep", "siren"]))
    t = np.arange(n) / SAMPLE_RATE
    info = {"type": "modulated", "kind": kind}
    if kind == "am_periodic":
        base, _ = coloured(rng, n)
        rate, depth = rng.uniform(0.2, 8.0), rng.uniform(0.3, 1.0)
        x = base * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
        info.update(rate_hz=round(float(rate), 2), depth=round(float(depth), 2))
    elif kind == "am_random":
        base, _ = coloured(rng, n)
        rate, depth = rng.uniform(0.5, 10.0), rng.uniform(10, 30)
        x = base * _smooth_envelope(rng, n, rate, depth)
        info.update(rate_hz=round(float(rate), 2), depth_db=round(float(depth), 1))
    elif kind == "band_sweep":
        nfft = 512
        f, _, spec = signal.stft(rng.standard_normal(n), nperseg=nfft, noverlap=nfft // 2)
        frames = spec.shape[1]
        tf = np.arange(frames) * (nfft // 2) / n  # frame time as a fraction of n
        centre = _log_uniform(rng, 300, 3000)
        ratio = rng.uniform(1.5, 4.0)
        rate = rng.uniform(0.05, 1.5) * n / SAMPLE_RATE
        fc = centre * ratio ** np.sin(2 * np.pi * rate * tf + rng.uniform(0, 2 * np.pi))
        width = rng.uniform(0.15, 0.6)  # in natural-log frequency units
        logf = np.log(np.maximum(f * SAMPLE_RATE, 20.0))[:, None]
        spec *= np.exp(-0.5 * ((logf - np.log(fc)[None, :]) / width) ** 2)
        x = signal.istft(spec, nperseg=nfft, noverlap=nfft // 2)[1][:n]
        x = np.pad(x, (0, n - len(x)))
        info.update(centre_hz=round(centre), sweeps_per_s=round(float(rate * SAMPLE_RATE / n), 3))
    else:
        centre = _log_uniform(rng, 400, 1500)
        dev, rate = rng.uniform(0.1, 0.5), rng.uniform(0.2, 4.0)
        freq = centre * (1 + dev * np.sin(2 * np.pi * rate * t))
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        x = sum(rng.uniform(0.1, 1) / k * np.sin(k * phase) for k in range(1, 5)
                if k * centre * (1 + dev) < 0.45 * SAMPLE_RATE)
        floor, _ = coloured(rng, n, "pink")
        x = x + floor / _rms(floor) * _rms(x) * 10 ** (rng.uniform(-30, -15) / 20)
        info.update(centre_hz=round(centre), rate_hz=round(float(rate), 2))
    return x, info


def transients(rng: np.random.Generator, n: int):
    """Clicks (decaying noise bursts, 0.5-3 ms) and knocks (1-4 decaying resonances, 80-3000 Hz,
    5-80 ms), at Poisson times over a faint coloured background."""
    rate = rng.uniform(0.5, 6.0)
    count = max(int(rng.poisson(rate * n / SAMPLE_RATE)), 1)
    x = np.zeros(n)
    clicks = 0
    for _ in range(count):
        start = int(rng.integers(0, n))
        amp = 10 ** (rng.uniform(-20, 0) / 20)
        if rng.random() < 0.4:
            clicks += 1
            length = int(rng.uniform(0.0005, 0.003) * SAMPLE_RATE) + 1
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
        else:
            tau = rng.uniform(0.005, 0.08)
            length = int(6 * tau * SAMPLE_RATE)
            tt = np.arange(length) / SAMPLE_RATE
            burst = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * _log_uniform(rng, 80, 3000) * tt
                                                    + rng.uniform(0, 2 * np.pi))
                        for _ in range(int(rng.integers(1, 5)))) * np.exp(-tt / tau)
        burst = amp * burst / (np.max(np.abs(burst)) + 1e-12)
        end = min(start + len(burst), n)
        x[start:end] += burst[:end - start]
    bg, _ = coloured(rng, n)
    x += bg / _rms(bg) * _rms(x) * 10 ** (rng.uniform(-30, -10) / 20)
    return x, {"type": "transients", "events": count, "clicks": clicks,
               "events_per_s": round(float(rate), 2)}


def mixture(rng: np.random.Generator, n: int, utterance: UtteranceFn):
    """Sum of 2-3 different noise types (not mixtures) at random relative levels (0..-12 dB)."""
    kinds = list(rng.choice([k for k in NOISE_TYPES if k != "mixture"], int(rng.integers(2, 4)),
                            replace=False))
    x = np.zeros(n)
    parts = []
    for kind in kinds:
        part, info = _GENERATORS[kind](rng, n, utterance)
        x += part / _rms(part) * 10 ** (rng.uniform(-12, 0) / 20)
        parts.append(info)
    return x, {"type": "mixture", "parts": parts}


_GENERATORS = {
    "coloured": lambda rng, n, utt: coloured(rng, n),
    "babble": babble,
    "hum": lambda rng, n, utt: hum(rng, n),
    "modulated": lambda rng, n, utt: modulated(rng, n),
    "transients": lambda rng, n, utt: transients(rng, n),
    "mixture": mixture,
}


def generate_noise(kind: str, rng: np.random.Generator, n: int, utterance: UtteranceFn,
                   rms_db_range=(-32.0, -20.0), peak: float = 0.95):
    """One noise clip of ``kind`` (one of :data:`NOISE_TYPES`), normalised.

    Args:
        kind: noise type.
        rng: random generator (all randomness comes from it).
        n: length in samples at 16 kHz.
        utterance: ``rng -> float32 [m]`` speech used by babble (and mixtures that include it).
        rms_db_range: the RMS level is drawn uniformly in this range (dBFS) ...
        peak: ... then lowered if needed so that no sample exceeds ``peak``.

    Returns:
        ``(float32 [n], info)``.
    """
    x, info = _GENERATORS[kind](rng, n, utterance)
    x = x - np.mean(x)
    x = x / _rms(x) * 10 ** (rng.uniform(*rms_db_range) / 20)
    top = np.max(np.abs(x))
    if top > peak:
        x *= peak / top
    return x.astype(np.float32), info
