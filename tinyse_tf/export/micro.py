"""Microcontroller target: an int8 streaming ``.tflite`` as TensorFlow Lite for Microcontrollers
(TFLM) artefacts, with the flash, arena and output measured by the TFLM interpreter itself.

``export_micro(model, out_dir)`` writes, for ``<name>`` (default: the file's stem):

* ``<name>_model_data.h`` / ``.cc``: the flatbuffer as a 16-byte aligned ``unsigned char`` array,
  its length, and the I/O contract as C constants (TFLM input / output positions, shapes, byte
  sizes, scales and zero points of ``features``, ``mask`` and every state, which state output
  feeds which state input);
* ``<name>_op_resolver.h``: ``MicroMutableOpResolver<N>`` with one ``AddXxx()`` per operator
  type in the file (generated from the file, nothing more);
* ``<name>_frontend.h`` / ``.cc``: what the MCU computes around the model, as C arrays: the
  sqrt-Hann window, the 80-band mel filterbank and the mel-to-linear mask matrix (both sparse);
* ``<name>_micro.json``: flash bytes, the arena measured by the TFLM interpreter and the arena to
  reserve (with a safety margin), operators, MACs per 16 ms hop of the model and the front end,
  and where the file's int8 outputs differ from LiteRT's.

The TFLM interpreter is the one of the ``tflite-micro`` wheel (the real TFLM C++ kernels, the
reference ones, compiled for this host). ``MicroFrameModel`` runs a file through it as a frame
model, so ``FrameStream(MicroFrameModel(path))`` enhances audio as firmware running TFLM's
reference kernels would. Integration guide and budget table: docs/MICRO.md.
"""
from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from tinyse_tf.atomic import atomic_write_json, atomic_write_text
from tinyse_tf.constants import COMPRESSION, HOP, N_BINS, N_FFT, N_MELS, SAMPLE_RATE
from tinyse_tf.export.contract import int8_violations
from tinyse_tf.export.tflite_ops import NotATfliteFile, read_model_bytes, weight_macs
from tinyse_tf.native_stderr import native_stderr_captured
from tinyse_tf.runtime.contract import STATE_OUTPUT_SUFFIX
from tinyse_tf.runtime.tflite import TfliteFrameModel, make_interpreter

#: Fraction added to the measured arena (then rounded up to 1 KiB) for the bytes a Cortex-M build
#: may need beyond the host measurement: CMSIS-NN scratch buffers that the reference kernels
#: measured here do not request, and a different TFLM version. (Its 32-bit pointers make TFLM's
#: per-tensor and per-node structs smaller than on this 64-bit host, which works the other way.)
ARENA_MARGIN = 0.05
ARENA_ALIGNMENT = 16  # TFLM aligns the arena and its buffers to 16 bytes
MICRO_SUFFIXES = ("_model_data.h", "_model_data.cc", "_op_resolver.h", "_frontend.h",
                  "_frontend.cc", "_micro.json")

#: TFLite builtin operator -> the ``MicroMutableOpResolver`` method that registers its TFLM
#: kernel (tensorflow/lite/micro/micro_mutable_op_resolver.h). An operator not listed has no
#: TFLM kernel that tinyse_tf knows of: the export refuses the file.
TFLM_RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "CAST": "AddCast", "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos",
    "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "ELU": "AddElu",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "REDUCE_MAX": "AddReduceMax",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SHAPE": "AddShape", "SIN": "AddSin", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "ZEROS_LIKE": "AddZerosLike",
}


class MicroExportError(ValueError):
    """A file the microcontroller target cannot take; the message is one line: which file, what
    is wrong, what to do."""


# --------------------------------------------------------------------------- checks
def check_micro_model(model_content: bytes, where="model") -> None:
    """Raise ``MicroExportError`` unless the file is a full-int8 tinyse_tf streaming model whose
    every operator has a TFLM kernel (``TFLM_RESOLVER_METHODS``).

    A float file (e.g. ``*_stream_float32.tflite``, which is also what a cLN model exports to)
    fails here: TFLM int8 kernels are what fits a microcontroller."""
    try:
        bad = int8_violations(model_content)
    except NotATfliteFile as e:
        raise MicroExportError(f"{where}: {e}; give an int8 streaming .tflite written by `tinyse "
                               "export`") from None
    if bad:
        raise MicroExportError(
            f"{where}: not a full-int8 model ({bad[0]}); the microcontroller target needs the "
            "int8 streaming file: give a *_stream_int8_ptq.tflite or *_stream_int8_qat.tflite, "
            "or export the Keras model (norm frame_ln, batch or none) with --target micro "
            "--representative DIR")
    missing = sorted(set(micro_ops(model_content)) - set(TFLM_RESOLVER_METHODS))
    if missing:
        raise MicroExportError(
            f"{where}: operator {', '.join(missing)} has no TensorFlow Lite for Microcontrollers "
            "kernel; rebuild the model without it (tinyse_tf CRUSE layers export only ops that "
            "TFLM runs), or write and register a TFLM kernel for it")


