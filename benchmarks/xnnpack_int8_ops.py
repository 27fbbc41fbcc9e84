"""Which ops of an Edge-TPU-legal int8 frame graph leave XNNPACK on this CPU, and what it costs.

    python benchmarks/xnnpack_int8_ops.py [--blocks 7] [--frames 3000] [--rounds 3] [--json OUT]

The streaming students' int8 files run slower than their float32 files on x86 CPUs
(docs/EXPORT.md, "int8 vs float32 on a CPU"). This benchmark isolates why, on a toy frame graph of
``--blocks`` CRUSE-like blocks, input [1, 1, 32, 16]: Conv2D (1 x 3) -> norm -> activation, with

* norm: ``FrameLayerNorm`` (the package's: MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD) or
  none;
* activation: ``EdgeLeakyReLU`` (the package's: one PRELU op), the same function written as
  ``0.2 * x + 0.8 * relu(x)`` (MUL, RELU, MUL, ADD: also on the Edge TPU list), as one
  LEAKY_RELU op (``tf.nn.leaky_relu``, the layer's training form: NOT on the Edge TPU list, shown
  for comparison), or none.

Each variant is exported float32 and full int8 with the package's converters (calibrated on random
frames: only speed is measured) and timed with the default XNNPACK delegate, one thread,
alternating variants round by round (best round kept), and once more with TFLite's own kernels
only (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``: no XNNPACK, int8 through ruy/gemmlowp), to show
whether leaving XNNPACK out would make int8 the faster file. Reports per variant and dtype: ops,
XNNPACK partitions (1 = the whole graph in XNNPACK; every op without an XNNPACK kernel for its
type splits it; also with XNNPACK's newest operator set, ``latest_features``), median invoke us
with XNNPACK and without, and int8 / float32 (with XNNPACK). Prints JSON (stdout or ``--json``)
and a table.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from machine import emit_json, machine  # benchmarks/: the script folder is on sys.path
from streaming_latency import delegate_partitions, time_interpreter
from tinyse_tf._tf import keras, tf
from tinyse_tf.export.quantize import convert_float, convert_int8
from tinyse_tf.models.layers import EdgeLeakyReLU, FrameLayerNorm
from tinyse_tf.runtime.tflite import make_interpreter

SHAPE = (1, 32, 16)  # [time = 1 frame, freq, channels]
NORMS = ("frame_ln", "none")
ACTIVATIONS = ("prelu", "relu_mix", "leaky_relu", "none")


class ReluMixLeakyReLU(keras.layers.Layer):
    """LeakyReLU(0.2) as 0.2 * x + 0.8 * relu(x): the same function without PRELU or MAXIMUM."""

    def call(self, x):
        return 0.2 * x + 0.8 * tf.nn.relu(x)


def toy_model(norm: str, activation: str, blocks: int, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input(SHAPE, batch_size=1, name="frame")
    x = inp
    for i in range(blocks):
        x = keras.layers.Conv2D(SHAPE[-1], (1, 3), padding="same", name=f"conv{i}")(x)
        if norm == "frame_ln":
            layer = FrameLayerNorm(name=f"norm{i}")
            x = layer(x, frame=True)  # the export form, as in the streaming graph
            # Gains and biases away from 1 and 0, as trained, so the converter cannot fold them.
            layer.set_weights([np.random.uniform(0.5, 1.5, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
        if activation == "prelu":
            x = EdgeLeakyReLU(0.2, name=f"act{i}")(x, frame=True)
        elif activation == "leaky_relu":
            x = EdgeLeakyReLU(0.2, name=f"act{i}")(x)  # training form: LEAKY_RELU
        elif activation == "relu_mix":
            x = ReluMixLeakyReLU(name=f"act{i}")(x)
    return keras.Model(inp, x)


def files(norm, activation, blocks) -> dict:
    model = toy_model(norm, activation, blocks)
    rng = np.random.default_rng(0)
    samples = [{"frame": rng.standard_normal((1,) + SHAPE).astype(np.float32)} for _ in range(64)]
    return {"float32": convert_float(model), "int8": convert_int8(model, samples)}


def _interpreter(flat, **options):
    """A one-thread interpreter of ``flat`` (``make_interpreter`` with ``options``), inputs zero."""
    interp = make_interpreter(flat, **options)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    return interp


def run(blocks, frames, rounds) -> dict:
    from ai_edge_litert.interpreter import OpResolverType

    interps, results = {}, {}
    for norm in NORMS:
        for act in ACTIVATIONS:
            for dtype, flat in files(norm, act, blocks).items():
                interp = _interpreter(flat)  # the default: XNNPACK, as StreamingEnhancer runs
                builtin = _interpreter(flat, experimental_op_resolver_type=(
                    OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
                latest = _interpreter(flat, experimental_default_delegate_latest_features=True)
                ops = Counter(op["op_name"] for op in builtin._get_ops_details())
                key = f"{norm}/{act}/{dtype}"
                interps[key] = {"invoke_us": interp, "builtin_invoke_us": builtin}
                results[key] = {"norm": norm, "activation": act, "dtype": dtype,
                                "xnnpack_partitions": delegate_partitions(interp),
                                "xnnpack_latest_partitions": delegate_partitions(latest),
                                "ops": dict(ops)}
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}", file=sys.stderr)
        for key, pair in interps.items():
            for field, interp in pair.items():
                us = time_interpreter(interp, frames, warmup=100)["median_us"]
                results[key][field] = min(us, results[key].get(field, us))
    for norm in NORMS:
        for act in ACTIVATIONS:
            pair = [results[f"{norm}/{act}/{d}"] for d in ("int8", "float32")]
            pair[0]["int8_over_float32"] = pair[0]["invoke_us"] / pair[1]["invoke_us"]
    return {"machine": machine(), "blocks": blocks, "frames": frames, "rounds": rounds,
            "threads": 1, "results": list(results.values())}


def table(report) -> str:
    lines = ["| norm | activation | dtype | ops | XNNPACK partitions (latest features) | invoke us "
             "| int8/float32 | invoke us without XNNPACK |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        ratio = f"{r['int8_over_float32']:.2f}" if "int8_over_float32" in r else ""
        lines.append(f"| {r['norm']} | {r['activation']} | {r['dtype']} | {sum(r['ops'].values())} "
                     f"| {r['xnnpack_partitions']} ({r['xnnpack_latest_partitions']}) | {r['invoke_us']:.1f} "
                     f"| {ratio} "
                     f"| {r['builtin_invoke_us']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=7, help="conv/norm/activation blocks (default 7, "
                   "as many norms and activations as the 62 k student's frame graph)")
    p.add_argument("--frames", type=int, default=3000, help="timed invokes per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="write the JSON report here (default: print it)")
    args = p.parse_args(argv)
    report = run(args.blocks, args.frames, args.rounds)
    emit_json(report, args.json)
    print(table(report))


if __name__ == "__main__":
    main()
