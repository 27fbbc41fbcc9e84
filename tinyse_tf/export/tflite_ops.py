"""Read the structure of a ``.tflite`` flatbuffer without running it.

The reader uses the flatbuffer bindings generated from the TFLite schema that ship with
``ai-edge-litert`` (``ai_edge_litert.schema_py_generated``, plain Python on top of the
``flatbuffers`` package): it imports in well under a second and needs neither TensorFlow nor an
interpreter. When ai-edge-litert is absent it falls back to the identical bindings inside
TensorFlow (``tensorflow.lite.python.schema_py_generated``).

``model_object`` / ``object_bytes`` give the same bindings' mutable object tree (``ModelT``) and
write it back: the int8 export edits tensors' quantization statistics that way.

Only what a static check needs is decoded: operator codes, operators (inputs, outputs, builtin
options), tensors (name, type, shape, shape_signature, whether a constant buffer backs them) and
subgraphs. Weight data are never copied.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

try:  # preferred: no TensorFlow import
    from ai_edge_litert import schema_py_generated as _schema
except ImportError:  # pragma: no cover - only without ai-edge-litert
    from tensorflow.lite.python import schema_py_generated as _schema  # type: ignore

TFLITE_FILE_IDENTIFIER = b"TFL3"

_OP_NAMES = {v: k for k, v in vars(_schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(_schema.TensorType).items() if not k.startswith("_")}
_CUSTOM = _schema.BuiltinOperator.CUSTOM


class NotATfliteFile(ValueError):
    """The file exists but is not a TFLite flatbuffer this reader can decode."""


@dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str  # TensorType name: "INT8", "FLOAT32", ...
    shape: list[int]
    shape_signature: list[int] | None  # None when the file stores none (then equal to shape)
    is_constant: bool  # backed by a non-empty buffer (weights, biases, shape constants)
    is_variable: bool

    @property
    def is_dynamic(self) -> bool:
        sig = self.shape_signature if self.shape_signature is not None else self.shape
        return any(d < 0 for d in sig) or any(d < 0 for d in self.shape)


@dataclass
class OpInfo:
    index: int  # position in its subgraph's operator list (execution order)
    subgraph: int
    name: str  # builtin name ("CONV_2D"), or "CUSTOM" for custom/Flex ops
    custom_code: str | None
    version: int
    inputs: list[int]  # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)  # builtin options, field -> value

    @property
    def display_name(self) -> str:
        return f"CUSTOM:{self.custom_code}" if self.name == "CUSTOM" else self.name


@dataclass
class SubgraphInfo:
    index: int
    name: str
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: list[int]
    outputs: list[int]


@dataclass
class TfliteModel:
    path: str
    version: int
    description: str
    subgraphs: list[SubgraphInfo]

    @property
    def main(self) -> SubgraphInfo:
        return self.subgraphs[0]


def _decode(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def _options(op) -> dict[str, Any]:
    """Builtin options of one operator as a plain dict (empty when it has none)."""
    try:
        table = op.BuiltinOptions()
        if table is None:
            return {}
        obj = _schema.BuiltinOptionsCreator(op.BuiltinOptionsType(), table)
    except Exception:  # an options table this schema version cannot decode: not fatal
        return {}
    return dict(vars(obj)) if obj is not None else {}


def read_model_bytes(data: bytes, path: str = "<bytes>") -> TfliteModel:
    """Decode a TFLite flatbuffer held in memory. Raises NotATfliteFile on anything else."""
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise NotATfliteFile("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    try:
        model = _schema.Model.GetRootAs(data, 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            # builtin_code (int32) superseded deprecated_builtin_code (int8); the larger is right.
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            codes.append((_OP_NAMES.get(code, f"UNKNOWN_{code}"), _decode(oc.CustomCode()) or None,
                          oc.Version()))
        const_buffers = set()
        for b in range(model.BuffersLength()):
            buf = model.Buffers(b)
            if b > 0 and (buf.DataLength() > 0 or buf.Size() > 0):
                const_buffers.add(b)
        subgraphs = []
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            tensors = []
            for t in range(sg.TensorsLength()):
                ten = sg.Tensors(t)
                sig = [int(x) for x in ten.ShapeSignatureAsNumpy()] if ten.ShapeSignatureLength() else None
                tensors.append(TensorInfo(
                    index=t,
                    name=_decode(ten.Name()),
                    dtype=_TYPE_NAMES.get(ten.Type(), f"TYPE_{ten.Type()}"),
                    shape=[int(x) for x in ten.ShapeAsNumpy()] if ten.ShapeLength() else [],
                    shape_signature=sig,
                    is_constant=ten.Buffer() in const_buffers,
                    is_variable=bool(ten.IsVariable()),
                ))
            ops = []
            for o in range(sg.OperatorsLength()):
                op = sg.Operators(o)
                name, custom, version = codes[op.OpcodeIndex()]
                ops.append(OpInfo(
                    index=o, subgraph=s, name=name, custom_code=custom, version=version,
                    inputs=[int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [],
                    outputs=[int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else [],
                    options=_options(op),
                ))
            n_t = len(tensors)
            for op in ops:
                if any(t >= n_t for t in op.inputs + op.outputs):
                    raise NotATfliteFile(f"corrupt TFLite flatbuffer (op #{op.index} of subgraph "
                                         f"{s} names a tensor that does not exist)")
            subgraphs.append(SubgraphInfo(
                index=s, name=_decode(sg.Name()), tensors=tensors, ops=ops,
                inputs=[int(x) for x in sg.InputsAsNumpy()] if sg.InputsLength() else [],
                outputs=[int(x) for x in sg.OutputsAsNumpy()] if sg.OutputsLength() else [],
            ))
    except NotATfliteFile:
        raise
    except Exception as e:  # truncated or corrupt flatbuffer: any decoding error
        raise NotATfliteFile(f"corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from e
    if not subgraphs:
        raise NotATfliteFile("TFLite flatbuffer without any subgraph")
    return TfliteModel(path=path, version=model.Version(), description=_decode(model.Description()),
                       subgraphs=subgraphs)


def model_object(data: bytes):
    """The flatbuffer as the schema's mutable object tree (``ModelT``: ``.subgraphs[i].tensors``,
    ``.signatureDefs``, ...), to edit and write back with ``object_bytes``."""
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise NotATfliteFile("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    return _schema.ModelT.InitFromObj(_schema.Model.GetRootAs(data, 0))


def object_bytes(obj) -> bytes:
    """A ``model_object`` tree serialised back into a ``.tflite`` flatbuffer."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def signature_tensors(obj) -> tuple[dict, dict]:
    """``({input name: tensor index}, {output name: tensor index})`` of the first signature of a
    ``model_object`` tree."""
    sig = obj.signatureDefs[0]
    dec = lambda b: b.decode() if isinstance(b, bytes) else b
    return ({dec(m.name): m.tensorIndex for m in sig.inputs},
            {dec(m.name): m.tensorIndex for m in sig.outputs})


