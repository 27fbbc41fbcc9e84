"""Static Edge TPU checker (tinyse_tf.export.edgetpu_check) and edge/compile.py's log parser.

Tiny Keras models are converted in-process once per module; the command line is exercised as a
subprocess for the pass, float-fail and bad-file cases.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinyse_tf.export.edgetpu_check import (
    R_DIMS, R_DYNAMIC, R_NOT_LISTED, R_TCONV_STRIDE, check_model, format_table, main)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE = "tinyse_tf.export.edgetpu_check"


def _convert(model, path, int8, sample_shape):
    from tinyse_tf._tf import tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        def rep():
            rng = np.random.default_rng(0)
            for _ in range(4):
                yield [rng.standard_normal(sample_shape).astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyse_tf._tf import keras

    d = tmp_path_factory.mktemp("edgetpu")
    out = {}

    inp = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4, activation="sigmoid")(x)
    cnn = keras.Model(inp, x)
    out["int8"] = _convert(cnn, d / "cnn_int8.tflite", True, (1, 8, 8, 1))
    out["float"] = _convert(cnn, d / "cnn_float.tflite", False, None)

    inp = keras.Input((8,), batch_size=1)
    x = keras.layers.Dense(8)(inp)
    x = keras.layers.Lambda(lambda t: keras.backend.exp(t))(x)
    x = keras.layers.Dense(4)(x)
    out["exp"] = _convert(keras.Model(inp, x), d / "exp_int8.tflite", True, (1, 8))

    inp = keras.Input((4, 3), batch_size=1)
    out["gru"] = _convert(keras.Model(inp, keras.layers.GRU(4)(inp)), d / "gru_float.tflite",
                          False, None)

    inp = keras.Input((8,))  # batch None -> shape_signature [-1, 8]
    x = keras.layers.Dense(4, activation="sigmoid")(inp)
    out["dynamic"] = _convert(keras.Model(inp, x), d / "dyn_int8.tflite", True, (1, 8))

    inp = keras.Input((3, 4, 5), batch_size=2)  # a [2, 3, 4, 5] activation: 4 dims > 1
    out["4d"] = _convert(keras.Model(inp, keras.layers.Dense(6)(inp)), d / "4d_int8.tflite",
                         True, (2, 3, 4, 5))

    for s in (1, 2):
        inp = keras.Input((1, 4, 2), batch_size=1)
        x = keras.layers.Conv2DTranspose(2, (1, 4), strides=(1, s))(inp)
        out[f"tconv{s}"] = _convert(keras.Model(inp, x), d / f"tconv{s}_int8.tflite", True,
                                    (1, 1, 4, 2))
    return out


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", MODULE, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def _row(report, op):
    return [r for r in report.rows if r.op == op]


# (a) full-int8 Conv2D + Dense + sigmoid passes
def test_int8_model_passes_cli(models):
    p = _cli(models["int8"])
    assert p.returncode == 0, p.stdout + p.stderr
    for op in ("CONV_2D", "FULLY_CONNECTED", "LOGISTIC"):
        assert op in p.stdout
    assert "| op" in p.stdout and "Edge TPU" in p.stdout and "OK" in p.stdout
    report = check_model(models["int8"])
    assert report.ok and report.subgraph_count == 1 and report.cpu_op_count == 0
    assert report.first_failing_op is None and not report.problems
    assert all(r.mappable and r.status == "yes" for r in report.rows)


# (b) the same model in float fails on dtype
def test_float_model_fails_on_dtype_cli(models):
    p = _cli(models["float"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FLOAT32 tensor (needs int8/uint8)" in p.stdout
    report = check_model(models["float"])
    assert not report.ok and report.first_failing_op == 0
    assert report.cpu_op_count == report.op_count


# (c) off-list op: named, first failing index, later supported ops fall back to the CPU
def test_unsupported_op_named_and_fallback(models):
    report = check_model(models["exp"])
    assert not report.ok
    assert report.first_failing_op == 1 and report.first_failing_op_name == "EXP"
    (exp,) = _row(report, "EXP")
    assert not exp.mappable and exp.reason == R_NOT_LISTED and exp.status == "no"
    fcs = {r.status: r for r in _row(report, "FULLY_CONNECTED")}
    assert set(fcs) == {"yes", "fallback"}  # the FC before EXP maps, the one after does not
    assert "after the first unsupported op (#1)" in fcs["fallback"].reason
    assert report.cpu_op_count == 2
    assert "EXP" in format_table(report)


def test_keras_gru_while_loop_flags_subgraphs(models):
    report = check_model(models["gru"])
    assert not report.ok and report.subgraph_count > 1
    (w,) = _row(report, "WHILE")
    assert R_NOT_LISTED in w.reason
    assert any("subgraphs" in p and "control flow" in p for p in report.problems)
    assert any(c.subgraph > 0 and c.runs_on == "CPU" for c in report.ops)


# (d) dynamic batch
def test_dynamic_batch_flagged(models):
    report = check_model(models["dynamic"])
    assert not report.ok
    assert any(R_DYNAMIC in r.reason for r in report.rows)
    assert any("-1" in p for p in report.problems)


# (e) 4-D activation with 4 dims > 1
def test_four_large_dims_flagged(models):
    report = check_model(models["4d"])
    assert not report.ok
    assert any(R_DIMS in r.reason for r in report.rows)
    assert any("[2, 3, 4, 5]" in p for p in report.problems)


def test_transpose_conv_stride(models):
    assert check_model(models["tconv1"]).ok
    report = check_model(models["tconv2"])
    (row,) = _row(report, "TRANSPOSE_CONV")
    assert not report.ok and row.reason == R_TCONV_STRIDE
    assert "509, 684" in row.reason


# (f) garbage and missing files: exit 2, one line, no traceback
@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_bad_files_exit_2_cli(tmp_path, kind):
    path = tmp_path / "model.tflite"
    if kind == "garbage":
        path.write_bytes(b"this is not a flatbuffer" * 10)
    p = _cli(path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stdout == ""
    ours = [ln for ln in p.stderr.splitlines() if "error:" in ln and str(path) in ln]
    assert len(ours) == 1, p.stderr  # other stderr lines are TensorFlow's import banner
    assert ("No such file" in ours[0]) if kind == "missing" else ("TFL3" in ours[0])


def test_truncated_and_directory_in_process(models, tmp_path, capsys):
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(models["int8"].read_bytes()[:200])
    assert main([str(trunc)]) == 2
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("error:" in e for e in err)


def test_json_output(models, capsys):
    assert main([str(models["exp"]), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is False and d["first_failing_op"] == 1 and d["subgraph_count"] == 1
    assert {r["status"] for r in d["rows"]} == {"yes", "no", "fallback"}
    assert d["ops"][1]["op"] == "EXP" and d["ops"][1]["runs_on"] == "CPU"


# --- edge/compile.py ------------------------------------------------------------------------------

def _load_compile():
    spec = importlib.util.spec_from_file_location("edge_compile", ROOT / "edge" / "compile.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


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


def test_parse_compiler_log():
    mod = _load_compile()
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

    log = mod.parse_compiler_log("Edge TPU Compiler version 16.0.384591198\n"
                                 "Internal compiler error. Aborting!\n")
    assert not log.compiled and log.errors and log.cpu_ops is None


def test_compile_without_compiler(models, monkeypatch, capsys):
    mod = _load_compile()
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    assert mod.main([str(models["int8"])]) == 0
    out = capsys.readouterr().out
    assert "apt-get install edgetpu-compiler" in out and "CONV_2D" in out
    assert mod.main([str(models["float"])]) == 1
    assert mod.main(["/nonexistent/model.tflite"]) == 2


@pytest.mark.parametrize("log_name,expected", [("LOG_ALL_MAPPED", 0), ("LOG_WITH_CPU", 1)])
def test_compile_with_fake_compiler(models, tmp_path, capsys, log_name, expected):
    """A stand-in edgetpu_compiler that prints a canned log and writes the .log file."""
    mod = _load_compile()
    log_text = globals()[log_name]
    fake = tmp_path / "edgetpu_compiler"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import pathlib, sys
        args = sys.argv[1:]
        assert args[0] == "-s" and args[1] == "-o", args
        out, model = pathlib.Path(args[2]), pathlib.Path(args[3])
        text = {log_text!r}
        (out / (model.stem + "_edgetpu.log")).write_text(text)
        (out / (model.stem + "_edgetpu.tflite")).write_bytes(model.read_bytes())
        print(text)
        """))
    fake.chmod(0o755)
    outdir = tmp_path / "out"
    assert mod.main([str(models["int8"]), "-o", str(outdir), "--compiler", str(fake)]) == expected
    out = capsys.readouterr().out
    assert (outdir / "cnn_int8_edgetpu.log").is_file()
    assert ("OK: every operation runs on the Edge TPU" in out) == (expected == 0)
    if expected:
        assert "4 operation(s) will run on the CPU" in out


