"""tinyse_tf.export.micro and ``tinyse export --target micro``: TFLite Micro artefacts of the int8
streaming file, checked with the TFLM interpreter of the tflite-micro wheel (a test dependency).

One random-weight 62 k student (trained-like norm gains) goes through the real command line once
per module (``tinyse export MODEL.keras --target micro --representative DIR``): C array == the
.tflite bytes, header constants == the file's quantization, resolver == the file's ops, front-end
tables == tinyse_tf.dsp, the measured arena is the smallest that works and fits the report, and a
noisy recording of >= 1,000 hops streamed through TFLM stays within the stated LSB bound of
LiteRT's ``StreamingEnhancer`` (real recordings from ../shared/audio when present, else synthetic).
"""
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tflite_micro")  # a test dependency (pyproject's test extra): CI has it

from tinyse_tf.export.micro import (ARENA_ALIGNMENT, MICRO_SUFFIXES, TFLM_RESOLVER_METHODS,
                                    MicroExportError, MicroFrameModel, _runs_with_arena,
                                    check_micro_model, compare_with_litert, export_micro,
                                    parse_c_array)
from tinyse_tf.export.tflite_ops import read_model_bytes

SHARED_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "audio"
#: Mask difference TFLM vs LiteRT's default kernels (StreamingEnhancer), closed loop: see
#: docs/MICRO.md. Per operator, with identical inputs, CONV_2D, FULLY_CONNECTED, MUL and MEAN
#: round differently by at most 1 LSB; the frame layer norms and the fed-back states carry it on.
STREAM_MAX_LSB = 16
STREAM_MEAN_LSB = 8.0
ROUNDING_OPS = {"CONV_2D", "FULLY_CONNECTED", "MUL", "MEAN"}
#: The shipped (trained) student, closed loop, TFLM vs LiteRT's default kernels: docs/MICRO.md
#: (shipped student: measured max 76 LSB on real recordings, 53 on random features; mean 18.6
#: and 17.3). The bound depends on the weights: re-measure it when the shipped model changes.
SHIPPED_MAX_LSB = 76
SHIPPED_MEAN_LSB = 19.0


def tinyse(*args):
    return subprocess.run([sys.executable, "-m", "tinyse_tf.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def one_line_error(proc, *needles):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("tinyse export: error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def noisy_recording(seconds=17.0):
    """(noisy [n], where): a test speaker + a test noise at 5 dB when ../shared/audio exists."""
    from tinyse_tf.export.calibration import noisy_mixtures

    speech = sorted((SHARED_AUDIO / "speech" / "test").glob("*.flac"))
    noise = sorted((SHARED_AUDIO / "noise" / "test").glob("*.flac"))
    if speech and noise:
        return noisy_mixtures(speech[:1], noise[:1], 1, seconds, 5.0, seed=0)[0][0], "real"
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 16000)) / 16000
    voiced = np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (0.3 * voiced + 0.05 * rng.standard_normal(t.size)).astype(np.float32), "synthetic"


# --------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """The command line's artefacts of a 62 k student: ``{"dir", "tflite", "proc"}``."""
    from tinyse_tf.models import build_cruse

    d = tmp_path_factory.mktemp("micro")
    model = build_cruse("student", norm="frame_ln", seed=3)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-like norm weights
        if layer.name.endswith("_norm"):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    model.save(d / "student.keras")
    rep = d / "rep"
    rep.mkdir()
    sf.write(rep / "noisy.wav", noisy_recording(6.0)[0], 16000)
    proc = tinyse("export", d / "student.keras", "-o", d / "out", "--target", "micro",
                  "--representative", rep, "--calibration-frames", "300")
    if proc.returncode != 0:
        pytest.fail(f"`tinyse export --target micro` exited {proc.returncode}:\n"
                    f"{proc.stderr.strip()[-3000:]}", pytrace=False)
    return {"dir": d / "out", "tflite": d / "out" / "student_stream_int8_ptq.tflite", "proc": proc}


def _read(micro, suffix):
    return (micro["dir"] / f"student_stream_int8_ptq{suffix}").read_text()


# --------------------------------------------------------------------------- artefacts
def test_command_writes_every_artefact(micro):
    names = {p.name for p in micro["dir"].iterdir()}
    stem = "student_stream_int8_ptq"
    assert {stem + s for s in MICRO_SUFFIXES} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left
    assert "micro     " in micro["proc"].stdout and "arena" in micro["proc"].stdout


def test_c_array_is_the_tflite_file(micro):
    flat = micro["tflite"].read_bytes()
    source = _read(micro, "_model_data.cc")
    data = bytes(int(v, 16) for v in parse_c_array(source, "g_student_stream_int8_ptq_model_data"))
    assert data == flat
    assert f"g_student_stream_int8_ptq_model_data_len = {len(flat)};" in source
    assert "alignas(16) const unsigned char" in source


