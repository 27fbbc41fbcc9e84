"""Enhance a wav file with an exported streaming model on a Coral Edge TPU (or on the CPU).

    python3 edge/infer_coral.py MODEL_int8_edgetpu.tflite noisy.wav enhanced.wav
    python3 edge/infer_coral.py MODEL_int8.tflite noisy.wav enhanced.wav --cpu   # same file, no TPU

The model runs through ``tinyse_tf.StreamingEnhancer``, which loads the Edge TPU runtime as an
external delegate (``ai_edge_litert.interpreter.load_delegate('libedgetpu.so.1')``) unless
``--cpu`` is given. This script reads the wav, feeds it in ``--chunk``-sample pieces as a live
audio callback would (``process(chunk)`` per piece, then ``flush()``), and writes the result.

Output: a live stream lags its input by ``latency_samples`` (256 samples, 16 ms); for a file the
script drops those first samples, so the written file is aligned with the input, sample for
sample, and has exactly its length. It has the input's format (e.g. PCM_16 stays PCM_16,
integer formats clipped to [-1, 1]; the output suffix picks the container) and is written
atomically (a temporary file beside it, then ``os.replace``): an interrupted run leaves no
half-written file. The input file is only read; naming it as the output is refused.

Exit status: 0 written; 2 bad input (missing or unreadable audio, not 16 kHz, no samples), an
output path that cannot be written, or a model that cannot be loaded (one ``error:`` line on
stderr). Deployment steps: edge/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

EPILOG = """\
output: aligned with the input and of the same length (the stream's 256-sample latency is
dropped), in the input's format, written atomically.
exit status: 0 written; 2 bad input, unwritable output or model that cannot be loaded."""


def _positive(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of samples, got {n}")
    return n


def stream_file(enhancer, audio: np.ndarray, chunk: int) -> np.ndarray:
    """Push ``audio`` [n] through ``enhancer`` in ``chunk``-sample pieces, then flush.

    Uses only ``process``, ``flush`` and ``latency_samples``. The concatenated stream output
    lags the input by ``latency_samples`` and has ``latency_samples + n`` samples; its first
    ``latency_samples`` are dropped, so the result [n] is aligned with ``audio``.
    """
    delay = int(enhancer.latency_samples)
    pieces = [np.asarray(enhancer.process(audio[i:i + chunk]), np.float32).reshape(-1)
              for i in range(0, len(audio), chunk)]
    pieces.append(np.asarray(enhancer.flush(), np.float32).reshape(-1))
    stream = np.concatenate(pieces)
    if stream.size != delay + audio.size:  # the enhancer broke its own contract
        raise RuntimeError(f"the stream returned {stream.size} samples for {audio.size} pushed; "
                           f"expected latency_samples + n = {delay + audio.size}")
    return stream[delay:]


def _error(msg: str) -> int:
    print("infer_coral.py: error: " + " ".join(msg.split()), file=sys.stderr)  # one line
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edge/infer_coral.py", description=__doc__.split("\n")[0],
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="*_edgetpu.tflite (or the plain int8 / float32 .tflite with --cpu)")
    ap.add_argument("input", help="noisy input audio (16 kHz; several channels are averaged)")
    ap.add_argument("output", help="enhanced output (.wav; the suffix picks the container)")
    ap.add_argument("--cpu", action="store_true", help="run without the Edge TPU delegate")
    ap.add_argument("--chunk", type=_positive, default=256,
                    help="samples per process() call, as from an audio callback (default 256 = 16 ms)")
    args = ap.parse_args(argv)

    import soundfile as sf

    try:
        from tinyse_tf import StreamingEnhancer
    except ImportError:  # running from a checkout: put the repository root on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tinyse_tf import StreamingEnhancer
    from tinyse_tf.atomic import atomic_path
    from tinyse_tf.constants import SAMPLE_RATE

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        return _error(f"{src}: no such file")
    if dst.exists() and os.path.samefile(src, dst):
        return _error(f"{dst} is the input file; choose another output path")
    fmt = dst.suffix[1:].upper()
    if fmt not in sf.available_formats():
        return _error(f"{dst}: unknown audio suffix {dst.suffix!r} (use .wav or .flac)")
    try:  # soundfile's errors are RuntimeErrors
        info = sf.info(str(src))
        if info.samplerate != SAMPLE_RATE:
            return _error(f"{src} is {info.samplerate} Hz; the model expects {SAMPLE_RATE} Hz "
                          "(resample first, e.g. with sox or soxr)")
        audio = sf.read(str(src), dtype="float32", always_2d=True)[0]
    except (OSError, RuntimeError) as e:
        return _error(f"{src}: cannot read audio ({e})")
    if audio.shape[0] == 0:
        return _error(f"{src} has no samples")
    if audio.shape[1] > 1:
        print(f"note: {audio.shape[1]} channels, using their mean", file=sys.stderr)
    audio = audio.mean(axis=1)

    try:
        enh = StreamingEnhancer(args.model, edgetpu=not args.cpu)
    except (OSError, ValueError, RuntimeError) as e:  # e.g. libedgetpu.so.1 or the USB device missing
        hint = "" if args.cpu else " (to run without the Edge TPU: --cpu with the uncompiled file)"
        return _error(f"cannot load {args.model} ({'CPU' if args.cpu else 'Edge TPU'}): {e}{hint}")

    t0 = time.perf_counter()
    enhanced = stream_file(enh, audio, args.chunk)
    elapsed = time.perf_counter() - t0

    subtype = info.subtype if sf.check_format(fmt, info.subtype) else sf.default_subtype(fmt)
    if subtype not in ("FLOAT", "DOUBLE"):
        enhanced = np.clip(enhanced, -1.0, 1.0)  # integer formats would wrap around
    try:
        with atomic_path(dst) as tmp:
            sf.write(str(tmp), enhanced, SAMPLE_RATE, subtype=subtype, format=fmt)
    except (OSError, RuntimeError) as e:
        return _error(f"cannot write {dst} ({e})")
    dur = len(audio) / SAMPLE_RATE
    print(f"{dst}: {len(enhanced) / SAMPLE_RATE:.2f} s written ({subtype}); processed {dur:.2f} s "
          f"of audio in {elapsed:.2f} s (real-time factor {elapsed / max(dur, 1e-9):.3f}, "
          f"{'CPU' if args.cpu else 'Edge TPU'}, {args.chunk}-sample chunks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