def read_model(path: str | os.PathLike) -> TfliteModel:
    """Decode a ``.tflite`` file. Raises OSError (missing/unreadable) or NotATfliteFile."""
    with open(path, "rb") as f:
        data = f.read()
    return read_model_bytes(data, str(path))


#: The one multiply-accumulate counting rule of tinyse_tf (``weight_macs``).
MACS_RULE = ("MACs per frame: multiply-accumulates of the weight ops (conv, depthwise conv, "
             "fully connected, transposed conv) of the streaming .tflite for one 16 ms frame, "
             "counted from the file; biases, norms, activations and gate element-wise ops not "
             "counted")


def weight_macs(model: TfliteModel | bytes) -> dict[str, int]:
    """Multiply-accumulates per invoke of the main subgraph's weight ops, by operator type
    (``MACS_RULE``): CONV_2D / DEPTHWISE_CONV_2D (output elements x kernel taps x input channels
    per group), FULLY_CONNECTED (output elements x input width) and TRANSPOSE_CONV (input elements
    x kernel taps x output channels). Everything the file multiplies is counted, e.g. the zero
    taps of the sub-pixel form of CRUSE's transposed convs (tinyse_tf.models.layers)."""
    sg = (read_model_bytes(model) if isinstance(model, (bytes, bytearray)) else model).main
    macs: dict[str, int] = {}
    for op in sg.ops:
        out = math.prod(sg.tensors[op.outputs[0]].shape)
        if op.name == "CONV_2D":
            _, kh, kw, cin = sg.tensors[op.inputs[1]].shape
            n = out * kh * kw * cin
        elif op.name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = sg.tensors[op.inputs[1]].shape
            n = out * kh * kw
        elif op.name == "FULLY_CONNECTED":
            n = out * sg.tensors[op.inputs[1]].shape[-1]
        elif op.name == "TRANSPOSE_CONV":
            cout, kh, kw, _ = sg.tensors[op.inputs[1]].shape
            n = math.prod(sg.tensors[op.inputs[2]].shape) * kh * kw * cout
        else:
            continue
        macs[op.name] = macs.get(op.name, 0) + int(n)
    return dict(sorted(macs.items()))


def op_names(path: str | os.PathLike) -> list[str]:
    """Operator names of the main subgraph, in execution order (custom ops as 'CUSTOM:code')."""
    return [op.display_name for op in read_model(path).main.ops]
