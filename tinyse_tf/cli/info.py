"""``tinyse info MODEL``: size, complexity, latency and measured speed of a model.

For a Keras model (.keras/.h5) the timing runs the float32 streaming TFLite converted in memory
(the file ``tinyse export`` would write), falling back to the Keras single-frame graph if the
conversion fails; for a .tflite it runs that file. Both through ``StreamingEnhancer``: "model" is
one interpreter invoke with its state feedback, "hop" adds the numpy STFT, mel features, mask and
overlap-add of one 16 ms hop. Median and 90th percentile over ``--frames`` frames, one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tinyse_tf.cli._common import (EXIT_OK, CliError, is_tflite, load_keras_model, one_line,
                                   open_stream_tflite, resolve_model, say)
from tinyse_tf.constants import HOP, N_FFT, SAMPLE_RATE
from tinyse_tf.native_stderr import native_stderr_captured

PROG = "tinyse info"
NORM_NAMES = {"cln": "cumulative layer norm (cLN, paper; running-sum states)",
              "frame_ln": "per-frame layer norm (bounded, int8-friendly)",
              "batch": "batch norm (folded into the convs on export)", "none": "none"}


def add_parser(sub):
    p = sub.add_parser(
        "info", prog=PROG, help="parameters, MACs per frame, latency and measured speed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Describe a Keras model (.keras/.h5) or an exported streaming .tflite: "
                    "architecture, parameters, MACs per 16 ms frame (and the counting rule), "
                    "algorithmic latency, hop, norm, and measured time per frame on this CPU.",
        epilog="Timing: a Keras model is converted in memory to the float32 streaming TFLite and "
               "timed through StreamingEnhancer (model invoke, and the whole hop with STFT/mel/"
               "overlap-add), median over --frames frames after a warm-up, 1 thread.\n"
               "Exit status: 0 ok; 2 bad usage or unusable model file.")
    p.add_argument("model", metavar="MODEL", help=".keras, .h5 or streaming .tflite")
    p.add_argument("--frames", type=int, default=200, help="timed frames (default 200)")
    p.add_argument("--no-timing", action="store_true", help="skip the speed measurement")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------- timing
def _percentiles(ns) -> dict:
    us = np.asarray(ns, np.float64) / 1e3
    return {"median_us": round(float(np.median(us)), 1),
            "p90_us": round(float(np.percentile(us, 90)), 1)}


def time_frames(run_frame, process_hop, frames: int, warmup: int = 20) -> dict:
    """Per-frame wall time of ``run_frame(features[80])`` and ``process_hop(hop[256])``."""
    from tinyse_tf.runtime import signal_features

    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(HOP * (frames + warmup))).astype(np.float32)
    feats = signal_features(audio)
    model_ns, hop_ns = [], []
    for k, f in enumerate(feats):
        t0 = time.perf_counter_ns()
        run_frame(f)
        if k >= warmup:
            model_ns.append(time.perf_counter_ns() - t0)
    for k in range(frames + warmup):
        hop = audio[k * HOP:(k + 1) * HOP]
        t0 = time.perf_counter_ns()
        process_hop(hop)
        if k >= warmup:
            hop_ns.append(time.perf_counter_ns() - t0)
    model, hop = _percentiles(model_ns), _percentiles(hop_ns)
    return {"frames": frames, "model": model, "hop": hop,
            "real_time_factor": round(hop["median_us"] / (1e6 * HOP / SAMPLE_RATE), 5)}


def _time_tflite(se, frames: int) -> dict:
    out = time_frames(se.run_frame, se.process, frames)
    se.reset()
    return out


def _float_file(model):
    """``(float32 streaming .tflite bytes, None)`` of a Keras model converted in memory, or
    ``(None, reason)`` when conversion fails."""
    try:
        from tinyse_tf.export.quantize import convert_float
        from tinyse_tf.models.streaming import build_streaming_model

        with native_stderr_captured(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert_float(build_streaming_model(model)), None
    except Exception as e:  # conversion unavailable
        return None, f"{type(e).__name__}: {one_line(e, 120)}"


def _time_keras(model, flat, reason, frames: int) -> dict:
    """Timing of ``flat`` (``_float_file``); of the Keras graph when it is None or fails."""
    if flat is not None:
        try:
            from tinyse_tf.runtime import StreamingEnhancer

            with native_stderr_captured():
                fd, tmp = tempfile.mkstemp(suffix=".tflite")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(flat)
                    se = StreamingEnhancer(tmp)
                finally:
                    os.unlink(tmp)
            return {"runtime": "float32 streaming TFLite (converted in memory), 1 thread",
                    **_time_tflite(se, frames)}
        except Exception as e:  # not runnable: time the Keras graph instead
            reason = f"{type(e).__name__}: {one_line(e, 120)}"
    from tinyse_tf.runtime.keras import keras_stream

    eng = keras_stream(model)
    out = time_frames(eng.run_frame, eng.process, frames)
    return {"runtime": f"Keras single-frame graph (TFLite conversion failed: {reason})", **out}


# --------------------------------------------------------------------------- facts
def _config_from_states(inputs: dict) -> dict:
    """Architecture recovered from the state shapes of a streaming .tflite."""
    shapes = {n: [int(x) for x in d["shape"]] for n, d in inputs.items() if n != "features"}
    try:
        ch = ([shapes[f"enc{i}_conv_state"][-1] for i in (2, 3, 4)]
              + [shapes["dec1_deconv_state"][-1]])
        gru_units = int(np.prod(shapes["gru_state"][1:]))
    except KeyError:
        return {}
    norm = "cln" if any(n.endswith("_norm_state") for n in shapes) else None
    return {"channels": ch, "norm": norm, "gru_units": gru_units}


def facts_keras(path: Path) -> tuple[dict, object, bytes | None, str | None]:
    """Facts of a Keras model, the model, and ``_float_file`` of it (MACs are counted there)."""
    model, cfg = load_keras_model(path)  # starts TensorFlow quietly
    from tinyse_tf.export.complexity import macs_per_frame
    from tinyse_tf.export.tflite_ops import MACS_RULE, weight_macs

    flat, reason = _float_file(model)
    macs = sum(weight_macs(flat).values()) if flat is not None else macs_per_frame(cfg)
    return {"model": str(path), "kind": "Keras CRUSE sequence model",
            "config": {**cfg.to_dict(), "channels": list(cfg.channels),
                       "gru_units": cfg.gru_units},
            "norm": cfg.norm, "parameters": int(model.count_params()),
            "macs_per_frame": int(macs), "macs_rule": MACS_RULE}, model, flat, reason


def facts_tflite(path: Path) -> tuple[dict, object]:
    se = open_stream_tflite(path)
    contract = {}
    try:
        from tinyse_tf.export.contract import contract_path

        contract = json.loads(contract_path(path).read_text())
    except (OSError, ValueError, ImportError):
        pass
    from ai_edge_litert.interpreter import Interpreter

    from tinyse_tf.export.tflite_ops import MACS_RULE, read_model, weight_macs

    with native_stderr_captured():
        interp = Interpreter(model_path=str(path))
    sigs = interp.get_signature_list()
    inputs = (interp.get_signature_runner(next(iter(sigs))).get_input_details() if sigs else {})
    cfg = {**_config_from_states(inputs), **(contract.get("config") or {})}
    quant = contract.get("quantization", "none")
    kind = f"streaming TFLite, {np.dtype(se.dtype).name} I/O"
    if quant != "none":
        kind += f", full-int8 ({quant})"
    facts = {"model": str(path), "kind": kind,
             "config": cfg, "norm": contract.get("norm") or (cfg or {}).get("norm"),
             "parameters": contract.get("parameters"),
             "macs_per_frame": sum(weight_macs(read_model(path)).values()),
             "macs_rule": MACS_RULE,
             "size_bytes": path.stat().st_size,
             "io_contract": str(contract_path(path)) if contract else None}
    return facts, se


def _fmt_int(v) -> str:
    return f"{v:,}" if isinstance(v, int) else "unknown (no io_contract.json next to the file)"


def format_facts(f: dict) -> str:
    cfg = f.get("config") or {}
    macs = f.get("macs_per_frame")
    hop_s = HOP / SAMPLE_RATE
    lines = [f"model       {f['model']}", f"kind        {f['kind']}"]
    if cfg:
        units, groups = cfg.get("gru_units", "?"), cfg.get("gru_groups", "?")
        lines.append(f"layers      encoder channels {', '.join(map(str, cfg['channels']))}; GRU "
                     f"{units} units in {groups} groups")
    norm = f.get("norm")
    norm_text = f"{norm}: {NORM_NAMES.get(norm, '')}" if norm else "unknown (not cLN)"
    lines.append(f"norm        {norm_text}")
    lines.append(f"parameters  {_fmt_int(f.get('parameters'))}")
    if isinstance(macs, int):
        lines.append(f"MACs/frame  {macs:,} ({macs / 1e6:.3f} M per 16 ms frame = "
                     f"{macs / hop_s / 1e6:.1f} M MAC/s)")
    else:
        lines.append(f"MACs/frame  {_fmt_int(macs)}")
    lines.append(f"            counting rule: {f['macs_rule']}")
    lines.append(f"latency     {1000 * N_FFT / SAMPLE_RATE:.0f} ms algorithmic (one {N_FFT}-sample "
                 f"frame at {SAMPLE_RATE // 1000} kHz) + compute; the output stream lags the "
                 f"input by {N_FFT - HOP} samples ({1000 * (N_FFT - HOP) / SAMPLE_RATE:.0f} ms)")
    lines.append(f"hop         {1000 * hop_s:.0f} ms ({HOP} samples)")
    t = f.get("timing")
    if t:
        lines.append(f"speed       model {t['model']['median_us']:.0f} us/frame (median; p90 "
                     f"{t['model']['p90_us']:.0f}), whole hop incl. STFT/mel/overlap-add "
                     f"{t['hop']['median_us']:.0f} us = real-time factor "
                     f"{t['real_time_factor']:.4f}")
        lines.append(f"            {t['runtime']}, {t['frames']} frames on this CPU")
    return "\n".join(lines)


def run(args) -> int:
    path = resolve_model(args.model, lambda text: say(PROG, "note", text))
    if args.frames < 1:
        raise CliError(f"--frames {args.frames}: must be at least 1")
    if is_tflite(path):
        facts, se = facts_tflite(path)
        if not args.no_timing:
            facts["timing"] = {"runtime": "this file through StreamingEnhancer, 1 thread",
                               **_time_tflite(se, args.frames)}
    else:
        facts, model, flat, reason = facts_keras(path)
        if not args.no_timing:
            facts["timing"] = _time_keras(model, flat, reason, args.frames)
    facts.update(sample_rate=SAMPLE_RATE, hop_samples=HOP, hop_ms=1000 * HOP / SAMPLE_RATE,
                 frame_samples=N_FFT, algorithmic_latency_ms=1000 * N_FFT / SAMPLE_RATE,
                 stream_delay_samples=N_FFT - HOP)
    print(json.dumps(facts, indent=1) if args.json else format_facts(facts))
    return EXIT_OK
