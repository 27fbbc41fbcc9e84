"""The Edge TPU compile step (tinyse_tf.export.edgetpu: static check + edgetpu_compiler, exit
codes, log parser; edge/compile.py is its thin wrapper, run here as a script) and edge/
infer_coral.py (wav in, chunked stream, aligned wav out).

edgetpu_compiler is stood in for by small fake scripts (it only installs from Coral's apt
repository); the stream is stood in for by a delay line with StreamingEnhancer's real buffering
and latency, and once by the real StreamingEnhancer on a freshly exported float32 file.
"""
import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOP, LATENCY = 256, 256


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"edge_{name}", ROOT / "edge" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --- edge/compile.py ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    """A Dense + sigmoid model as full-int8 (passes the static check) and float32 (fails it)."""
    from tinyse_tf._tf import keras, tf

    inp = keras.Input((8,), batch_size=1)
    model = keras.Model(inp, keras.layers.Dense(4, activation="sigmoid")(inp))
    folder = tmp_path_factory.mktemp("edge")
    files = {}
    for kind in ("int8", "float"):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if kind == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([np.full((1, 8), v, np.float32)]
                                                   for v in np.linspace(-2, 2, 5))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        files[kind] = folder / f"dense_{kind}.tflite"
        files[kind].write_bytes(conv.convert())
    return files


# Modelled on edgetpu_compiler 16 output quoted in google-coral/edgetpu issues 342, 490, 671.
LOG_WITH_CPU = textwrap.dedent("""\
    Edge TPU Compiler version 16.0.384591198
    Started a compilation timeout timer of 180 seconds.

    Model compiled successfully in 312 ms.

    Input model: m_int8.tflite
    Input size: 120.55KiB
    Output model: out/m_int8_edgetpu.tflite
    Output size: 210.03KiB
    On-chip memory used for caching model parameters: 150.25KiB
    On-chip memory remaining for caching model parameters: 7.86MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 14
    Operation log: out/m_int8_edgetpu.log

    Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
    Number of operations that will run on Edge TPU: 10
    Number of operations that will run on CPU: 4

    Operator                       Count      Status

    FULLY_CONNECTED                4          Mapped to Edge TPU
    CONCATENATION                  2          Mapped to Edge TPU
    LOGISTIC                       4          Mapped to Edge TPU
    TRANSPOSE_CONV                 1          Operation is otherwise supported, but not mapped due to some unspecified limitation
    TANH                           3          More than one subgraph is not supported
    """)

LOG_ALL_MAPPED = textwrap.dedent("""\
    Edge TPU Compiler version 16.0.384591198
    Started a compilation timeout timer of 180 seconds.

    Model compiled successfully in 101 ms.

    Input model: m_int8.tflite
    Output model: out/m_int8_edgetpu.tflite
    Number of Edge TPU subgraphs: 1
    Total number of operations: 4
    Operation log: out/m_int8_edgetpu.log
    See the operation log file for individual operation details.

    Operator                       Count      Status

    CONV_2D                        1          Mapped to Edge TPU
    RESHAPE                        1          Mapped to Edge TPU
    FULLY_CONNECTED                1          Mapped to Edge TPU
    LOGISTIC                       1          Mapped to Edge TPU
    Compilation child process completed within timeout period.
    Compilation succeeded!
    """)

LOG_CRASH = "Edge TPU Compiler version 16.0.384591198\nInternal compiler error. Aborting!\n"


def test_parse_compiler_log():
    from tinyse_tf.export import edgetpu as mod
    log = mod.parse_compiler_log(LOG_WITH_CPU)
    assert log.compiled and log.version == "16.0.384591198"
    assert (log.edgetpu_ops, log.cpu_ops, log.total_ops, log.edgetpu_subgraphs) == (10, 4, 14, 1)
    assert log.output_model == "out/m_int8_edgetpu.tflite"
    assert len(log.rows) == 5 and log.rows[3][0] == "TRANSPOSE_CONV"
    assert log.rows[4] == ("TANH", 3, "More than one subgraph is not supported")
    assert not log.all_on_edgetpu

    log = mod.parse_compiler_log(LOG_ALL_MAPPED)  # no summary lines: counted from the table
    assert log.cpu_ops_summary is None and len(log.rows) == 4
    assert log.cpu_ops == 0 and log.all_on_edgetpu

    log = mod.parse_compiler_log(LOG_CRASH)
    assert not log.compiled and log.errors and log.cpu_ops is None


