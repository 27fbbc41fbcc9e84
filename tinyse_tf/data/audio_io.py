"""Reading, writing and finding audio files (16 kHz mono float32 in memory).

Every problem with a file is reported as one line that names the file, says what is wrong and what
to do, so that a user scanning a large folder sees at once which recording to fix.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from collections.abc import Iterable

import numpy as np
import soundfile as sf
import soxr

from tinyse_tf.atomic import atomic_path
from tinyse_tf.constants import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac")


class DataError(ValueError):
    """A folder or corpus cannot be used (missing, or holds no usable audio). One-line message."""


class AudioError(ValueError):
    """One audio file cannot be used. The message is one line: file, problem, what to do.

    Attributes:
        path: the file.
        problem: what is wrong with it, e.g. ``"empty file (0 bytes)"``.
    """

    def __init__(self, path, problem: str, fix: str):
        self.path = Path(path)
        self.problem, self.fix = _one_line(problem), _one_line(fix)
        super().__init__(f"cannot use audio file {self.path}: {self.problem}; {_one_line(fix)}")


class AudioSkipWarning(UserWarning):
    """A file was skipped while loading a folder or a file list.

    Attributes:
        error: the :class:`AudioError` of the skipped file (``None`` on the final count).
    """

    def __init__(self, message: str, error: AudioError | None = None):
        super().__init__(message)
        self.error = error


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    Channels are averaged; a file at another rate is resampled with soxr (high quality).

    Args:
        path: a file soundfile can read (WAV, FLAC, OGG, ...).
        sample_rate: rate of the returned signal in Hz.

    Returns:
        float32 array, shape ``[n]``, n > 0, all samples finite.

    Raises:
        AudioError: missing, empty, unreadable or corrupt file, zero length, NaN/Inf samples.
    """
    path = Path(path)
    probe_audio(path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types for damaged files
        raise AudioError(
            path, f"unreadable or corrupt audio ({err})",
            "re-export it as WAV or FLAC, or remove it") from err
    if audio.shape[0] == 0:
        raise AudioError(path, "zero-length audio (valid header, no samples)",
                         "re-export the recording or remove the file")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "contains NaN or Inf samples",
                         "re-export it from the source recording, or remove it")
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


# libsndfile reports a WAV whose data chunk is shorter than its header announces only here;
# it then silently reads fewer frames.
_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be\s*(\d+)\)", re.MULTILINE)


def libsndfile_message(err) -> str:
    """``Error opening 'x.wav': Format not recognised.`` -> ``Format not recognised``."""
    msg = re.sub(r"^Error opening .*?: ", "", _one_line(err))
    return re.sub(r"^Error\s*:\s*", "", msg).rstrip(".")


def probe_audio(path) -> sf._SoundFileInfo:
    """Read only the header of ``path``; raise :class:`AudioError` if it is unusable: missing,
    empty, not audio, zero length, invalid header or truncated WAV.

    Cheap check for large folders (NaN samples are only found by :func:`load_audio`).
    """
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise AudioError(path, f"not readable as audio ({libsndfile_message(err)})",
                         "it is not a valid WAV/FLAC file or it is corrupt: re-export it as WAV "
                         "or FLAC, or remove it") from err
    if info.frames <= 0:
        raise AudioError(path, "zero-length audio (valid header, no samples)",
                         "re-export the recording or remove the file")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, f"invalid header ({info.samplerate} Hz, {info.channels} channels)",
                         "re-export it as WAV or FLAC")
    m = _DATA_SIZE.search(getattr(info, "extra_info", "") or "")
    if m:
        announced, present = int(m.group(1)), int(m.group(2))
        if present < announced < 0xFFFFFF00:  # 0 / 0xFFFFFFFF: written by a streaming tool
            raise AudioError(path, f"truncated WAV: the header announces {announced} bytes of "
                                   f"audio but the file holds {present}",
                             "the copy or recording was interrupted: copy or export it again")
    return info


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise AudioError(path, "file not found", "check the path")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)",
                         "the copy or export was probably interrupted: re-copy it or remove it")


