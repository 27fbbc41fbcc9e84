"""The firmware harness built and run per model and core: flash, RAM, instructions per 16 ms hop,
and how the program's output compares with the Python TFLM interpreter.

    python benchmarks/micro_firmware.py --tflm-tar ../shared/tflm/tflm-src.tar.xz \
        [--presets student_30k student student_240k] [--targets host cortex-m4 cortex-m7 cortex-m55]
        [--hops 64] [--work DIR] [--out docs/results/micro_firmware]

Per preset: the int8 streaming file (``student``: the shipped one, ``tinyse_tf.pretrained``;
other presets: random weights with trained-like norm gains, PTQ on real noisy speech, as
benchmarks/micro_budget.py does: flash, RAM and instruction counts do not depend on the weight
values), its micro files (``export_micro``) and the harness (``write_firmware``) on a noisy real
recording (a LibriSpeech test speaker + a test noise at 5 dB SNR from ../shared/audio; synthetic
when absent). Per target: ``make all`` (TFLM and CMSIS-NN compiled -O2 from the archive), the
ELF's sections, then ``make run`` (Cortex-M: QEMU with ``-icount shift=0``, one instruction per
virtual nanosecond; SysTick ticks converted to instructions by the program's own calibration
loop) and ``check_run`` against the Python TFLM interpreter.

Writes ``OUT.json`` and ``OUT.md`` (the table of docs/MICRO.md) and prints the table.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import machine, write_report  # benchmarks/machine.py: the script folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from micro_budget import test_recording  # noqa: E402
from streaming_latency import SHARED_AUDIO, calibration_audio, random_model  # noqa: E402

PRESETS = ("student_30k", "student", "student_240k")
TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m55")
#: Sections of the linked program that occupy flash (code, constants, .data's initial image).
FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".init_array", ".data")
#: Cycles per instruction assumed for the "clock at CPI 2" column: an assumption for a core with
#: flash wait states, NOT measured (QEMU counts instructions, not cycles).
ASSUMED_CPI = 2.0
HOP_SECONDS = 0.016


def int8_file(preset: str, work: Path) -> Path:
    """The int8 streaming file of ``preset``: shipped for ``student``, else random weights."""
    if preset == "student":
        from tinyse_tf import pretrained_file

        return Path(pretrained_file("student", "int8"))
    from tinyse_tf.export.quantize import export_model

    done = work / "export" / f"{preset}_stream_int8_ptq.tflite"
    if done.is_file():  # a kept --work folder: the file of an earlier run
        return done
    audio, _ = calibration_audio()
    paths = export_model(random_model(preset), work / "export", preset, int8=("ptq",),
                         representative_audio=audio, calibration_frames=300)
    return Path(paths["int8_ptq"])


def sections(elf: Path, target: str) -> dict:
    """``{section: bytes}`` of the linked program (``size -A``)."""
    tool = "size" if target == "host" else "arm-none-eabi-size"
    out = subprocess.run([tool, "-A", elf], capture_output=True, text=True, check=True).stdout
    rows = (line.split() for line in out.splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 3 and r[0].startswith(".") and r[1].isdigit()}


def measure(fw: Path, target: str, tflm: dict, content: bytes, samples) -> dict:
    from tinyse_tf.export.firmware import check_run, instructions_per_tick, parse_run

    make = ["make", "-C", fw, "-j2", f"TARGET={target}", f"TFLM={tflm['tree']}",
            f"OBJ={tflm['obj']}", "PCH=1"]
    subprocess.run(make + ["all"], check=True, capture_output=True)
    run = parse_run(subprocess.run(make + ["run"], check=True, capture_output=True,
                                   text=True).stdout)
    row = {"target": target, "arena_used": run["arena_used"],
           "check": check_run(content, run, samples)}
    if target == "host":
        row["ns_per_hop"] = float(run["times"].sum(axis=1).mean())
        return row
    sec = sections(fw / "build" / target / "tinyse_harness.elf", target)
    per_tick = instructions_per_tick(run)
    instr = run["times"] * per_tick  # [hops, (front end, model, back end)]
    total = instr.sum(axis=1)
    row.update({
        "sections": sec, "flash_bytes": sum(sec.get(s, 0) for s in FLASH_SECTIONS),
        "ram_static_bytes": sec.get(".data", 0) + sec.get(".bss", 0),
        "stack_used": run["stack_used"], "heap_used": run["heap_used"],
        "ram_bytes": sec.get(".data", 0) + sec.get(".bss", 0) + run["stack_used"]
        + run["heap_used"],
        "instructions_per_tick": per_tick,
        "instructions_per_hop": {"mean": float(total.mean()), "max": float(total.max()),
                                 "model": float(instr[:, 1].mean()),
                                 "front_end": float(instr[:, 0].mean()),
                                 "back_end": float(instr[:, 2].mean())},
        "mhz_for_16ms_cpi1": float(total.max()) / HOP_SECONDS / 1e6,
        f"mhz_for_16ms_cpi{ASSUMED_CPI:g}": ASSUMED_CPI * float(total.max()) / HOP_SECONDS / 1e6})
    return row


def quality(targets, tflm: dict, work: Path, seconds: float) -> list[dict]:
    """The shipped student on each Cortex-M target streaming a ``seconds`` long real mixture
    (the first test speaker + the first test noise at 0 dB SNR): the program's masks against the
    Python TFLM interpreter over every hop, and SI-SDR / eSTOI of its enhanced audio, of
    LiteRT's (``StreamingEnhancer``) and of the one against the other."""
    from tinyse_tf import pretrained_file
    from tinyse_tf.constants import HOP
    from tinyse_tf.evaluation.metrics import estoi, si_sdr
    from tinyse_tf.export.calibration import noisy_mixtures
    from tinyse_tf.export.firmware import check_run, parse_run, pcm16, write_firmware
    from tinyse_tf.export.micro import export_micro
    from tinyse_tf.runtime import StreamingEnhancer

    speech = sorted((SHARED_AUDIO / "speech" / "test").glob("*.flac"))[:1]
    noise = sorted((SHARED_AUDIO / "noise" / "test").glob("*.flac"))[:1]
    noisy, clean = noisy_mixtures(speech, noise, 1, seconds, 0.0, seed=0)[0]
    where = f"{speech[0].name} + {noise[0].name} at 0 dB SNR, {seconds:g} s"
    tflite = Path(pretrained_file("student", "int8"))
    fw = work / "quality" / "fw"
    export_micro(tflite, work / "quality", name="student")
    write_firmware(work / "quality", "student", fw, noisy, where=where)
    litert = StreamingEnhancer(tflite).enhance(noisy)
    rows = []
    for target in targets:
        print(f"quality run on {target} ...", file=sys.stderr, flush=True)
        run = parse_run(subprocess.run(
            ["make", "-C", fw, "-j2", "run", f"TARGET={target}", f"TFLM={tflm['tree']}",
             f"OBJ={tflm['obj']}", "PCH=1"], check=True, capture_output=True, text=True).stdout)
        device = run["audio"][HOP:].astype(np.float32) / 32768.0  # output lags input 256 samples
        n = device.size
        rows.append({"target": target, "recording": where,
                     "check": check_run(tflite.read_bytes(), run, pcm16(noisy)),
                     "si_sdr_device": si_sdr(clean[:n], device),
                     "si_sdr_litert": si_sdr(clean[:n], litert[:n]),
                     "estoi_device": estoi(clean[:n], device),
                     "estoi_litert": estoi(clean[:n], litert[:n]),
                     "si_sdr_device_vs_litert": si_sdr(litert[:n], device)})
    return rows


