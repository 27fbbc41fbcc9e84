"""Shared pieces of the ``tinyse`` commands: one-line errors, quiet TensorFlow start-up, model
loading and checking, audio probing, atomic streaming audio writes.

Nothing here imports TensorFlow at module level; ``import_tf`` does it on demand, with the
C++ start-up log lines (oneDNN, CUDA probing) kept off the terminal.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyse_tf import shipped
from tinyse_tf.atomic import default_mode
from tinyse_tf.native_stderr import native_stderr_captured

#: Exit codes (documented in docs/CLI.md and ``tinyse --help``).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".tflite")
#: Write errors after which every later file would fail the same way: stop the batch.
FATAL_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


class CliError(Exception):
    """A problem the user can fix; printed as ``tinyse <cmd>: error: <message>``.

    Args:
        message: one line: what (usually ``<path>: <what is wrong>; <what to do>``).
        code: exit status (2: bad usage or bad input).
    """

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(one_line(message))
        self.message = one_line(message)
        self.code = code


class FileProblem(Exception):
    """One input file cannot be processed: ``problem`` and ``fix`` (both one line)."""

    def __init__(self, path, problem: str, fix: str, fatal: bool = False):
        self.path = Path(path)
        self.problem, self.fix = one_line(problem), one_line(fix)
        self.fatal = fatal  # the rest of the batch would fail the same way (disk full)
        super().__init__(f"{self.path}: {self.problem}; {self.fix}")


def one_line(text, limit: int = 400) -> str:
    """Collapse whitespace (tracebacks, multi-line library messages) and cap the length."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def say(prog: str, kind: str, message: str, write=None) -> None:
    """Print ``<prog>: <kind>: <message>`` on stderr (``write`` e.g. ``tqdm.write``)."""
    line = f"{prog}: {kind}: {one_line(message, 2000)}"
    if write is not None:
        write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def import_tf():
    """``(tf, keras)`` from ``tinyse_tf._tf``, started quietly (devices initialised inside the
    captured block so that CUDA probing messages do not reach the terminal)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_captured():
        from tinyse_tf._tf import keras, tf

        tf.zeros(1).numpy()
        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    return tf, keras


# --------------------------------------------------------------------------- models
def shipped_model_path(value) -> Path | None:
    """``tinyse_tf.shipped.resolve`` with its errors as CliError (one line)."""
    try:
        return shipped.resolve(value)
    except (ValueError, OSError) as err:
        raise CliError(str(err)) from None


def resolve_model(value, note=None, what: str = "model") -> Path:
    """The model file of ``--model VALUE``, saying which file it is through ``note(text)``:

    * None (no ``--model``): the shipped ``shipped.DEFAULT_MODEL``, whatever lies in the folder;
    * a shipped model's name (``student``, ``student:int8``, ...): that shipped file, unless a
      local file or folder has exactly that name: then the local path is used, and the note says
      so and how to reach the shipped file;
    * anything else: a path, checked by :func:`check_model_path`.
    """
    say_note = note or (lambda text: None)
    if value is None:
        path = shipped_model_path(shipped.DEFAULT_MODEL)
        say_note(f"model: the shipped {shipped.DEFAULT_MODEL} ({path.name}; --model "
                 f"{shipped.DEFAULT_MODEL}:int8 for the int8 file)")
        return path
    if shipped.is_model_name(value):
        if not Path(value).exists():
            path = shipped_model_path(value)
            say_note(f"model: the shipped {value} ({path.name})")
            return path
        kind = "folder" if Path(value).is_dir() else "file"
        say_note(f"model: {value} is the local {kind} ./{value}, not the shipped model of that "
                 f"name (to use that one, give its file: {shipped_model_path(value)})")
    return check_model_path(value, what)


def check_model_path(path, what: str = "model") -> Path:
    """The model file at ``path`` (or a shipped model's file): a readable, non-empty file with a
    known suffix; else CliError. Shipped model names are :func:`resolve_model`'s business."""
    path = Path(path)
    if path.suffix.lower() == ".npz" and path.parent == shipped.FOLDER:
        return path
    if not path.exists():
        raise CliError(f"{path}: {what} file not found; check the path (a .keras, .h5 or .tflite "
                       f"file) or name a shipped model ({', '.join(shipped.model_names())})")
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not a {what} file; give the .keras, .h5 or .tflite "
                       "file itself")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise CliError(f"{path}: unknown {what} type {path.suffix or '(no suffix)'!r}; give a "
                       "Keras model (.keras or .h5) or an exported streaming .tflite")
    if path.stat().st_size == 0:
        raise CliError(f"{path}: empty file (0 bytes); the copy or export was probably "
                       "interrupted: copy or export it again")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise CliError(f"{path}: cannot read the {what} file ({e.strerror or e}); check its "
                       "permissions") from None
    return path