def micro_ops(model_content: bytes) -> list[str]:
    """Operator types of the main subgraph, sorted by name (the resolver's ``Add`` calls)."""
    return sorted({op.display_name for op in read_model_bytes(model_content).main.ops})


# --------------------------------------------------------------------------- TFLM interpreter
def micro_interpreter(model_content: bytes, arena_size: int | None = None,
                      preserve_all_tensors: bool = False):
    """A ``tflite_micro.runtime.Interpreter`` (all TFLM kernels registered) over the file.

    Args:
        arena_size: tensor arena bytes (default: TFLM's, 10 x the model size).
        preserve_all_tensors: keep every intermediate tensor readable (``GetTensor``); costs
            an arena with no buffer reuse, for comparisons only.
    """
    try:
        from tflite_micro import runtime
    except ImportError:
        raise MicroExportError("TensorFlow Lite for Microcontrollers' Python interpreter is not "
                               "installed; pip install 'tinyse_tf[micro]' (the tflite-micro "
                               "wheel)") from None
    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
              else runtime.InterpreterConfig.kAllocationRecording)
    return runtime.Interpreter.from_bytes(model_content, arena_size=arena_size,
                                          intrepreter_config=config)


def _runs_with_arena(model_content: bytes, arena_size: int) -> bool:
    try:
        micro_interpreter(model_content, arena_size).invoke()
    except RuntimeError:  # TFLM: arena too small (allocation or prepare failed)
        return False
    return True


def measure_arena(model_content: bytes) -> int:
    """The smallest tensor arena (a multiple of 16 bytes) with which the TFLM interpreter
    allocates and invokes the model: persistent structs, the memory planner's working space
    and the planned activation buffers, as this host's TFLM build needs them (binary search)."""
    lo, hi = 0, 10 * len(model_content)
    with native_stderr_captured():  # TFLM prints every failed allocation on fd 2
        while not _runs_with_arena(model_content, hi):
            lo, hi = hi, 2 * hi
            if hi > 1 << 31:
                raise MicroExportError("the TFLM interpreter cannot run the model with any arena "
                                       "up to 2 GiB; check the file with tflite_micro directly")
        while hi - lo > ARENA_ALIGNMENT:
            mid = (lo + hi) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
            lo, hi = (lo, mid) if _runs_with_arena(model_content, mid) else (mid, hi)
    return hi


def reserved_arena(measured: int, margin: float = ARENA_MARGIN) -> int:
    """The arena to reserve in firmware: ``measured * (1 + margin)`` rounded up to 1 KiB."""
    return int(math.ceil(measured * (1.0 + margin) / 1024.0)) * 1024


class MicroFrameModel(TfliteFrameModel):
    """An int8 streaming file run by the TFLM interpreter: ``step(features [80]) -> mask [80]``.

    Names, shapes and quantization come from the file's signature (read with LiteRT, as in
    ``TfliteFrameModel``); TFLM addresses inputs and outputs by position, which the flatbuffer's
    subgraph input / output lists give. States are carried as int8 bytes, as firmware does.

    Args:
        model_path / model_content: the ``.tflite`` file or its bytes (full-int8).
        arena_size: TFLM tensor arena bytes (default: 10 x the model size).
    """

    def __init__(self, model_path=None, model_content: bytes | None = None,
                 arena_size: int | None = None):
        content = Path(model_path).read_bytes() if model_content is None else model_content
        check_micro_model(content, model_path or "model")
        super().__init__(model_path=model_path, model_content=model_content)
        self.name = "TFLite Micro (int8)"
        sg = read_model_bytes(content).main
        self.input_position = {t: i for i, t in enumerate(sg.inputs)}
        self.output_position = {t: i for i, t in enumerate(sg.outputs)}
        self._micro = micro_interpreter(content, arena_size)

    def step(self, features) -> np.ndarray:
        micro, pin, pout = self._micro, self.input_position, self.output_position
        micro.set_input(self._features.quantize(features), pin[self._features.index])
        for (port, _), state in zip(self._loop, self._states):
            micro.set_input(state, pin[port.index])
        micro.invoke()
        self._states = [micro.get_output(pout[out.index]).reshape(port.shape)
                        for port, out in self._loop]
        return self._mask.dequantize(micro.get_output(pout[self._mask.index])).reshape(-1)


