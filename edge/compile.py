"""Check a full-int8 .tflite for the Edge TPU, then compile it with edgetpu_compiler if present.

    python edge/compile.py MODEL_int8.tflite [-o OUTDIR] [--compiler PATH]

A thin wrapper of the package's compile step, ``tinyse_tf.export.edgetpu`` (exit statuses and
the parsed compiler output are documented there); ``tinyse export MODEL --target edgetpu`` runs
the same step from an installed package.
"""
import sys
from pathlib import Path

try:
    from tinyse_tf.export.edgetpu import main
except ImportError:  # run from a checkout without installing: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinyse_tf.export.edgetpu import main

if __name__ == "__main__":
    sys.exit(main())