def _fake_compiler(folder, log_text, rc=0):
    """An edgetpu_compiler stand-in in ``folder``: prints ``log_text``, writes the .log and the
    compiled file like the real one, exits ``rc``."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "edgetpu_compiler"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import pathlib, sys
        args = sys.argv[1:]
        assert args[0] == "-s" and args[1] == "-o", args
        out, model = pathlib.Path(args[2]), pathlib.Path(args[3])
        text = {log_text!r}
        (out / (model.stem + "_edgetpu.log")).write_text(text)
        if {rc} == 0:
            (out / (model.stem + "_edgetpu.tflite")).write_bytes(model.read_bytes())
        print(text)
        sys.exit({rc})
        """))
    fake.chmod(0o755)
    return fake


# (model, fake compiler log or None for "not installed", compiler exit status, expected exit)
COMPILE_CASES = {
    "all_mapped": ("int8", LOG_ALL_MAPPED, 0, 0),
    "ops_on_cpu": ("int8", LOG_WITH_CPU, 0, 1),
    "compiler_crash": ("int8", LOG_CRASH, 1, 1),
    "compiler_overrules_static_check": ("float", LOG_ALL_MAPPED, 0, 0),
    "absent_static_ok": ("int8", None, None, 3),
    "absent_static_fails": ("float", None, None, 1),
}


@pytest.mark.parametrize("case", list(COMPILE_CASES))
def test_compile_exit_codes(tflite, tmp_path, monkeypatch, capsys, case):
    """Each exit status of the documented contract, with the compiler found on PATH (or not)."""
    from tinyse_tf.export import edgetpu as mod
    kind, log_text, rc, expected = COMPILE_CASES[case]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if log_text is not None:
        _fake_compiler(bin_dir, log_text, rc)
    monkeypatch.setenv("PATH", str(bin_dir))
    outdir = tmp_path / "out"
    assert mod.main([str(tflite[kind]), "-o", str(outdir)]) == expected
    out = capsys.readouterr().out
    assert "== static Edge TPU check ==" in out and "FULLY_CONNECTED" in out
    assert (outdir / f"dense_{kind}_edgetpu.tflite").is_file() == (rc == 0)  # as the compiler left it
    assert ("OK: every operation runs on the Edge TPU" in out) == (expected == 0)
    if log_text is None:
        assert "apt-get install edgetpu-compiler" in out and "nothing compiled" in out
        assert not outdir.exists()
    if case == "ops_on_cpu":
        assert "4 operation(s) will run on the CPU" in out
    if case == "compiler_crash":
        assert "edgetpu_compiler FAILED: Internal compiler error" in out
    if case == "compiler_overrules_static_check":
        assert "the static check disagreed" in out


def test_compile_ignores_a_stale_log(tflite, tmp_path, capsys):
    """A compiler that writes no .log this time is not judged by an earlier run's log."""
    from tinyse_tf.export import edgetpu as mod
    fake = tmp_path / "edgetpu_compiler"
    fake.write_text(f"#!{sys.executable}\nprint({LOG_ALL_MAPPED!r})\n")
    fake.chmod(0o755)
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "dense_int8_edgetpu.log").write_text(LOG_WITH_CPU)
    assert mod.main([str(tflite["int8"]), "-o", str(outdir), "--compiler", str(fake)]) == 0
    assert mod.main([str(tflite["int8"]), "-o", str(outdir),
                     "--compiler", str(tmp_path / "missing")]) == 1
    assert "could not run" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "garbage", "directory"])
def test_compile_bad_input_exit_2(tmp_path, capsys, kind):
    from tinyse_tf.export import edgetpu as mod
    path = tmp_path / "model.tflite"
    if kind == "garbage":
        path.write_bytes(b"this is not a flatbuffer" * 10)
    elif kind == "directory":
        path.mkdir()
    assert mod.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("edge/compile.py: error:") and str(path) in line


