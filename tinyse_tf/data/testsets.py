"""Fixed test sets written once to disk: the same speech/noise pairs remixed at several SNRs.

Layout (16 kHz mono 16-bit WAV)::

    <out_dir>/manifest.json
    <out_dir>/snr_-5/{noisy,clean}/<id>.wav
    <out_dir>/snr_0/{noisy,clean}/<id>.wav
    <out_dir>/snr_5/{noisy,clean}/<id>.wav
    <out_dir>/mixed/{noisy,clean}/<id>.wav     # SNR uniform in mixed_range, per item

Within a set, ``clean`` is the speech scaled by the same gain as ``noisy`` (the level is set on
the mixture), so a metric can compare the two files directly.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import _fs
from tinyse_tf.data.audio_io import DataError, load_files, write_audio
from tinyse_tf.data.mixing import mix_np

TESTSET_KIND = "tinyse_tf test sets"
TESTSET_VERSION = 1


def _label(snr: float) -> str:
    return f"snr_{snr:g}"


def write_test_sets(speech_files: Sequence, noise_files: Sequence, out_dir, snrs=(-5, 0, 5),
                    mixed_range=(0, 20), seed: int = 0, clip_seconds: float | None = None,
                    level_range_db=(-35.0, -15.0), progress: bool = False) -> Path:
    """Write the test sets (or return at once if ``out_dir`` already holds the same ones).

    One item per readable speech file, paired with a noise file drawn by ``seed`` at a random
    offset (looped if shorter), a level uniform in ``level_range_db`` (RMS of the mixture,
    dBFS) and, for ``mixed``, an SNR uniform in ``mixed_range``. The pairing, offsets and level
    are the same in every set. SNR and level follow :func:`tinyse_tf.data.mixing.mix_np`.
    Everything is written to a temporary folder beside ``out_dir`` and renamed at the end.

    Args:
        speech_files: speech paths; each gives one item.
        noise_files: noise paths.
        out_dir: output folder (must be empty, absent, or an earlier test-set folder).
        snrs: fixed SNRs in dB, one set each.
        mixed_range: ``(low, high)`` SNR range of the ``mixed`` set.
        seed: pairing, offsets, levels and mixed SNRs derive from it.
        clip_seconds: ``None`` keeps whole utterances; otherwise a random crop (zero-padded if
            shorter) of this length.
        level_range_db: ``(low, high)`` mixture level in dBFS.
        progress: show a tqdm bar.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = Path(out_dir)
    params = {"speech": [str(Path(f).resolve()) for f in speech_files],
              "noise": [str(Path(f).resolve()) for f in noise_files],
              "snrs": [float(s) for s in snrs], "mixed_range": [float(x) for x in mixed_range],
              "seed": int(seed),
              "clip_seconds": None if clip_seconds is None else float(clip_seconds),
              "level_range_db": [float(x) for x in level_range_db], "sample_rate": SAMPLE_RATE}
    if len({_label(s) for s in params["snrs"]}) != len(params["snrs"]):
        raise ValueError(f"duplicate SNRs in {snrs}")
    if _complete(out_dir, params):
        return out_dir
    _fs.check_replaceable(out_dir, TESTSET_KIND)

    speech = load_files(params["speech"], what="test speech files")
    noise = list(load_files(params["noise"], what="test noise files").items())
    sets = {_label(s): s for s in params["snrs"]}
    sets["mixed"] = "mixed"
    rng = np.random.default_rng([seed, 0x7E57])
    staged = _fs.staging_dir(out_dir)
    try:
        items = []
        for i, (path, clean) in enumerate(tqdm(speech.items(), desc="writing test sets",
                                              unit="item", disable=not progress)):
            ni = int(rng.integers(len(noise)))
            noise_path, noise_audio = noise[ni]
            speech_offset, pad_left = 0, 0
            if clip_seconds is not None:
                clip = int(round(clip_seconds * SAMPLE_RATE))
                speech_offset = int(rng.integers(max(len(clean) - clip, 0) + 1))
                clean = clean[speech_offset:speech_offset + clip]
                pad_left = int(rng.integers(clip - len(clean) + 1))
                clean = np.pad(clean, (pad_left, clip - len(clean) - pad_left))
            noise_offset = int(rng.integers(len(noise_audio)))
            positions = (noise_offset + np.arange(len(clean))) % len(noise_audio)
            noise_clip = noise_audio[positions]
            level = float(rng.uniform(*params["level_range_db"]))
            snr_mixed = float(rng.uniform(*params["mixed_range"]))
            item_id = f"{i:05d}"
            for label, snr in sets.items():
                snr = snr_mixed if snr == "mixed" else snr
                noisy, target = mix_np(clean, noise_clip, snr, level)
                write_audio(staged / label / "noisy" / f"{item_id}.wav", noisy)
                write_audio(staged / label / "clean" / f"{item_id}.wav", target)
            items.append({"id": item_id, "speech": str(path), "noise": str(noise_path),
                          "speech_offset": speech_offset, "pad_left": pad_left,
                          "noise_offset": noise_offset, "level_db": round(level, 4),
                          "snr_mixed": round(snr_mixed, 4), "samples": len(clean)})
        manifest = {"kind": TESTSET_KIND, "version": TESTSET_VERSION, "params": params,
                    "sets": [{"label": k, "snr": v} for k, v in sets.items()], "items": items}
        _fs.write_json(staged / "manifest.json", manifest)
        if not _complete(out_dir, params):
            _fs.publish_dir(staged, out_dir, TESTSET_KIND)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return out_dir


def load_test_set(out_dir) -> list[dict]:
    """Entries of a folder written by :func:`write_test_sets`.

    Returns:
        list of ``dict(id, snr_label, noisy_path, clean_path, snr)``, ordered by set (fixed SNRs
        in the order given, then ``mixed``) and id; ``snr`` is the SNR of that item in dB.

    Raises:
        DataError: no test-set manifest in ``out_dir``.
    """
    out_dir = Path(out_dir)
    manifest = _fs.read_json(out_dir / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("kind") != TESTSET_KIND:
        raise DataError(f"{out_dir} holds no test-set manifest; run write_test_sets first")
    entries = []
    for entry in manifest["sets"]:
        label, snr = entry["label"], entry["snr"]
        for item in manifest["items"]:
            entries.append({"id": item["id"], "snr_label": label,
                            "noisy_path": out_dir / label / "noisy" / f"{item['id']}.wav",
                            "clean_path": out_dir / label / "clean" / f"{item['id']}.wav",
                            "snr": item["snr_mixed"] if snr == "mixed" else float(snr)})
    return entries


def _complete(out_dir: Path, params: dict) -> bool:
    manifest = _fs.read_json(out_dir / "manifest.json")
    if (not isinstance(manifest, dict) or manifest.get("kind") != TESTSET_KIND
            or manifest.get("version") != TESTSET_VERSION or manifest.get("params") != params):
        return False
    return all(e["noisy_path"].is_file() and e["clean_path"].is_file()
               for e in load_test_set(out_dir))
