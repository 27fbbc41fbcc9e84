"""Small filesystem helpers: atomic JSON writes and publishing a finished folder in one rename."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tinyse_tf.atomic import atomic_write_json
from tinyse_tf.data.audio_io import DataError


def write_json(path, obj) -> None:
    """Write ``obj`` as sorted JSON atomically (readers never see half)."""
    atomic_write_json(path, obj, indent=1, sort_keys=True)


def read_json(path):
    """The JSON in ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def staging_dir(final: Path) -> Path:
    """A fresh empty folder beside ``final`` to build into (same filesystem, so rename works)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))


def publish_dir(staged: Path, final: Path, kind: str) -> None:
    """Move the finished ``staged`` folder to ``final``, replacing an older build of ``kind``.

    ``final`` is only replaced if it is empty or holds a ``manifest.json`` whose ``kind`` matches,
    so a wrong ``data_dir`` never deletes a user's folder.
    """
    if final.exists():
        check_replaceable(final, kind)
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)


def check_replaceable(folder: Path, kind: str) -> None:
    """Raise :class:`DataError` if ``folder`` is non-empty and not an earlier build of ``kind``."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataError(f"{folder} exists and is not a folder; choose another output path")
    if not any(folder.iterdir()):
        return
    manifest = read_json(folder / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise DataError(f"{folder} is not empty and is not a {kind}; refusing to overwrite it, "
                        "choose an empty or new folder")
