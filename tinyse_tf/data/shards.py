"""Audio prepared for training: fixed-size int16 shards plus a manifest, written once.

Training reads these shards as a stream (:func:`tinyse_tf.data.mixture_dataset`), so its
memory does not grow with the corpus. Layout of a prepared folder::

    <data_dir>/manifest.json
    <data_dir>/{speech,noise}/{train,valid,test}/<index>.s16

A shard is raw little-endian int16 samples, 16 kHz mono: whole utterances (one per source file)
concatenated up to ``shard_mb`` MB; an utterance longer than that gets a shard of its own. The
manifest lists per shard the length of every utterance and the source file it came from, and
per split the source files themselves (test sets and int8 calibration still read those), and
the files skipped as unreadable, with the reason.

Source files go into shards in a fixed pseudo-random order per split, so every shard is a random
sample of its split. Preparing is resumable: ``plan.json`` (the split's file lists) is written
first, each shard is written atomically and then committed by its ``<index>.json`` index, so a
rerun after an interruption continues after the last committed shard. ``manifest.json`` comes
last: a folder with one is complete, and preparing it again returns at once.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinyse_tf.atomic import atomic_path
from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import _fs
from tinyse_tf.data.audio_io import (AudioError, AudioSkipWarning, DataError, iter_usable,
                                     load_audio, probe_audio)
from tinyse_tf.data.corpus import SPLITS, Corpus

PREPARED_KIND = "tinyse_tf prepared data"
PREPARED_VERSION = 1
KINDS = ("speech", "noise")
SHARD_MB = 16  # 8.7 min of audio; a few shards per stream are in memory while training
SHARD_SUFFIX = ".s16"
_INT16_SCALE = 32768.0  # soundfile's PCM_16 <-> float scale, so 16-bit sources are exact


@dataclass(frozen=True)
class Shards:
    """The utterances of one kind (speech or noise) and split, in int16 shard files.

    Attributes:
        files: shard paths; each holds int16 ``[sum(lengths[i])]``.
        lengths: per shard, the length of each utterance in samples, in storage order.
    """

    files: tuple[Path, ...]
    lengths: tuple[tuple[int, ...], ...]

    @property
    def utterances(self) -> int:
        return sum(len(x) for x in self.lengths)

    @property
    def seconds(self) -> float:
        return sum(sum(x) for x in self.lengths) / SAMPLE_RATE


@dataclass(frozen=True)
class PreparedData:
    """A prepared folder (see the module docstring).

    Attributes:
        root: the folder.
        manifest: the content of its ``manifest.json``.
    """

    root: Path
    manifest: dict

    def split(self, name: str) -> tuple[Shards, Shards]:
        """``(speech, noise)`` shards of split ``name`` ("train", "valid" or "test"), the
        arguments of :func:`tinyse_tf.data.mixture_dataset`."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        return tuple(Shards(tuple(self.root / e["file"] for e in entries),
                            tuple(tuple(e["lengths"]) for e in entries))
                     for entries in (self.manifest["shards"][k][name] for k in KINDS))

    @property
    def corpus(self) -> Corpus:
        """The source files per split (test sets and calibration read them)."""
        files = self.manifest["files"]
        return Corpus(speech={s: [Path(f) for f in files["speech"][s]] for s in SPLITS},
                      noise={s: [Path(f) for f in files["noise"][s]] for s in SPLITS},
                      manifest=self.manifest["params"]["source"])

    def counts(self) -> dict:
        """``{kind: {split: {"files", "shards", "utterances", "hours"}}}`` (skipped files are
        counted in ``files``, not in ``utterances``)."""
        out = {}
        for k in KINDS:
            out[k] = {}
            for s in SPLITS:
                shards = self.split(s)[KINDS.index(k)]
                out[k][s] = {"files": len(self.manifest["files"][k][s]),
                             "shards": len(shards.files), "utterances": shards.utterances,
                             "hours": round(shards.seconds / 3600, 3)}
        return out

    @property
    def skipped(self) -> list[dict]:
        """``[{"file", "problem"}, ...]``: source files that could not be read (found when the
        folders were listed, then while reading)."""
        skipped = self.manifest["skipped"]
        return skipped["listing"] + [e for k in KINDS for s in SPLITS for e in skipped[k][s]]