def invoke_both_on_random_inputs(litert, micro, subgraph, rng) -> None:
    """Give a LiteRT and a TFLM interpreter of the same file the same uniformly random int8
    inputs (``subgraph``: the file's main subgraph, ``read_model_bytes(...).main``) and invoke
    both."""
    for position, t in enumerate(subgraph.inputs):
        x = rng.integers(-128, 128, subgraph.tensors[t].shape).astype(np.int8)
        litert.set_tensor(t, x)
        micro.set_input(x, position)
    litert.invoke()
    micro.invoke()


def kernel_differences(model_content: bytes, trials: int = 8, seed: int = 0,
                       reference_kernels: bool = False) -> dict:
    """Operators whose int8 output differs between TFLM and LiteRT when both get identical
    inputs: LiteRT's default CPU kernels (the ones ``StreamingEnhancer`` runs), or with
    ``reference_kernels`` its reference kernels (``OpResolverType.BUILTIN_REF``), the family
    TFLM's kernels come from.

    Both interpreters run the file on the same random int8 inputs with every tensor kept; an
    operator counts when all its non-constant inputs agree and an output does not.

    Returns:
        ``{operator type: {"max_lsb": int, "ops_differing": int}}`` (empty: bit-exact per
        operator on these inputs); ``ops_differing`` counts (operator, trial) pairs.
    """
    from ai_edge_litert.interpreter import OpResolverType

    sg = read_model_bytes(model_content).main
    resolver = (OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO)
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is, here
        warnings.simplefilter("ignore", UserWarning)
        litert = make_interpreter(model_content=model_content,
                                  experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=resolver)
    micro = micro_interpreter(model_content, preserve_all_tensors=True)
    rng = np.random.default_rng(seed)
    found: dict = {}
    for _ in range(trials):
        invoke_both_on_random_inputs(litert, micro, sg, rng)
        equal = {}

        def same(t):
            if t not in equal:
                a, b = litert.get_tensor(t), micro.GetTensor(t, 0)["tensor_data"]
                equal[t] = int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max(initial=0))
            return equal[t]

        for op in sg.ops:
            if any(same(t) for t in op.inputs if t >= 0 and not sg.tensors[t].is_constant):
                continue
            lsb = max(same(t) for t in op.outputs)
            if lsb:
                entry = found.setdefault(op.display_name, {"max_lsb": 0, "ops_differing": 0})
                entry["max_lsb"] = max(entry["max_lsb"], lsb)
                entry["ops_differing"] += 1
    return dict(sorted(found.items()))


def compare_with_litert(model_path, audio) -> dict:
    """Stream ``audio`` frame by frame through the int8 file twice, each run feeding its own
    states back: in TFLM (``MicroFrameModel``) and in LiteRT as ``StreamingEnhancer`` runs it
    (``TfliteFrameModel``, default CPU kernels); compare the int8 masks hop by hop.

    Shape: audio [n] float32 at 16 kHz -> ``ceil(n / 256)`` hops.
    Returns:
        ``{"hops", "bit_exact_hops", "max_lsb", "mean_lsb", "p99_lsb"}``: LSB = one step of the
        mask's int8 quantization, per hop the largest of the 80 bands.
    """
    from tinyse_tf.runtime import run_frames, signal_features

    features = signal_features(audio)
    micro = MicroFrameModel(model_path)
    masks = [run_frames(m, features) for m in (micro, TfliteFrameModel(model_path))]
    lsb = np.rint(np.abs(masks[0] - masks[1]) / micro.outputs["mask"].scale).max(axis=1)
    return {"hops": int(lsb.size), "bit_exact_hops": int((lsb == 0).sum()),
            "max_lsb": int(lsb.max()), "mean_lsb": float(lsb.mean()),
            "p99_lsb": float(np.percentile(lsb, 99))}