def run(presets, targets, tflm_tar: Path, hops: int, work: Path) -> dict:
    from tinyse_tf.export.firmware import pcm16, write_firmware
    from tinyse_tf.export.micro import export_micro

    tflm = {"tree": work / "tflm", "obj": work / "obj"}
    if not (tflm["tree"] / "tensorflow").is_dir():
        subprocess.run(["tar", "-xJf", tflm_tar, "-C", work], check=True)
    recording, described = test_recording()
    samples = pcm16(recording)
    rows = []
    for preset in presets:
        tflite = int8_file(preset, work)
        facts = export_micro(tflite, work / preset, name=preset)["facts"]
        write_firmware(work / preset, preset, work / preset / "fw", recording, hops,
                       where=described)
        for target in targets:
            print(f"{preset} on {target} ...", file=sys.stderr, flush=True)
            row = measure(work / preset / "fw", target, tflm, tflite.read_bytes(), samples)
            rows.append({"preset": preset, "weights": "shipped" if preset == "student"
                         else "random", "model_bytes": facts["model_bytes"],
                         "arena_bytes": facts["arena_bytes"],
                         "macs_per_hop": facts["macs_per_hop"], **row})
    argv = sys.argv[1:]
    if "--work" in argv:  # a build folder on this machine: not part of the result
        argv[argv.index("--work") + 1] = "DIR"
    return {"command": "python benchmarks/micro_firmware.py " + " ".join(argv),
            "machine": machine(), "recording": described, "hops": hops,
            "assumed_cpi": ASSUMED_CPI, "rows": rows}


