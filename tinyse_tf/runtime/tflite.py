"""Exported streaming ``.tflite`` files (float32 or full-int8) as frame models, on the CPU or the
Coral Edge TPU, and ``StreamingEnhancer``, the real-time enhancer built on them (numpy and
ai-edge-litert only).

For int8 models the features are quantized and the mask dequantized with the scale and zero point
read from the interpreter; the states stay in their quantized dtype from one hop to the next (the
export gives each state input exactly its output's quantization).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinyse_tf.runtime.contract import (CONTRACT_SUFFIX, STATE_OUTPUT_SUFFIX, Port,
                                        check_contract)
from tinyse_tf.runtime.signal import FrameStream

EDGETPU_LIBRARY = "libedgetpu.so.1"


class EdgeTPUUnavailable(RuntimeError):
    """``edgetpu=True`` but the Edge TPU runtime library could not be loaded."""


def load_edgetpu_delegate(library: str = EDGETPU_LIBRARY):
    """The Edge TPU delegate, or ``EdgeTPUUnavailable`` with a one-line explanation."""
    import ctypes

    from ai_edge_litert.interpreter import load_delegate

    try:
        # Open the library first: a failed load_delegate leaves a half-built Delegate whose
        # __del__ prints a traceback, which would bury the one-line message below.
        ctypes.CDLL(library)
        return load_delegate(library)
    except (ValueError, OSError, RuntimeError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise EdgeTPUUnavailable(
            f"edgetpu=True but the Edge TPU runtime {library} could not be loaded ({reason}); "
            "install libedgetpu1-std from Coral's apt repository and plug in the device, or use "
            "edgetpu=False") from None


def make_interpreter(model_content: bytes | None = None, model_path=None, num_threads: int = 1,
                     delegates=None, **options):
    """An ``ai_edge_litert`` interpreter with tensors allocated (``options``: further
    ``Interpreter`` arguments, e.g. ``experimental_op_resolver_type``)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_content,
                         model_path=None if model_path is None else str(model_path),
                         num_threads=num_threads, experimental_delegates=delegates, **options)
    interp.allocate_tensors()
    return interp


def named_ports(interp, model_path=None) -> tuple[dict, dict]:
    """``({input name: Port}, {output name: Port})`` of an interpreter's streaming model.

    Names come from the signature; a file without one (stripped by a tool) is named through the
    ``<stem>.io_contract.json`` beside ``model_path``.
    """
    sigs = interp.get_signature_list()
    if sigs:
        runner = interp.get_signature_runner(next(iter(sigs)))
        return ({n: Port(n, d) for n, d in runner.get_input_details().items()},
                {n: Port(n, d) for n, d in runner.get_output_details().items()})
    if model_path is None:
        raise ValueError("the model has no signature to name its tensors")
    model_path = Path(model_path)
    path = model_path.with_name(model_path.stem.removesuffix("_edgetpu") + CONTRACT_SUFFIX)
    if not path.is_file():
        raise ValueError(f"{model_path} has no signature and no {path.name} to name its tensors")
    contract = json.loads(path.read_text())
    by_tensor = {d["name"]: d for d in interp.get_input_details()}
    by_tensor.update({d["name"]: d for d in interp.get_output_details()})
    ins, outs = {}, {}
    for entries, dest in ((contract["inputs"], ins), (contract["outputs"], outs)):
        for e in entries:
            d = by_tensor.get(e.get("tensor_name"))
            if d is not None:
                dest[e["name"]] = Port(e["name"], d)
    return ins, outs


class TfliteFrameModel:
    """One exported streaming file as a frame model: ``step(features [80]) -> mask [80]``.

    Args:
        model_path / model_content: the ``.tflite`` file, or its bytes.
        edgetpu: run through the Coral Edge TPU delegate (``libedgetpu.so.1``).
        num_threads: CPU threads of the interpreter.
        interpreter_options: further ``Interpreter`` arguments, e.g.
            ``experimental_op_resolver_type=OpResolverType.BUILTIN_REF`` (reference kernels).
    Attributes:
        dtype: dtype of the ``features`` input (float32 or int8); state_names: sorted state names.
    """

    def __init__(self, model_path=None, model_content: bytes | None = None,
                 edgetpu: bool = False, num_threads: int = 1, **interpreter_options):
        if model_path is not None and not Path(model_path).is_file():
            raise FileNotFoundError(f"no such model file: {model_path}")
        delegates = [load_edgetpu_delegate()] if edgetpu else None
        self._interp = make_interpreter(model_content, model_path, num_threads, delegates,
                                        **interpreter_options)
        self.inputs, self.outputs = named_ports(self._interp, model_path)
        check_contract(self.inputs, self.outputs, model_path or "model")
        self.state_names = sorted(n for n in self.inputs if n != "features")
        self.dtype = self.inputs["features"].dtype
        self.name = f"streaming TFLite ({self.dtype})"
        # (input port, output port, requantize?) per state; tensors are addressed by index, so
        # each hop costs set_tensor / invoke / get_tensor (the signature runner's __call__
        # re-checks and copies every tensor on every call).
        self._loop = [(self.inputs[n], self.outputs[n + STATE_OUTPUT_SUFFIX]) for n in self.state_names]
        self._requant = [not i.same_quantization(o) for i, o in self._loop]
        self._features, self._mask = self.inputs["features"], self.outputs["mask"]
        self.reset()

    def reset(self):
        self._states = [i.zeros() for i, _ in self._loop]

    def states(self) -> dict:
        """The current states, dequantized: ``{name: float32 array}``."""
        return {n: i.dequantize(s) for n, (i, _), s in zip(self.state_names, self._loop, self._states)}

    def step(self, features) -> np.ndarray:
        interp = self._interp
        set_tensor, get_tensor = interp.set_tensor, interp.get_tensor
        set_tensor(self._features.index, self._features.quantize(features))
        for (port, _), state in zip(self._loop, self._states):
            set_tensor(port.index, state)
        interp.invoke()
        states = []
        for (port, out), requant in zip(self._loop, self._requant):
            q = get_tensor(out.index)
            states.append(port.quantize(out.dequantize(q)) if requant else q)
        self._states = states
        return self._mask.dequantize(get_tensor(self._mask.index)).reshape(-1)


class StreamingEnhancer(FrameStream):
    """Enhance audio chunk by chunk with a streaming ``.tflite`` exported by ``export_model``.

    Args:
        model_path: ``*_stream_float32.tflite``, ``*_stream_int8_*.tflite``, or an
            ``edgetpu_compiler`` output of an int8 file (with ``edgetpu=True``).
        edgetpu: run through the Coral Edge TPU delegate (``libedgetpu.so.1``).
        num_threads: CPU threads of the interpreter.
    Shape:
        ``process(chunk [n]) -> [256 * k]``: any n >= 0; k = number of hops completed;
        ``enhance(audio [n]) -> [n]`` aligned with the input.
    Attributes:
        latency_samples: output lags input by this many samples (256).
        algorithmic_latency_samples: frame length, 512 (hop buffering + overlap-add delay).
        dtype: dtype of the model's ``features`` input (float32 or int8).
    """

    def __init__(self, model_path, edgetpu: bool = False, num_threads: int = 1):
        self.model_path = Path(model_path)
        super().__init__(TfliteFrameModel(self.model_path, edgetpu=edgetpu,
                                          num_threads=num_threads))
        self.dtype = self.frame_model.dtype
        self.state_names = self.frame_model.state_names
