"""The built-in corpus: synthetic speech (libespeak-ng) and procedural noise, no download.

Layout of a built corpus (16 kHz mono 16-bit WAV)::

    <data_dir>/manifest.json
    <data_dir>/speech/{train,valid,test}/<split>_<index>.wav
    <data_dir>/noise/{train,valid,test}/<split>_<index>.wav

Splits share no sentence and no voice: the sentence pool and the voice variants (m1..m8, f1..f5,
klatt..klatt6, named variants) are partitioned, so a test voice's timbre is never heard in
training (accents are shared). Babble noise in a split is spoken by that split's voices with
that split's sentences. The same seed and sizes give byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import platformdirs
from tqdm.auto import tqdm

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import _fs
from tinyse_tf.data.audio_io import DataError, write_audio
from tinyse_tf.data.corpus import SPLITS, Corpus
from tinyse_tf.data.espeak import ACCENTS, VARIANTS, Synthesizer
from tinyse_tf.data.noises import NOISE_TYPES, generate_noise
from tinyse_tf.data.sentences import sentence_pool

CORPUS_VERSION = 1  # bump when generation changes: it is part of the cache folder name
CORPUS_KIND = "tinyse_tf builtin corpus"

#: Named sizes for presets: ``build_corpus(**CORPUS_SIZES["smoke"])``. Speech files hold 1-3
#: sentences (about 2-9 s); counts are (train, valid, test).
CORPUS_SIZES = {
    "smoke": {"n_speech": (24, 8, 8), "n_noise": (6, 3, 3), "noise_seconds": 5.0},
    "default": {"n_speech": (800, 100, 200), "n_noise": (60, 12, 24), "noise_seconds": 10.0},
}
_DEFAULT = CORPUS_SIZES["default"]
_VOICE_FRACTIONS = {"valid": 0.1, "test": 0.2}  # of each variant group
_RATE_WPM = (130, 210)
_PITCH = (25, 75)
_PITCH_RANGE = (30, 80)
_SPEECH_PEAK = 0.89  # -1 dBFS


def default_data_dir(seed: int = 0, params: dict | None = None) -> Path:
    """``<user cache>/tinyse_tf/builtin-<version>-seed<seed>[-<size>]``.

    The default sizes get no suffix, other named sizes their name, anything else a short hash.
    """
    name = f"builtin-{CORPUS_VERSION}-seed{seed}"
    sizes = {k: v for k, v in (params or _DEFAULT).items() if k in _DEFAULT}
    if _normalise(sizes) != _normalise(_DEFAULT):
        named = [k for k, v in CORPUS_SIZES.items() if _normalise(v) == _normalise(sizes)]
        suffix = named[0] if named else hashlib.sha1(
            json.dumps(_normalise(sizes), sort_keys=True).encode()).hexdigest()[:8]
        name += f"-{suffix}"
    return Path(platformdirs.user_cache_dir("tinyse_tf")) / name


def _normalise(sizes: dict) -> dict:
    return {"n_speech": [int(x) for x in sizes["n_speech"]],
            "n_noise": [int(x) for x in sizes["n_noise"]],
            "noise_seconds": float(sizes["noise_seconds"])}


def split_voices(seed: int = 0) -> dict[str, list[str]]:
    """Voices (``accent+variant``) per split; variants are partitioned, per gender group."""
    rng = np.random.default_rng([seed, 0x701CE])
    variants = {s: [] for s in SPLITS}
    for group in sorted(VARIANTS):
        names = list(VARIANTS[group])
        order = [names[i] for i in rng.permutation(len(names))]
        n_test = max(1, round(_VOICE_FRACTIONS["test"] * len(names)))
        n_valid = max(1, round(_VOICE_FRACTIONS["valid"] * len(names)))
        variants["test"] += order[:n_test]
        variants["valid"] += order[n_test:n_test + n_valid]
        variants["train"] += order[n_test + n_valid:]
    return {s: sorted(f"{a}+{v}" for a in ACCENTS for v in variants[s]) for s in SPLITS}


def build_corpus(data_dir=None, seed: int = 0, n_speech=_DEFAULT["n_speech"],
                 n_noise=_DEFAULT["n_noise"], noise_seconds: float = _DEFAULT["noise_seconds"],
                 progress: bool = True) -> Corpus:
    """Build (or find in the cache) the built-in corpus.

    Returns at once when ``data_dir`` holds a complete corpus with the same parameters. Otherwise
    the corpus is written to a temporary folder beside ``data_dir`` and renamed into place at the
    end, so an interrupted build never leaves a corpus that looks complete.

    Args:
        data_dir: output folder; default :func:`default_data_dir`.
        seed: everything (sentences, voice split, prosody, noise) derives from it.
        n_speech: speech files per split ``(train, valid, test)``; each holds 1-3 sentences.
        n_noise: noise files per split ``(train, valid, test)``; types cycle through
            :data:`~tinyse_tf.data.noises.NOISE_TYPES`.
        noise_seconds: length of each noise file.
        progress: show a tqdm bar.

    Returns:
        :class:`Corpus` with absolute paths and the manifest.
    """
    params = {"seed": int(seed), "sample_rate": SAMPLE_RATE,
              **_normalise({"n_speech": n_speech, "n_noise": n_noise,
                            "noise_seconds": noise_seconds})}
    if len(params["n_speech"]) != 3 or len(params["n_noise"]) != 3:
        raise ValueError("n_speech and n_noise are (train, valid, test) counts")
    if min(params["n_speech"]) < 1 or min(params["n_noise"]) < 1 or noise_seconds <= 0:
        raise ValueError("every split needs at least one speech and one noise file")
    root = Path(data_dir) if data_dir is not None else default_data_dir(seed, params)
    found = _complete_corpus(root, params)
    if found is not None:
        return found
    _fs.check_replaceable(root, CORPUS_KIND)
    staged = _fs.staging_dir(root)
    try:
        manifest = _generate(staged, params, progress)
        _fs.write_json(staged / "manifest.json", manifest)
        done = _complete_corpus(root, params)  # another process may have finished meanwhile
        if done is not None:
            return done
        _fs.publish_dir(staged, root, CORPUS_KIND)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return _corpus_from_manifest(root, manifest)


def load_corpus(data_dir) -> Corpus:
    """Open a built corpus folder (no generation). Raises ``DataError`` if it is incomplete."""
    root = Path(data_dir)
    manifest = _fs.read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("kind") != CORPUS_KIND:
        raise DataError(f"{root} holds no built-in corpus manifest; run build_corpus first")
    corpus = _corpus_from_manifest(root, manifest)
    missing = [p for files in (*corpus.speech.values(), *corpus.noise.values()) for p in files
               if not p.is_file()]
    if missing:
        raise DataError(f"{root}: {len(missing)} corpus files are missing (e.g. {missing[0]}); "
                        "delete the folder and build it again")
    return corpus


def _complete_corpus(root: Path, params: dict) -> Corpus | None:
    manifest = _fs.read_json(root / "manifest.json")
    if (not isinstance(manifest, dict) or manifest.get("kind") != CORPUS_KIND
            or manifest.get("version") != CORPUS_VERSION or manifest.get("params") != params):
        return None
    corpus = _corpus_from_manifest(root, manifest)
    for files in (*corpus.speech.values(), *corpus.noise.values()):
        if not all(p.is_file() for p in files):
            return None
    return corpus


def _corpus_from_manifest(root: Path, manifest: dict) -> Corpus:
    return Corpus(
        speech={s: [root / e["file"] for e in manifest["speech"][s]] for s in SPLITS},
        noise={s: [root / e["file"] for e in manifest["noise"][s]] for s in SPLITS},
        root=root, manifest=manifest)


def _generate(out: Path, params: dict, progress: bool) -> dict:
    seed = params["seed"]
    n_speech = dict(zip(SPLITS, params["n_speech"]))
    n_noise = dict(zip(SPLITS, params["n_noise"]))
    noise_len = int(round(params["noise_seconds"] * SAMPLE_RATE))
    voices = split_voices(seed)

    # Sentences per speech file are drawn first so the pool can be partitioned exactly.
    per_file = {s: np.random.default_rng([seed, 0x5E, i]).integers(1, 4, n_speech[s]).tolist()
                for i, s in enumerate(SPLITS)}
    pool = sentence_pool(sum(sum(v) for v in per_file.values()), seed)
    sentence_ids, start = {}, 0
    for s in SPLITS:
        sentence_ids[s] = list(range(start, start + sum(per_file[s])))
        start += sum(per_file[s])

    manifest = {
        "kind": CORPUS_KIND, "version": CORPUS_VERSION, "params": params,
        "espeakng_loader": metadata.version("espeakng-loader"),
        "voices": voices, "sentence_ids": sentence_ids, "sentences": pool,
        "counts": {"speech": n_speech, "noise": n_noise},
        "speech": {s: [] for s in SPLITS}, "noise": {s: [] for s in SPLITS},
    }
    total = sum(n_speech.values()) + sum(n_noise.values())
    bar = tqdm(total=total, desc="building built-in corpus", unit="file", disable=not progress)
    with Synthesizer(seed) as tts:
        for si, split in enumerate(SPLITS):
            ids = iter(sentence_ids[split])
            for i, count in enumerate(per_file[split]):
                rng = np.random.default_rng([seed, 0x5B, si, i])
                sids = [next(ids) for _ in range(count)]
                entry = {"file": f"speech/{split}/{split}_{i:05d}.wav", "sentence_ids": sids,
                         **_prosody(rng, voices[split])}
                audio = tts.say(" ".join(pool[k] for k in sids), entry["voice"], entry["rate"],
                                entry["pitch"], entry["pitch_range"])
                audio = audio * (_SPEECH_PEAK / max(float(np.max(np.abs(audio))), 1e-6))
                entry["seconds"] = round(len(audio) / SAMPLE_RATE, 3)
                write_audio(out / entry["file"], audio)
                manifest["speech"][split].append(entry)
                bar.update()

        for si, split in enumerate(SPLITS):
            split_sentences = [pool[k] for k in sentence_ids[split]]

            def talker(rng, split=split, sentences=split_sentences):
                p = _prosody(rng, voices[split])
                return tts.say(sentences[int(rng.integers(len(sentences)))], p["voice"],
                               p["rate"], p["pitch"], p["pitch_range"])

            for i in range(n_noise[split]):
                rng = np.random.default_rng([seed, 0x40, si, i])
                kind = NOISE_TYPES[i % len(NOISE_TYPES)]
                audio, info = generate_noise(kind, rng, noise_len, talker)
                entry = {"file": f"noise/{split}/{split}_{i:05d}.wav", "info": info}
                write_audio(out / entry["file"], audio)
                manifest["noise"][split].append(entry)
                bar.update()
    bar.close()
    return manifest


def _prosody(rng: np.random.Generator, voices: list[str]) -> dict:
    return {"voice": voices[int(rng.integers(len(voices)))],
            "rate": int(rng.integers(*_RATE_WPM)), "pitch": int(rng.integers(*_PITCH)),
            "pitch_range": int(rng.integers(*_PITCH_RANGE))}
