"""Public pretrained tiny enhancers to measure against (never shipped, never trained on).

The peer files are not part of this repository: they sit in a folder beside it (default
``../shared/peers``, ``--peers`` in vs_peers.py), one sub-folder per system:

* ``gtcrn/gtcrn_simple.onnx``: GTCRN (Rong et al., ICASSP 2024), the streaming ONNX export of
  github.com/Xiaobin-Rong/gtcrn (``stream/onnx_models``), MIT; trained on DNS Challenge 3.
* ``dtln/model_1.tflite``, ``dtln/model_2.tflite``: DTLN (Westhausen & Meyer, Interspeech 2020),
  github.com/breizhn/DTLN ``pretrained_model``, MIT; trained on DNS Challenge data.

Each runner is a transcription of its repository's own streaming inference script (GTCRN:
``stream/gtcrn_stream.py``; DTLN: ``real_time_processing_tf_lite.py``), one model call per hop with
the states fed back, single-threaded, returning audio aligned with its input (the algorithmic
delay removed, as ``StreamingEnhancer`` does for ours). ``check_*`` compare a runner with the
reference outputs stored beside the models. Cost counts (``*_cost``) are read from the files:
float weights stored, and multiply-accumulates of the weight layers per second of audio.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

PEER_RATE = 16000  # both peers run at 16 kHz only (as ours: tinyse_tf.constants.SAMPLE_RATE)


class PeerMissing(FileNotFoundError):
    """A peer's model file is not in the peers folder."""


def _file(folder, *parts) -> Path:
    path = Path(folder).joinpath(*parts)
    if not path.is_file():
        raise PeerMissing(f"{path}: no such file; --peers must name the folder holding gtcrn/ "
                          "and dtln/ (see benchmarks/peers.py for where each file comes from)")
    return path


# --------------------------------------------------------------------------------------- GTCRN
GTCRN_FFT, GTCRN_HOP = 512, 256


