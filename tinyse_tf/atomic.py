"""Atomic file writes: write a temporary sibling, then ``os.replace`` it over the target.

A reader, or a run that crashes mid-write, never sees a half-written file; an interrupted write
leaves the previous file intact. Used for every output the package writes (audio, models,
reports, manifests, exported .tflite files).
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path


def default_mode(*paths) -> None:
    """Give files made by ``tempfile.mkstemp`` (mode 0600) the mode a plain ``open`` would have
    given them (0666 minus the umask), so outputs stay readable by other users."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        with contextlib.suppress(OSError):
            os.chmod(p, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffix, so writers infer the format); on
    success it replaces ``path``, on failure it is removed. The parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Open a temporary sibling of ``path`` for writing (``"w"`` text, UTF-8 by default, or
    ``"wb"``); it is flushed, synced and moved over ``path`` when the block ends without error."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path, obj, **kwargs) -> None:
    """Write ``obj`` as JSON (``indent=2`` unless given) to ``path`` atomically."""
    kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(obj, **kwargs) + "\n")
