"""Where the int8 error of a streaming file enters: every tensor against the float file's.

``tensor_errors(float_file, int8_file, audios)`` runs both exported streaming files frame by frame
over noisy audio. The float file runs in closed loop (its own states); at every frame the int8 file
gets the *same* inputs (features and the float file's states, quantized), so the error of each
tensor is that frame's quantization error accumulated through the graph up to it, without the drift
of int8 states from one frame to the next (``mask_error`` measures the whole closed loop).
Tensors are matched by name (the converter keeps the float graph's names); each gets:

* ``sqnr_db``: 10 log10(sum f^2 / sum (q - f)^2) over all frames, f the float value and q the
  dequantized int8 value;
* ``rms_lsb``: RMS error in quantization steps (1 = rounding noise of about 0.29 LSB is the floor);
* ``clipped``: fraction of float values outside the tensor's int8 range (a range too narrow);
* ``lo``, ``hi``: the int8 range; ``float_min``, ``float_max``: what the float file produced.

TFLite's ``QuantizationDebugger`` gives per-op statistics only for a model it quantizes itself from
a converter; these files are quantized in several passes (state alignment, QAT range transfer,
``tinyse_tf.export.quantize``), so the comparison is made here on the finished files.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from tinyse_tf.export.tflite_ops import read_model_bytes

_WARMUP_FRAMES = 5  # frames after a stream start, skipped (states still zero)


@dataclasses.dataclass
class TensorError:
    """Error statistics of one int8 tensor against the float file's tensor of the same name."""

    index: int  # tensor index in the int8 file
    name: str  # first part of the tensor name (the Keras layer path)
    op: str  # operator that produces it ("input" for model inputs)
    sqnr_db: float
    rms_lsb: float
    clipped: float  # fraction in [0, 1]
    lo: float
    hi: float
    float_min: float
    float_max: float

    @property
    def layer(self) -> str:
        """The Keras layer the tensor belongs to (``enc1_norm``); model inputs and outputs
        (``serving_default_<name>:0``, ``StatefulPartitionedCall:<k>``) keep their tensor name."""
        parts = self.name.split("/")
        return parts[1] if len(parts) > 2 else self.name


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is intended for debugging"
        # No XNNPACK: a delegated partition does not keep its intermediate tensors.
        interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=(
                                 OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
    return interp


def _producers(path) -> dict[int, str]:
    with open(path, "rb") as f:
        model = read_model_bytes(f.read(), str(path)).main
    return {t: op.display_name for op in model.ops for t in op.outputs}


def tensor_errors(float_path, int8_path, audios) -> list[TensorError]:
    """Per-tensor error of an int8 streaming file against its float file, in graph order.

    Args:
        float_path, int8_path: ``*_stream_float32.tflite`` and an int8 file of the same weights.
        audios: noisy signals (1-D float arrays at 16 kHz); frames 0-4 of each are skipped.
    Returns:
        one ``TensorError`` per quantized tensor whose name the float file also has.
    """
    from tinyse_tf.runtime import signal_features
    from tinyse_tf.runtime.tflite import named_ports

    f, q = _interpreter(float_path), _interpreter(int8_path)
    f_in, f_out = named_ports(f)
    q_in, _ = named_ports(q)
    f_by_name = {d["name"]: d for d in f.get_tensor_details()}
    producers = _producers(int8_path)
    input_indices = {p.index for p in q_in.values()}
    # Activations only: produced by an op or fed as an input (weights and constants are not);
    # per tensor: its detail, the float tensor's index, scale, zero point and int8 range.
    tensors = []
    for d in q.get_tensor_details():
        scale, zero = d["quantization"]
        if ((d["index"] in producers or d["index"] in input_indices) and d["name"] in f_by_name
                and d["dtype"] in (np.int8, np.int16) and scale > 0):
            info = np.iinfo(d["dtype"])
            tensors.append((d, f_by_name[d["name"]]["index"], scale, zero,
                            (info.min - zero) * scale, (info.max - zero) * scale))
    sums = np.zeros((len(tensors), 4))  # sum f^2, sum (q - f)^2, clipped count, count
    extremes = np.tile([np.inf, -np.inf], (len(tensors), 1))
    for audio in audios:
        states = {n: np.zeros(p.shape, np.float32) for n, p in f_in.items() if n != "features"}
        for t, frame in enumerate(signal_features(np.asarray(audio, np.float32))):
            inputs = {"features": frame.reshape(f_in["features"].shape), **states}
            for name, port in f_in.items():
                f.set_tensor(port.index, inputs[name].astype(np.float32))
                q.set_tensor(q_in[name].index, q_in[name].quantize(inputs[name]))
            f.invoke()
            q.invoke()
            states = {n[:-len("_out")]: f.get_tensor(p.index) for n, p in f_out.items()
                      if n != "mask"}
            if t < _WARMUP_FRAMES:
                continue
            for k, (d, f_index, scale, zero, lo, hi) in enumerate(tensors):
                ref = f.get_tensor(f_index).astype(np.float64)
                got = (q.get_tensor(d["index"]).astype(np.float64) - zero) * scale
                sums[k] += (np.sum(ref ** 2), np.sum((got - ref) ** 2),
                            np.sum((ref < lo - scale / 2) | (ref > hi + scale / 2)), ref.size)
                extremes[k] = min(extremes[k, 0], ref.min()), max(extremes[k, 1], ref.max())
    if not sums[:, 3].any():
        raise ValueError(f"no frames compared: give signals longer than {_WARMUP_FRAMES} hops")
    out = []
    for k, (d, _, scale, _, lo, hi) in enumerate(tensors):
        signal, noise, clipped, count = sums[k]
        out.append(TensorError(
            index=int(d["index"]), name=d["name"].split(";")[0],
            op=producers.get(int(d["index"]), "input"),
            sqnr_db=float(10 * np.log10(max(signal, 1e-30) / max(noise, 1e-30))),
            rms_lsb=float(np.sqrt(noise / count) / scale), clipped=float(clipped / count),
            lo=float(lo), hi=float(hi),
            float_min=float(extremes[k, 0]), float_max=float(extremes[k, 1])))
    order = {name: k for k, name in enumerate(producers)}
    return sorted(out, key=lambda e: order.get(e.index, -1))


def mask_error(float_path, int8_path, audios) -> dict:
    """Closed-loop error of the mask (each file carries its own states, as on a device).

    Returns:
        ``{"sqnr_db", "max_abs", "mean_abs"}`` of the int8 mask against the float mask.
    """
    from tinyse_tf.runtime import TfliteFrameModel, run_frames, signal_features

    models = [TfliteFrameModel(p) for p in (float_path, int8_path)]
    ref, got = [], []
    for audio in audios:
        features = signal_features(np.asarray(audio, np.float32))
        for model, dest in zip(models, (ref, got)):
            model.reset()
            dest.append(run_frames(model, features))
    ref, got = np.concatenate(ref), np.concatenate(got)
    err = got - ref
    return {"sqnr_db": float(10 * np.log10(np.sum(ref ** 2) / max(np.sum(err ** 2), 1e-30))),
            "max_abs": float(np.abs(err).max()), "mean_abs": float(np.abs(err).mean())}


def layer_table(errors, worst: int | None = None) -> str:
    """Markdown table, one row per tensor (``worst``: only the k lowest SQNRs, in graph order)."""
    rows = errors
    if worst is not None:
        keep = {id(e) for e in sorted(errors, key=lambda e: e.sqnr_db)[:worst]}
        rows = [e for e in errors if id(e) in keep]
    lines = ["| tensor | op | SQNR dB | RMS error (LSB) | clipped % | int8 range | float range |",
             "|---|---|---:|---:|---:|---|---|"]
    for e in rows:
        lines.append(f"| {e.name} | {e.op} | {e.sqnr_db:.1f} | {e.rms_lsb:.2f} | "
                     f"{100 * e.clipped:.2f} | [{e.lo:.3g}, {e.hi:.3g}] | "
                     f"[{e.float_min:.3g}, {e.float_max:.3g}] |")
    return "\n".join(lines)
