"""Native log lines kept off the terminal: C++ code of TensorFlow, TFLite and TFLite Micro writes
to file descriptor 2 directly, past ``sys.stderr``, so it is captured at the descriptor.

A bottom-layer module (standard library only): the CLI and the export code both use it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def debug() -> bool:
    """``TINYSE_DEBUG=1``: show tracebacks and TensorFlow's own log lines."""
    return os.environ.get("TINYSE_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def native_stderr_captured():
    """Send file descriptor 2 to a temporary file for the block (C++ log lines of TensorFlow and
    TFLite go there directly, past ``sys.stderr``). Yields a callable returning the captured text.
    Disabled by ``TINYSE_DEBUG=1``."""
    if debug():
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    tmp = tempfile.TemporaryFile(mode="w+b")
    os.dup2(tmp.fileno(), 2)
    try:
        yield lambda: (tmp.seek(0), tmp.read().decode("utf-8", "replace"))[1]
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        tmp.close()
