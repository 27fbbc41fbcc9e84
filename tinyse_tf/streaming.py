"""Real-time enhancement with an exported streaming ``.tflite`` (float32 or full-int8).

``StreamingEnhancer`` owns the whole per-hop signal path around the model, in numpy:

    chunk -> hop buffer (256) -> FrameAnalyzer (512-sample sqrt-Hann frame, rfft)
          -> mel features [1, 1, 80, 1] -> model (+ states) -> mel mask
          -> mask @ mel_to_linear_matrix -> masked STFT frame -> FrameSynthesizer -> 256 samples

Latency: the output stream is the input stream delayed by ``latency_samples = N_FFT - HOP = 256``
samples (16 ms), i.e. output sample ``k + 256`` is the enhanced input sample ``k``. On top of that
a sample waits until its 256-sample hop is complete before it is processed, so the algorithmic
latency is ``algorithmic_latency_samples = N_FFT = 512`` samples (32 ms), plus the compute time.

Every model tensor is addressed by its signature name (``features``, ``<state>``, ``mask``,
``<state>_out``); the TFLite converter reorders inputs, so positions mean nothing. For int8
models the features are quantized and the mask dequantized with the scale and zero point read
from the interpreter; the states stay in their quantized dtype from one hop to the next.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinyse_tf.constants import HOP, N_FFT, N_MELS, SAMPLE_RATE
from tinyse_tf.dsp import FrameAnalyzer, FrameSynthesizer, mel_to_linear_matrix, np_mel_features

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


class _Port:
    """One model input or output: tensor index, dtype and quantization."""

    def __init__(self, name, detail):
        self.name = name
        self.index = int(detail["index"])
        self.dtype = np.dtype(detail["dtype"])
        self.shape = tuple(int(x) for x in detail["shape"])
        scale, zero_point = detail["quantization"]
        self.quantized = self.dtype.kind in "iu" and scale != 0.0
        self.scale, self.zero_point = float(scale), int(zero_point)

    def quantize(self, x):
        if not self.quantized:
            return np.asarray(x, self.dtype).reshape(self.shape)
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, np.float32) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype).reshape(self.shape)

    def dequantize(self, q):
        if not self.quantized:
            return np.asarray(q, np.float32)
        return (q.astype(np.float32) - self.zero_point) * self.scale

    def zeros(self):
        return np.full(self.shape, self.zero_point if self.quantized else 0, self.dtype)


class ContractError(ValueError):
    """A .tflite file whose named inputs/outputs are not those of a tinyse_tf streaming graph."""


def contract_problems(inputs, outputs) -> list:
    """Mismatches between a model's named I/O (``{name: _Port}``) and what ``StreamingEnhancer``
    drives: ``features`` [1, 1, 80, 1] in, ``mask`` [1, 1, 80, 1] out, and for every other input
    ``s`` an output ``s_out`` of the same shape and dtype (the state fed back at the next hop)."""
    want = [1, 1, N_MELS, 1]
    problems = []
    for port, table, io in (("features", inputs, "input"), ("mask", outputs, "output")):
        p = table.get(port)
        if p is None:
            problems.append(f"no {io} named {port!r}")
        elif int(np.prod(p.shape)) != N_MELS:
            problems.append(f"{io} {port!r} has shape {list(p.shape)}, expected {want}")
    for name, p in inputs.items():
        out = outputs.get(f"{name}_out")
        if name == "features":
            continue
        if out is None:
            problems.append(f"state input {name!r} has no output {name + '_out'!r}")
        elif out.shape != p.shape or out.dtype != p.dtype:
            problems.append(f"state {name!r} is {list(p.shape)} {p.dtype.name} in but "
                            f"{list(out.shape)} {out.dtype.name} out")
    return problems


class FrameStream:
    """The per-hop signal path shared by every streaming runner: buffer input to 256-sample
    hops, STFT frame -> mel features -> ``run_frame`` (the model, subclass) -> linear mask ->
    overlap-add. Subclasses implement ``run_frame(features [80]) -> mask [80]`` and
    ``_reset_states()``, and call ``_init_stream()`` at the end of ``__init__``.

    Shape:
        ``process(chunk [n]) -> [256 * k]``: any n >= 0; k = number of hops completed. The
        output stream lags the input by ``latency_samples``.
    """

    latency_samples = N_FFT - HOP
    algorithmic_latency_samples = N_FFT
    hop = HOP
    sample_rate = SAMPLE_RATE

    def _init_stream(self):
        self._m2l = mel_to_linear_matrix()
        self._analyzer, self._synth = FrameAnalyzer(), FrameSynthesizer()
        self.reset()

    # ------------------------------------------------------------------ streaming API
    def reset(self):
        """Forget everything: zero states, empty buffers (start of a new stream)."""
        self._reset_states()
        self._analyzer.reset()
        self._synth.reset()
        self._pending = np.zeros(0, np.float32)
        self._n_in = 0
        self._n_out = 0

    def process(self, chunk) -> np.ndarray:
        """Push any number of samples; return the enhanced samples completed so far.

        Returns ``256 * k`` samples where k is the number of hops that became complete; they
        continue the output stream, which lags the input by ``latency_samples``.
        """
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        self._n_in += chunk.size
        buf = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        n_hops = buf.size // HOP
        out = np.empty(n_hops * HOP, np.float32)
        for k in range(n_hops):
            out[k * HOP:(k + 1) * HOP] = self._process_hop(buf[k * HOP:(k + 1) * HOP])
        self._pending = buf[n_hops * HOP:].copy()
        self._n_out += out.size
        return out

    def flush(self) -> np.ndarray:
        """End the stream: push zeros until every input sample has left, then ``reset()``.

        The concatenation of all ``process`` outputs and this one has exactly
        ``latency_samples + samples pushed`` samples; dropping the first ``latency_samples``
        gives the enhanced input, aligned and of the same length.
        """
        need = self._n_in + self.latency_samples - self._n_out  # = pending + 256 > 0
        n_zeros = -(-need // HOP) * HOP - self._pending.size
        out = self.process(np.zeros(n_zeros, np.float32))[:need]
        self.reset()
        return out

    def enhance(self, audio) -> np.ndarray:
        """Enhance a whole signal through the stream (reset, process, flush, drop the latency).

        Shape: audio [n] -> [n], aligned with the input.
        """
        self.reset()
        out = np.concatenate([self.process(audio), self.flush()])
        return out[self.latency_samples:]

    # ------------------------------------------------------------------ one hop
    def _process_hop(self, hop: np.ndarray) -> np.ndarray:
        spec = self._analyzer.push(hop)
        mask = self.run_frame(np_mel_features(spec))
        return self._synth.push(spec * (mask @ self._m2l))

    def run_frame(self, features) -> np.ndarray:
        """Run the model on one feature frame [80], advancing the states; return the mask [80]."""
        raise NotImplementedError

    def _reset_states(self):
        raise NotImplementedError


class StreamingEnhancer(FrameStream):
    """Enhance audio chunk by chunk with a streaming ``.tflite`` exported by ``export_model``.

    Args:
        model_path: ``*_stream_float32.tflite``, ``*_stream_int8_*.tflite``, or an
            ``edgetpu_compiler`` output of an int8 file (with ``edgetpu=True``).
        edgetpu: run through the Coral Edge TPU delegate (``libedgetpu.so.1``).
        num_threads: CPU threads of the interpreter.
    Shape:
        ``process(chunk [n]) -> [256 * k]``: any n >= 0; k = number of hops completed.
    Attributes:
        latency_samples: output lags input by this many samples (256).
        algorithmic_latency_samples: frame length, 512 (hop buffering + overlap-add delay).
        dtype: dtype of the model's ``features`` input (float32 or int8).
    """

    def __init__(self, model_path, edgetpu: bool = False, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"no such model file: {self.model_path}")
        delegates = [load_edgetpu_delegate()] if edgetpu else None
        self._interp = Interpreter(model_path=str(self.model_path), num_threads=num_threads,
                                   experimental_delegates=delegates)
        self._interp.allocate_tensors()
        self._inputs, self._outputs = self._resolve_ports()
        problems = contract_problems(self._inputs, self._outputs)
        if problems:
            raise ContractError(f"{self.model_path}: I/O contract does not match a tinyse_tf "
                             f"streaming model: {'; '.join(problems[:3])}")
        self.state_names = sorted(n for n in self._inputs if n != "features")
        self._requant = {n: not self._same_quant(self._inputs[n], self._outputs[f"{n}_out"])
                         for n in self.state_names}
        self.dtype = self._inputs["features"].dtype
        self._init_stream()

    # ------------------------------------------------------------------ model I/O by name
    def _resolve_ports(self):
        # Names are resolved once, through the signature runner, to tensor indices of the main
        # subgraph; each hop then uses set_tensor / invoke / get_tensor (the runner's __call__
        # re-checks and copies every tensor on every call).
        sigs = self._interp.get_signature_list()
        if sigs:
            runner = self._interp.get_signature_runner(next(iter(sigs)))
            ins = {n: _Port(n, d) for n, d in runner.get_input_details().items()}
            outs = {n: _Port(n, d) for n, d in runner.get_output_details().items()}
            return ins, outs
        # No signature (e.g. stripped by a tool): map names through the io_contract's tensor names.
        return self._ports_from_contract()

    def _ports_from_contract(self):
        stem = self.model_path.stem.removesuffix("_edgetpu")
        path = self.model_path.with_name(stem + ".io_contract.json")
        if not path.is_file():
            raise ValueError(f"{self.model_path} has no signature and no {path.name} to name its "
                             "tensors")
        contract = json.loads(path.read_text())
        by_tensor = {d["name"]: d for d in self._interp.get_input_details()}
        by_tensor.update({d["name"]: d for d in self._interp.get_output_details()})
        ins, outs = {}, {}
        for entries, dest in ((contract["inputs"], ins), (contract["outputs"], outs)):
            for e in entries:
                d = by_tensor.get(e.get("tensor_name"))
                if d is not None:
                    dest[e["name"]] = _Port(e["name"], d)
        return ins, outs

    @staticmethod
    def _same_quant(a: _Port, b: _Port) -> bool:
        return (a.dtype == b.dtype and a.zero_point == b.zero_point
                and abs(a.scale - b.scale) <= 1e-6 * max(a.scale, b.scale, 1e-30))

    def _reset_states(self):
        self._states = {n: self._inputs[n].zeros() for n in self.state_names}

    def run_frame(self, features) -> np.ndarray:
        """Run the model on one feature frame [80], advancing the states; return the mask [80]."""
        interp = self._interp
        port = self._inputs["features"]
        interp.set_tensor(port.index, port.quantize(features))
        for n in self.state_names:
            interp.set_tensor(self._inputs[n].index, self._states[n])
        interp.invoke()
        for n in self.state_names:
            out_port = self._outputs[f"{n}_out"]
            q = interp.get_tensor(out_port.index)
            if self._requant[n]:  # differing quantization: rescale (not the case for our exports)
                q = self._inputs[n].quantize(out_port.dequantize(q))
            self._states[n] = q
        out = self._outputs["mask"]
        return out.dequantize(interp.get_tensor(out.index)).reshape(-1)
