"""Tests for tinyse_tf._tf: TensorFlow starts without its CUDA probe lines on a machine without a
driver, and every other line it writes still reaches stderr."""
import os
import subprocess
import sys

import pytest

from tinyse_tf import _tf

NO_DRIVER = ("I0000 00:00:1796032795.557229    2775 cudart_stub.cc:31] Could not find cuda drivers "
             "on your machine, GPU will not be used.\n")
PREAMBLE = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n")
CUINIT = ("E0000 00:00:1796032803.911821    2775 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
REAL = "E0000 00:00:1796032803.911900    2775 op_kernel.cc:1857] OP_REQUIRES failed: a real error\n"


def test_probe_lines_go_only_when_tensorflow_found_no_driver():
    text = PREAMBLE + NO_DRIVER + "a Python warning\n" + PREAMBLE + NO_DRIVER + CUINIT + REAL
    assert _tf.without_cuda_probe(text) == "a Python warning\n" + REAL
    with_driver = PREAMBLE + CUINIT + REAL  # a driver that fails: a real error, kept
    assert _tf.without_cuda_probe(with_driver) == with_driver


def test_quiet_probe_writes_other_native_lines_back(capfd, monkeypatch):
    monkeypatch.setattr(_tf, "DRIVER_PATHS", ())  # as on a machine without a driver
    monkeypatch.delenv("TINYSE_DEBUG", raising=False)
    with _tf._quiet_cuda_probe():
        os.write(2, (PREAMBLE + NO_DRIVER + CUINIT + REAL).encode())
        print("python stderr", file=sys.stderr)
    # (pytest captures sys.stderr apart from fd 2, so the two lines' order is not checked)
    assert sorted(capfd.readouterr().err.splitlines(keepends=True)) == [REAL, "python stderr\n"]


def test_quiet_probe_is_off_with_tinyse_debug(capfd, monkeypatch):
    monkeypatch.setattr(_tf, "DRIVER_PATHS", ())
    monkeypatch.setenv("TINYSE_DEBUG", "1")
    with _tf._quiet_cuda_probe():
        os.write(2, (NO_DRIVER + CUINIT).encode())
    assert capfd.readouterr().err == NO_DRIVER + CUINIT


@pytest.mark.skipif(any(os.path.exists(p) for p in _tf.DRIVER_PATHS),
                    reason="an NVIDIA driver is present: the probe is not filtered there")
def test_cpu_only_start_prints_no_cuda_probe():
    """What every recipe and CLI run does first: import TensorFlow through the package, an op."""
    env = {k: v for k, v in os.environ.items() if k not in ("TINYSE_DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    proc = subprocess.run([sys.executable, "-c", "from tinyse_tf._tf import tf; "
                           "print(float(tf.reduce_sum(tf.ones(3))))"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "3.0\n"
    for word in ("cuInit", "cuda drivers", "CUDA error", "absl::InitializeLog"):
        assert word not in proc.stderr, proc.stderr
