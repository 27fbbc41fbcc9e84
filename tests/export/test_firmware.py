"""The firmware harness (tinyse_tf.export.firmware, ``tinyse export --target micro --firmware``):
built from TensorFlow Lite Micro's sources (../shared/tflm) and run, its output checked against
the Python TFLM interpreter of the tflite-micro wheel.

Default run: the host build (g++, TFLM reference kernels) of the shipped int8 student, exactly as
a user gets it from the command line: masks and states bit for bit. The TFLM library is compiled
once per test session into a temporary folder (only the runtime and the model's kernels, -O1,
a precompiled header) and its time printed. ``slow``: the Cortex-M4F build (CMSIS-NN kernels)
under QEMU: bit-exact too (measured over 1,250 hops of a real recording, docs/MICRO.md).
"""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tflite_micro")  # a test dependency (pyproject's test extra): CI has it

from tinyse_tf.export.firmware import check_run, parse_run, pcm16

SHARED = Path(__file__).resolve().parents[3] / "shared"
TFLM_TAR = SHARED / "tflm" / "tflm-src.tar.xz"
HOPS = 32


def noisy_input(path: Path, seconds: float) -> str:
    """Write a noisy recording to ``path``: a test speaker + a test noise at 5 dB from
    ../shared/audio when present, else a synthetic voiced signal in noise; returns which."""
    from tinyse_tf.export.calibration import noisy_mixtures

    speech = sorted((SHARED / "audio" / "speech" / "test").glob("*.flac"))
    noise = sorted((SHARED / "audio" / "noise" / "test").glob("*.flac"))
    if speech and noise:
        audio, where = noisy_mixtures(speech[:1], noise[:1], 1, seconds, 5.0, seed=0)[0][0], "real"
    else:
        rng = np.random.default_rng(1)
        t = np.arange(int(seconds * 16000)) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
                 + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        where = "synthetic"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return where


@pytest.fixture(scope="session")
def tflm(tmp_path_factory):
    """An unpacked TFLM tree and an object folder shared by every build of the session."""
    if not TFLM_TAR.is_file():
        pytest.skip("../shared/tflm/tflm-src.tar.xz is absent (TensorFlow Lite Micro sources)")
    for tool in ("make", "g++", "tar"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the host firmware build needs it")
    root = tmp_path_factory.mktemp("tflm")
    subprocess.run(["tar", "-xJf", TFLM_TAR, "-C", root], check=True)
    return {"tree": root / "tflm", "obj": root / "obj"}


def exported_firmware(tmp_path: Path, hops: int) -> tuple[Path, str]:
    """``tinyse export student --target micro --firmware`` into ``tmp_path``: (firmware dir,
    audio kind)."""
    where = noisy_input(tmp_path / "noisy.wav", hops * 256 / 16000 + 0.1)
    proc = subprocess.run(
        [sys.executable, "-m", "tinyse_tf.cli", "export", "student:int8", "-o", tmp_path / "micro",
         "--target", "micro", "--name", "student", "--firmware", tmp_path / "fw",
         "--firmware-audio", tmp_path / "noisy.wav", "--firmware-hops", str(hops)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "firmware  " in proc.stdout and "make -C" in proc.stdout, proc.stdout
    return tmp_path / "fw", where


def build_and_run(fw: Path, tflm: dict, target: str, timeout: float) -> dict:
    """``make run`` in ``fw`` with the session's TFLM tree and objects; the parsed output.

    The library at -O1 with a precompiled header (PCH=1): the cheapest build measured
    (docs/MICRO.md, "Build cost"); the outputs compared are integer kernels, the same at any -O.
    """
    start = time.perf_counter()
    proc = subprocess.run(["make", "-C", fw, "-j2", "run", f"TARGET={target}",
                           f"TFLM={tflm['tree']}", f"OBJ={tflm['obj']}", "LIB_OPT=-O1", "PCH=1"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    print(f"\nbuild + run for {target}: {time.perf_counter() - start:.1f} s wall")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return parse_run(proc.stdout)


def test_bad_firmware_input_is_refused_in_one_line_before_anything_is_written(tmp_path):
    sf.write(tmp_path / "short.wav", np.zeros(8000, np.float32), 16000)
    for extra, needle in ((["--firmware", tmp_path / "fw"], "--firmware needs --firmware-audio"),
                          (["--firmware", tmp_path / "fw", "--firmware-audio",
                            tmp_path / "short.wav"], "shorter than --firmware-hops 125")):
        proc = subprocess.run([sys.executable, "-m", "tinyse_tf.cli", "export", "student:int8",
                               "-o", tmp_path / "out", "--target", "micro", *map(str, extra)],
                              capture_output=True, text=True, timeout=300, check=False)
        # One error line (a note may first name the shipped file the name resolved to).
        lines = [line for line in proc.stderr.splitlines() if line.strip() and " note: " not in line]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "fw").exists()


def test_host_firmware_is_bit_exact_with_the_python_tflm_interpreter(tflm, tmp_path):
    from tinyse_tf import pretrained_file

    fw, where = exported_firmware(tmp_path, HOPS)
    run = build_and_run(fw, tflm, "host", timeout=1800)
    assert run["header"]["target"] == "host" and run["mask"].shape == (HOPS, 80)
    samples = pcm16(sf.read(tmp_path / "noisy.wav", dtype="float32")[0])
    result = check_run(pretrained_file("student", "int8").read_bytes(), run, samples)
    print(f"host firmware vs Python ({where} audio): {result}")
    assert result["mask_bit_exact"] and result["states_bit_exact"], result
    # two float front ends (kissfft vs numpy): features may round to the other int8 value
    assert result["features_max_lsb"] <= 1 and result["features_differing"] < 0.01, result
    assert result["audio_max_lsb"] <= 2, result
    assert 0 < run["arena_used"] <= int(run["header"]["arena_bytes"])


@pytest.mark.slow
def test_cortex_m4_firmware_is_bit_exact_with_the_python_tflm_interpreter(tflm, tmp_path):
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install gcc-arm-none-eabi "
                        "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev qemu-system-arm)")
    from tinyse_tf import pretrained_file

    fw, where = exported_firmware(tmp_path, HOPS)
    run = build_and_run(fw, tflm, "cortex-m4", timeout=7200)
    samples = pcm16(sf.read(tmp_path / "noisy.wav", dtype="float32")[0])
    result = check_run(pretrained_file("student", "int8").read_bytes(), run, samples)
    print(f"Cortex-M4F firmware vs Python ({where} audio): {result}")
    assert result["mask_bit_exact"] and result["states_bit_exact"], result
    assert result["features_max_lsb"] <= 1 and result["features_differing"] < 0.01, result
    assert run["stack_used"] > 0 and run["calibration"]["ticks"] > 0