# --- edge/infer_coral.py ----------------------------------------------------------------------------

def test_infer_coral_plumbing(tmp_path, monkeypatch):
    """The script's own work (wav in, chunked stream, wav out) with a stand-in StreamingEnhancer."""
    import soundfile as sf

    import tinyse_tf

    calls = {}

    class FakeEnhancer:
        def __init__(self, model_path, edgetpu=False):
            calls["init"] = (model_path, edgetpu)
            self.n = 0

        def process(self, chunk):
            self.n += len(chunk)
            return 0.5 * np.asarray(chunk)

        def flush(self):
            return np.zeros(3, np.float32)

        def reset(self):
            pass

    monkeypatch.setattr(tinyse_tf, "StreamingEnhancer", FakeEnhancer, raising=False)
    spec = importlib.util.spec_from_file_location("edge_infer", ROOT / "edge" / "infer_coral.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    x = np.random.default_rng(0).uniform(-0.5, 0.5, 1000).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    assert mod.main(["m_edgetpu.tflite", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                     "--chunk", "300"]) == 0
    assert calls["init"] == ("m_edgetpu.tflite", True)
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 16000 and len(y) == 1003
    np.testing.assert_allclose(y[:1000], 0.5 * x, atol=1e-6)

    sf.write(tmp_path / "in8k.wav", x, 8000)
    assert mod.main(["m.tflite", str(tmp_path / "in8k.wav"), str(tmp_path / "o.wav"), "--cpu"]) == 2
