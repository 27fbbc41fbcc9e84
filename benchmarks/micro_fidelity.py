"""TFLite Micro against LiteRT on one int8 streaming file: per operator (which kernels round
differently), closed-loop masks (long real recordings and random inputs, states fed back), and
what it means for a listener (SI-SDR / eSTOI of the enhanced audio).

    python benchmarks/micro_fidelity.py [--model FILE] [--files 5] [--seconds 20]
        [--random-frames 300] [--random-runs 5] [--out docs/results/micro_fidelity]

Default model: the shipped int8 student (``tinyse_tf.pretrained``). Recordings: the first
``--files`` LibriSpeech test speakers of ../shared/audio, each mixed with a test noise (cycled)
at 0 dB and 5 dB SNR, ``--seconds`` long (required: the quality comparison needs real speech).

1. Per operator (``kernel_differences``): TFLM vs LiteRT's default kernels (XNNPACK and
   optimized, what ``StreamingEnhancer`` runs) and vs LiteRT's reference kernels
   (``OpResolverType.BUILTIN_REF``); for the FULLY_CONNECTED elements that differ from the
   reference kernels, which requantization reproduces each side: TFLM's "double rounding"
   (gemmlowp's SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT) or "single rounding"
   ((acc * multiplier + 2^(n-1)) >> n). Written out here to explain the bytes, not to compute
   anything the package uses.
2. Closed loop: the int8 masks of TFLM and of LiteRT (default and reference kernels), each
   feeding its own states back, hop by hop: on the recordings and on uniformly random int8
   features (``--random-runs`` runs of ``--random-frames`` frames).
3. Listener: every recording enhanced by ``FrameStream(MicroFrameModel)`` (TFLM) and by
   ``StreamingEnhancer`` (LiteRT); SI-SDR and eSTOI of each against the clean speech, and of
   the TFLM output against the LiteRT output.

Writes ``OUT.json`` and ``OUT.md`` and prints the summary.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from machine import machine, write_report  # benchmarks/machine.py: the script folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from streaming_latency import SHARED_AUDIO  # noqa: E402


# --------------------------------------------------------------------------- 1. per operator
def _quantize_multiplier(x: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: x = m * 2^(shift - 31), m in [2^30, 2^31)."""
    q, shift = math.frexp(x)
    m = math.floor(q * (1 << 31) + 0.5)  # std::round, q > 0
    return (m // 2, shift + 1) if m == 1 << 31 else (m, shift)


def _double_rounding(acc: int, m: int, shift: int) -> int:
    ab = (acc << max(shift, 0)) * m
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    high = v // (1 << 31) if v >= 0 else -(-v // (1 << 31))  # C division: towards zero
    e = max(-shift, 0)
    if e == 0:
        return high
    mask = (1 << e) - 1
    return (high >> e) + ((high & mask) > (mask >> 1) + (high < 0))


def _single_rounding(acc: int, m: int, shift: int) -> int:
    n = 31 - shift
    return (acc * m + (1 << (n - 1))) >> n


def fully_connected_rounding(content: bytes, trials: int = 8, seed: int = 0) -> dict:
    """For every output element of every FULLY_CONNECTED with identical inputs in TFLM and
    LiteRT's reference kernels: does double / single rounding of the exact int32 accumulator
    give TFLM's byte, LiteRT's byte? ``{"elements", "differing", "double_matches_tflm",
    "double_matches_litert_ref", "single_matches_tflm", "single_matches_litert_ref"}``."""
    from ai_edge_litert.interpreter import OpResolverType

    from tinyse_tf.export.micro import invoke_both_on_random_inputs, micro_interpreter
    from tinyse_tf.export.tflite_ops import read_model_bytes
    from tinyse_tf.runtime.tflite import make_interpreter

    sg = read_model_bytes(content).main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = make_interpreter(model_content=content, experimental_preserve_all_tensors=True,
                               experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    quant = {d["index"]: d["quantization_parameters"] for d in ref.get_tensor_details()}
    micro = micro_interpreter(content, preserve_all_tensors=True)
    rng = np.random.default_rng(seed)
    count = dict.fromkeys(("elements", "differing", "double_matches_tflm",
                           "double_matches_litert_ref", "single_matches_tflm",
                           "single_matches_litert_ref"), 0)
    for _ in range(trials):
        invoke_both_on_random_inputs(ref, micro, sg, rng)
        for op in sg.ops:
            if op.display_name != "FULLY_CONNECTED":
                continue
            t_in, t_w, t_b = op.inputs[:3]
            x = ref.get_tensor(t_in)
            if not np.array_equal(x, micro.GetTensor(t_in, 0)["tensor_data"]):
                continue
            out = op.outputs[0]
            by = {"litert_ref": ref.get_tensor(out).reshape(-1).astype(int),
                  "tflm": micro.GetTensor(out, 0)["tensor_data"].reshape(-1).astype(int)}
            q_in, q_w, q_out = quant[t_in], quant[t_w], quant[out]
            acc = ref.get_tensor(t_w).astype(np.int64) @ (
                x.reshape(-1).astype(np.int64) - int(q_in["zero_points"][0]))
            if t_b >= 0:
                acc += ref.get_tensor(t_b).astype(np.int64)
            scale = float(np.float32(q_in["scales"][0])) / float(np.float32(q_out["scales"][0]))
            for c, a in enumerate(acc):
                m, shift = _quantize_multiplier(scale * float(np.float32(q_w["scales"][c])))
                count["elements"] += 1
                count["differing"] += int(by["tflm"][c] != by["litert_ref"][c])
                for name, fn in (("double", _double_rounding), ("single", _single_rounding)):
                    v = int(np.clip(fn(int(a), m, shift) + int(q_out["zero_points"][0]),
                                    -128, 127))
                    for side in ("tflm", "litert_ref"):
                        count[f"{name}_matches_{side}"] += int(v == by[side][c])
    return count


# --------------------------------------------------------------------------- 2. closed loop
def closed_loop_lsb(frame_models: dict, features: np.ndarray) -> dict:
    """Masks of each frame model over ``features`` [t, 80] (states fed back, from zero), as
    int8 steps of the TFLM mask against every other: ``{name: per-hop max LSB [t]}``."""
    from tinyse_tf.runtime import run_frames

    masks = {}
    for name, fm in frame_models.items():
        fm.reset()
        masks[name] = run_frames(fm, features)
    scale = frame_models["tflm"].outputs["mask"].scale
    return {name: np.rint(np.abs(masks["tflm"] - m) / scale).max(axis=1)
            for name, m in masks.items() if name != "tflm"}


def lsb_summary(per_hop: np.ndarray) -> dict:
    return {"hops": int(per_hop.size), "max_lsb": int(per_hop.max()),
            "mean_lsb": float(per_hop.mean()), "p99_lsb": float(np.percentile(per_hop, 99)),
            "bit_exact_hops": int((per_hop == 0).sum())}


# --------------------------------------------------------------------------- 3. listener
def run(model: Path, n_files: int, seconds: float, random_frames: int, random_runs: int) -> dict:
    from ai_edge_litert.interpreter import OpResolverType

    from tinyse_tf.evaluation.metrics import estoi, si_sdr
    from tinyse_tf.export.calibration import noisy_mixtures
    from tinyse_tf.export.micro import MicroFrameModel, kernel_differences
    from tinyse_tf.runtime import FrameStream, StreamingEnhancer, signal_features
    from tinyse_tf.runtime.tflite import TfliteFrameModel

    content = model.read_bytes()
    report = {"model": model.name, "per_operator": {
        "vs_litert_default": kernel_differences(content),
        "vs_litert_reference": kernel_differences(content, reference_kernels=True),
        "fully_connected_rounding": fully_connected_rounding(content)}}

    frame_models = {"tflm": MicroFrameModel(model),
                    "litert_default": TfliteFrameModel(model),
                    "litert_reference": TfliteFrameModel(
                        model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)}
    speech = sorted((SHARED_AUDIO / "speech" / "test").glob("*.flac"))[:n_files]
    noise = sorted((SHARED_AUDIO / "noise" / "test").glob("*.flac"))
    clips, loop, quality = [], {k: [] for k in frame_models if k != "tflm"}, []
    for i, sp in enumerate(speech):
        for snr in (0.0, 5.0):
            noisy, clean = noisy_mixtures([sp], [noise[i % len(noise)]], 1, seconds, snr,
                                          seed=i)[0]
            for name, lsb in closed_loop_lsb(frame_models, signal_features(noisy)).items():
                loop[name].append(lsb)
            tflm = FrameStream(MicroFrameModel(model)).enhance(noisy)
            litert = StreamingEnhancer(model).enhance(noisy)
            quality.append({"speech": sp.name, "noise": noise[i % len(noise)].name, "snr": snr,
                            "si_sdr_tflm": si_sdr(clean, tflm), "si_sdr_litert": si_sdr(clean, litert),
                            "estoi_tflm": estoi(clean, tflm), "estoi_litert": estoi(clean, litert),
                            "si_sdr_tflm_vs_litert": si_sdr(litert, tflm)})
            clips.append(f"{sp.name} + {noise[i % len(noise)].name} at {snr:g} dB")
    report["recordings"] = {"clips": clips, "seconds": seconds,
                            **{f"mask_vs_{k}": lsb_summary(np.concatenate(v))
                               for k, v in loop.items()}}
    rng = np.random.default_rng(0)
    feat = frame_models["tflm"].inputs["features"]
    rand = {k: [] for k in loop}
    for _ in range(random_runs):
        q = rng.integers(-128, 128, (random_frames, 80)).astype(np.int8)
        for name, lsb in closed_loop_lsb(frame_models, feat.dequantize(q)).items():
            rand[name].append(lsb)
    report["random_features"] = {"runs": random_runs, "frames": random_frames,
                                 **{f"mask_vs_{k}": lsb_summary(np.concatenate(v))
                                    for k, v in rand.items()}}
    d_sdr = [q["si_sdr_tflm"] - q["si_sdr_litert"] for q in quality]
    d_stoi = [q["estoi_tflm"] - q["estoi_litert"] for q in quality]
    report["quality"] = {"clips": quality,
                         "si_sdr_diff_db": {"mean": float(np.mean(d_sdr)),
                                            "max_abs": float(np.max(np.abs(d_sdr)))},
                         "estoi_diff_points": {"mean": float(np.mean(d_stoi)),
                                               "max_abs": float(np.max(np.abs(d_stoi)))},
                         "si_sdr_tflm_vs_litert_db_min": float(min(
                             q["si_sdr_tflm_vs_litert"] for q in quality))}
    return report


def markdown(r) -> str:
    rec, rnd, q = r["recordings"], r["random_features"], r["quality"]
    fc = r["per_operator"]["fully_connected_rounding"]
    lines = [
        f"Per operator, identical inputs: vs LiteRT default kernels "
        f"{sorted(r['per_operator']['vs_litert_default'])}; vs LiteRT reference kernels "
        f"{sorted(r['per_operator']['vs_litert_reference'])}.",
        f"FULLY_CONNECTED vs reference kernels: {fc['differing']} of {fc['elements']} elements "
        f"differ; double rounding reproduces TFLM on {fc['double_matches_tflm']}, single "
        f"rounding reproduces LiteRT-reference on {fc['single_matches_litert_ref']}.", "",
        "| closed loop, TFLM mask vs | recordings: max / mean / p99 LSB (bit-exact hops) | "
        "random features: max / mean / p99 LSB (bit-exact hops) |", "|---|---|---|"]
    for k in ("litert_default", "litert_reference"):
        a, b = rec[f"mask_vs_{k}"], rnd[f"mask_vs_{k}"]
        lines.append(f"| {k.replace('_', ' ')} | {a['max_lsb']} / {a['mean_lsb']:.2f} / "
                     f"{a['p99_lsb']:.0f} ({a['bit_exact_hops']} of {a['hops']}) | "
                     f"{b['max_lsb']} / {b['mean_lsb']:.2f} / {b['p99_lsb']:.0f} "
                     f"({b['bit_exact_hops']} of {b['hops']}) |")
    lines += ["", f"Enhanced audio, TFLM - LiteRT over {len(q['clips'])} clips: SI-SDR mean "
              f"{q['si_sdr_diff_db']['mean']:+.3f} dB (largest |diff| "
              f"{q['si_sdr_diff_db']['max_abs']:.3f} dB), eSTOI mean "
              f"{q['estoi_diff_points']['mean']:+.3f} points (largest |diff| "
              f"{q['estoi_diff_points']['max_abs']:.3f}); TFLM output against the LiteRT output: "
              f"SI-SDR >= {q['si_sdr_tflm_vs_litert_db_min']:.1f} dB."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="int8 streaming .tflite (default: shipped student)")
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--random-frames", type=int, default=300)
    ap.add_argument("--random-runs", type=int, default=5)
    ap.add_argument("--out", default="micro_fidelity", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    if not (SHARED_AUDIO / "speech" / "test").is_dir():
        sys.exit(f"micro_fidelity: {SHARED_AUDIO}/speech/test is absent: real recordings needed")
    if args.model is None:
        from tinyse_tf import pretrained_file

        args.model = Path(pretrained_file("student", "int8"))
    report = {"command": "python benchmarks/micro_fidelity.py " + " ".join(sys.argv[1:]),
              "machine": machine(), **run(args.model, args.files, args.seconds,
                                          args.random_frames, args.random_runs)}
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
