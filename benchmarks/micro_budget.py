"""Microcontroller budget of every CRUSE preset: flash, TFLM arena, MACs per hop, and how close the
TFLite Micro output is to LiteRT's, measured on the exported int8 files.

    python benchmarks/micro_budget.py [--presets student_30k student ...] [--model PRESET=FILE]
        [--out docs/results/micro_budget] [--keep DIR]

For each preset it exports the int8 PTQ streaming file (``export_model``, 300 calibration frames
of real noisy speech from ../shared/audio when present, else synthetic) and its TFLite Micro
artefacts (``tinyse_tf.export.micro.export_micro``), then streams one noisy recording of at least
1,000 hops (a LibriSpeech test speaker + a test noise at 5 dB SNR from ../shared/audio, looped to
17 s; synthetic noise when the folder is absent) through TFLM and through LiteRT as
``StreamingEnhancer`` runs it, comparing the int8 masks hop by hop (``compare_with_litert``).

Weights: ``--model PRESET=FILE`` uses a trained Keras model; other presets get random weights
(``streaming_latency.random_model``). Flash, arena, op list and MACs do not depend on the weight
values; the LSB comparison does, which is why a trained 62 k student is worth passing.

Writes ``OUT.json`` and ``OUT.md`` (the table of docs/MICRO.md) and prints the table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import machine, write_report  # benchmarks/machine.py: the script folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from streaming_latency import SHARED_AUDIO, calibration_audio, random_model  # noqa: E402

PRESETS = ("student_30k", "student", "student_240k", "student_350k", "teacher")
#: Memory classes of common microcontrollers (flash KiB, SRAM KiB), smallest first.
MCU_CLASSES = (("Cortex-M4/M33, 256 KB flash, 64 KB SRAM", 256, 64),
               ("Cortex-M4/M33, 512 KB flash, 128 KB SRAM", 512, 128),
               ("Cortex-M7/M33, 1 MB flash, 256 KB SRAM", 1024, 256),
               ("Cortex-M7/M55, 2 MB flash, 512 KB SRAM", 2048, 512),
               ("Cortex-M7/M55, 4 MB flash, 1 MB SRAM", 4096, 1024),
               ("Cortex-M55/M85, 8 MB flash, 4 MB SRAM", 8192, 4096))
#: Flash for the TFLM library, its kernels and the application: an ESTIMATE, not measured here.
CODE_ALLOWANCE_KIB = 100
#: RAM of a float front end (frame, FFT buffer, overlap tail, magnitudes, features, gains),
#: counted for the straightforward implementation of docs/MICRO.md.
FRONTEND_RAM_BYTES = 4 * (512 + 512 + 256 + 257 + 80 + 257)


def test_recording():
    """(noisy audio of >= 1,000 hops, description)."""
    from tinyse_tf.export.calibration import noisy_mixtures

    speech = sorted((SHARED_AUDIO / "speech" / "test").glob("*.flac"))
    noise = sorted((SHARED_AUDIO / "noise" / "test").glob("*.flac"))
    if speech and noise:
        noisy = noisy_mixtures(speech[:1], noise[:1], 1, 17.0, 5.0, seed=0)[0][0]
        return noisy, f"{speech[0].name} + {noise[0].name} at 5 dB SNR, 17 s"
    rng = np.random.default_rng(1)
    return (0.1 * rng.standard_normal(17 * 16000)).astype(np.float32), "synthetic noise, 17 s"


def smallest_class(flash_bytes: int, sram_bytes: int) -> str:
    for label, flash_kib, sram_kib in MCU_CLASSES:
        if flash_bytes <= (flash_kib - CODE_ALLOWANCE_KIB) * 1024 and sram_bytes <= sram_kib * 1024:
            return label
    return "larger than every class listed"


def run(presets, trained, keep=None) -> dict:
    from tinyse_tf._tf import keras
    from tinyse_tf.export.micro import compare_with_litert, export_micro
    from tinyse_tf.export.quantize import export_model

    audio, source = calibration_audio()
    recording, described = test_recording()
    out_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinyse_micro_"))
    rows = []
    for preset in presets:
        model = (keras.models.load_model(trained[preset], compile=False) if preset in trained
                 else random_model(preset))
        paths = export_model(model, out_dir, preset, int8=("ptq",), representative_audio=audio,
                             calibration_frames=300)
        facts = export_micro(paths["int8_ptq"], out_dir)["facts"]
        sram = facts["arena_bytes"] + facts["state_bytes"] + FRONTEND_RAM_BYTES
        rows.append({
            "preset": preset, "weights": str(trained[preset]) if preset in trained else "random",
            "parameters": int(model.count_params()), "model_bytes": facts["model_bytes"],
            "arena_bytes_measured": facts["arena_bytes_measured"],
            "arena_bytes": facts["arena_bytes"], "state_bytes": facts["state_bytes"],
            "sram_bytes": sram, "macs_per_hop": facts["macs_per_hop"],
            "frontend_macs_per_hop": facts["frontend_macs_per_hop"],
            "op_count": facts["op_count"], "op_types": len(facts["resolver"]),
            "mcu_class": smallest_class(facts["model_bytes"], sram),
            "litert_kernel_differences": facts["litert_kernel_differences"],
            "stream_vs_litert": compare_with_litert(paths["int8_ptq"], recording)})
    return {"command": "python benchmarks/micro_budget.py " + " ".join(sys.argv[1:]),
            "machine": machine(),
            "calibration_audio": source, "recording": described,
            "code_allowance_kib": CODE_ALLOWANCE_KIB, "frontend_ram_bytes": FRONTEND_RAM_BYTES,
            "rows": rows}


def markdown(report) -> str:
    lines = ["| preset | parameters | weights | model (flash) bytes | arena measured | arena "
             "reserved | SRAM total | MACs per hop (model + front end) | TFLM ops (types) | "
             "mask vs LiteRT, max / mean LSB (bit-exact hops) | smallest class (estimate) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        s = r["stream_vs_litert"]
        lines.append(
            f"| `{r['preset']}` | {r['parameters']:,} | {'trained' if r['weights'] != 'random' else 'random'} "
            f"| {r['model_bytes']:,} | {r['arena_bytes_measured']:,} | {r['arena_bytes']:,} "
            f"| {r['sram_bytes']:,} | {r['macs_per_hop']:,} + {r['frontend_macs_per_hop']:,} "
            f"| {r['op_count']} ({r['op_types']}) | {s['max_lsb']} / {s['mean_lsb']:.2f} "
            f"({s['bit_exact_hops']} of {s['hops']}) | {r['mcu_class']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--model", action="append", default=[], metavar="PRESET=FILE",
                    help="a trained Keras model for PRESET (repeatable)")
    ap.add_argument("--out", default="micro_budget", help="writes OUT.json and OUT.md")
    ap.add_argument("--keep", help="keep the exported files in this folder")
    args = ap.parse_args(argv)
    trained = dict(m.split("=", 1) for m in args.model)
    report = run(args.presets, trained, args.keep)
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