# --------------------------------------------------------------------------- front end
def _sparse(matrix: np.ndarray):
    """Row-wise sparse form of a [rows, cols] matrix whose non-zeros are contiguous per row:
    ``(start [rows], length [rows], offset [rows], weights [nnz])``."""
    start, length, offset, weights = [], [], [], []
    for row in np.asarray(matrix, np.float32):
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        start.append(lo)
        length.append(hi - lo)
        offset.append(len(weights))
        weights.extend(row[lo:hi].tolist())
    return start, length, offset, np.asarray(weights, np.float32)


def _frontend_matrices():
    from tinyse_tf.dsp import mel_matrix, mel_to_linear_matrix, sqrt_hann

    # mel: one row per band over the 257 bins; mask: one row per linear bin over the 80 bands
    return sqrt_hann(N_FFT), _sparse(mel_matrix().T), _sparse(mel_to_linear_matrix().T)


def frontend_macs() -> dict:
    """Multiply-accumulates per hop of the signal path around the model (float, see
    docs/MICRO.md). Matrix and window counts are exact; the two FFTs are a radix-2 estimate
    (``"fft_estimate"``: 512-point real FFT = 256-point complex FFT, 4 real MACs per butterfly,
    plus the real/complex split), which the DSP library's own FFT will differ from."""
    _, mel, mask = _frontend_matrices()
    half = N_FFT // 2
    fft = 4 * (half // 2) * int(math.log2(half)) + 4 * half
    return {"analysis_window": N_FFT, "rfft_estimate": fft, "magnitude": 2 * N_BINS,
            "mel": int(mel[3].size), "mask_to_linear": int(mask[3].size),
            "apply_mask": 2 * N_BINS, "irfft_estimate": fft, "synthesis_window": N_FFT,
            "overlap_add": HOP, "power_0.3_calls": N_MELS, "sqrt_calls": N_BINS}


# --------------------------------------------------------------------------- C sources
def c_identifier(name: str) -> str:
    """``name`` as a C identifier (non-alphanumerics -> ``_``; a leading digit gets ``m_``)."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    return f"m_{ident}" if not ident or ident[0].isdigit() else ident


def _c_bytes(data: bytes, per_line: int = 16) -> str:
    return "\n".join("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
                     for i in range(0, len(data), per_line))


def c_float(value) -> str:
    """A float32 as a C float literal that round-trips (9 significant digits); always with a
    point or an exponent, since ``1f`` is not C."""
    text = f"{float(value):.9g}"
    return f"{text}f" if any(ch in text for ch in ".en") else f"{text}.0f"


def _c_floats(values, per_line: int = 8) -> str:
    vals = [c_float(v) for v in values]
    return "\n".join("    " + ", ".join(vals[i:i + per_line]) + ","
                     for i in range(0, len(vals), per_line))


def _c_ints(values, per_line: int = 16) -> str:
    vals = [str(int(v)) for v in values]
    return "\n".join("    " + ", ".join(vals[i:i + per_line]) + ","
                     for i in range(0, len(vals), per_line))


def _io_table(frame_model: MicroFrameModel) -> list[dict]:
    """One entry per model input and output: C name, TFLM position, shape, bytes, quantization."""
    rows = []
    ports = [("input", frame_model.input_position, frame_model.inputs),
             ("output", frame_model.output_position, frame_model.outputs)]
    for io, position, table in ports:
        for name in sorted(table, key=lambda n: (n not in ("features", "mask"), n)):
            p = table[name]
            rows.append({"io": io, "name": name, "position": position[p.index],
                         "shape": list(p.shape), "bytes": int(np.prod(p.shape)),
                         "scale": p.scale, "zero_point": p.zero_point})
    return rows


def model_data_sources(model_content: bytes, name: str, io: list[dict]) -> tuple[str, str]:
    """``(<name>_model_data.h, <name>_model_data.cc)`` texts for ``model_content``."""
    ident = c_identifier(name)
    guard = f"{ident.upper()}_MODEL_DATA_H_"
    sha = hashlib.sha256(model_content).hexdigest()
    lines = [f"// {name}: int8 streaming CRUSE model for TensorFlow Lite for Microcontrollers.",
             "// Generated by tinyse_tf (tinyse export --target micro); do not edit.",
             f"// sha256 of the .tflite: {sha}", "//",
             "// One invoke = one 16 ms hop. Inputs and outputs are addressed by TFLM position",
             "// (interpreter.input(i) / output(i)). States start at their zero point; after each",
             "// invoke copy every <state>_out output byte for byte into its <state> input (same",
             "// scale and zero point). real = scale * (q - zero_point).",
             f"#ifndef {guard}", f"#define {guard}", "", "#include <cstdint>", "",
             f"extern const unsigned char g_{ident}_model_data[];",
             f"extern const unsigned int g_{ident}_model_data_len;", "",
             f"constexpr int k{camel_case(ident)}InputCount = "
             f"{sum(r['io'] == 'input' for r in io)};",
             f"constexpr int k{camel_case(ident)}OutputCount = "
             f"{sum(r['io'] == 'output' for r in io)};", ""]
    for r in io:
        c = f"k{camel_case(ident)}{'In' if r['io'] == 'input' else 'Out'}{camel_case(r['name'])}"
        dims = ", ".join(map(str, r["shape"]))
        lines += [f"// {r['io']} '{r['name']}' int8 [{dims}]",
                  f"constexpr int {c}Index = {r['position']};",
                  f"constexpr int {c}Bytes = {r['bytes']};",
                  f"constexpr int {c}Dims[] = {{{dims}}};",
                  f"constexpr float {c}Scale = {c_float(r['scale'])};",
                  f"constexpr int32_t {c}ZeroPoint = {r['zero_point']};"]
    states = [r for r in io if r["io"] == "input" and r["name"] != "features"]
    outs = {r["name"]: r for r in io if r["io"] == "output"}
    lines += ["", f"// Feedback after each invoke: output(k{camel_case(ident)}StateOutIndex[i]) ->",
              f"// input(k{camel_case(ident)}StateInIndex[i]), k{camel_case(ident)}StateBytes[i] bytes.",
              f"constexpr int k{camel_case(ident)}StateCount = {len(states)};",
              f"constexpr int k{camel_case(ident)}StateInIndex[] = "
              f"{{{', '.join(str(s['position']) for s in states)}}};",
              f"constexpr int k{camel_case(ident)}StateOutIndex[] = "
              f"{{{', '.join(str(outs[s['name'] + STATE_OUTPUT_SUFFIX]['position']) for s in states)}}};",
              f"constexpr int k{camel_case(ident)}StateBytes[] = "
              f"{{{', '.join(str(s['bytes']) for s in states)}}};",
              "", f"#endif  // {guard}", ""]
    source = "\n".join([
        f"// {name}: the .tflite flatbuffer ({len(model_content)} bytes), generated by tinyse_tf.",
        f"// sha256: {sha}",
        f'#include "{name}_model_data.h"', "",
        "// TFLM reads the flatbuffer in place: keep it 16-byte aligned (and in flash: const).",
        f"alignas(16) const unsigned char g_{ident}_model_data[] = {{",
        _c_bytes(model_content), "};",
        f"const unsigned int g_{ident}_model_data_len = {len(model_content)};", ""])
    return "\n".join(lines), source


def camel_case(ident: str) -> str:
    """``student_stream_int8`` -> ``StudentStreamInt8`` (the generated C names' stem)."""
    return "".join(part[:1].upper() + part[1:] for part in ident.split("_"))


def op_resolver_source(ops: list[str], name: str) -> str:
    """``<name>_op_resolver.h``: ``<Ident>OpResolver`` = ``MicroMutableOpResolver<N>`` and a
    function registering exactly the file's ``N`` operator types."""
    ident = c_identifier(name)
    guard = f"{ident.upper()}_OP_RESOLVER_H_"
    calls = "\n".join(f"  if (resolver.{TFLM_RESOLVER_METHODS[op]}() != kTfLiteOk) "
                      f"return kTfLiteError;  // {op}" for op in ops)
    return "\n".join([
        f"// {name}: the TFLM kernels the model needs ({len(ops)} operator types), generated from",
        "// the .tflite by tinyse_tf; do not edit.",
        f"#ifndef {guard}", f"#define {guard}", "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"', "",
        f"constexpr int k{camel_case(ident)}OpCount = {len(ops)};",
        f"using {camel_case(ident)}OpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;", "",
        f"inline TfLiteStatus Register{camel_case(ident)}Ops({camel_case(ident)}OpResolver& resolver) {{",
        calls, "  return kTfLiteOk;", "}", "", f"#endif  // {guard}", ""])


def frontend_sources(name: str) -> tuple[str, str]:
    """``(<name>_frontend.h, <name>_frontend.cc)``: window, sparse mel and mask matrices."""
    ident = c_identifier(name)
    p = f"g_{ident}"
    guard = f"{ident.upper()}_FRONTEND_H_"
    window, mel, mask = _frontend_matrices()
    header = "\n".join([
        f"// {name}: the signal path around the model, per 16 ms hop (docs/MICRO.md).",
        "// Generated by tinyse_tf; do not edit. Floats are the float32 values tinyse_tf uses.",
        "//",
        "//   frame[512] = last 512 input samples (256 new);  x = frame * window",
        "//   X[257]     = rfft(x);  mag[k] = |X[k]|",
        "//   mel[b]     = sum_{j<mel_length[b]} mel_weights[mel_offset[b]+j] * mag[mel_start[b]+j]",
        "//   features[b]= powf(max(mel[b], mel_floor), compression)  -> quantize -> model",
        "//   mask80     = dequantize(model mask)",
        "//   gain[k]    = sum_{j<mask_length[k]} mask_weights[mask_offset[k]+j] *"
        " mask80[mask_start[k]+j]",
        "//   y[512]     = irfft(X * gain) * window;  overlap-add: output the first 256 samples",
        "//                plus the saved tail, save the last 256 (output lags input 256 samples)",
        f"#ifndef {guard}", f"#define {guard}", "", "#include <cstdint>", "",
        f"constexpr int k{camel_case(ident)}SampleRate = {SAMPLE_RATE};",
        f"constexpr int k{camel_case(ident)}FrameLength = {N_FFT};",
        f"constexpr int k{camel_case(ident)}HopLength = {HOP};",
        f"constexpr int k{camel_case(ident)}Bins = {N_BINS};",
        f"constexpr int k{camel_case(ident)}Mels = {N_MELS};",
        f"constexpr float k{camel_case(ident)}Compression = {c_float(COMPRESSION)};",
        f"constexpr float k{camel_case(ident)}MelFloor = 1e-10f;", "",
        f"extern const float {p}_window[{N_FFT}];  // periodic sqrt-Hann, analysis and synthesis",
        f"extern const int16_t {p}_mel_start[{N_MELS}];", f"extern const int16_t {p}_mel_length[{N_MELS}];",
        f"extern const int16_t {p}_mel_offset[{N_MELS}];",
        f"extern const float {p}_mel_weights[{mel[3].size}];",
        f"extern const int16_t {p}_mask_start[{N_BINS}];", f"extern const int16_t {p}_mask_length[{N_BINS}];",
        f"extern const int16_t {p}_mask_offset[{N_BINS}];",
        f"extern const float {p}_mask_weights[{mask[3].size}];", "", f"#endif  // {guard}", ""])
    parts = [f"// {name}: front-end tables, generated by tinyse_tf.", f'#include "{name}_frontend.h"',
             "", f"const float {p}_window[{N_FFT}] = {{", _c_floats(window), "};"]
    for label, (start, length, offset, weights) in (("mel", mel), ("mask", mask)):
        rows = len(start)
        parts += [f"const int16_t {p}_{label}_start[{rows}] = {{", _c_ints(start), "};",
                  f"const int16_t {p}_{label}_length[{rows}] = {{", _c_ints(length), "};",
                  f"const int16_t {p}_{label}_offset[{rows}] = {{", _c_ints(offset), "};",
                  f"const float {p}_{label}_weights[{weights.size}] = {{", _c_floats(weights),
                  "};"]
    return header, "\n".join(parts + [""])


def parse_c_array(source: str, array: str) -> list[str]:
    """The initialiser items of ``array`` in C source text, as strings (for tests and tools
    that read the generated files back)."""
    m = re.search(re.escape(array) + r"\[[^\]]*\]\s*=\s*\{(.*?)\};", source, re.S)
    if m is None:
        raise ValueError(f"no array {array} in the source")
    return [v.strip() for v in m.group(1).split(",") if v.strip()]


# --------------------------------------------------------------------------- export
def micro_report(model_content: bytes, name: str, arena_margin: float = ARENA_MARGIN,
                 contract: dict | None = None) -> dict:
    """The facts of ``<name>_micro.json`` (see ``export_micro``); measures the arena (binary
    search over TFLM interpreters) and compares every operator with LiteRT."""
    sg = read_model_bytes(model_content).main
    measured = measure_arena(model_content)
    macs = weight_macs(model_content)
    front = frontend_macs()
    report = {
        "format": "tinyse_tf micro report v1",
        "name": name,
        "model_bytes": len(model_content),
        "flash_bytes": len(model_content),
        "flash_note": "the model array only; the TFLM library and its kernels add code size",
        "arena_bytes_measured": measured,
        "arena_margin": arena_margin,
        "arena_bytes": reserved_arena(measured, arena_margin),
        "arena_note": ("measured: smallest arena with which the TFLM interpreter of the "
                       "tflite-micro wheel (reference kernels, 64-bit host) allocates and invokes "
                       "the model; arena_bytes adds the margin and rounds up to 1 KiB"),
        "ops": dict(sorted(Counter(op.display_name for op in sg.ops).items())),
        "op_count": len(sg.ops),
        "state_bytes": sum(int(np.prod(sg.tensors[t].shape)) for t in sg.inputs) - N_MELS,
        "resolver": [TFLM_RESOLVER_METHODS[op] for op in micro_ops(model_content)],
        "macs_per_hop": sum(macs.values()),
        "macs_per_hop_by_op": macs,
        "frontend_macs_per_hop": sum(front.values()) - front["power_0.3_calls"]
                                 - front["sqrt_calls"],
        "frontend_per_hop": front,
        "hop_ms": 1000.0 * HOP / SAMPLE_RATE,
        "litert_kernel_differences": kernel_differences(model_content),
        "litert_reference_kernel_differences": kernel_differences(model_content,
                                                                  reference_kernels=True),
        "sha256": hashlib.sha256(model_content).hexdigest(),
    }
    if contract:
        report.update({k: contract[k] for k in ("parameters", "norm", "quantization", "config",
                                                "macs_per_frame") if k in contract})
    return report


def micro_paths(out_dir, name: str) -> list[Path]:
    """The files ``export_micro`` writes for ``name`` into ``out_dir``."""
    return [Path(out_dir) / f"{name}{s}" for s in MICRO_SUFFIXES]


def export_micro(model, out_dir, name: str | None = None,
                 arena_margin: float = ARENA_MARGIN) -> dict:
    """Write the TFLM artefacts of an int8 streaming ``.tflite`` (see module docstring).

    Args:
        model: path of a full-int8 streaming ``.tflite`` written by ``export_model`` (its
            ``<stem>.io_contract.json`` is read when present), or the file's bytes.
        out_dir: folder (created); every file is written atomically.
        name: file prefix and C identifier stem (default: the file's stem; required for bytes).
        arena_margin: fraction added to the measured arena (``ARENA_MARGIN``).
    Returns:
        ``{"model_data_h", "model_data_cc", "op_resolver_h", "frontend_h", "frontend_cc",
        "report": Path}`` and ``"facts"``: the report dict.
    Raises:
        MicroExportError: a float model, an operator without a TFLM kernel, not a streaming
            model (one line).
    """
    from tinyse_tf.export.contract import contract_path
    from tinyse_tf.runtime.contract import ContractError

    contract = None
    if isinstance(model, (bytes, bytearray)):
        content, where = bytes(model), name or "model"
        if name is None:
            raise ValueError("export_micro(bytes) needs a name")
    else:
        where = Path(model)
        content = where.read_bytes()
        name = name or where.stem
        if contract_path(where).is_file():
            import json

            contract = json.loads(contract_path(where).read_text())
    try:
        frame_model = (MicroFrameModel(model_content=content) if isinstance(where, str)
                       else MicroFrameModel(model_path=where))
    except ContractError as e:
        raise MicroExportError(f"{where}: {e}; give a streaming int8 file written by `tinyse "
                               "export`") from None
    facts = micro_report(content, name, arena_margin, contract)
    facts["io"] = _io_table(frame_model)
    header, source = model_data_sources(content, name, facts["io"])
    front_h, front_cc = frontend_sources(name)
    texts = [header, source, op_resolver_source(micro_ops(content), name), front_h, front_cc]
    paths = micro_paths(out_dir, name)
    for path, text in zip(paths, texts):
        atomic_write_text(path, text)
    atomic_write_json(paths[-1], facts)
    keys = ("model_data_h", "model_data_cc", "op_resolver_h", "frontend_h", "frontend_cc",
            "report")
    return {**dict(zip(keys, paths)), "facts": facts}
