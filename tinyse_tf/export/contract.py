"""I/O contract of an exported streaming ``.tflite`` file, and full-int8 verification.

The contract is what a runtime needs to drive the file without reading Python code: for every
input and output (addressed by signature name, never by position: the converter reorders them)
its shape, dtype and quantization (scale, zero point), plus the signal constants (sample rate,
frame, hop, latency) and how the model was built (config, norm, quantization method). It is
written as JSON next to the model (``<stem>.io_contract.json``, see docs/EXPORT.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyse_tf.constants import HOP, N_FFT, N_MELS, SAMPLE_RATE
from tinyse_tf.export.tflite_ops import read_model_bytes
from tinyse_tf.runtime.contract import (ALGORITHMIC_LATENCY_SAMPLES, CONTRACT_SUFFIX,
                                        STATE_OUTPUT_SUFFIX, STREAM_DELAY_SAMPLES,
                                        same_quantization)
from tinyse_tf.runtime.tflite import make_interpreter


class Int8VerificationError(AssertionError):
    """A file meant to be full-int8 holds a tensor of another type."""


def contract_path(tflite_path) -> Path:
    """``dir/name.tflite`` -> ``dir/name.io_contract.json``."""
    p = Path(tflite_path)
    return p.with_name(p.stem + CONTRACT_SUFFIX)


# --------------------------------------------------------------------------- interpreter details
def _io_entry(name: str, d: dict, tensor_names: dict) -> dict:
    scale, zero_point = d["quantization"]
    dtype = np.dtype(d["dtype"]).name
    entry = {"name": name, "shape": [int(x) for x in d["shape"]], "dtype": dtype}
    if dtype in ("int8", "uint8", "int16"):
        entry.update(scale=float(scale), zero_point=int(zero_point))
    else:
        entry.update(scale=None, zero_point=None)
    entry["tensor_name"] = tensor_names.get(int(d["index"]))  # for runtimes without signatures
    return entry


def signature_io(interp) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of the default signature, each a list of contract entries sorted so
    that ``features``/``mask`` come first and states follow in name order."""
    runner = interp.get_signature_runner()
    tensor_names = {int(t["index"]): t["name"] for t in interp.get_tensor_details()}
    order = lambda kv: (kv[0] not in ("features", "mask"), kv[0])
    ins = [_io_entry(n, d, tensor_names)
           for n, d in sorted(runner.get_input_details().items(), key=order)]
    outs = [_io_entry(n, d, tensor_names)
            for n, d in sorted(runner.get_output_details().items(), key=order)]
    return ins, outs


def io_contract(model_content: bytes, **meta) -> dict:
    """The contract dict of a converted streaming model (see module docstring).

    Args:
        model_content: the ``.tflite`` flatbuffer.
        **meta: extra fields (``name``, ``config``, ``norm``, ``quantization``, ...) copied in.
    """
    interp = make_interpreter(model_content)
    ins, outs = signature_io(interp)
    states = [e["name"] for e in ins if e["name"] != "features"]
    out_by_name = {e["name"]: e for e in outs}
    in_by_name = {e["name"]: e for e in ins}
    passthrough = {}
    for s in states:
        a, b = in_by_name[s], out_by_name.get(s + STATE_OUTPUT_SUFFIX)
        passthrough[s] = bool(b is not None and a["dtype"] == b["dtype"] and same_quantization(
            a["scale"], a["zero_point"], b["scale"], b["zero_point"]))
    return {
        "format": "tinyse_tf streaming TFLite v1",
        **meta,
        "sample_rate": SAMPLE_RATE,
        "frame_length": N_FFT,
        "hop_length": HOP,
        "n_mels": N_MELS,
        "window": "sqrt-hann (periodic), analysis and synthesis",
        "stream_delay_samples": STREAM_DELAY_SAMPLES,
        "algorithmic_latency_samples": ALGORITHMIC_LATENCY_SAMPLES,
        "algorithmic_latency_ms": 1000.0 * ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE,
        "inputs": ins,
        "outputs": outs,
        "states": states,
        "state_output_suffix": STATE_OUTPUT_SUFFIX,
        "state_init": "zeros (quantized: the zero point)",
        "state_passthrough": passthrough,
        "features": "(|rfft(sqrt_hann * frame)| @ mel[257, 80]) ** 0.3, shape [1, 1, 80, 1]",
        "mask": "mel-grid mask in (0, 1), shape [1, 1, 80, 1]; linear mask = mask @ "
                "mel_to_linear_matrix() [80, 257], applied to the noisy STFT frame",
        "signature": "serving_default (address every tensor by name)",
    }


# --------------------------------------------------------------------------- int8 verification
def int8_violations(model_content: bytes) -> list[str]:
    """Tensors of a full-int8 candidate that are not int8.

    Rules: every tensor read or written by an operator, and every model input and output, is
    INT8; INT32 is accepted only for constant tensors (biases and shape/index operands). One
    subgraph only.
    """
    m = read_model_bytes(model_content)
    bad = []
    if len(m.subgraphs) != 1:
        bad.append(f"{len(m.subgraphs)} subgraphs (expected 1)")
    sg = m.main
    for t in list(sg.inputs) + list(sg.outputs):
        ten = sg.tensors[t]
        if ten.dtype != "INT8":
            bad.append(f"model I/O '{ten.name}' is {ten.dtype}")
    for op in sg.ops:
        for role, idx in (("input", op.inputs), ("output", op.outputs)):
            for t in idx:
                if t < 0:
                    continue
                ten = sg.tensors[t]
                if ten.dtype == "INT8" or (ten.dtype == "INT32" and ten.is_constant):
                    continue
                bad.append(f"op #{op.index} {op.display_name} {role} '{ten.name}' is {ten.dtype}"
                           f"{'' if ten.is_constant else ' (activation)'}")
    return bad


def verify_full_int8(model_content: bytes) -> None:
    """Raise ``Int8VerificationError`` unless every tensor is int8 (int32 constants allowed)."""
    bad = int8_violations(model_content)
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise Int8VerificationError("not a full-int8 model: " + "; ".join(bad[:5]) + more)