def prepare_data(speech_dir, noise_dir, data_dir, seed: int = 0, valid_fraction: float = 0.05,
                 test_fraction: float = 0.1, shard_mb: float = SHARD_MB,
                 progress: bool = True) -> PreparedData:
    """Split two folders of recordings as :meth:`Corpus.from_folders` does and write their
    audio as shards into ``data_dir`` (resumable; returns at once if already complete).

    Args:
        speech_dir, noise_dir: trees of ``.wav`` / ``.flac`` at any rate and channel count
            (resampled to 16 kHz, downmixed to mono).
        data_dir: output folder: new, empty, or an earlier (possibly unfinished) preparation
            with the same arguments.
        seed, valid_fraction, test_fraction: the split, see :meth:`Corpus.from_folders`; the
            same seed gives the same test files as the recipe's ``--speech-dir`` always did.
        shard_mb: shard size in MB (1 MB = 2**20 bytes = 32.8 s of audio).
        progress: show a progress bar.

    Raises:
        DataError: a folder is missing or has no usable audio, or ``data_dir`` holds something
            else (one-line message). Unreadable files are skipped with an ``AudioSkipWarning``
            each and a count.
    """
    source = {"speech_dir": str(Path(speech_dir).absolute()),
              "noise_dir": str(Path(noise_dir).absolute()), "seed": int(seed),
              "valid_fraction": float(valid_fraction), "test_fraction": float(test_fraction)}
    return _prepare(Path(data_dir), source, shard_mb, progress,
                    lambda: Corpus.from_folders(source["speech_dir"], source["noise_dir"], seed,
                                                valid_fraction, test_fraction))


def prepare_corpus(corpus: Corpus, data_dir, shard_mb: float = SHARD_MB,
                   progress: bool = True) -> PreparedData:
    """Write the audio of ``corpus`` (e.g. the built-in one) as shards into ``data_dir``;
    returns at once if ``data_dir`` already holds this corpus's shards. See :func:`prepare_data`.
    """
    files = _file_lists(corpus)
    source = {"corpus_root": None if corpus.root is None else str(corpus.root),
              "files_sha1": hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()}
    return _prepare(Path(data_dir), source, shard_mb, progress, lambda: corpus)


def load_prepared(data_dir) -> PreparedData:
    """Open a complete prepared folder. Raises ``DataError`` (one line) if it is not one."""
    root = Path(data_dir)
    manifest = _fs.read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("kind") != PREPARED_KIND:
        hint = (" (its preparation was interrupted: run the same prepare-data command again)"
                if (root / "plan.json").is_file() else "")
        raise DataError(f"{root} holds no prepared data{hint}; run `tinyse prepare-data "
                        f"SPEECH_DIR NOISE_DIR -o {root}` first")
    if manifest.get("version") != PREPARED_VERSION:
        raise DataError(f"{root} was prepared by another version of tinyse_tf (format "
                        f"{manifest.get('version')}, need {PREPARED_VERSION}); prepare it again")
    data = PreparedData(root, manifest)
    missing = [f for s in SPLITS for shards in data.split(s) for f in shards.files
               if not f.is_file()]
    if missing:
        raise DataError(f"{root}: {len(missing)} shard files are missing (e.g. {missing[0]}); "
                        "delete the folder and prepare it again")
    return data


def _file_lists(corpus: Corpus) -> dict:
    return {k: {s: [str(Path(f).absolute()) for f in getattr(corpus, k)[s]] for s in SPLITS}
            for k in KINDS}


def _canonical(params):
    """``params`` with its source folders resolved ('..', symlinks): a folder given as a
    relative path once and an absolute one later is the same source."""
    if not isinstance(params, dict) or not isinstance(params.get("source"), dict):
        return params
    source = {k: str(Path(v).resolve()) if k in ("speech_dir", "noise_dir") and v else v
              for k, v in params["source"].items()}
    return {**params, "source": source}