def test_compile_as_a_script_documents_and_returns_exit_3(tflite, tmp_path):
    """Run from the checkout as a user would, without the compiler on PATH."""
    script = ROOT / "edge" / "compile.py"
    env = dict(os.environ, PATH=str(tmp_path),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(*args):
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, env=env, timeout=120)

    p = run("--help")
    assert p.returncode == 0
    for code in "0123":
        assert f"\n  {code}  " in p.stdout, p.stdout
    assert "not installed" in p.stdout
    p = run(str(tflite["int8"]))
    assert p.returncode == 3, p.stdout + p.stderr
    assert "static check passed, not compiled" in p.stdout


def test_tinyse_export_target_edgetpu_compiles_an_int8_file(tflite, tmp_path):
    """The installed package's compile step (no edge/ folder needed): `tinyse export FILE
    --target edgetpu`, with the fake compiler on PATH, then without any compiler."""
    bin_dir = tmp_path / "bin"
    _fake_compiler(bin_dir, LOG_ALL_MAPPED)

    def run(path_dir, outdir, model="int8"):
        env = dict(os.environ, PATH=str(path_dir),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        return subprocess.run([sys.executable, "-m", "tinyse_tf.cli", "export",
                               str(tflite[model]), "-o", str(outdir), "--target", "edgetpu"],
                              capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)

    p = run(bin_dir, tmp_path / "out")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "dense_int8_edgetpu.tflite").is_file()
    assert "OK: every operation runs on the Edge TPU" in p.stdout
    p = run(tmp_path, tmp_path / "out2")  # no compiler: checked, not compiled, still exit 0
    assert p.returncode == 0, p.stderr
    assert "not compiled (edgetpu_compiler is not installed" in p.stderr
    assert not (tmp_path / "out2" / "dense_int8_edgetpu.tflite").exists()
    p = run(tmp_path, tmp_path / "out3", model="float")  # fails the static check: exit 1
    assert p.returncode == 1 and "static check FAILED" in p.stdout


# --- edge/infer_coral.py ----------------------------------------------------------------------------

