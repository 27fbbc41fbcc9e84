"""TFLite conversion of the streaming graph: float32, full-int8 PTQ and full-int8 QAT.

Every file is converted from the single-frame graph of the model
(``tinyse_tf.models.streaming.build_streaming_model``, whose ops are all on the Edge TPU list):

* ``float32``: plain conversion (any norm, cLN included).
* ``int8 PTQ``: the float streaming ``.tflite`` is run in closed loop over real noisy audio
  (``calibration.closed_loop_samples``); those (features, states) frames calibrate every tensor;
  the model is quantized with int8 inputs, outputs and ops (``TFLITE_BUILTINS_INT8``).
* ``int8 QAT``: the *sequence* model is fine-tuned with quantization-aware training
  (``tinyse_tf.export.qat``); its float weights go into a new streaming graph, which is calibrated
  as above, and then the activation ranges QAT learned replace the calibrated ones on every
  tensor that has a counterpart in the sequence model (conv, norm, activation, skip, add and GRU
  outputs, and the features input). Tensors QAT does not model (inside the norms and the GRU
  gates) keep their calibrated ranges.

Two details make the int8 files drivable by a frame loop on any runtime:

* each state input gets exactly the quantization of its ``<state>_out`` output (the calibrated
  range of the input is replaced by the output's before quantization), so states are fed back as
  int8 bytes with no requantization;
* the result is checked, not trusted: ``verify_full_int8`` reads every tensor type.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from tinyse_tf._tf import keras, tf
from tinyse_tf.atomic import atomic_open, atomic_write_json
from tinyse_tf.export.contract import contract_path, io_contract, verify_full_int8
from tinyse_tf.export._tf_internals import calibrate_only, layer_output_tensors, mlir_quantize
from tinyse_tf.export.tflite_ops import (MACS_RULE, model_object, object_bytes, read_model_bytes,
                                         signature_tensors, weight_macs)
from tinyse_tf.models.config import check_int8_exportable
from tinyse_tf.models.cruse import config_from_model
from tinyse_tf.models.streaming import OUTPUT_SUFFIX, build_streaming_model, state_specs
from tinyse_tf.runtime.contract import same_quantization
from tinyse_tf.runtime.tflite import make_interpreter

INT8_METHODS = ("ptq", "qat")
_QMIN, _QMAX = -128, 127


# --------------------------------------------------------------------------- conversion
def convert_float(stream_model: keras.Model) -> bytes:
    """Float32 ``.tflite`` of a single-frame Keras graph."""
    return tf.lite.TFLiteConverter.from_keras_model(stream_model).convert()


def calibrate(stream_model: keras.Model, samples) -> bytes:
    """Float ``.tflite`` of ``stream_model`` whose tensors carry calibrated min/max statistics.

    Args:
        samples: representative inputs, a list of ``{input name: array}`` dicts
            (``calibration.closed_loop_samples``).
    """
    samples = list(samples)
    if not samples:
        raise ValueError("int8 calibration needs at least one representative sample")

    def gen():
        for s in samples:
            yield {k: np.asarray(v, np.float32) for k, v in s.items()}

    conv = tf.lite.TFLiteConverter.from_keras_model(stream_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    calibrate_only(conv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter deprecation, used by the calibrator
        return conv.convert()


def _set_range(tensor, lo: float, hi: float):
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)  # int8 must represent 0 exactly
    tensor.quantization.min = np.array([lo], np.float32)
    tensor.quantization.max = np.array([hi], np.float32)


def _int8_range(scale: float, zero_point: int) -> tuple[float, float]:
    return (_QMIN - zero_point) * scale, (_QMAX - zero_point) * scale


class StateAlignmentError(RuntimeError):
    """The int8 model's state inputs could not be given their outputs' exact quantization, so
    states could not be fed back byte for byte (as ``MicroFrameModel`` and the C header assume)."""


#: Quantization passes before giving up: normally 2 (quantize, align state inputs, quantize).
ALIGNMENT_PASSES = 3


def _state_mismatches(flat: bytes, state_inputs) -> dict:
    """``{state input: (scale, zero point) of its <state>_out output}`` for every state whose
    input quantization differs from its output's in the quantized model ``flat``."""
    runner = make_interpreter(flat).get_signature_runner()
    qin, qout = runner.get_input_details(), runner.get_output_details()
    mismatched = {}
    for name in state_inputs:
        (si, zi), (so, zo) = qin[name]["quantization"], qout[f"{name}_out"]["quantization"]
        if not same_quantization(si, zi, so, zo):
            mismatched[name] = (so, zo)
    return mismatched


