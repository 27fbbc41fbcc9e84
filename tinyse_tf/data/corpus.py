"""A corpus: speech and noise file lists for the train / valid / test splits."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyse_tf.data.audio_io import DataError, list_audio, usable_files

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": ("train", "training"),
                  "valid": ("valid", "val", "validation", "dev"),
                  "test": ("test", "testing")}
_MIN_GROUPS = 10  # fewer top-level subfolders than this: split by file instead


@dataclass(frozen=True)
class Corpus:
    """Speech and noise files per split.

    Attributes:
        speech: ``{"train": [Path, ...], "valid": [...], "test": [...]}``.
        noise: same layout for noise files.
        root: folder of a built corpus (``None`` for :meth:`from_folders`).
        manifest: the built corpus's ``manifest.json`` content, or a description of the split.
    """

    speech: dict[str, list[Path]]
    noise: dict[str, list[Path]]
    root: Path | None = None
    manifest: dict = field(default_factory=dict, compare=False, repr=False)

    def split(self, name: str) -> tuple[list[Path], list[Path]]:
        """``(speech_files, noise_files)`` of split ``name`` ("train", "valid" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        return self.speech[name], self.noise[name]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"speech": {split: n}, "noise": {split: n}}``."""
        return {"speech": {s: len(self.speech[s]) for s in SPLITS},
                "noise": {s: len(self.noise[s]) for s in SPLITS}}

    @classmethod
    def from_folders(cls, speech_dir, noise_dir, seed: int = 0, valid_fraction: float = 0.05,
                     test_fraction: float = 0.1) -> Corpus:
        """A corpus from real recordings: any tree of ``.wav`` / ``.flac`` (e.g. DNS Challenge).

        Each folder is split on its own. If it has both ``train`` and ``test`` subfolders (also
        ``training`` / ``testing``), those are the splits, and ``valid`` (or ``val``, ``dev``,
        ``validation``) if present; without a valid folder, ``valid_fraction`` of train becomes
        valid. Otherwise files are split by ``seed``: when the audio sits in at least 10
        top-level subfolders (speaker folders as in LibriSpeech) whole subfolders are assigned to
        one split, so no speaker is shared; otherwise single files are. Unreadable files are
        skipped with a warning each (header check only; see ``audio_io.usable_files``).

        Raises:
            DataError: a folder is missing, holds no usable audio, or leaves train empty.
        """
        speech, s_info = _split_folder(Path(speech_dir), seed, valid_fraction, test_fraction)
        noise, n_info = _split_folder(Path(noise_dir), seed + 1, valid_fraction, test_fraction)
        manifest = {"kind": "folders", "seed": seed, "valid_fraction": valid_fraction,
                    "test_fraction": test_fraction, "speech": s_info, "noise": n_info}
        return cls(speech=speech, noise=noise, root=None, manifest=manifest)


def _find_split_dirs(root: Path) -> dict[str, Path]:
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    found = {}
    for split, names in _SPLIT_ALIASES.items():
        for name in names:
            if name in subdirs:
                found[split] = subdirs[name]
                break
    return found


def _split_folder(root: Path, seed: int, valid_fraction: float, test_fraction: float):
    files = list_audio(root)  # raises DataError if root is missing
    if not files:
        raise DataError(f"no .wav or .flac files under {root}; "
                        "point to the folder holding the audio")
    split_dirs = _find_split_dirs(root)
    if "train" in split_dirs and "test" in split_dirs:
        out = {s: usable_files(list_audio(d), what=str(d)) for s, d in split_dirs.items()}
        how = "subfolders"
        if "valid" not in out:
            out["train"], out["valid"], _ = _assign(out["train"], split_dirs["train"], seed,
                                                    valid_fraction, 0.0)
            how = "subfolders; valid carved from train"
        return out, {"root": str(root), "split_by": how}
    files = usable_files(files, what=str(root))
    train, valid, test = _assign(files, root, seed, valid_fraction, test_fraction)
    if not train:
        raise DataError(f"{root}: too few files to split ({len(files)}); "
                        "lower valid_fraction / test_fraction")
    group_by = "subfolder" if _groups_of(files, root)[1] else "file"
    return {"train": train, "valid": valid, "test": test}, {"root": str(root), "split_by": group_by}


def _groups_of(files: list[Path], root: Path):
    tops = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else None
            for f in files]
    by_folder = None not in tops and len(set(tops)) >= _MIN_GROUPS
    keys = tops if by_folder else [str(f) for f in files]
    return keys, by_folder


def _assign(files: list[Path], root: Path, seed: int, valid_fraction: float, test_fraction: float):
    """Deterministic split of ``files`` by group (subfolder or file) into train/valid/test."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1
            and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in [0, 1) and sum below 1")
    keys, _ = _groups_of(files, root)
    groups = sorted(set(keys))
    order = np.random.default_rng([seed, 0xC0]).permutation(len(groups))
    n_test = int(round(test_fraction * len(groups)))
    n_valid = int(round(valid_fraction * len(groups)))
    if test_fraction > 0 and len(groups) >= 3:
        n_test = max(n_test, 1)
    if valid_fraction > 0 and len(groups) >= 3:
        n_valid = max(n_valid, 1)
    which = {}
    for rank, g in enumerate(order):
        which[groups[g]] = ("test" if rank < n_test
                            else "valid" if rank < n_test + n_valid else "train")
    split = {"train": [], "valid": [], "test": []}
    for f, k in zip(files, keys):
        split[which[k]].append(f)
    return split["train"], split["valid"], split["test"]