def write_audio(path, audio, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` atomically: a temporary file in the same folder, then ``os.replace``.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact.

    Args:
        path: destination; the format comes from the suffix (``.wav`` or ``.flac``).
        audio: float array, shape ``[n]`` or ``[n, channels]``, nominally in [-1, 1]; integer
            formats clip to that range.
        sample_rate: rate in Hz.
        subtype: soundfile subtype, e.g. ``"PCM_16"`` (default) or ``"FLOAT"``.

    Returns:
        the path written.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise ValueError(f"write_audio({path}): expected a non-empty [n] or [n, ch] array, "
                         f"got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"write_audio({path}): audio contains NaN or Inf; fix the producer")
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"write_audio({path}): suffix must be .wav or .flac")
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype=subtype, format=fmt)
    return path


def list_audio(root) -> list[Path]:
    """All ``.wav`` / ``.flac`` files (any letter case) under ``root``, recursively, sorted.

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"audio folder not found: {root}; "
                        "pass a folder that holds .wav or .flac files")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                  and p.is_file() and not p.name.startswith("."))


def load_files(files: Iterable, sample_rate: int = SAMPLE_RATE, what: str = "file list"
               ) -> dict[Path, np.ndarray]:
    """Load every readable file; skip the others with one :class:`AudioSkipWarning` each.

    Args:
        files: paths to load, in the order wanted.
        sample_rate: rate of the returned signals.
        what: how to name the collection in messages (e.g. the folder).

    Returns:
        ordered dict ``{path: float32 [n]}`` of the usable files.

    Raises:
        DataError: no file is usable.
    """
    return _keep_usable(files, lambda f: load_audio(f, sample_rate), what)


def _keep_usable(files: Iterable, check, what: str) -> dict:
    """``{path: check(path)}`` for the files ``check`` accepts (see :func:`iter_usable`)."""
    return dict(iter_usable(files, check, what, stacklevel=4))


def iter_usable(files: Iterable, check, what: str, on_skip=None, stacklevel: int = 3):
    """Yield ``(path, check(path))`` for the files ``check`` accepts, one at a time (so a large
    collection is never held in memory). Each rejected file (AudioError) gives one
    :class:`AudioSkipWarning` naming it (and a call ``on_skip(err)``), and the end one warning
    with the count.

    Raises:
        DataError: at the end, if no file was usable.
    """
    files = [Path(f) for f in files]
    kept = skipped = 0
    for f in files:
        try:
            result = check(f)
        except AudioError as err:
            skipped += 1
            warnings.warn(AudioSkipWarning(f"skipping: {err}", err), stacklevel=stacklevel)
            if on_skip is not None:
                on_skip(err)
            continue
        kept += 1
        yield f, result
    if skipped:
        warnings.warn(f"skipped {skipped} of {len(files)} audio files in {what}",
                      AudioSkipWarning, stacklevel=stacklevel)
    if not kept:
        raise DataError(f"no usable audio in {what} ({len(files)} files, all unreadable or empty); "
                        "check the files named in the warnings above")


def load_folder(root, sample_rate: int = SAMPLE_RATE) -> dict[Path, np.ndarray]:
    """Load every usable ``.wav`` / ``.flac`` under ``root`` (recursively, sorted by path).

    Unreadable files are skipped with a warning naming each, then one warning with the count.

    Returns:
        ordered dict ``{path: float32 [n]}``.

    Raises:
        DataError: the folder is missing, holds no audio files, or none of them is usable.
    """
    files = list_audio(root)
    if not files:
        raise DataError(f"no .wav or .flac files under {root}; "
                        "point to the folder holding the audio")
    return load_files(files, sample_rate, what=str(root))


def usable_files(files: Iterable, what: str = "file list") -> list[Path]:
    """Header-check ``files`` (cheap, see :func:`probe_audio`); skip bad ones with a warning each.

    Raises:
        DataError: none is usable.
    """
    return list(_keep_usable(files, probe_audio, what))