def quantize_calibrated(calibrated: bytes, tensor_ranges: dict | None = None) -> bytes:
    """Full-int8 model from a calibrated one, optionally overriding tensor ranges.

    Args:
        calibrated: output of ``calibrate``.
        tensor_ranges: ``{tensor index: (min, max)}`` replacing calibrated statistics
            (QAT ranges).
    Every state input is then given its output's quantization (second quantization pass), so
    that int8 states round-trip unchanged; ``StateAlignmentError`` if they still differ after
    ``ALIGNMENT_PASSES`` passes. ``verify_full_int8`` is asserted.
    """
    obj = model_object(calibrated)
    tensors = obj.subgraphs[0].tensors
    for t, (lo, hi) in (tensor_ranges or {}).items():
        _set_range(tensors[t], lo, hi)
    ins, outs = signature_tensors(obj)
    states = [n for n in ins if n != "features" and f"{n}_out" in outs]
    for _ in range(ALIGNMENT_PASSES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected"
            flat = mlir_quantize(object_bytes(obj), tf.int8, tf.int8)
        mismatched = _state_mismatches(flat, states)
        if not mismatched:
            break
        for name, (scale, zero_point) in mismatched.items():
            _set_range(tensors[ins[name]], *_int8_range(scale, zero_point))
    else:
        name, (scale, zero_point) = next(iter(mismatched.items()))
        raise StateAlignmentError(
            f"int8 export: after {ALIGNMENT_PASSES} quantization passes {len(mismatched)} state "
            f"input(s) still differ from their outputs' quantization (first: {name}, output "
            f"scale {scale:.6g}, zero point {zero_point}), so states could not be fed back byte "
            "for byte; report this with the model (the converter changed how it quantizes "
            "state inputs)")
    verify_full_int8(flat)
    return flat


def convert_int8(stream_model: keras.Model, samples, tensor_ranges=None) -> bytes:
    """Full-int8 ``.tflite`` of a single-frame graph: ``calibrate`` then ``quantize_calibrated``.

    ``tensor_ranges`` may also be a callable ``calibrated bytes -> {tensor index: (min, max)}``.
    """
    calibrated = calibrate(stream_model, samples)
    if callable(tensor_ranges):
        tensor_ranges = tensor_ranges(calibrated)
    return quantize_calibrated(calibrated, tensor_ranges)


# --------------------------------------------------------------------------- QAT range transfer
def qat_tensor_ranges(calibrated: bytes, layer_ranges: dict, state_sources: dict) -> dict:
    """Map QAT ranges of sequence-model layers onto tensors of a calibrated streaming model.

    Args:
        layer_ranges: ``{sequence layer name or "features": (min, max)}`` from
            ``tinyse_tf.export.qat.qat_ranges``.
        state_sources: ``{state name: sequence layer whose output it holds}`` (the
            ``state_sources`` of ``build_streaming_model``): those layers' outputs are also state
            outputs, which the converter renames, so they are found through the signature.
    Returns:
        ``{tensor index: (min, max)}`` for ``quantize_calibrated``.
    """
    obj = model_object(calibrated)
    ins, outs = signature_tensors(obj)
    via_signature = {"features": [ins["features"]]}
    for state, layer in state_sources.items():
        via_signature.setdefault(layer, []).append(outs[state + OUTPUT_SUFFIX])
    result = {}
    for layer, rng in layer_ranges.items():
        targets = via_signature.get(layer) or layer_output_tensors(calibrated, layer)
        for t in targets:
            result[t] = rng
    return result


# --------------------------------------------------------------------------- export
def _op_counts(flat: bytes) -> dict:
    return dict(Counter(op.display_name for op in read_model_bytes(flat).main.ops))


def _edgetpu_summary(path) -> dict | None:
    try:
        from tinyse_tf.export.edgetpu_check import check_model
    except ImportError:  # pragma: no cover - the checker is optional
        return None
    report = check_model(path)
    return {"ok": bool(report.ok), "cpu_op_count": int(report.cpu_op_count),
            "op_count": int(report.op_count)}


def _write(out_dir: Path, fname: str, flat: bytes, meta: dict) -> Path:
    path = out_dir / fname
    with atomic_open(path, "wb") as f:  # temporary sibling + os.replace
        f.write(flat)
    contract = io_contract(flat, file=fname, sha256=hashlib.sha256(flat).hexdigest(),
                           size_bytes=len(flat), ops=_op_counts(flat), **meta)
    if meta.get("quantization") != "none":
        contract["edgetpu_static_check"] = _edgetpu_summary(path)
    atomic_write_json(contract_path(path), contract)
    return path


def export_model(model: keras.Model, out_dir, name: str, int8=INT8_METHODS,
                 representative_audio=None, qat_dataset=None, qat_steps: int = 200,
                 qat_learning_rate: float = 1e-4, calibration_frames: int = 1000,
                 seed: int = 0, qat_result=None) -> dict:
    """Export a trained CRUSE sequence model as streaming TFLite files.

    Writes into ``out_dir`` (each with ``<stem>.io_contract.json``; atomic writes):
    ``<name>_stream_float32.tflite`` always, ``<name>_stream_int8_ptq.tflite`` if ``"ptq"`` in
    ``int8``, ``<name>_stream_int8_qat.tflite`` if ``"qat"`` in ``int8``.

    Args:
        model: CRUSE sequence model (``build_cruse``); not modified.
        int8: subset of ``("ptq", "qat")``; ``()`` for float only. int8 needs a bounded norm
            (``frame_ln``, ``batch`` or ``none``): cLN raises ``Int8ExportError`` before any
            work is done.
        representative_audio: noisy 16 kHz signals (arrays or file paths) for calibration;
            required for int8. A few tens of seconds of real noisy speech is enough.
        qat_dataset: iterable of ``(noisy [b, n], clean [b, n])`` float32 batches; required for
            ``"qat"`` unless ``qat_result`` is given. It is cycled for ``qat_steps`` steps at
            ``qat_learning_rate``.
        calibration_frames: representative frames kept (drawn from all frames of all signals).
        qat_result: a ``tinyse_tf.export.qat.QatResult`` of an earlier ``qat_finetune(model, ...)``
            to export instead of fine-tuning again.
    Returns:
        ``{"float32" | "int8_ptq" | "int8_qat": Path}``.
    """
    int8 = tuple(int8)
    unknown = set(int8) - set(INT8_METHODS)
    if unknown:
        raise ValueError(f"int8 methods must be among {INT8_METHODS}, got {sorted(unknown)}")
    cfg = config_from_model(model)
    if int8:
        check_int8_exportable(cfg)
        if representative_audio is None:
            raise ValueError("int8 export needs representative_audio: noisy 16 kHz speech "
                             "(arrays or file paths) to calibrate the quantization ranges")
    if "qat" in int8 and qat_dataset is None and qat_result is None:
        raise ValueError("int8='qat' needs qat_dataset: (noisy, clean) audio batches")
    from tinyse_tf.export.calibration import closed_loop_samples

    out_dir = Path(out_dir)
    paths = {}
    stream = build_streaming_model(model)
    flat = convert_float(stream)
    base_meta = {"name": name, "config": cfg.to_dict(), "norm": cfg.norm,
                 "parameters": int(model.count_params()),
                 "macs_per_frame": sum(weight_macs(flat).values()), "macs_rule": MACS_RULE,
                 "states_spec": {k: list(v) for k, v in state_specs(model).items()}}
    paths["float32"] = _write(out_dir, f"{name}_stream_float32.tflite", flat,
                              {**base_meta, "quantization": "none", "dtype": "float32"})
    audio = list(representative_audio) if int8 else []
    if "ptq" in int8:
        samples = closed_loop_samples(flat, audio, calibration_frames, seed)
        q = convert_int8(stream, samples)
        paths["int8_ptq"] = _write(out_dir, f"{name}_stream_int8_ptq.tflite", q, {
            **base_meta, "quantization": "ptq", "dtype": "int8", "int8_verified": True,
            "calibration": {"frames": len(samples), "signals": len(audio),
                            "method": "closed-loop float streaming model over real noisy audio"}})
    if "qat" in int8:
        from tinyse_tf.export.qat import qat_finetune

        result = qat_result or qat_finetune(model, qat_dataset, steps=qat_steps,
                                            learning_rate=qat_learning_rate,
                                            calibration_audio=audio[:8])
        stream_q = build_streaming_model(result.model)
        samples = closed_loop_samples(convert_float(stream_q), audio, calibration_frames, seed)
        transferred = {}

        def ranges(calibrated):
            transferred.update(qat_tensor_ranges(calibrated, result.ranges,
                                                 stream_q.state_sources))
            return transferred

        q = convert_int8(stream_q, samples, ranges)
        paths["int8_qat"] = _write(out_dir, f"{name}_stream_int8_qat.tflite", q, {
            **base_meta, "quantization": "qat", "dtype": "int8", "int8_verified": True,
            "qat": {"steps": result.steps, "learning_rate": result.learning_rate,
                    "loss_first": result.losses[0] if result.losses else None,
                    "loss_last": result.losses[-1] if result.losses else None,
                    "sequence_layers_with_ranges": len(result.ranges),
                    "tensors_with_qat_ranges": len(transferred),
                    "other_tensors": "ranges calibrated on closed-loop frames (PTQ)",
                    "weights": "QAT fine-tuned float weights, int8 per-channel in the file"},
            "calibration": {"frames": len(samples), "signals": len(audio)}})
    return paths


def load_contract(tflite_path) -> dict:
    """The ``io_contract.json`` written next to an exported file."""
    return json.loads(contract_path(tflite_path).read_text())