def _prepare(root: Path, source: dict, shard_mb: float, progress: bool,
             make_corpus: Callable[[], Corpus]) -> PreparedData:
    if not shard_mb > 0:
        raise ValueError("shard_mb must be positive")
    params = {"source": source, "shard_bytes": int(shard_mb * 2 ** 20) // 2 * 2,
              "sample_rate": SAMPLE_RATE}
    records = {}
    for name, what in (("manifest.json", "data prepared"), ("plan.json", "a preparation")):
        record = _fs.read_json(root / name)
        if isinstance(record, dict) and record.get("kind") == PREPARED_KIND:
            there, here = _canonical(record.get("params")), _canonical(params)
            if there != here:
                raise DataError(f"{root} holds {what} from other sources or with other settings "
                                f"({_differences(there, here)}); choose another folder or "
                                "delete it")
            records[name] = record
    if "manifest.json" in records:
        return load_prepared(root)
    plan = records.get("plan.json")
    if plan is None:
        _fs.check_replaceable(root, PREPARED_KIND)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            corpus = make_corpus()
        for w in caught:  # shown as usual, and the skipped files kept on record
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        listed = [_skip_record(w.message.error) for w in caught
                  if isinstance(w.message, AudioSkipWarning) and w.message.error is not None]
        plan = {"kind": PREPARED_KIND, "version": PREPARED_VERSION, "params": params,
                "split": corpus.manifest, "files": _file_lists(corpus),
                "skipped": {"listing": listed}}
        _fs.write_json(root / "plan.json", plan)

    total = sum(len(plan["files"][k][s]) for k in KINDS for s in SPLITS)
    bar = tqdm(total=total, desc=f"preparing {root.name}", unit="file", disable=not progress)
    manifest = {**plan, "shards": {k: {} for k in KINDS},
                "skipped": {**plan["skipped"], **{k: {} for k in KINDS}},
                "converted": {"resampled": 0, "downmixed": 0, "rescaled": 0}}
    for ki, kind in enumerate(KINDS):
        for si, split in enumerate(SPLITS):
            shards, skipped, converted = _write_split(root, kind, split, plan["files"][kind][split],
                                                      params["shard_bytes"], (ki, si), bar)
            manifest["shards"][kind][split] = shards
            manifest["skipped"][kind][split] = skipped
            for key, n in converted.items():
                manifest["converted"][key] += n
    bar.close()
    _fs.write_json(root / "manifest.json", manifest)
    for kind in KINDS:  # the manifest holds every index now
        for split in SPLITS:
            for index in (root / kind / split).glob("*.json"):
                index.unlink(missing_ok=True)
    (root / "plan.json").unlink(missing_ok=True)
    return load_prepared(root)


def _skip_record(err: AudioError) -> dict:
    return {"file": str(Path(err.path).absolute()), "problem": err.problem}


def _differences(old, new) -> str:
    old_source = (old or {}).get("source", {})
    keys = [k for k in new["source"] if old_source.get(k) != new["source"][k]]
    keys += [k for k in ("shard_bytes", "sample_rate") if (old or {}).get(k) != new[k]]
    return ", ".join(f"{k}: {_short((old or {}).get(k, old_source.get(k)))} here, "
                     f"{_short(new.get(k, new['source'].get(k)))} asked" for k in keys)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _storage_order(n: int, kind_split: tuple[int, int]) -> np.ndarray:
    """The order in which a split's ``n`` source files go into shards (fixed pseudo-random)."""
    return np.random.default_rng([0x5A4D, *kind_split]).permutation(n)