def is_tflite(path) -> bool:
    return Path(path).suffix.lower() == ".tflite"


def load_keras_model(path):
    """Load a tinyse_tf CRUSE model saved as .keras / .h5, or a shipped model's weights (its
    ``.npz``, see ``tinyse_tf.shipped``); returns ``(model, CruseConfig)``."""
    path = check_model_path(path)
    _tf, keras = import_tf()
    import tinyse_tf.models  # noqa: F401  (registers the custom layers)
    from tinyse_tf.models import config_from_model

    try:
        with native_stderr_captured():
            if path.suffix.lower() == ".npz":
                name = next(n for n, e in shipped.shipped_models().items()
                            if e["files"].get("keras", {}).get("file") == path.name)
                model = shipped.pretrained(name)
            else:
                model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise CliError(f"{path}: not a loadable Keras model ({type(e).__name__}: "
                       f"{one_line(e, 160)}); give a .keras or .h5 file saved by tinyse_tf "
                       "(e.g. models/student.keras of a recipe run)") from None
    try:
        config = config_from_model(model)
    except Exception as e:
        raise CliError(f"{path}: a Keras model, but not a tinyse_tf CRUSE model "
                       f"({type(e).__name__}: {one_line(e, 160)}); give a model built with "
                       "tinyse_tf.build_cruse") from None
    return model, config


def open_stream_tflite(path, num_threads: int = 1):
    """A checked ``StreamingEnhancer`` for an exported streaming .tflite, or CliError."""
    path = check_model_path(path)
    fix = ("give a *_stream_float32.tflite or *_stream_int8_*.tflite written by `tinyse export` "
           "(tinyse_tf.export.quantize.export_model)")
    from tinyse_tf.runtime import ContractError, StreamingEnhancer

    try:
        with native_stderr_captured():
            se = StreamingEnhancer(path, num_threads=num_threads)
    except ContractError as e:
        raise CliError(f"{one_line(e, 300)}; {fix}") from None
    except Exception as e:
        raise CliError(f"{path}: not a readable TFLite model ({one_line(e, 160)}); {fix}") from None
    try:
        with native_stderr_captured():
            se.run_frame(np.zeros(80, np.float32))  # one frame: fails now rather than per file
            se.reset()
    except Exception as e:
        raise CliError(f"{path}: cannot run it as a tinyse_tf streaming model "
                       f"({type(e).__name__}: {one_line(e, 200)}); {fix}") from None
    return se


# --------------------------------------------------------------------------- audio files
def probe_audio(path):
    """Header check of one input file (``tinyse_tf.data.probe_audio``): returns the
    ``soundfile`` info, or raises FileProblem for a missing, empty, non-audio, zero-length or
    truncated file."""
    from tinyse_tf.data.audio_io import AudioError, probe_audio as probe

    try:
        return probe(path)
    except AudioError as err:
        raise FileProblem(err.path, err.problem, err.fix) from None


def output_format(dst: Path, in_subtype: str | None) -> tuple[str, str]:
    """``(format, subtype)`` for an output path: the input's sample format when the output
    container supports it, else 16-bit PCM."""
    import soundfile as sf

    fmt = "FLAC" if dst.suffix.lower() == ".flac" else "WAV"
    subtype = in_subtype if in_subtype and sf.check_format(fmt, in_subtype) else "PCM_16"
    return fmt, subtype


class AtomicSoundWriter:
    """Write a mono audio file block by block into a hidden temporary sibling, then rename it
    over the destination (``commit``). On ``abort`` (or an exception in a ``with`` block) the
    temporary file is removed: no partial output is ever left under the final name."""

    def __init__(self, path, samplerate: int, fmt: str, subtype: str):
        import soundfile as sf

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                        dir=self.path.parent)
        os.close(fd)
        self._clip = subtype.upper() not in ("FLOAT", "DOUBLE")
        self.frames = 0
        try:
            self._f = sf.SoundFile(self.tmp, "w", samplerate, 1, subtype=subtype, format=fmt)
        except BaseException:
            Path(self.tmp).unlink(missing_ok=True)
            raise

    def write(self, y: np.ndarray) -> None:
        if y.size:
            y = np.asarray(y, np.float32)
            self._f.write(np.clip(y, -1.0, 1.0) if self._clip else y)
            self.frames += y.size

    def commit(self) -> Path:
        self._f.close()
        default_mode(self.tmp)  # mkstemp creates 0600
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def write_error(path: Path, err: OSError) -> FileProblem:
    """A FileProblem for a failed write (disk full, read-only file system, ...)."""
    reason = err.strerror or one_line(err, 160)
    fatal = err.errno in FATAL_WRITE_ERRNOS
    fix = ("free disk space or choose another -o; no partial file was left" if err.errno in
           (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else
           "choose a writable -o; no partial file was left")
    return FileProblem(path, f"cannot write the output ({reason})", fix, fatal=fatal)
