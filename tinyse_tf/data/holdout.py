"""Hold out part of a user's noise recordings: by file when there are several, else by time.

Adaptation (``tinyse_tf.adapt``) trains on one part of the noise and judges the result on the
other, so the two must never share a second of audio:

* with at least ``BY_FILE_MIN`` files, every ``BY_FILE_MIN``-th file (in path order) is held out,
  whole;
* otherwise each file is cut at ``1 - fraction`` of its length: the head trains, the tail is held
  out (``[0, cut)`` and ``[cut, n)`` samples, disjoint by construction).

Audio is 16 kHz mono float32 ``[n]`` (``load_audio`` resamples other rates).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data.audio_io import DataError, list_audio, load_audio

#: Fewest files for a split by file (one in this many is held out).
BY_FILE_MIN = 4
#: Shortest total noise accepted, and shortest part on each side of the split, in seconds.
MIN_NOISE_SECONDS = 4.0
MIN_PART_SECONDS = 1.0


@dataclass(frozen=True)
class Segment:
    """``samples [start, stop)`` of ``file`` (16 kHz), one side of the split."""

    file: Path
    start: int
    stop: int

    @property
    def seconds(self) -> float:
        return (self.stop - self.start) / SAMPLE_RATE


@dataclass(frozen=True)
class NoiseSplit:
    """The user's noise, split: ``train`` and ``held_out`` segments and how (``"file"`` or
    ``"time"``)."""

    train: tuple[Segment, ...]
    held_out: tuple[Segment, ...]
    by: str

    def describe(self) -> str:
        secs = lambda segs: sum(s.seconds for s in segs)  # noqa: E731
        return (f"noise held out by {self.by}: {secs(self.train):.1f} s train "
                f"({len(self.train)} segments), {secs(self.held_out):.1f} s held out "
                f"({len(self.held_out)} segments)")


def noise_files(noise) -> list[Path]:
    """The audio files of ``noise``: a folder (searched recursively) or one file.

    Raises:
        DataError: nothing usable to list (one line: the path and what to do).
    """
    noise = Path(noise)
    if noise.is_file():
        return [noise]
    files = list_audio(noise)  # DataError if not a folder
    if not files:
        raise DataError(f"{noise}: no .wav or .flac files (searched recursively); give the "
                        "folder of recordings of your noise")
    return files


def split_noise(audio: dict, fraction: float = 0.25) -> NoiseSplit:
    """Split loaded noise recordings into training and held-out segments (module docstring).

    Args:
        audio: ``{path: float32 [n]}`` in path order, e.g. ``load_audio`` of each file.
        fraction: share of the audio held out (by time), or 1 in ``BY_FILE_MIN`` files.
    Raises:
        DataError: less than ``MIN_NOISE_SECONDS`` of noise in total (one line).
    """
    total = sum(len(a) for a in audio.values()) / SAMPLE_RATE
    if total < MIN_NOISE_SECONDS:
        names = ", ".join(Path(p).name for p in list(audio)[:3])
        raise DataError(f"{names}: only {total:.1f} s of noise; adaptation needs at least "
                        f"{MIN_NOISE_SECONDS:g} s (a part to train on and a part held out to "
                        "check the result): record more of it")
    files = list(audio)
    if len(files) >= BY_FILE_MIN:
        held = set(files[BY_FILE_MIN - 1::BY_FILE_MIN])
        whole = lambda p: Segment(Path(p), 0, len(audio[p]))  # noqa: E731
        return NoiseSplit(tuple(whole(p) for p in files if p not in held),
                          tuple(whole(p) for p in files if p in held), "file")
    train, held_out = [], []
    min_part = int(MIN_PART_SECONDS * SAMPLE_RATE)
    for path in files:
        n = len(audio[path])
        cut = round(n * (1.0 - fraction))
        if n - cut < min_part or cut < min_part:  # too short to cut: whole file to training
            train.append(Segment(Path(path), 0, n))
            continue
        train.append(Segment(Path(path), 0, cut))
        held_out.append(Segment(Path(path), cut, n))
    if not held_out:  # every file too short on its own: hold out the tail of the longest one
        longest = max(files, key=lambda p: len(audio[p]))
        n = len(audio[longest])
        cut = n - min_part
        train = [s if s.file != Path(longest) else Segment(s.file, 0, cut) for s in train]
        held_out = [Segment(Path(longest), cut, n)]
    return NoiseSplit(tuple(train), tuple(held_out), "time")


def load_noise(noise) -> dict:
    """``{path: float32 [n]}`` of every file of ``noise`` (folder or file), at 16 kHz.

    Raises:
        AudioError: a file is corrupt or unreadable (the message names it).
        DataError: no audio files.
    """
    return {path: load_audio(path) for path in noise_files(noise)}


def segment_audio(segment: Segment, audio: dict) -> np.ndarray:
    """The samples of ``segment`` from loaded ``audio`` (``{path: [n]}``)."""
    return audio[segment.file][segment.start:segment.stop]