def markdown(report) -> str:
    input_bytes = 2 * 256 * report["hops"]  # the int16 recording in .rodata: test data
    lines = ["| model | core (QEMU board) | flash bytes without the input recording (model) | "
             "RAM bytes: data+bss (arena) + "
             "stack + heap | instructions per hop: mean / max (model) | MHz for 16 ms at CPI 1 / "
             f"{report['assumed_cpi']:g} | mask vs Python TFLM, max LSB (hops differing) |",
             "|---|---|---|---|---|---|---|"]
    from tinyse_tf.export.firmware import TARGETS as BOARDS

    cpi_key = f"mhz_for_16ms_cpi{report['assumed_cpi']:g}"
    for r in report["rows"]:
        c = r["check"]
        agree = f"{c['mask_max_lsb']} ({c['mask_hops_differing']} of {c['hops']})"
        name = f"`{r['preset']}` ({r['weights']})"
        if r["target"] == "host":
            lines.append(f"| {name} | host x86-64, reference kernels | - | - | "
                         f"{r['ns_per_hop'] / 1e3:.0f} us per hop (wall) | - | {agree} |")
            continue
        i = r["instructions_per_hop"]
        lines.append(
            f"| {name} | {r['target']} ({BOARDS[r['target']]}) | "
            f"{r['flash_bytes'] - input_bytes:,} "
            f"({r['model_bytes']:,}) | {r['ram_static_bytes']:,} ({r['arena_bytes']:,}) + "
            f"{r['stack_used']:,} + {r['heap_used']:,} | {i['mean'] / 1e6:.2f} M / "
            f"{i['max'] / 1e6:.2f} M ({i['model'] / 1e6:.2f} M) | {r['mhz_for_16ms_cpi1']:.0f} / "
            f"{r[cpi_key]:.0f} | {agree} |")
    for q in report.get("quality", []):
        c = q["check"]
        lines.append(
            f"\n{q['target']}, shipped student, {q['recording']} ({c['hops']} hops): mask vs "
            f"Python TFLM max {c['mask_max_lsb']} LSB ({c['mask_hops_differing']} hops differ), "
            f"states {'bit-exact' if c['states_bit_exact'] else 'differ'}; SI-SDR device "
            f"{q['si_sdr_device']:.3f} dB, LiteRT {q['si_sdr_litert']:.3f} dB; eSTOI device "
            f"{q['estoi_device']:.3f}, LiteRT {q['estoi_litert']:.3f}; device vs LiteRT SI-SDR "
            f"{q['si_sdr_device_vs_litert']:.1f} dB.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tflm-tar", required=True, type=Path, help="TFLM source archive")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    ap.add_argument("--hops", type=int, default=64, help="hops streamed per run (default 64)")
    ap.add_argument("--quality-seconds", type=float, default=0.0,
                    help="also stream a real mixture this long through the shipped student on "
                         "every Cortex-M target and score the audio (default 0: off)")
    ap.add_argument("--work", type=Path, help="build folder, kept (default: a temporary one)")
    ap.add_argument("--out", default="micro_firmware", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    if not args.tflm_tar.is_file():
        sys.exit(f"micro_firmware: {args.tflm_tar}: no such file; give the TFLM source archive")
    work = args.work or Path(tempfile.mkdtemp(prefix="tinyse_firmware_"))
    work.mkdir(parents=True, exist_ok=True)
    report = run(args.presets, args.targets, args.tflm_tar, args.hops, work)
    if args.quality_seconds > 0:
        report["quality"] = quality([t for t in args.targets if t != "host"],
                                    {"tree": work / "tflm", "obj": work / "obj"}, work,
                                    args.quality_seconds)
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
