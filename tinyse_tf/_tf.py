"""Single import point for TensorFlow and Keras 2 (tf_keras).

tensorflow-model-optimization only accepts tf_keras models, so the legacy Keras must be selected
before TensorFlow is first imported. Every module of the package imports ``tf`` and ``keras`` from
here, never directly.

On a machine without an NVIDIA driver, TensorFlow's CUDA probe writes "Could not find cuda
drivers" (twice, on import) and an ``E0000 ... failed call to cuInit: ... CUDA error`` line (on
device discovery) straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. There the
import and the device discovery run with descriptor 2 captured, and every captured line except
those probe lines is written back. Where a driver is present (or ``TINYSE_DEBUG=1``) nothing is
captured: a failing cuInit on a GPU machine is a real error.
"""
import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING off; errors stay

#: The lines of TensorFlow's CUDA probe when no driver is found, and absl's notice before them.
CUDA_PROBE_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\S+ \S+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
    r"|\S+ \S+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: ")
#: NVIDIA driver interfaces (Linux, WSL2): if one exists the probe is left alone.
DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")


def without_cuda_probe(text: str) -> str:
    """``text`` without TensorFlow's no-driver CUDA probe lines; unchanged unless TensorFlow said
    it found no CUDA driver (then a cuInit failure is that and nothing else)."""
    if "Could not find cuda drivers on your machine" not in text:
        return text
    return "".join(line for line in text.splitlines(keepends=True)
                   if not CUDA_PROBE_LINE.match(line))


@contextlib.contextmanager
def _quiet_cuda_probe():
    """Capture file descriptor 2 for the block, then write back ``without_cuda_probe`` of it;
    a no-op where an NVIDIA driver exists, ``TINYSE_DEBUG=1`` is set, or fd 2 is not open."""
    if (os.environ.get("TINYSE_DEBUG", "") not in ("", "0")
            or any(os.path.exists(p) for p in DRIVER_PATHS)):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = without_cuda_probe(tmp.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


with _quiet_cuda_probe():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices("GPU")  # the cuInit call; does not initialise the runtime

__all__ = ["tf", "keras"]
