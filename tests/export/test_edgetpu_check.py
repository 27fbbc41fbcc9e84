"""Static Edge TPU checker (tinyse_tf.export.edgetpu_check). The edge/ scripts that use it
(compile.py, infer_coral.py) are tested in tests/test_edge_scripts.py.

Tiny Keras models are converted in-process once per module; the command line is exercised as a
subprocess for the pass, float-fail and bad-file cases.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tinyse_tf.export.edgetpu_check import (
    R_DIMS, R_DYNAMIC, R_NOT_LISTED, R_TCONV_STRIDE, check_model, format_table, main)

ROOT = pathlib.Path(__file__).resolve().parents[2]
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
