"""Enhance a wav file with an exported streaming model on a Coral Edge TPU (or on the CPU).

    python3 edge/infer_coral.py MODEL_int8_edgetpu.tflite noisy.wav enhanced.wav
    python3 edge/infer_coral.py MODEL_int8.tflite noisy.wav enhanced.wav --cpu   # same file, no TPU

The model runs through ``tinyse_tf.StreamingEnhancer``, which loads the Edge TPU runtime as an
external delegate (``ai_edge_litert.interpreter.load_delegate('libedgetpu.so.1')``) when
``edgetpu=True``. This script only reads the wav, feeds it chunk by chunk as a live stream would
arrive, and writes the result. Deployment steps: edge/README.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edge/infer_coral.py", description=__doc__.split("\n")[0])
    ap.add_argument("model", help="*_edgetpu.tflite (or the plain int8 .tflite with --cpu)")
    ap.add_argument("input", help="noisy input wav (mono, 16 kHz)")
    ap.add_argument("output", help="enhanced output wav")
    ap.add_argument("--cpu", action="store_true", help="run without the Edge TPU delegate")
    ap.add_argument("--chunk", type=int, default=256,
                    help="samples per process() call, as from an audio callback (default 256 = 16 ms)")
    args = ap.parse_args(argv)

    import soundfile as sf

    try:
        from tinyse_tf import StreamingEnhancer
    except ImportError:  # running from a checkout: put the repository root on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tinyse_tf import StreamingEnhancer
    from tinyse_tf.constants import SAMPLE_RATE

    audio, sr = sf.read(args.input, dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        print(f"infer_coral.py: error: {args.input} is {sr} Hz; the model expects {SAMPLE_RATE} Hz "
              "(resample first, e.g. with sox or soxr)", file=sys.stderr)
        return 2
    if audio.shape[1] > 1:
        print(f"note: {audio.shape[1]} channels, using their mean", file=sys.stderr)
    audio = audio.mean(axis=1)

    try:
        enh = StreamingEnhancer(args.model, edgetpu=not args.cpu)
    except (OSError, ValueError, RuntimeError) as e:  # e.g. libedgetpu.so.1 or the USB device missing
        print(f"infer_coral.py: error: cannot load {args.model} "
              f"({'CPU' if args.cpu else 'Edge TPU'}): {e}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    out = [enh.process(audio[i:i + args.chunk]) for i in range(0, len(audio), args.chunk)]
    out.append(enh.flush())
    elapsed = time.perf_counter() - t0
    enhanced = np.concatenate([np.asarray(o, dtype=np.float32).reshape(-1) for o in out])

    sf.write(args.output, enhanced, SAMPLE_RATE, subtype=sf.info(args.input).subtype)  # input's format
    dur = len(audio) / SAMPLE_RATE
    print(f"{args.output}: {len(enhanced) / SAMPLE_RATE:.2f} s written; processed {dur:.2f} s of audio "
          f"in {elapsed:.2f} s (real-time factor {elapsed / max(dur, 1e-9):.3f}, "
          f"{'CPU' if args.cpu else 'Edge TPU'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