def test_header_constants_match_the_file(micro):
    """Positions, sizes, scales and zero points in the header are those TFLM sees."""
    from tflite_micro import runtime

    header = _read(micro, "_model_data.h")
    interp = runtime.Interpreter.from_bytes(micro["tflite"].read_bytes())
    facts = json.loads(_read(micro, "_micro.json"))
    for r in facts["io"]:
        c = "kStudentStreamInt8Ptq" + ("In" if r["io"] == "input" else "Out") + "".join(
            w[:1].upper() + w[1:] for w in r["name"].split("_"))
        d = (interp.get_input_details if r["io"] == "input" else interp.get_output_details)(
            r["position"])
        q = d["quantization_parameters"]
        assert f"{c}Index = {r['position']};" in header
        assert f"{c}Bytes = {int(np.prod(d['shape']))};" in header
        assert list(d["shape"]) == r["shape"]
        scale = float(re.search(rf"{c}Scale = ([^f]+)f;", header).group(1))
        assert scale == pytest.approx(float(q["scales"][0]), rel=1e-7)
        assert f"{c}ZeroPoint = {int(q['zero_points'][0])};" in header
    assert "kStudentStreamInt8PtqStateCount = 9;" in header


def test_resolver_lists_exactly_the_files_ops(micro):
    ops = {op.display_name for op in read_model_bytes(micro["tflite"].read_bytes()).main.ops}
    text = _read(micro, "_op_resolver.h")
    assert f"tflite::MicroMutableOpResolver<{len(ops)}>" in text
    assert sorted(re.findall(r"resolver\.(Add\w+)\(\)", text)) == sorted(
        TFLM_RESOLVER_METHODS[op] for op in ops)


def test_frontend_tables_are_the_package_matrices(micro):
    from tinyse_tf.dsp import mel_matrix, mel_to_linear_matrix, sqrt_hann

    source = _read(micro, "_frontend.cc")

    def array(label, dtype):
        return np.array([dtype(v.rstrip("f")) for v in
                         parse_c_array(source, f"g_student_stream_int8_ptq_{label}")])

    np.testing.assert_array_equal(array("window", float).astype(np.float32), sqrt_hann())
    for label, dense in (("mel", mel_matrix().T), ("mask", mel_to_linear_matrix().T)):
        rebuilt = np.zeros_like(dense)
        start, length, offset = (array(f"{label}_{k}", int) for k in ("start", "length", "offset"))
        weights = array(f"{label}_weights", float).astype(np.float32)
        for row, (s, n, o) in enumerate(zip(start, length, offset)):
            rebuilt[row, s:s + n] = weights[o:o + n]
        np.testing.assert_array_equal(rebuilt, dense)


# --------------------------------------------------------------------------- measurements
def test_arena_is_measured_and_fits_the_report(micro):
    facts = json.loads(_read(micro, "_micro.json"))
    flat = micro["tflite"].read_bytes()
    measured = facts["arena_bytes_measured"]
    assert _runs_with_arena(flat, measured)
    assert not _runs_with_arena(flat, measured - ARENA_ALIGNMENT)  # the smallest that works
    assert measured <= facts["arena_bytes"] <= 1.05 * measured + 1024
    assert facts["flash_bytes"] == facts["model_bytes"] == len(flat)
    # the targets for the 62 k student
    assert facts["flash_bytes"] <= 160 * 1024 and facts["arena_bytes"] <= 64 * 1024
    assert facts["macs_per_hop_by_op"]["CONV_2D"] > facts["macs_per_hop_by_op"]["FULLY_CONNECTED"]
    assert facts["ops"] == dict(sorted(
        Counter(op.display_name for op in read_model_bytes(flat).main.ops).items()))


def test_stream_matches_litert_within_the_stated_bound(micro):
    """>= 1,000 hops closed loop in TFLM and in LiteRT (StreamingEnhancer's kernels)."""
    audio, source = noisy_recording()
    result = compare_with_litert(micro["tflite"], audio)
    print(f"\nTFLM vs LiteRT int8 mask ({source} audio): {result}")
    assert result["hops"] >= 1000
    assert result["max_lsb"] <= STREAM_MAX_LSB and result["mean_lsb"] <= STREAM_MEAN_LSB, result
    differing = json.loads(_read(micro, "_micro.json"))["litert_kernel_differences"]
    assert set(differing) <= ROUNDING_OPS, differing
    assert all(v["max_lsb"] == 1 for v in differing.values()), differing


