"""Every private TensorFlow / TFLite-converter / tfmot API the int8 export rests on, in one place.

None of these is public API, so any TensorFlow or tensorflow-model-optimization release may move
or drop them. Each is reached through a function here that raises ``TfInternalsError`` naming
the API (and the versions ``CHECKED_WITH``) when it is gone; ``tests/export/test_tf_internals.py``
checks them all against the installed versions. Nothing else in the package touches them.

* ``TFLiteConverter._experimental_calibrate_only``: convert to a float flatbuffer that carries
  the calibrated min/max of every tensor, without quantizing (``calibrate_only``). The public
  converter quantizes in the same call, leaving no point at which to replace ranges (QAT ranges,
  state inputs given their outputs' quantization).
* ``tensorflow.lite.python.convert.mlir_quantize``: quantize such a calibrated flatbuffer
  (``mlir_quantize``).
* tfmot's ``quantizers`` module and ``default_8bit_quantize_registry`` (``tfmot_quantizers``,
  ``tfmot_default_8bit_registry``): the conv / transposed-conv quantize configs and the
  moving-average quantizer the custom QAT configs are built from.
* The converter's tensor names (``layer_output_tensors``): it names a tensor after the Keras
  layers whose ops produced it (``.../<layer>/...``, ``;``-joined when fused). QAT ranges are
  matched to streaming-model tensors by that substring; a converter that names tensors
  otherwise makes the match fail (``qat_tensor_ranges`` then finds no tensor for a layer).
"""
from __future__ import annotations

import importlib

from tinyse_tf.export.tflite_ops import read_model_bytes

#: Versions these APIs were checked with (tests/export/test_tf_internals.py, on each of them).
CHECKED_WITH = {"tensorflow": ("2.21.0",), "tensorflow-model-optimization": ("0.8.1",)}

CALIBRATE_ONLY = "TFLiteConverter._experimental_calibrate_only"
MLIR_QUANTIZE = "tensorflow.lite.python.convert.mlir_quantize"
TFMOT_QUANTIZERS = ("tensorflow_model_optimization.python.core.quantization.keras.quantizers"
                    ".LastValueQuantizer / MovingAverageQuantizer")
TFMOT_REGISTRY = ("tensorflow_model_optimization.python.core.quantization.keras.default_8bit"
                  ".default_8bit_quantize_registry.Default8BitConvQuantizeConfig / "
                  "Default8BitConvTransposeQuantizeConfig")


class TfInternalsError(RuntimeError):
    """A private TensorFlow API the int8 export needs is missing; the message names it."""

    def __init__(self, api: str, detail: str = ""):
        checked = "; ".join(f"{k} {', '.join(v)}" for k, v in CHECKED_WITH.items())
        super().__init__(f"{api} is missing from the installed TensorFlow stack"
                         f"{f' ({detail})' if detail else ''}; the int8 export uses this private "
                         f"API and was checked with {checked}: install those versions "
                         "(pip install -e '.[test]' pins them)")
        self.api = api


def _attribute(module: str, name: str, api: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise TfInternalsError(api, f"{type(e).__name__}: {e}") from None


def calibrate_only(converter):
    """Set ``converter`` (a ``tf.lite.TFLiteConverter``) to write a calibrated float model."""
    if not hasattr(converter, "_experimental_calibrate_only"):
        raise TfInternalsError(CALIBRATE_ONLY)
    converter._experimental_calibrate_only = True
    return converter


def mlir_quantize(calibrated: bytes, input_type, output_type) -> bytes:
    """Full-int8 flatbuffer of a calibrated one (int8 ``input_type`` / ``output_type``)."""
    quantize = _attribute("tensorflow.lite.python.convert", "mlir_quantize", MLIR_QUANTIZE)
    return quantize(calibrated, input_data_type=input_type, output_data_type=output_type)


def tfmot_quantizers():
    """tfmot's ``quantizers`` module (``LastValueQuantizer``, ``MovingAverageQuantizer``)."""
    module = "tensorflow_model_optimization.python.core.quantization.keras.quantizers"
    quantizers = _attribute(module.rpartition(".")[0], "quantizers", TFMOT_QUANTIZERS)
    for name in ("LastValueQuantizer", "MovingAverageQuantizer"):
        if not hasattr(quantizers, name):
            raise TfInternalsError(TFMOT_QUANTIZERS, f"no {name}")
    return quantizers


def tfmot_default_8bit_registry():
    """tfmot's ``default_8bit_quantize_registry`` module (the conv quantize configs)."""
    registry = _attribute("tensorflow_model_optimization.python.core.quantization.keras"
                          ".default_8bit", "default_8bit_quantize_registry", TFMOT_REGISTRY)
    for name in ("Default8BitConvQuantizeConfig", "Default8BitConvTransposeQuantizeConfig"):
        if not hasattr(registry, name):
            raise TfInternalsError(TFMOT_REGISTRY, f"no {name}")
    return registry


def layer_output_tensors(flat: bytes, layer_name: str) -> list[int]:
    """Indices of the tensors that carry the output of Keras layer ``layer_name`` in a converted
    model: produced by an op of that layer (name path ``.../<layer>/...``), read by an op of
    another layer, and not the fixed-range output of LOGISTIC/TANH; for a final RESHAPE (the
    sub-pixel decoder's depth-to-space) also its input.

    Tensors that are also model outputs are renamed by the converter (``StatefulPartitionedCall:k``)
    and cannot be found this way: ``qat_tensor_ranges`` reaches those through the signature.
    """
    m = read_model_bytes(flat).main
    key = f"/{layer_name}/"
    in_layer = lambda t: any(key in part for part in m.tensors[t].name.split(";"))
    outs = []
    for op in m.ops:
        if op.name in ("LOGISTIC", "TANH") or not any(in_layer(t) for t in op.outputs):
            continue
        for t in op.outputs:
            consumers = [o for o in m.ops if t in o.inputs]
            # Read by another layer, or by a sigmoid / tanh (the converter may move the mask's
            # sigmoid before the decoder's reshape, fusing their names).
            external = [c for c in consumers if c.name in ("LOGISTIC", "TANH")
                        or not any(in_layer(u) for u in c.outputs)]
            if external and t not in outs:
                outs.append(t)
                if op.name == "RESHAPE":  # same-scale op: its input carries the range too
                    outs.append(op.inputs[0])
    return outs


def missing_apis() -> list[str]:
    """One line per private API above that the installed versions lack (empty: all present)."""
    from tinyse_tf._tf import tf

    problems = []
    checks = (
        lambda: calibrate_only(tf.lite.TFLiteConverter([], None)),
        lambda: _attribute("tensorflow.lite.python.convert", "mlir_quantize", MLIR_QUANTIZE),
        tfmot_quantizers,
        tfmot_default_8bit_registry,
    )
    for check in checks:
        try:
            check()
        except TfInternalsError as e:
            problems.append(str(e))
    return problems
