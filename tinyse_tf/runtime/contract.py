"""The I/O contract of a streaming model file, as the runtime drives it (numpy only).

A tinyse_tf streaming ``.tflite`` has an input ``features`` [1, 1, 80, 1], an output ``mask``
[1, 1, 80, 1], and for every other input ``s`` (a state) an output ``s_out`` of the same shape and
dtype, fed back as ``s`` at the next hop. Every tensor is addressed by its signature name (the
converter reorders inputs, so positions mean nothing); files whose signature was stripped are
named through the ``<stem>.io_contract.json`` written beside them (``tinyse_tf.export``).

This module is the one place that checks that contract (``contract_problems``), compares
quantization parameters (``same_quantization``) and defines the latency of the signal path.
"""
from __future__ import annotations

import numpy as np

from tinyse_tf.constants import HOP, N_FFT, N_MELS

#: Output lags input by N_FFT - HOP samples; a sample also waits up to one hop to fill a frame.
STREAM_DELAY_SAMPLES = N_FFT - HOP
ALGORITHMIC_LATENCY_SAMPLES = N_FFT
CONTRACT_SUFFIX = ".io_contract.json"
STATE_OUTPUT_SUFFIX = "_out"


class ContractError(ValueError):
    """A .tflite file whose named inputs/outputs are not those of a tinyse_tf streaming graph."""


def same_quantization(scale_a, zero_point_a, scale_b, zero_point_b) -> bool:
    """Whether two tensors share (scale, zero point); None scales mean "not quantized"."""
    if scale_a is None or scale_b is None:
        return scale_a is None and scale_b is None
    return (int(zero_point_a) == int(zero_point_b)
            and abs(scale_a - scale_b) <= 1e-6 * max(abs(scale_a), abs(scale_b), 1e-30))


class Port:
    """One model input or output: tensor index, dtype, shape and quantization.

    ``quantize`` maps float values to the tensor's dtype (rounding and clipping for int8/uint8),
    ``dequantize`` maps back; both are the identity (a dtype cast) for float tensors.
    """

    def __init__(self, name, detail):
        self.name = name
        self.index = int(detail["index"])
        self.dtype = np.dtype(detail["dtype"])
        self.shape = tuple(int(x) for x in detail["shape"])
        scale, zero_point = detail["quantization"]
        self.quantized = self.dtype.kind in "iu" and scale != 0.0
        self.scale, self.zero_point = float(scale), int(zero_point)
        if self.quantized:
            info = np.iinfo(self.dtype)
            self._lo, self._hi = info.min, info.max

    def quantize(self, x):
        if not self.quantized:
            return np.asarray(x, self.dtype).reshape(self.shape)
        q = np.rint(np.asarray(x, np.float32) / self.scale) + self.zero_point
        return np.clip(q, self._lo, self._hi).astype(self.dtype).reshape(self.shape)

    def dequantize(self, q):
        if not self.quantized:
            return np.asarray(q, np.float32)
        return (q.astype(np.float32) - self.zero_point) * self.scale

    def zeros(self):
        return np.full(self.shape, self.zero_point if self.quantized else 0, self.dtype)

    def same_quantization(self, other: "Port") -> bool:
        return self.dtype == other.dtype and same_quantization(
            self.scale if self.quantized else None, self.zero_point,
            other.scale if other.quantized else None, other.zero_point)


def contract_problems(inputs: dict, outputs: dict) -> list:
    """Mismatches between a model's named I/O (``{name: Port}``) and the streaming contract."""
    want = [1, 1, N_MELS, 1]
    problems = []
    for port, table, io in (("features", inputs, "input"), ("mask", outputs, "output")):
        p = table.get(port)
        if p is None:
            problems.append(f"no {io} named {port!r}")
        elif int(np.prod(p.shape)) != N_MELS:
            problems.append(f"{io} {port!r} has shape {list(p.shape)}, expected {want}")
    for name, p in inputs.items():
        if name == "features":
            continue
        out = outputs.get(name + STATE_OUTPUT_SUFFIX)
        if out is None:
            problems.append(f"state input {name!r} has no output {name + STATE_OUTPUT_SUFFIX!r}")
        elif out.shape != p.shape or out.dtype != p.dtype:
            problems.append(f"state {name!r} is {list(p.shape)} {p.dtype.name} in but "
                            f"{list(out.shape)} {out.dtype.name} out")
    return problems


def check_contract(inputs: dict, outputs: dict, where) -> None:
    """Raise ``ContractError`` naming ``where`` unless ``contract_problems`` is empty."""
    problems = contract_problems(inputs, outputs)
    if problems:
        raise ContractError(f"{where}: I/O contract does not match a tinyse_tf streaming model: "
                            f"{'; '.join(problems[:3])}")