def test_tflm_differs_from_litert_reference_kernels_only_in_fully_connected(micro):
    """Against LiteRT's reference kernels (BUILTIN_REF), the family TFLM's kernels come from,
    only FULLY_CONNECTED differs, by 1 LSB: TFLM requantizes it with double rounding, LiteRT's
    reference kernel with single rounding (benchmarks/micro_fidelity.py reproduces both)."""
    differing = json.loads(_read(micro, "_micro.json"))["litert_reference_kernel_differences"]
    assert set(differing) <= {"FULLY_CONNECTED"}, differing
    assert all(v["max_lsb"] == 1 for v in differing.values()), differing


def test_shipped_student_stream_vs_litert_within_the_stated_bound():
    """The shipped int8 student, 300 frames of random int8 features, states fed back in each
    runtime: TFLM's masks stay within the bound docs/MICRO.md states for it (SHIPPED_MAX_LSB,
    SHIPPED_MEAN_LSB; the measured values are noted beside them)."""
    from tinyse_tf import pretrained_file
    from tinyse_tf.runtime import run_frames
    from tinyse_tf.runtime.tflite import TfliteFrameModel

    path = pretrained_file("student", "int8")
    micro = MicroFrameModel(path)
    q = np.random.default_rng(0).integers(-128, 128, (300, 80)).astype(np.int8)
    features = micro.inputs["features"].dequantize(q)
    masks = [run_frames(m, features) for m in (micro, TfliteFrameModel(path))]
    lsb = np.rint(np.abs(masks[0] - masks[1]) / micro.outputs["mask"].scale).max(axis=1)
    print(f"\nshipped student, TFLM vs LiteRT on random features: max {lsb.max():.0f} LSB, "
          f"mean {lsb.mean():.2f}")
    assert lsb.max() <= SHIPPED_MAX_LSB and lsb.mean() <= SHIPPED_MEAN_LSB, (lsb.max(), lsb.mean())


def test_micro_stream_enhances_like_litert(micro):
    """The audio out of FrameStream(MicroFrameModel) is the LiteRT stream's, up to those LSBs."""
    from tinyse_tf.runtime import FrameStream, StreamingEnhancer

    audio = noisy_recording(2.0)[0]
    a = FrameStream(MicroFrameModel(micro["tflite"])).enhance(audio)
    b = StreamingEnhancer(micro["tflite"]).enhance(audio)
    assert a.shape == audio.shape
    err = np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2))
    assert err < 0.05, err


# --------------------------------------------------------------------------- refusals
def test_float_tflite_is_refused_in_one_line(micro, tmp_path):
    flt = micro["dir"] / "student_stream_float32.tflite"
    one_line_error(tinyse("export", flt, "-o", tmp_path / "x", "--target", "micro"),
                   str(flt), "not a full-int8 model", "*_stream_int8_ptq.tflite")
    assert not (tmp_path / "x").exists()
    with pytest.raises(MicroExportError, match="FLOAT32"):
        export_micro(flt, tmp_path)


def _with_op_tflm_lacks(flat: bytes) -> bytes:
    """The file with its TANH operators recoded as REVERSE_V2, which TFLM has no kernel for."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flat, 0))
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.TANH:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.REVERSE_V2
    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_op_without_tflm_kernel_is_refused_in_one_line(micro, tmp_path):
    bad = tmp_path / "reverse.tflite"
    bad.write_bytes(_with_op_tflm_lacks(micro["tflite"].read_bytes()))
    one_line_error(tinyse("export", bad, "-o", tmp_path / "x", "--target", "micro"),
                   str(bad), "operator REVERSE_V2 has no TensorFlow Lite for Microcontrollers "
                   "kernel")
    assert not (tmp_path / "x").exists()
    with pytest.raises(MicroExportError, match="REVERSE_V2"):
        check_micro_model(bad.read_bytes(), bad)


def test_cln_model_is_refused_in_one_line(tmp_path):
    from tinyse_tf.models import build_cruse

    build_cruse("student_30k", norm="cln").save(tmp_path / "cln.keras")
    rep = tmp_path / "rep"
    rep.mkdir()
    sf.write(rep / "n.wav", noisy_recording(1.0)[0], 16000)
    one_line_error(tinyse("export", tmp_path / "cln.keras", "-o", tmp_path / "x", "--target",
                          "micro", "--representative", rep),
                   "--target micro runs int8 only", "norm='cln'", "norm='frame_ln'")
    assert not (tmp_path / "x").exists()


def test_existing_artefacts_need_overwrite(micro):
    one_line_error(tinyse("export", micro["tflite"], "-o", micro["dir"], "--target", "micro"),
                   "_model_data.h: already exists; pass --overwrite")
