"""The ``tinyse`` command line: every command as a subprocess, bad inputs with their one-line
messages, exit codes, atomic writes.

Models: a tiny untrained ``student_30k`` (frame_ln) saved as .keras once per session, and its
float32 streaming .tflite exported once through ``tinyse export`` (most enhance tests use the
.tflite: no TensorFlow start-up in the subprocess, about 1 s each).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ENV = {k: v for k, v in os.environ.items() if k != "TINYSE_DEBUG"}
ENV["TF_CPP_MIN_LOG_LEVEL"] = "2"


def tinyse(*args, cwd=None, timeout=300):
    """Run ``python -m tinyse_tf.cli ARGS``; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "tinyse_tf.cli", *map(str, args)], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def err_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line_error(proc, *needles, code=2, cmd="enhance"):
    lines = err_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"tinyse {cmd}: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def speechy(sr: int, seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Harmonic bursts in noise, [n] or [n, channels] float32 at ``sr``."""
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    x = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6))
    x = 0.2 * x * (np.sin(2 * np.pi * 2.5 * t) > 0) + 0.03 * rng.standard_normal(n)
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x * (1 - 0.1 * c) for c in range(channels)], 1)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """``{"keras": student_30k.keras, "tflite": its float32 streaming export, "dir": folder}``."""
    from tinyse_tf.models import build_cruse

    d = tmp_path_factory.mktemp("models")
    model = build_cruse("student_30k", norm="frame_ln", seed=0)
    model.save(d / "student_30k.keras")
    out = {"keras": d / "student_30k.keras", "dir": d}
    # The package's own export step: a failure here is a failure of every test that uses it
    # (reported as an error with the command's stderr), never a skip.
    proc = tinyse("export", out["keras"], "-o", d / "export")
    if proc.returncode != 0:
        pytest.fail(f"`tinyse export` exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}",
                    pytrace=False)
    out["export_proc"] = proc
    out["tflite"] = d / "export" / "student_30k_stream_float32.tflite"
    return out


@pytest.fixture(scope="session")
def tflite(models):
    return models["tflite"]


