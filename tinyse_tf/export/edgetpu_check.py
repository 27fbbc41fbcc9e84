"""Static Edge TPU compatibility check of a ``.tflite`` file (no compiler, no interpreter).

``check_model(path)`` reads the flatbuffer (``tinyse_tf.export.tflite_ops``) and applies the
Coral Edge TPU model requirements to every operator; ``format_table`` prints the verdict as a
table in the spirit of the ``edgetpu_compiler`` operation log; ``main`` is the command line::

    python -m tinyse_tf.export.edgetpu_check MODEL.tflite [--json]

Exit status: 0 every op maps to the Edge TPU, 1 something would run on the CPU, 2 the file is
missing, unreadable or not a TFLite flatbuffer (one line on stderr, never a traceback).

The real ``edgetpu_compiler`` stays the final word (``edge/compile.py`` runs it when present);
this check catches what this project's models can get wrong before a file ever reaches it.
Rules, sources and the limits that are NOT checked: docs/EDGETPU.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field

from tinyse_tf.export.tflite_ops import NotATfliteFile, OpInfo, SubgraphInfo, TfliteModel, read_model

# --- Rules --------------------------------------------------------------------------------------

# Operators the Edge TPU compiler can map, as TFLite builtin operator names.
# Source: Coral, "TensorFlow models on the Edge TPU", table "Supported operations"
#   https://coral.ai/docs/edgetpu/models-intro/#supported-operations
# (the same table is mirrored by vendors of chips with that NPU, e.g. Axis ARTPEC-7
#   https://developer.axis.com/computer-vision/on-device/system-on-chip/artpec-7/supported-ops/),
# as summarised in docs/DESIGN.md, part C. Coral's "LSTM: unidirectional only" is
# mapped to the builtins LSTM and UNIDIRECTIONAL_SEQUENCE_LSTM (what a Keras LSTM converts to);
# BIDIRECTIONAL_SEQUENCE_LSTM is not on the list. GRU has no entry.
EDGETPU_SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})

_LSTM_OPS = ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM")
# Quantized (int8) LSTM kernel layout: gate biases 12-15 and projection bias 17 are int32; the
# cell state 19 and layer-norm coefficients 20-23 are int16 (TFLite's 8x8->16 LSTM).
_LSTM_INT32_INPUTS = frozenset({12, 13, 14, 15, 17})
_LSTM_INT16_INPUTS = frozenset({19, 20, 21, 22, 23})

# int32 inputs allowed as biases (input position -> must be a constant buffer).
INT32_BIAS_INPUTS = {
    "CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3},
    **{op: set(_LSTM_INT32_INPUTS) for op in _LSTM_OPS},
}
# int32 inputs allowed as shape / index / axis operands (must be constants: a computed one would
# make the shape dynamic). Positions follow the TFLite kernels' input order.
INT32_INDEX_INPUTS = {
    "RESHAPE": {1}, "STRIDED_SLICE": {1, 2, 3}, "SLICE": {1, 2}, "PAD": {1}, "MEAN": {1},
    "SUM": {1}, "REDUCE_MAX": {1}, "REDUCE_MIN": {1}, "TRANSPOSE": {1}, "EXPAND_DIMS": {1},
    "SPLIT": {0}, "RESIZE_BILINEAR": {1}, "RESIZE_NEAREST_NEIGHBOR": {1}, "TRANSPOSE_CONV": {0},
}
EIGHT_BIT = frozenset({"INT8", "UINT8"})
# Ops the Coral table lists with "No fused activation function".
NO_FUSED_ACTIVATION = frozenset({"CONCATENATION", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
EDGETPU_CUSTOM_CODE = "edgetpu-custom-op"  # what edgetpu_compiler leaves in a compiled model

# Short hints for ops this project has actually met (docs/DESIGN.md, part C).
_HINTS = {
    "WHILE": "control flow, e.g. a Keras GRU/LSTM loop: export a single-frame graph with the "
             "state as explicit input/output",
    "DEQUANTIZE": "float output: convert with inference_output_type=tf.int8",
    "SPLIT_V": "from an unrolled Keras GRU; use the Dense-based GRU cell",
    "UNPACK": "from an unrolled Keras GRU; use the Dense-based GRU cell",
    "GRU": "GRU is not on the Edge TPU list",
}

# Reason wording (also used to group table rows).
R_NOT_LISTED = "not in the Edge TPU op list"
R_DYNAMIC = "dynamic shape (-1 in shape_signature)"
R_DIMS = "tensor with a dim > 1 outside the 3 innermost"
R_TCONV_STRIDE = ("TRANSPOSE_CONV with stride > 1: known to fail to compile "
                  "(Coral edgetpu issues 509, 684)")
R_SUBGRAPH = "inside a control-flow subgraph (only one subgraph is supported)"
R_FLEX = "Flex (TF Select) op"
R_CUSTOM = "custom op"
R_FUSED_ACT = "fused activation (not allowed on this op)"
R_BIDI_LSTM = "bidirectional LSTM (unidirectional only)"
R_NONCONST = "non-constant int32 bias/shape input"
R_COMPILED = "already compiled for the Edge TPU"


def _r_dtype(dtypes) -> str:
    return f"{'/'.join(sorted(dtypes))} tensor (needs int8/uint8)"


def _r_fallback(first: int) -> str:
    return f"after the first unsupported op (#{first}): runs on the CPU"


# --- Report -------------------------------------------------------------------------------------

@dataclass
class OpCheck:
    """Verdict for one operator instance."""
    index: int  # position in its subgraph (execution order)
    subgraph: int
    op: str  # builtin name, or "CUSTOM:<code>"
    version: int
    mappable: bool  # the op itself satisfies every rule
    runs_on: str  # "Edge TPU" or "CPU" (a mappable op after the first failure runs on the CPU)
    reasons: list[str] = field(default_factory=list)  # short, shared wording
    details: list[str] = field(default_factory=list)  # tensor names, types, shapes


@dataclass
class OpRow:
    """One table row: ops of one name with the same verdict."""
    op: str
    count: int
    mappable: bool
    runs_on: str
    reason: str  # "" when mapped

    @property
    def status(self) -> str:
        if self.runs_on == "Edge TPU":
            return "yes"
        return "fallback" if self.mappable else "no"


@dataclass
class CheckReport:
    path: str
    ok: bool  # every op of the model maps to the Edge TPU
    subgraph_count: int
    op_count: int  # operators in all subgraphs
    cpu_op_count: int  # of those, how many would run on the CPU
    first_failing_op: int | None  # index in subgraph 0 of the first op that cannot map
    first_failing_op_name: str | None
    rows: list[OpRow]
    ops: list[OpCheck]
    problems: list[str]

    def to_dict(self) -> dict:
        d = asdict(self)
        for row, r in zip(d["rows"], self.rows):
            row["status"] = r.status
        return d


# --- Checks -------------------------------------------------------------------------------------

def _fmt_tensor(sg: SubgraphInfo, t: int) -> str:
    ten = sg.tensors[t]
    sig = ten.shape_signature if ten.shape_signature is not None else ten.shape
    return f"'{ten.name}' {ten.dtype} {list(sig)}"


def _check_op(op: OpInfo, sg: SubgraphInfo) -> tuple[list[str], list[str]]:
    """(reasons, details) for one op; empty reasons mean the op can map."""
    reasons: list[str] = []
    details: list[str] = []
    name = op.name

    def add(reason: str, detail: str | None = None):
        if reason not in reasons:
            reasons.append(reason)
        if detail:
            details.append(detail)

    if sg.index > 0:
        add(R_SUBGRAPH, f"subgraph {sg.index} '{sg.name}'")
    if name == "CUSTOM":
        code = op.custom_code or ""
        if code == EDGETPU_CUSTOM_CODE:
            return [], [R_COMPILED]
        add(R_FLEX if code.startswith("Flex") else R_CUSTOM, f"custom code '{code}'")
    elif name == "BIDIRECTIONAL_SEQUENCE_LSTM":
        add(R_BIDI_LSTM)
    elif name not in EDGETPU_SUPPORTED_OPS:
        add(R_NOT_LISTED, _HINTS.get(name))

    # Tensor types.
    bad_types: set[str] = set()
    bad_detail: list[str] = []
    for pos, t in enumerate(op.inputs):
        if t < 0:
            continue  # omitted optional input
        ten = sg.tensors[t]
        if ten.dtype in EIGHT_BIT:
            continue
        if ten.dtype == "INT32" and (pos in INT32_BIAS_INPUTS.get(name, ())
                                     or pos in INT32_INDEX_INPUTS.get(name, ())):
            if not ten.is_constant:
                add(R_NONCONST, f"input {pos} {_fmt_tensor(sg, t)} is computed, not a constant")
            continue
        if ten.dtype == "INT16" and name in _LSTM_OPS and pos in _LSTM_INT16_INPUTS:
            continue
        bad_types.add(ten.dtype)
        bad_detail.append(f"input {pos} {_fmt_tensor(sg, t)}")
    for pos, t in enumerate(op.outputs):
        if t < 0:
            continue
        ten = sg.tensors[t]
        if ten.dtype not in EIGHT_BIT:
            bad_types.add(ten.dtype)
            bad_detail.append(f"output {pos} {_fmt_tensor(sg, t)}")
    if bad_types:
        add(_r_dtype(bad_types), "; ".join(bad_detail))

    # Shapes: static, and at most the 3 innermost dims > 1 (activations only: weights such as a
    # [out, kh, kw, in] conv filter are laid out by the compiler and exempt).
    touched = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
    for t in dict.fromkeys(touched):
        ten = sg.tensors[t]
        if ten.is_dynamic:
            add(R_DYNAMIC, _fmt_tensor(sg, t))
        if not ten.is_constant and len(ten.shape) > 3 and any(d > 1 for d in ten.shape[:-3]):
            add(R_DIMS, _fmt_tensor(sg, t))

    # Per-op limits.
    if name == "TRANSPOSE_CONV":
        sh, sw = op.options.get("strideH", 1), op.options.get("strideW", 1)
        if sh > 1 or sw > 1:
            add(R_TCONV_STRIDE, f"strides (h, w) = ({sh}, {sw})")
    if name in NO_FUSED_ACTIVATION and op.options.get("fusedActivationFunction", 0):
        add(R_FUSED_ACT, f"fused activation code {op.options['fusedActivationFunction']}")
    return reasons, details


def check_tflite_model(model: TfliteModel) -> CheckReport:
    """Apply the rules to an already decoded model (see check_model)."""
    problems: list[str] = []
    checks: list[OpCheck] = []
    first: int | None = None
    for sg in model.subgraphs:
        for op in sg.ops:
            reasons, details = _check_op(op, sg)
            mappable = not reasons
            if not mappable and sg.index == 0 and first is None:
                first = op.index
            checks.append(OpCheck(index=op.index, subgraph=sg.index, op=op.display_name,
                                  version=op.version, mappable=mappable,
                                  runs_on="Edge TPU" if mappable else "CPU",
                                  reasons=reasons, details=details))
    # The compiler maps ops in order and cuts at the first unsupported one: every later op of the
    # main subgraph runs on the CPU too (execution order approximates the compiler's graph cut).
    if first is not None:
        for c in checks:
            if c.subgraph == 0 and c.index > first and c.mappable:
                c.runs_on = "CPU"
                c.reasons = [_r_fallback(first)]

    rows: dict[tuple, OpRow] = {}
    for c in checks:
        key = (c.op, c.mappable, c.runs_on, "; ".join(c.reasons))
        if key in rows:
            rows[key].count += 1
        else:
            rows[key] = OpRow(op=c.op, count=1, mappable=c.mappable, runs_on=c.runs_on,
                              reason=key[3])

    n_sub = len(model.subgraphs)
    if n_sub > 1:
        names = ", ".join(f"{s.index} '{s.name}'" for s in model.subgraphs[1:])
        problems.append(f"{n_sub} subgraphs (extra: {names}): control flow (WHILE/IF/CALL_ONCE) "
                        "is not supported; the Edge TPU needs exactly one subgraph")
    if not checks:
        problems.append("the model has no operators")
    for c in checks:
        if not c.mappable and c.subgraph == 0:
            text = f"op #{c.index} {c.op}: {'; '.join(c.reasons)}"
            if c.details:
                text += f" [{'; '.join(c.details)}]"
            problems.append(text)
    for sg in model.subgraphs[1:]:
        if sg.ops:
            kinds = ", ".join(dict.fromkeys(op.display_name for op in sg.ops))
            problems.append(f"subgraph {sg.index} '{sg.name}': {len(sg.ops)} op(s) on the CPU "
                            f"({kinds})")
    if first is not None:
        n_after = sum(1 for c in checks if c.subgraph == 0 and c.index > first and c.mappable)
        if n_after:
            problems.append(f"{n_after} supported op(s) after op #{first} fall back to the CPU "
                            "(the compiler maps ops in order and stops at the first unsupported one)")
    if any(EDGETPU_CUSTOM_CODE in c.op for c in checks):
        problems.append("note: this file was already compiled by edgetpu_compiler; "
                        "check the int8 model you compile, not the *_edgetpu.tflite")

    cpu = sum(1 for c in checks if c.runs_on == "CPU")
    ok = cpu == 0 and n_sub == 1 and bool(checks)
    first_name = next((c.op for c in checks if c.subgraph == 0 and c.index == first), None)
    return CheckReport(path=model.path, ok=ok, subgraph_count=n_sub, op_count=len(checks),
                       cpu_op_count=cpu, first_failing_op=first, first_failing_op_name=first_name,
                       rows=list(rows.values()), ops=checks, problems=problems)


def check_model(path: str | os.PathLike) -> CheckReport:
    """Check a ``.tflite`` file against the Edge TPU requirements without running it.

    Raises ``OSError`` when the file cannot be read and ``NotATfliteFile`` when it is not a TFLite
    flatbuffer.
    """
    return check_tflite_model(read_model(path))


# --- Output -------------------------------------------------------------------------------------

def format_table(report: CheckReport, max_problems: int = 20) -> str:
    """The report as text: a ``op | count | Edge TPU | why`` table, a verdict and the problems."""
    head = ("op", "count", "Edge TPU", "why")
    body = [(r.op, str(r.count), r.status, r.reason) for r in report.rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [f"model: {report.path}",
           f"subgraphs: {report.subgraph_count}   operators: {report.op_count}",
           "",
           line(head),
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cells) for cells in body]
    out.append("")
    if report.ok:
        out.append(f"Edge TPU: OK, all {report.op_count} operators map to the Edge TPU "
                   "(static check; edgetpu_compiler has the final word)")
    else:
        first = (f"; first unsupported op: #{report.first_failing_op} {report.first_failing_op_name}"
                 if report.first_failing_op is not None else "")
        out.append(f"Edge TPU: NOT OK, {report.cpu_op_count} of {report.op_count} operators would "
                   f"run on the CPU{first}")
    if report.problems:
        out.append("problems:")
        shown = report.problems[:max_problems]
        out += [f"  - {p}" for p in shown]
        if len(report.problems) > len(shown):
            out.append(f"  ... {len(report.problems) - len(shown)} more (use --json for all)")
    return "\n".join(out)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 1 CPU fallback, 2 bad file)."""
    prog = prog or "python -m tinyse_tf.export.edgetpu_check"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a .tflite file against the Coral Edge TPU requirements without "
                    "compiling or running it. Exit 0: every op maps; 1: something would run on "
                    "the CPU; 2: missing, unreadable or not a .tflite file.")
    parser.add_argument("model", help="path to a .tflite file (the full-int8 model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = check_model(args.model)
    except (OSError, NotATfliteFile) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"{prog}: error: {args.model}: {msg}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_table(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