class DelayStream:
    """Stand-in for StreamingEnhancer with its real timing: input buffered to 256-sample hops,
    output = input delayed by ``latency_samples``; ``flush`` pushes zeros until every input
    sample has left, so all outputs together are ``latency_samples + n`` samples long."""

    latency_samples = LATENCY
    created = []

    def __init__(self, model_path, edgetpu=False):
        DelayStream.created.append((model_path, edgetpu))
        self.reset()

    def reset(self):
        self._line = np.zeros(self.latency_samples, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.n_in = self.n_out = 0

    def process(self, chunk):
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        self.n_in += chunk.size
        buf = np.concatenate([self._pending, chunk])
        n = buf.size // HOP * HOP
        self._pending = buf[n:]
        line = np.concatenate([self._line, buf[:n]])
        self._line = line[n:]
        self.n_out += n
        return line[:n]

    def flush(self):
        need = self.n_in + self.latency_samples - self.n_out
        out = self.process(np.zeros(-(-need // HOP) * HOP - self._pending.size, np.float32))
        self.reset()
        return out[:need]


@pytest.fixture
def infer(monkeypatch):
    """edge/infer_coral.py with tinyse_tf.StreamingEnhancer replaced by DelayStream."""
    import tinyse_tf

    DelayStream.created.clear()
    monkeypatch.setattr(tinyse_tf, "StreamingEnhancer", DelayStream, raising=False)
    return _load_script("infer_coral")


def _write_input(path, n, subtype="FLOAT", rate=16000, seed=0):
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32)
    sf.write(path, x, rate, subtype=subtype)
    return sf.read(path, dtype="float32")[0]  # as stored (PCM_16 rounds)


@pytest.mark.parametrize("n,chunk,subtype", [
    (1000, 256, "FLOAT"), (1000, 300, "FLOAT"), (1000, 1, "FLOAT"), (1000, 100, "PCM_16"),
    (1000, 5000, "FLOAT"), (100, 7, "FLOAT"), (4096, 1000, "PCM_16")])
def test_infer_coral_output_aligned_and_same_length(infer, tmp_path, n, chunk, subtype):
    x = _write_input(tmp_path / "in.wav", n, subtype)
    before = (tmp_path / "in.wav").read_bytes()
    assert infer.main(["m_edgetpu.tflite", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                       "--chunk", str(chunk)]) == 0
    assert DelayStream.created == [("m_edgetpu.tflite", True)]
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 16000 and sf.info(tmp_path / "out.wav").subtype == subtype
    np.testing.assert_array_equal(y, x)  # aligned, same length, nothing lost or added
    assert (tmp_path / "in.wav").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # no temp left


def _error_line(capsys):
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("infer_coral.py: error:")
    return line


def test_infer_coral_bad_input_exit_2(infer, tmp_path, capsys):
    _write_input(tmp_path / "in8k.wav", 1000, rate=8000)
    (tmp_path / "garbage.wav").write_bytes(b"not audio" * 50)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    _write_input(tmp_path / "in.wav", 1000)
    inputs = sorted(tmp_path.iterdir())
    before = {p: p.read_bytes() for p in inputs}
    out = str(tmp_path / "out.wav")
    for args, says in [
            ([str(tmp_path / "in8k.wav"), out, "--cpu"], "8000 Hz"),
            ([str(tmp_path / "missing.wav"), out], "no such file"),
            ([str(tmp_path / "garbage.wav"), out], "cannot read audio"),
            ([str(tmp_path / "empty.wav"), out], "no samples"),
            ([str(tmp_path / "in.wav"), str(tmp_path / "in.wav")], "is the input file"),
            ([str(tmp_path / "in.wav"), str(tmp_path / "out.xyz")], "unknown audio suffix")]:
        assert infer.main(["m.tflite", *args]) == 2, args
        assert says in _error_line(capsys)
    assert sorted(tmp_path.iterdir()) == inputs  # nothing written
    assert all(p.read_bytes() == b for p, b in before.items())
    assert DelayStream.created == []  # rejected before loading the model


def test_infer_coral_model_load_failure_exit_2(tmp_path, capsys):
    mod = _load_script("infer_coral")
    _write_input(tmp_path / "in.wav", 1000)
    assert mod.main([str(tmp_path / "none.tflite"), str(tmp_path / "in.wav"),
                     str(tmp_path / "out.wav"), "--cpu"]) == 2
    assert "cannot load" in _error_line(capsys) and not (tmp_path / "out.wav").exists()


def test_infer_coral_writes_atomically(infer, tmp_path, monkeypatch, capsys):
    """A write that fails half-way leaves the previous output intact and no temporary file."""
    _write_input(tmp_path / "in.wav", 1000)
    (tmp_path / "out.wav").write_bytes(b"previous result")
    real_write = sf.write

    def failing_write(file, data, *args, **kwargs):
        real_write(file, data[:10], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", failing_write)
    assert infer.main(["m.tflite", str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 2
    assert "disk full" in _error_line(capsys)
    assert (tmp_path / "out.wav").read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_infer_coral_real_stream_equals_enhance(tmp_path):
    """The real StreamingEnhancer on an exported float32 file: the script's output is
    ``StreamingEnhancer.enhance`` (aligned, same length), and the stand-in above times its
    process/flush outputs exactly like it."""
    from tinyse_tf import StreamingEnhancer
    from tinyse_tf.export.quantize import export_model
    from tinyse_tf.models import build_cruse

    path = export_model(build_cruse("student", norm="frame_ln", seed=0), tmp_path, "s",
                        int8=())["float32"]
    x = _write_input(tmp_path / "in.wav", 16000 // 2 + 37)
    mod = _load_script("infer_coral")
    assert mod.main([str(path), str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--cpu",
                     "--chunk", "300"]) == 0
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    ref = StreamingEnhancer(path).enhance(x)
    assert y.shape == x.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6)

    real, fake = StreamingEnhancer(path), DelayStream("", False)
    assert real.latency_samples == fake.latency_samples
    for chunk in (1, 100, 256, 300, 700):
        pieces = [x[i:i + chunk] for i in range(0, x.size, chunk)]
        assert ([real.process(p).size for p in pieces] + [real.flush().size]
                == [fake.process(p).size for p in pieces] + [fake.flush().size]), chunk
