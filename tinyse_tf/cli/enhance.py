"""``tinyse enhance INPUT... -o OUTDIR --model MODEL``: enhance audio files with a trained model.

Per file, in bounded memory: read blocks with soundfile -> downmix to mono -> resample to 16 kHz
(soxr stream) -> model -> drop the stream latency -> resample back to the input rate -> write
blocks into a hidden temporary file -> rename it to the output name. The output has exactly the
input's length and rate (mono). A file that fails leaves nothing behind and does not stop the
others (except a full disk, which stops the batch).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from tinyse_tf.cli._common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, AtomicSoundWriter, CliError,
                                   FileProblem, is_tflite,
                                   load_keras_model, one_line,
                                   open_stream_tflite, output_format, probe_audio,
                                   resolve_model, say, write_error)
from tinyse_tf.native_stderr import debug
from tinyse_tf.shipped import DEFAULT_MODEL

PROG = "tinyse enhance"
AUDIO_SUFFIXES = (".wav", ".flac")
BLOCK = 1 << 16  # input frames read per block


def add_parser(sub):
    p = sub.add_parser(
        "enhance", prog=PROG, help="enhance audio files or folders with a trained model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Enhance noisy speech files. INPUT: files, or folders searched recursively "
                    "for .wav/.flac. Any sample rate and channel count: the model runs at 16 kHz "
                    "mono; the output is mono at the input's rate with the input's length.",
        epilog="Output names: a folder INPUT is mirrored under OUTDIR (INPUT/a/b.wav -> "
               "OUTDIR/a/b.wav); a file INPUT goes to OUTDIR/<name>. Inputs are never "
               "overwritten; existing outputs only with --overwrite. Writes are atomic.\n"
               "Exit status: 0 all files enhanced; 1 some files failed (the others were "
               "written); 2 bad usage or bad input (nothing written).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file or folder")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR",
                   help="output folder (created if missing)")
    p.add_argument("-m", "--model", default=None, metavar="MODEL",
                   help=f"a shipped model: {DEFAULT_MODEL} (the default: the 62 k two-step KD "
                        "student's float32 streaming file, on a host CPU faster than its int8 "
                        f"file at the same quality), {DEFAULT_MODEL}:int8 (the int8 file, as the "
                        "Edge TPU and microcontrollers run it), student:keras, teacher; or a "
                        "path: trained Keras model (.keras, .h5) or exported streaming .tflite. "
                        "A local file or folder named like a shipped model is used instead of "
                        "it, with a note")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--skip-existing", action="store_true",
                   help="leave existing output files alone and enhance only the others")
    p.add_argument("--offline-max-seconds", type=float, default=60.0, metavar="S",
                   help="Keras models: files up to S seconds are enhanced in one call, longer "
                        "ones frame by frame through the streaming graph (default 60)")
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no notes")
    p.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------- planning
class Job:
    def __init__(self, src: Path, dst: Path):
        self.src, self.dst = src, dst
        self.info = None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _file_id(path: Path):
    try:
        st = path.stat()
        return st.st_dev, st.st_ino
    except OSError:
        return None


def plan_jobs(inputs, out_dir: Path) -> list[Job]:
    """Expand INPUTs into (source, destination) jobs; CliError for bad paths or clashes."""
    out_real = Path(os.path.realpath(out_dir))
    pairs = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            # OUTDIR inside an input folder: its files are earlier outputs, not inputs.
            skip = out_real if out_real != Path(os.path.realpath(p)) else None
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES
                           and not f.name.startswith(".") and f.is_file()
                           and not (skip and _inside(Path(os.path.realpath(f)), skip)))
            if not files:
                raise CliError(f"{p}: no .wav or .flac files in this folder (searched "
                               "recursively); point to the folder that holds the audio")
            pairs += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        elif p.exists():
            raise CliError(f"{p}: not a regular file or folder; give audio files or folders")
        else:
            raise CliError(f"{p}: no such file or folder; check the path")
    unique = {}
    for src, rel in pairs:  # the same file named twice (a file and its folder, ...): once
        unique.setdefault(os.path.realpath(src), (src, rel))
    pairs = list(unique.values())
    inputs_real = set(unique)
    inputs_ids = {i for i in (_file_id(src) for src, _ in pairs) if i}
    jobs, seen = [], {}
    for src, rel in pairs:
        dst = out_dir / rel
        if dst.suffix.lower() not in AUDIO_SUFFIXES:
            dst = dst.with_suffix(".wav")
        key = os.path.realpath(dst)
        if key in inputs_real or (dst.exists() and _file_id(dst) in inputs_ids):
            raise CliError(f"{src}: its output path {dst} is an input file; choose another -o "
                           "(tinyse never overwrites an input)")
        if key in seen:
            raise CliError(f"{dst}: two inputs would be written here ({seen[key]} and {src}); "
                           "enhance them in separate runs or into separate -o folders")
        seen[key] = src
        jobs.append(Job(src, dst))
    return jobs


def prepare_output_dir(out_dir: Path) -> None:
    """Create OUTDIR and prove it writable (root ignores permission bits, so try a file)."""
    import tempfile

    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"{out_dir}: exists and is not a folder; choose another -o")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except NotADirectoryError:
        raise CliError(f"{out_dir}: cannot create the output folder: a part of the path is a "
                       "file, not a folder; choose another -o") from None
    except OSError as e:
        raise CliError(f"{out_dir}: cannot create the output folder ({e.strerror or e}); "
                       "choose a writable -o") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tinyse-write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise CliError(f"{out_dir}: the output folder is not writable ({e.strerror or e}); "
                       "choose a writable -o") from None


# --------------------------------------------------------------------------- one file
class _Resampler:
    """soxr stream between two rates (identity when equal)."""

    def __init__(self, rate_in: int, rate_out: int):
        self._rs = None
        if rate_in != rate_out:
            import soxr

            self._rs = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray) -> np.ndarray:
        if self._rs is None or x.size == 0:
            return np.asarray(x, np.float32)
        return self._rs.resample_chunk(np.asarray(x, np.float32))

    def flush(self) -> np.ndarray:
        if self._rs is None:
            return np.zeros(0, np.float32)
        return self._rs.resample_chunk(np.zeros(0, np.float32), last=True)


def _read_blocks(job: Job):
    """Mono float32 blocks of ``job.src``; FileProblem for content libsndfile cannot decode."""
    import soundfile as sf

    from tinyse_tf.data.audio_io import libsndfile_message

    n = 0
    try:
        f = sf.SoundFile(str(job.src))
    except Exception as e:
        raise FileProblem(job.src, f"not readable as audio ({libsndfile_message(e)})",
                          "re-export it as WAV or FLAC, or remove it") from None
    with f:
        blocks = f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True)
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                return
            except Exception as e:  # libsndfile errors in the middle of a damaged file
                where = f" after the first {n} samples" if n else ""
                raise FileProblem(job.src, f"corrupt audio data{where} "
                                           f"({libsndfile_message(e)})",
                                  "re-export it as WAV or FLAC, or remove it") from None
            x = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
            bad = np.flatnonzero(~np.isfinite(x))
            if bad.size:
                raise FileProblem(job.src, f"contains NaN or Inf samples (first at sample "
                                           f"{n + int(bad[0])})",
                                  "re-export it from the source recording, or remove it")
            n += x.size
            yield x


def enhance_file(job: Job, engine, note=None) -> int:
    """Enhance ``job.src`` into ``job.dst``; returns the number of samples written.

    Raises FileProblem (nothing left behind) for unreadable content, NaN/Inf samples, a
    truncated file, or a failed write.
    """
    from tinyse_tf.constants import SAMPLE_RATE

    info = job.info
    rate, channels = int(info.samplerate), int(info.channels)
    if channels > 1 and note:
        note(f"{job.src}: {channels} channels, downmixed to mono (the output is mono)")
    fmt, subtype = output_format(job.dst, info.subtype)
    to16, back = _Resampler(rate, SAMPLE_RATE), _Resampler(SAMPLE_RATE, rate)
    engine.reset()
    try:
        writer = AtomicSoundWriter(job.dst, rate, fmt, subtype)
    except OSError as e:
        raise write_error(job.dst, e) from None
    drop, n_in = int(engine.latency), 0

    def put(y: np.ndarray, limit: int):
        try:
            writer.write(y[:max(limit - writer.frames, 0)])  # never ahead of the input
        except OSError as e:
            raise write_error(job.dst, e) from None

    def emit(y16: np.ndarray):
        nonlocal drop
        if drop and y16.size:
            k = min(drop, y16.size)
            y16, drop = y16[k:], drop - k
        put(back.push(y16), n_in)

    with writer:
        for x in _read_blocks(job):
            n_in += x.size
            emit(engine.process(to16.push(x)))
        if n_in == 0:
            raise FileProblem(job.src, "zero-length audio (no samples could be read)",
                              "re-export the recording or remove the file")
        if n_in < info.frames:
            raise FileProblem(job.src, f"truncated: the header announces {info.frames} samples "
                                       f"but only {n_in} could be read",
                              "the copy or recording was interrupted: copy or export it again")
        emit(engine.process(to16.flush()))
        emit(engine.flush())
        put(back.flush(), n_in)
        if writer.frames < n_in:  # resampler rounding: at most a few samples
            put(np.zeros(n_in - writer.frames, np.float32), n_in)
        try:
            writer.commit()
        except OSError as e:
            raise write_error(job.dst, e) from None
    return n_in


# --------------------------------------------------------------------------- command
def _make_engines(model_path, threads: int, max_offline_s: float):
    """A function ``seconds -> engine`` for the model (loaded once)."""
    if is_tflite(model_path):
        engine = open_stream_tflite(model_path, num_threads=threads)
        return lambda seconds: engine
    model, _cfg = load_keras_model(model_path)  # starts TensorFlow quietly: import after it
    from tinyse_tf.runtime.keras import keras_stream
    from tinyse_tf.runtime.offline import OfflineEnhancer

    cache = {}

    def pick(seconds: float):
        kind = "offline" if seconds <= max_offline_s else "stream"
        if kind not in cache:
            cache[kind] = OfflineEnhancer(model) if kind == "offline" else keras_stream(model)
        return cache[kind]

    return pick


def run(args) -> int:
    out_dir = Path(args.output_dir)
    if args.threads < 1:
        raise CliError(f"--threads {args.threads}: must be at least 1")
    notes = []  # which model: said once the inputs are known to be usable
    try:
        args.model = resolve_model(args.model, notes.append)
    except CliError:
        for text in notes:  # a local path shadowing a shipped name explains the error
            say(PROG, "note", text)
        raise
    jobs = plan_jobs(args.inputs, out_dir)
    if not args.overwrite:
        existing = [j for j in jobs if j.dst.exists()]
        if existing and not args.skip_existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise CliError(f"{existing[0].dst}: output file already exists{more}; pass "
                           "--overwrite to replace, --skip-existing to keep, or choose another -o")
        if existing and not args.quiet:
            say(PROG, "note", f"skipping {len(existing)} file(s) whose output exists")
        jobs = [j for j in jobs if not j.dst.exists()]
        if not jobs:
            return EXIT_OK
    prepare_output_dir(out_dir)

    from tqdm.auto import tqdm

    def report(problem: FileProblem):
        say(PROG, "error", str(problem), write=tqdm.write)

    failed = 0
    usable = []
    for job in jobs:  # header check first: bad files are reported before the model loads
        try:
            job.info = probe_audio(job.src)
            usable.append(job)
        except FileProblem as p:
            failed += 1
            report(p)
    if not usable:
        return EXIT_USAGE
    for text in [] if args.quiet else notes:
        say(PROG, "note", text, write=tqdm.write)
    pick = _make_engines(args.model, args.threads, args.offline_max_seconds)
    note = None if args.quiet else (lambda m: say(PROG, "note", m, write=tqdm.write))
    done = 0
    bar = tqdm(total=len(jobs), initial=failed, unit="file", desc="enhance", file=sys.stderr,
               disable=True if args.quiet else None, dynamic_ncols=True)
    try:
        for i, job in enumerate(usable):
            engine = pick(job.info.frames / job.info.samplerate)
            try:
                enhance_file(job, engine, note)
                done += 1
            except Exception as e:
                if debug() and not isinstance(e, FileProblem):
                    raise
                failed += 1
                engine.reset()
                p = e if isinstance(e, FileProblem) else FileProblem(
                    job.src, f"enhancement failed ({type(e).__name__}: {one_line(e, 200)})",
                    "rerun with TINYSE_DEBUG=1 for the traceback and report it")
                report(p)
                if p.fatal:
                    left = len(usable) - i - 1
                    if left:
                        failed += left
                        say(PROG, "error", f"stopping: the {left} remaining file(s) would fail "
                                           "the same way", write=tqdm.write)
                    break
            bar.update()
    finally:
        bar.close()
    if len(jobs) > 1 and (failed or not args.quiet):
        say(PROG, "error" if failed else "note",
            f"{done} of {len(jobs)} files enhanced into {out_dir}"
            + (f"; {failed} failed (named above)" if failed else ""))
    if failed == 0:
        return EXIT_OK
    return EXIT_FAILED if done else EXIT_USAGE