def _to_int16(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """float [-1, 1] -> ``(int16, rescaled)`` (x 32768, exact for 16-bit sources). A file whose
    peak would clip is scaled down instead: mixing sets the level anyway, so only its shape
    matters."""
    peak = float(np.max(np.abs(audio))) * _INT16_SCALE
    if peak > 32767:
        audio = audio * (32767 / peak)
    return np.round(audio * _INT16_SCALE).astype("<i2"), peak > 32767


class _SplitWriter:
    """Writes (or resumes) the shards of one kind and split; see :func:`_write_split`."""

    def __init__(self, root: Path, kind: str, split: str, shard_bytes: int):
        self.root, self.folder, self.shard_bytes = root, root / kind / split, shard_bytes
        self.prefix = f"{kind}/{split}/"
        self.entries = []  # committed shards, from earlier runs first
        while (entry := _fs.read_json(self.folder / f"{len(self.entries):05d}.json")) is not None:
            self.entries.append(entry)
        self.pending, self.pending_bytes = [], 0
        self.skipped, self.converted = [], {"resampled": 0, "downmixed": 0, "rescaled": 0}

    @property
    def start(self) -> int:
        """Position in the storage order of the first file not in a committed shard."""
        return self.entries[-1]["next"] if self.entries else 0

    def add(self, source: int, audio: np.ndarray, position: int, converted: dict) -> None:
        """Append one utterance (file ``source``, at ``position`` in the storage order)."""
        if self.pending and self.pending_bytes + 2 * len(audio) > self.shard_bytes:
            self.flush(position)
        self.pending.append((source, audio))
        self.pending_bytes += 2 * len(audio)
        for key, flag in converted.items():
            self.converted[key] += int(flag)

    def flush(self, next_position: int) -> None:
        """Write the pending utterances as the next shard, then commit its index."""
        index = len(self.entries)
        name = f"{self.prefix}{index:05d}{SHARD_SUFFIX}"
        with atomic_path(self.root / name) as tmp:
            np.concatenate([a for _, a in self.pending]).tofile(tmp)
        entry = {"file": name, "lengths": [len(a) for _, a in self.pending],
                 "sources": [s for s, _ in self.pending], "next": next_position,
                 "skipped": self.skipped, "converted": self.converted}
        _fs.write_json(self.folder / f"{index:05d}.json", entry)
        self.entries.append(entry)
        self.pending, self.pending_bytes = [], 0
        self.skipped, self.converted = [], dict.fromkeys(self.converted, 0)


def _write_split(root: Path, kind: str, split: str, files: list[str], shard_bytes: int,
                 kind_split: tuple[int, int], bar) -> tuple[list, list, dict]:
    """Write (or resume) the shards of one split; ``bar`` counts files.

    Returns:
        ``(entries, skipped, converted)``: per shard ``{"file", "lengths", "sources" (indices
        into ``files``), "next", "skipped", "converted"}``; every skipped ``{"file",
        "problem"}``; counts of resampled, downmixed and rescaled files.
    """
    writer = _SplitWriter(root, kind, split, shard_bytes)
    order = _storage_order(len(files), kind_split)
    start = writer.start
    bar.update(start)
    remaining = [Path(files[i]) for i in order[start:]]
    position = {p: start + j for j, p in enumerate(remaining)}

    def load(path):
        info = probe_audio(path)
        audio, rescaled = _to_int16(load_audio(path))
        bar.update()
        return audio, {"resampled": info.samplerate != SAMPLE_RATE,
                       "downmixed": info.channels > 1, "rescaled": rescaled}

    def skip(err):
        writer.skipped.append(_skip_record(err))
        bar.update()

    try:
        for path, (audio, converted) in iter_usable(remaining, load, f"{kind} {split} split",
                                                    skip):
            writer.add(int(order[position[path]]), audio, position[path], converted)
    except DataError:
        if not writer.entries and files:  # every file of the split is unusable
            raise
    if writer.pending:
        writer.flush(len(files))
    entries = writer.entries
    # writer.skipped: files skipped after the last shard (tried again on a resume)
    skipped = [s for e in entries for s in e["skipped"]] + writer.skipped
    converted = {k: sum(e["converted"][k] for e in entries) for k in writer.converted}
    return entries, skipped, converted