@pytest.fixture(scope="session")
def wrong_int8_tflite(tmp_path_factory):
    """A full-int8 .tflite with the right tensor names but features/mask of 40 bins, not 80."""
    from tinyse_tf._tf import keras, tf

    f = keras.Input((1, 40, 1), batch_size=1, name="features")
    s = keras.Input((4,), batch_size=1, name="gru_state0")
    m = keras.layers.Activation("sigmoid", name="mask")(keras.layers.Dense(1)(f))
    so = keras.layers.Activation("linear", name="gru_state0_out")(keras.layers.Dense(4)(s))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model([f, s], [m, so]))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: (
        {"features": rng.random((1, 1, 40, 1), np.float32),
         "gru_state0": rng.random((1, 4), np.float32)} for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("wrong") / "wrong_int8.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter and tf.lite.Interpreter deprecation notes
        path.write_bytes(conv.convert())
    return path


# --------------------------------------------------------------------------- help, start-up
def test_help_lists_commands_and_exit_codes_without_tensorflow():
    proc = tinyse("--help")
    assert proc.returncode == 0
    for cmd in ("adapt", "enhance", "evaluate", "export", "edgetpu-check", "info", "train"):
        assert cmd in proc.stdout
    assert "exit status" in proc.stdout and "130" in proc.stdout
    code = ("import sys; from tinyse_tf.cli import build_parser; build_parser(); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')]")
    assert subprocess.run([sys.executable, "-c", code], env=ENV).returncode == 0


@pytest.mark.parametrize("cmd,needle", [("adapt", "--noise"), ("enhance", "--overwrite"), ("evaluate", "--noisy"),
                                        ("export", "--representative"), ("info", "--frames"),
                                        ("edgetpu-check", "--json"), ("train", "--preset")])
def test_every_command_has_help(cmd, needle):
    proc = tinyse(cmd, "--help")
    assert proc.returncode == 0, proc.stderr
    assert needle in proc.stdout


def test_console_script_and_usage_errors():
    exe = shutil.which("tinyse")
    if exe is None:
        pytest.skip("the tinyse console script is not on PATH (pip install -e .)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0 and proc.stdout.startswith("tinyse ")
    assert tinyse().returncode == 2  # no command: help on stderr
    assert tinyse("enhance", "x.wav").returncode == 2  # -o and --model missing (argparse)
    assert tinyse("frobnicate").returncode == 2


# --------------------------------------------------------------------------- enhance: works
CASES = {  # name: (rate, seconds, channels, kind)
    "16k": (16000, 1.3, 1, None),
    "8k": (8000, 1.1, 1, None),
    "48k": (48000, 2.0, 1, None),  # 96,000 frames: more than one read block
    "6ch": (44100, 0.8, 6, None),
    "silent": (16000, 0.77, 1, "silent"),
    "clipped": (16000, 1.0, 1, "clipped"),
}


def _write_case(folder: Path, name: str) -> Path:
    rate, seconds, channels, kind = CASES[name]
    x = speechy(rate, seconds, channels=channels)
    if kind == "silent":
        x = np.zeros_like(x)
    elif kind == "clipped":
        x = np.clip(30 * x, -1.0, 1.0)
    path = folder / f"{name}.wav"
    sf.write(path, x, rate, subtype="PCM_16")
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_enhance_works_at_any_rate_and_channel_count(tflite, tmp_path, name):
    src = _write_case(tmp_path, name)
    proc = tinyse("enhance", src, "-o", tmp_path / "out", "--model", tflite)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = tmp_path / "out" / src.name
    y, rate = sf.read(out, always_2d=True)
    info = sf.info(src)
    assert rate == info.samplerate and y.shape == (info.frames, 1)
    assert np.all(np.isfinite(y))
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    if name == "6ch":
        assert err_lines(proc) == [f"tinyse enhance: note: {src}: 6 channels, downmixed to mono "
                                   "(the output is mono)"]
    else:
        assert err_lines(proc) == []
    if name == "silent":
        assert np.all(y == 0)
    elif name != "clipped":  # latency compensated: best alignment with the input at lag 0
        x = sf.read(src, always_2d=True)[0].mean(1)
        lags = range(-40, 41)
        corr = [np.dot(x[max(0, -k):len(x) - max(0, k)], y[max(0, k):len(y) - max(0, -k), 0])
                for k in lags]
        assert list(lags)[int(np.argmax(corr))] == 0


def test_tflite_output_equals_streaming_enhancer(tflite, tmp_path):
    from tinyse_tf.runtime import StreamingEnhancer

    x = speechy(16000, 1.7, seed=3)
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    assert tinyse("enhance", tmp_path / "x.wav", "-o", tmp_path / "o", "-m", tflite).returncode == 0
    y, _ = sf.read(tmp_path / "o" / "x.wav", dtype="float32")
    assert sf.info(tmp_path / "o" / "x.wav").subtype == "FLOAT"  # the input's sample format
    np.testing.assert_allclose(y, StreamingEnhancer(tflite).enhance(x), atol=1e-6)


def test_keras_model_offline_and_streaming_paths_agree(models, tmp_path):
    """A .keras model: one call (short file) and the single-frame graph (forced by
    --offline-max-seconds 0) give the same output; with the exported .tflite too."""
    src = tmp_path / "in" / "deep" / "x.flac"
    src.parent.mkdir(parents=True)
    sf.write(src, speechy(22050, 1.2, seed=4), 22050, subtype="PCM_24")
    outs = {}
    for tag, extra in (("offline", []), ("stream", ["--offline-max-seconds", "0"])):
        proc = tinyse("enhance", tmp_path / "in", "-o", tmp_path / tag, "-m", models["keras"],
                      *extra)
        assert proc.returncode == 0 and err_lines(proc) == [], proc.stderr
        outs[tag], rate = sf.read(tmp_path / tag / "deep" / "x.flac")  # the tree is mirrored
        assert rate == 22050 and outs[tag].shape == (sf.info(src).frames,)
    np.testing.assert_allclose(outs["offline"], outs["stream"], atol=2e-4)
    assert tinyse("enhance", src, "-o", tmp_path / "t", "-m", models["tflite"]).returncode == 0
    np.testing.assert_allclose(sf.read(tmp_path / "t" / "x.flac")[0], outs["offline"], atol=2e-4)


# --------------------------------------------------------------------------- enhance: bad input
def _bad_file(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.{'flac' if 'flac' in kind else 'wav'}"
    if kind == "truncated_flac":
        sf.write(p, speechy(16000, 5.0), 16000)
        p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])
    elif kind == "zero_length":
        sf.write(p, np.zeros(0, np.float32), 16000)
    elif kind == "not_audio":
        p.write_text("this is a text file with a .wav name\n")
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind in ("truncated", "header_only"):
        sf.write(p, speechy(16000, 1.0), 16000)
        data = p.read_bytes()
        p.write_bytes(data[:len(data) // 2] if kind == "truncated" else data[:30])
    elif kind in ("nan", "inf"):
        x = speechy(16000, 0.5)
        x[1234] = np.nan if kind == "nan" else np.inf
        sf.write(p, x, 16000, subtype="FLOAT")
    return p


BAD_FILES = {
    "zero_length": "zero-length audio (valid header, no samples); re-export",
    "not_audio": "not readable as audio (Format not recognised)",
    "empty": "empty file (0 bytes)",
    "truncated": "truncated WAV: the header announces 32000 bytes of audio but the file holds",
    "header_only": "not readable as audio (Error in WAV file. No 'data' chunk marker)",
    "truncated_flac": "corrupt audio data (flac decoder lost sync); re-export it",
    "nan": "contains NaN or Inf samples (first at sample 1234)",
    "inf": "contains NaN or Inf samples (first at sample 1234)",
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_enhance_bad_audio_file_is_one_line_exit_2(tflite, tmp_path, kind):
    src = _bad_file(tmp_path, kind)
    proc = tinyse("enhance", src, "-o", tmp_path / "out", "-m", tflite)
    line = assert_one_line_error(proc, f"{src}: ", BAD_FILES[kind])
    assert "; " in line.split(BAD_FILES[kind], 1)[1] or "; " in line  # says what to do
    assert not any((tmp_path / "out").rglob("*")), "a failed file left output behind"


def test_enhance_missing_input_and_folder_without_audio(tmp_path):
    # Both are refused before the model is loaded (the model path need only exist).
    model = tmp_path / "m.keras"
    model.write_text("x")
    assert_one_line_error(tinyse("enhance", tmp_path / "nope.wav", "-o", tmp_path / "o",
                                 "-m", model), "nope.wav: no such file or folder")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no audio here")
    assert_one_line_error(tinyse("enhance", tmp_path / "docs", "-o", tmp_path / "o", "-m", model),
                          "docs: no .wav or .flac files in this folder")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind,needle", [
    ("missing", "model file not found"),
    ("text.keras", "not a loadable Keras model"),
    ("text.tflite", "not a readable TFLite model"),
    ("empty.keras", "empty file (0 bytes)"),
    ("model.onnx", "unknown model type '.onnx'"),
    ("wrong_int8", "I/O contract does not match a tinyse_tf streaming model: input 'features' "
                   "has shape [1, 1, 40, 1], expected [1, 1, 80, 1]"),
])
def test_enhance_bad_model_is_one_line_exit_2(tmp_path, kind, needle, request):
    src = _write_case(tmp_path, "16k")
    if kind == "missing":
        model = tmp_path / "missing.keras"
    elif kind == "wrong_int8":
        model = request.getfixturevalue("wrong_int8_tflite")
    else:
        model = tmp_path / kind
        model.write_text("" if kind.startswith("empty") else "not a model at all\n")
    proc = tinyse("enhance", src, "-o", tmp_path / "out", "-m", model)
    assert_one_line_error(proc, f"{model}: ", needle)
    assert not list((tmp_path / "out").rglob("*.wav"))


def test_enhance_unwritable_output_dir(tflite, tmp_path):
    """Root ignores permission bits, so the unwritable places are a path under a regular file
    and a new folder under /proc."""
    src = _write_case(tmp_path, "16k")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(tinyse("enhance", src, "-o", blocker / "out", "-m", tflite),
                          f"{blocker / 'out'}: cannot create the output folder: a part of the "
                          "path is a file")
    assert_one_line_error(tinyse("enhance", src, "-o", blocker, "-m", tflite),
                          f"{blocker}: exists and is not a folder")
    if Path("/proc/self").exists():
        assert_one_line_error(tinyse("enhance", src, "-o", "/proc/tinyse-test/out", "-m", tflite),
                              "/proc/tinyse-test/out: cannot create the output folder")


def test_enhance_never_overwrites_inputs_or_outputs(tflite, tmp_path):
    src = _write_case(tmp_path, "16k")
    before = src.read_bytes()
    assert_one_line_error(tinyse("enhance", src, "-o", tmp_path, "-m", tflite),
                          "is an input file; choose another -o")
    assert_one_line_error(tinyse("enhance", tmp_path, "-o", tmp_path, "-m", tflite),
                          "is an input file")
    assert src.read_bytes() == before
    out = tmp_path / "out"
    assert tinyse("enhance", src, "-o", out, "-m", tflite).returncode == 0
    (out / "16k.wav").write_bytes(b"keep me")
    assert_one_line_error(tinyse("enhance", src, "-o", out, "-m", tflite),
                          f"{out / '16k.wav'}: output file already exists; pass --overwrite")
    assert (out / "16k.wav").read_bytes() == b"keep me"
    assert tinyse("enhance", src, "-o", out, "-m", tflite, "--skip-existing").returncode == 0
    assert (out / "16k.wav").read_bytes() == b"keep me"
    assert tinyse("enhance", src, "-o", out, "-m", tflite, "--overwrite").returncode == 0
    assert sf.info(out / "16k.wav").frames == sf.info(src).frames


def test_enhance_output_inside_input_folder_skips_earlier_outputs(tflite, tmp_path):
    _write_case(tmp_path, "16k")
    out = tmp_path / "enhanced"
    assert tinyse("enhance", tmp_path, "-o", out, "-m", tflite).returncode == 0
    proc = tinyse("enhance", tmp_path, "-o", out, "-m", tflite, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.rglob("*.wav")) == ["16k.wav"]


def test_enhance_batch_with_failures_processes_the_rest(tflite, tmp_path):
    src = tmp_path / "batch"
    (src / "sub").mkdir(parents=True)
    good = [_write_case(src, "16k"), _write_case(src / "sub", "8k")]
    bad = [_bad_file(src, "not_audio"), _bad_file(src / "sub", "nan"),
           _bad_file(src, "zero_length")]
    proc = tinyse("enhance", src, "-o", tmp_path / "out", "-m", tflite)
    assert proc.returncode == 1, proc.stderr
    lines = err_lines(proc)
    for b in bad:
        assert sum(line.startswith(f"tinyse enhance: error: {b}: ") for line in lines) == 1
    assert lines[-1] == f"tinyse enhance: error: 2 of 5 files enhanced into {tmp_path / 'out'}; " \
                        "3 failed (named above)"
    for g in good:
        assert (tmp_path / "out" / g.relative_to(src)).is_file()
    for b in bad:
        assert not (tmp_path / "out" / b.relative_to(src)).exists()
    assert not [p for p in (tmp_path / "out").rglob(".*")]


def test_enhance_disk_full_leaves_no_partial_file(tflite, tmp_path, monkeypatch, capsys):
    """In-process: the second block written raises ENOSPC; the output and its temporary file are
    gone, and the batch stops (every later file would fail the same way)."""
    from tinyse_tf.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"long{i}.wav", speechy(16000, 9.0, seed=i), 16000)  # 3 read blocks
    calls = {"n": 0}
    real_write = sf.SoundFile.write

    def failing_write(self, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", failing_write)
    code = main(["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(tflite)])
    err = capsys.readouterr().err
    assert code == 2, err  # nothing was written
    out0 = tmp_path / "out" / "long0.wav"
    assert f"tinyse enhance: error: {out0}: cannot write the output (No space left " \
           "on device); free disk space or choose another -o; no partial file was left" in err
    assert "stopping: the 2 remaining file(s) would fail the same way" in err
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []  # no output, no temporary file


# --------------------------------------------------------------------------- evaluate
@pytest.fixture()
def eval_dirs(tmp_path):
    """clean/, noisy/ (48 kHz, stereo for one), enhanced/ = a mild filter of noisy."""
    rng = np.random.default_rng(1)
    dirs = {k: tmp_path / k for k in ("clean", "noisy", "enhanced")}
    for i, rel in enumerate(["a.wav", "sub/b.wav", "c.flac"]):
        clean = speechy(16000, 2.0, seed=i)
        noisy = clean + 0.1 * rng.standard_normal(clean.size).astype(np.float32)
        enhanced = 0.7 * noisy + 0.3 * clean
        for k, x in (("clean", clean), ("noisy", noisy), ("enhanced", enhanced)):
            (dirs[k] / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(dirs[k] / rel, x, 16000)
    x, _ = sf.read(dirs["noisy"] / "a.wav")  # another rate and two channels: read as 16k mono
    import soxr

    sf.write(dirs["noisy"] / "a.wav", np.stack([soxr.resample(x, 16000, 48000)] * 2, 1), 48000)
    sf.write(dirs["enhanced"] / "extra.wav", speechy(16000, 1.0), 16000)  # no clean: skipped
    return dirs


def test_evaluate_with_noisy_reports_delta(eval_dirs, tmp_path):
    proc = tinyse("evaluate", "--clean", eval_dirs["clean"], "--enhanced", eval_dirs["enhanced"],
                  "--noisy", eval_dirs["noisy"], "--metrics", "si_sdr", "estoi",
                  "-o", tmp_path / "rep", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert "SI-SDR (dB)" in proc.stdout and "Δ (enh - noisy)" in proc.stdout
    assert "1 enhanced file(s) have no clean counterpart" in proc.stderr
    import csv

    rows = list(csv.DictReader(open(tmp_path / "rep" / "metrics.csv")))
    assert sorted(r["file"] for r in rows) == ["a", "c", "sub/b"]
    for r in rows:
        assert float(r["delta.si_sdr"]) > 0 and r["errors"] == ""
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert doc["sides"] == ["noisy", "enhanced", "delta"]
    assert (tmp_path / "rep" / "summary.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert doc["summary"]["all"]["delta"]["si_sdr"]["n"] == 3
    # reports are not replaced silently
    again = tinyse("evaluate", "--clean", eval_dirs["clean"], "--enhanced", eval_dirs["enhanced"],
                   "-o", tmp_path / "rep", "--metrics", "si_sdr", "--workers", "0")
    assert_one_line_error(again, "metrics.csv: already exists; pass --overwrite", cmd="evaluate")


def test_evaluate_without_noisy_reports_enhanced_only(eval_dirs, tmp_path):
    proc = tinyse("evaluate", "--clean", eval_dirs["clean"], "--enhanced", eval_dirs["enhanced"],
                  "--metrics", "si_sdr", "-o", tmp_path / "rep", "--workers", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "Δ" not in proc.stdout and "no improvement columns" in proc.stdout
    header = (tmp_path / "rep" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "enhanced.si_sdr" in header
    assert not [h for h in header if h.startswith(("noisy.", "delta."))]
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert list(doc["summary"]["all"]) == ["enhanced"]


def test_evaluate_bad_input(eval_dirs, tmp_path):
    bad = eval_dirs["enhanced"] / "sub" / "b.wav"
    bad.write_text("garbage")
    proc = tinyse("evaluate", "--clean", eval_dirs["clean"], "--enhanced", eval_dirs["enhanced"],
                  "--metrics", "si_sdr", "--workers", "0")
    assert proc.returncode == 1
    assert f"tinyse evaluate: error: {bad}: input: cannot use audio file {bad}" in proc.stderr
    assert_one_line_error(tinyse("evaluate", "--clean", tmp_path / "nope", "--enhanced",
                                 eval_dirs["enhanced"]), "nope: clean folder not found",
                          cmd="evaluate")
    other = tmp_path / "other"
    other.mkdir()
    sf.write(other / "zzz.wav", speechy(16000, 0.5), 16000)
    assert_one_line_error(tinyse("evaluate", "--clean", eval_dirs["clean"], "--enhanced", other),
                          "no enhanced file has a clean reference at the same relative path",
                          cmd="evaluate")


# --------------------------------------------------------------------------- export, info, ...
def test_export_float32_and_refusals(models, tmp_path):
    proc = models["export_proc"]
    assert proc.stdout.startswith("float32 ") and "student_30k_stream_float32.tflite" in proc.stdout
    assert (models["tflite"].with_name("student_30k_stream_float32.io_contract.json")).is_file()
    assert_one_line_error(tinyse("export", models["keras"], "-o", models["dir"] / "export"),
                          "already exists; pass --overwrite", cmd="export")
    assert_one_line_error(tinyse("export", models["keras"], "-o", tmp_path, "--int8", "ptq"),
                          "--int8 ptq needs --representative DIR", cmd="export")
    assert_one_line_error(tinyse("export", models["tflite"], "-o", tmp_path),
                          "already a .tflite file", cmd="export")


def test_export_int8_refuses_cln_model(tmp_path):
    from tinyse_tf.models import build_cruse

    build_cruse("student_30k", norm="cln").save(tmp_path / "cln.keras")
    rep = tmp_path / "rep"
    rep.mkdir()
    sf.write(rep / "n.wav", speechy(16000, 1.0), 16000)
    proc = tinyse("export", tmp_path / "cln.keras", "-o", tmp_path / "x", "--int8", "ptq",
                  "--representative", rep)
    assert_one_line_error(proc, "int8 export refused: norm='cln'", cmd="export")
    assert not list((tmp_path / "x").glob("*.tflite"))


def test_info_keras_and_tflite(models, tflite):
    from tinyse_tf.export.tflite_ops import MACS_RULE, read_model, weight_macs

    macs = sum(weight_macs(read_model(tflite)).values())  # the one counter, on the file itself
    proc = tinyse("info", models["keras"], "--frames", "30")
    assert proc.returncode == 0 and err_lines(proc) == [], proc.stderr
    out = proc.stdout
    for needle in ("parameters  33,161", f"MACs/frame  {macs:,}", MACS_RULE, "32 ms algorithmic",
                   "hop         16 ms (256 samples)", "frame_ln", "us/frame"):
        assert needle in out, needle
    proc = tinyse("info", tflite, "--json", "--frames", "50")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["parameters"] == 33161 and facts["macs_per_frame"] == macs
    assert facts["norm"] == "frame_ln" and facts["algorithmic_latency_ms"] == 32.0
    assert facts["hop_ms"] == 16.0 and facts["timing"]["model"]["median_us"] > 0


def test_info_wrong_contract(wrong_int8_tflite):
    assert_one_line_error(tinyse("info", wrong_int8_tflite), "I/O contract does not match",
                          cmd="info")


def test_edgetpu_check_forwards(tflite, tmp_path):
    proc = tinyse("edgetpu-check", tflite)
    assert proc.returncode == 1  # a float32 file cannot run on the Edge TPU
    assert "NOT OK" in proc.stdout
    junk = tmp_path / "junk.tflite"
    junk.write_text("no flatbuffer")
    proc = tinyse("edgetpu-check", junk)
    assert proc.returncode == 2 and len(err_lines(proc)) == 1
    assert "edgetpu-check: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_train_forwards_arguments():
    proc = tinyse("train", "--preset", "no-such-preset")
    assert proc.returncode == 2
    assert "invalid choice: 'no-such-preset'" in proc.stderr


@pytest.mark.slow
def test_export_int8_ptq_qat_then_enhance_and_info(models, tmp_path):
    rep, noise = tmp_path / "rep", tmp_path / "noise"
    rep.mkdir()
    noise.mkdir()
    for i in range(3):
        sf.write(rep / f"n{i}.wav", speechy(16000, 2.0, seed=10 + i), 16000)
    sf.write(noise / "white.flac", 0.1 * np.random.default_rng(0).standard_normal(32000), 16000)
    proc = tinyse("export", models["keras"], "-o", tmp_path / "x", "--int8", "ptq", "--int8",
                  "qat", "--representative", rep, "--qat-speech", rep, "--qat-noise", noise,
                  "--qat-steps", "2", "--calibration-frames", "200", timeout=900)
    assert proc.returncode == 0, proc.stderr
    for method in ("ptq", "qat"):
        q = tmp_path / "x" / f"student_30k_stream_int8_{method}.tflite"
        assert q.is_file() and f"int8_{method}" in proc.stdout
        src = _write_case(tmp_path, "48k")
        out = tmp_path / f"o_{method}"
        assert tinyse("enhance", src, "-o", out, "-m", q).returncode == 0
        assert sf.info(out / "48k.wav").frames == sf.info(src).frames
        facts = json.loads(tinyse("info", q, "--json", "--frames", "50").stdout)
        assert f"full-int8 ({method})" in facts["kind"]