def gtcrn(folder):
    """``enhance(audio [n]) -> [n]`` with GTCRN's streaming ONNX model (onnxruntime, 1 thread):
    STFT with ``center=True`` (reflect padding of 256), sqrt periodic Hann 512, hop 256; one
    ONNX call per frame with the three caches fed back; inverse FFT times the window,
    overlap-add divided by the summed squared window, padding cut."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(_file(folder, "gtcrn", "gtcrn_simple.onnx")), options,
                                   providers=["CPUExecutionProvider"])
    caches = {i.name: i.shape for i in session.get_inputs() if i.name != "mix"}
    window = np.sqrt(np.hanning(GTCRN_FFT + 1)[:-1]).astype(np.float32)  # periodic Hann

    def enhance(audio):
        audio = np.asarray(audio, np.float32)
        pad = GTCRN_FFT // 2
        x = np.pad(audio, pad, mode="reflect")
        frames = 1 + (x.size - GTCRN_FFT) // GTCRN_HOP
        state = {name: np.zeros(shape, np.float32) for name, shape in caches.items()}
        out = np.zeros(x.size, np.float32)
        norm = np.zeros(x.size, np.float32)
        for t in range(frames):
            seg = slice(t * GTCRN_HOP, t * GTCRN_HOP + GTCRN_FFT)
            spec = np.fft.rfft(x[seg] * window)
            mix = np.stack([spec.real, spec.imag], -1).astype(np.float32)[None, :, None, :]
            enh, *new = session.run(None, {"mix": mix, **state})
            state = dict(zip(state, new))
            frame = np.fft.irfft(enh[0, :, 0, 0] + 1j * enh[0, :, 0, 1], GTCRN_FFT)
            out[seg] += frame.astype(np.float32) * window
            norm[seg] += window ** 2
        out = out / np.maximum(norm, 1e-8)
        return out[pad:pad + audio.size]

    return enhance


# ---------------------------------------------------------------------------------------- DTLN
DTLN_BLOCK, DTLN_SHIFT = 512, 128


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _io(interpreter, kind):
    """``(signal detail, state detail)`` of an interpreter's inputs or outputs: the state is the
    tensor whose shape the signal's is not (DTLN's files order them differently per stage)."""
    details = (interpreter.get_input_details() if kind == "in"
               else interpreter.get_output_details())
    signal = [d for d in details if d["shape"][-1] in (DTLN_BLOCK // 2 + 1, DTLN_BLOCK)]
    state = [d for d in details if d not in signal]
    if len(signal) != 1 or len(state) != 1:
        raise ValueError(f"unexpected DTLN tensors: {[(d['name'], d['shape']) for d in details]}")
    return signal[0], state[0]


def dtln(folder):
    """``enhance(audio [n]) -> [n]`` with DTLN's two TFLite stages (LiteRT, 1 thread): blocks of
    512 samples every 128; stage 1 masks the block's FFT magnitude, stage 2 maps the masked
    block back to time; overlap-add. Output delayed by 384 samples in the loop, removed here."""
    stages = [_interpreter(_file(folder, "dtln", f"model_{k}.tflite")) for k in (1, 2)]
    io = [(_io(s, "in"), _io(s, "out")) for s in stages]
    delay = DTLN_BLOCK - DTLN_SHIFT

    def enhance(audio):
        # float64 buffers and FFTs, as the repository's script (it reads files as float64)
        audio = np.asarray(audio, np.float64)
        x = np.concatenate([audio, np.zeros(delay + DTLN_SHIFT)])
        states = [np.zeros(inp[1]["shape"], np.float32) for inp, _ in io]
        in_buf, out_buf = np.zeros(DTLN_BLOCK), np.zeros(DTLN_BLOCK)
        blocks = x.size // DTLN_SHIFT
        out = np.zeros(blocks * DTLN_SHIFT)
        for b in range(blocks):
            in_buf = np.roll(in_buf, -DTLN_SHIFT)
            in_buf[-DTLN_SHIFT:] = x[b * DTLN_SHIFT:(b + 1) * DTLN_SHIFT]
            spec = np.fft.rfft(in_buf)
            mag = np.abs(spec).astype(np.float32).reshape(1, 1, -1)
            mask = _invoke(stages[0], io[0], mag, states, 0)
            block = np.fft.irfft(spec * mask.reshape(-1)).astype(np.float32).reshape(1, 1, -1)
            out_block = _invoke(stages[1], io[1], block, states, 1)
            out_buf = np.roll(out_buf, -DTLN_SHIFT)
            out_buf[-DTLN_SHIFT:] = 0.0
            out_buf += out_block.reshape(-1)
            out[b * DTLN_SHIFT:(b + 1) * DTLN_SHIFT] = out_buf[:DTLN_SHIFT]
        return out[delay:delay + audio.size].astype(np.float32)

    return enhance


def _invoke(interpreter, io, signal, states, k):
    (sig_in, state_in), (sig_out, state_out) = io
    interpreter.set_tensor(sig_in["index"], signal)
    interpreter.set_tensor(state_in["index"], states[k])
    interpreter.invoke()
    states[k] = interpreter.get_tensor(state_out["index"])
    return interpreter.get_tensor(sig_out["index"])


# ------------------------------------------------------------------------------ reference check
def check(folder, name, enhance) -> float:
    """Largest absolute difference between ``enhance`` of ``gtcrn/reference_mix.wav`` and the
    peer's stored output ``<name>/reference_enh.wav``. DTLN's reference is its loop's raw output:
    delayed by 384 samples and ending one block early, so it is compared after the delay and
    without its last block."""
    import soundfile as sf

    mix, _ = sf.read(_file(folder, "gtcrn", "reference_mix.wav"), dtype="float32")
    ref, _ = sf.read(_file(folder, name, "reference_enh.wav"), dtype="float32")
    out = enhance(mix)
    if name == "dtln":
        ref = ref[DTLN_BLOCK - DTLN_SHIFT:-DTLN_BLOCK]
    n = min(ref.size, out.size)
    return float(np.max(np.abs(out[:n] - ref[:n])))


# --------------------------------------------------------------------------------------- costs
def gtcrn_cost(folder) -> dict:
    """Float weights stored in the ONNX file and weight-layer MACs per second of audio (Conv,
    ConvTranspose, MatMul, GRU; one frame per 16 ms), from the graph with ONNX shape
    inference. Needs the ``onnx`` package (``pip install -e '.[bench]'``)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(_file(folder, "gtcrn", "gtcrn_simple.onnx"))))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    shapes.update({k: list(v.shape) for k, v in inits.items()})
    macs: Counter = Counter()
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            # Conv: each output value, ConvTranspose: each input value meets one weight slice
            # (Conv weights [out, in/g, k..], ConvTranspose [in, out/g, k..]).
            counted = node.output[0] if node.op_type == "Conv" else node.input[0]
            macs[node.op_type] += int(np.prod(shapes[counted])) * int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "MatMul":  # [.., m, k] x [k, n]
            macs["MatMul"] += int(np.prod(shapes[node.output[0]])) * shapes[node.input[0]][-1]
        elif node.op_type == "GRU":
            x, w, r = (shapes[n] for n in node.input[:3])  # X [seq, batch, in], W [dirs, 3h, in]
            macs["GRU"] += x[0] * x[1] * w[0] * w[1] * (w[2] + r[2])
    floats = sum(v.size for v in inits.values() if v.dtype.kind == "f")
    per_second = PEER_RATE / GTCRN_HOP
    return {"weights": int(floats), "macs_per_s": int(sum(macs.values()) * per_second),
            "macs_by_op": {k: int(v * per_second) for k, v in sorted(macs.items())}}


def tflite_cost(paths, hop: int) -> dict:
    """Float weights stored in TFLite files and the MACs of their weight layers per second of
    audio (``tinyse_tf.export.tflite_ops.weight_macs`` per invoke, one invoke per ``hop`` samples)."""
    from tinyse_tf.export.tflite_ops import read_model, weight_macs

    weights, macs = 0, Counter()
    for path in paths:
        sg = read_model(path).main
        weights += sum(int(np.prod(t.shape)) for t in sg.tensors
                       if t.is_constant and t.dtype in ("FLOAT32", "INT8", "FLOAT16"))
        macs.update(weight_macs(Path(path).read_bytes()))
    per_second = PEER_RATE / hop
    return {"weights": int(weights), "macs_per_s": int(sum(macs.values()) * per_second),
            "macs_by_op": {k: int(v * per_second) for k, v in sorted(macs.items())}}


def dtln_cost(folder) -> dict:
    return tflite_cost([_file(folder, "dtln", f"model_{k}.tflite") for k in (1, 2)], DTLN_SHIFT)
