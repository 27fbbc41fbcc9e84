"""``tinyse export MODEL -o DIR [--int8 ptq|qat] [--representative DIR] [--target edgetpu|micro]``:
streaming TFLite files, compiled for the Edge TPU, or as TFLite Micro artefacts.

Forwards to ``tinyse_tf.export.quantize.export_model``: always ``<name>_stream_float32.tflite``,
plus ``<name>_stream_int8_ptq.tflite`` / ``<name>_stream_int8_qat.tflite``, each with its
``<stem>.io_contract.json`` (atomic writes). ``--target micro`` then writes the microcontroller
artefacts of every int8 file (``tinyse_tf.export.micro.export_micro``); ``--target edgetpu``
runs the Edge TPU compile step on every int8 file (``tinyse_tf.export.edgetpu.compile_model``:
static check, then ``edgetpu_compiler`` when installed). With a target, MODEL may also be an int8
streaming ``.tflite`` already exported.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from tinyse_tf.cli._common import (EXIT_FAILED, EXIT_OK, CliError, is_tflite, load_keras_model,
                                   one_line, resolve_model, say)
from tinyse_tf.native_stderr import native_stderr_captured

PROG = "tinyse export"
INT8_METHODS = ("ptq", "qat")
TARGETS = ("edgetpu", "micro")


def add_parser(sub):
    p = sub.add_parser(
        "export", prog=PROG, help="export a Keras model as streaming float32 / int8 TFLite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a trained Keras CRUSE model (.keras/.h5) as single-frame streaming "
                    "TFLite files with explicit states: float32 always, full-int8 with --int8. "
                    "Each file gets an <stem>.io_contract.json describing its inputs, outputs, "
                    "quantization and signal constants.",
        epilog="int8 needs a bounded norm (frame_ln, batch or none; cLN models export as float32 "
               "only) and --representative: a folder of real noisy 16 kHz-or-any-rate speech "
               "(a few tens of seconds is enough). QAT also fine-tunes on (noisy, clean) pairs "
               "mixed from --qat-speech and --qat-noise.\n"
               "--target micro (TensorFlow Lite for Microcontrollers) also writes, per int8 file, "
               "<stem>_model_data.h/.cc, <stem>_op_resolver.h, <stem>_frontend.h/.cc and "
               "<stem>_micro.json (flash, measured arena, ops, MACs; docs/MICRO.md); it implies "
               "--int8 ptq unless --int8 is given, and also takes an int8 streaming .tflite.\n"
               "--target edgetpu (Coral Edge TPU) runs the static Edge TPU check and then "
               "edgetpu_compiler (when installed) on every int8 file, writing "
               "<stem>_edgetpu.tflite and its .log; it implies --int8 ptq too, and also takes an "
               "int8 streaming .tflite. Without edgetpu_compiler only the static check runs (the "
               "output says so).\n"
               "Exit status: 0 exported (and, with --target edgetpu, compiled with every op on "
               "the Edge TPU, or checked when the compiler is absent); 1 the Edge TPU check or "
               "compiler put an op on the CPU or failed; 2 bad usage or bad input (nothing "
               "written).")
    p.add_argument("model", metavar="MODEL",
                   help="trained Keras model (.keras or .h5); with --target also an int8 "
                        "streaming .tflite")
    p.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="output folder")
    p.add_argument("--int8", action="append", choices=INT8_METHODS, default=[],
                   help="also write a full-int8 file: ptq (post-training) or qat "
                        "(quantization-aware fine-tuning); repeat for both")
    p.add_argument("--representative", metavar="DIR",
                   help="noisy speech (.wav/.flac, recursive) for int8 calibration")
    p.add_argument("--qat-speech", metavar="DIR", help="clean speech for QAT fine-tuning")
    p.add_argument("--qat-noise", metavar="DIR", help="noise for QAT fine-tuning")
    p.add_argument("--qat-steps", type=int, default=200, help="QAT optimizer steps (default 200)")
    p.add_argument("--name", help="file name prefix (default: the model file's stem)")
    p.add_argument("--calibration-frames", type=int, default=1000,
                   help="representative frames kept for calibration (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="calibration / QAT mixing seed")
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="edgetpu (also compile every int8 file for the Coral Edge TPU) or micro "
                        "(also C source for TensorFlow Lite for Microcontrollers); default: the "
                        "TFLite files only (int8 ones with the static Edge TPU check in their "
                        "I/O contract)")
    p.add_argument("--arena-margin", type=float, default=None, metavar="FRACTION",
                   help="--target micro: fraction added to the measured TFLM arena (default "
                        "0.05)")
    p.add_argument("--firmware", metavar="DIR",
                   help="--target micro: also write a firmware harness into DIR (main.cc, "
                        "Makefile, the model's C files, the input recording as a header): "
                        "`make -C DIR run TFLM_TAR=tflm-src.tar.xz [TARGET=cortex-m4]` builds "
                        "and runs it (docs/MICRO.md)")
    p.add_argument("--firmware-audio", metavar="FILE",
                   help="--firmware: the noisy recording the program streams (default: the "
                        "first --representative file; required for a .tflite MODEL)")
    p.add_argument("--firmware-hops", type=int, default=125, metavar="N",
                   help="--firmware: 16 ms hops of the recording to stream (default 125, 2 s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing exported files")
    p.set_defaults(run=run)
    return p


def _audio_files(folder, option: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CliError(f"{folder}: {option} folder not found; give a folder of .wav/.flac files")
    from tinyse_tf.data.audio_io import list_audio

    files = list_audio(folder)
    if not files:
        raise CliError(f"{folder}: no .wav or .flac files for {option} (searched recursively); "
                       "point to the folder that holds the audio")
    return files


def _load_usable(files, option: str) -> list:
    """16 kHz mono arrays of the readable files; each unreadable one is named in a note."""
    from tinyse_tf.data.audio_io import AudioError, load_audio

    audio = []
    for f in files:
        try:
            audio.append(load_audio(f))
        except AudioError as e:
            say(PROG, "note", f"{option}: skipping {one_line(e)}")
    if not audio:
        raise CliError(f"{option}: none of the {len(files)} files is usable (named above); give "
                       "a folder of readable noisy speech")
    return audio


def _output_dir(path) -> Path:
    out_dir = Path(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"{out_dir}: exists and is not a folder; choose another -o")
    return out_dir


def _refuse_existing(paths, overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise CliError(f"{existing[0]}: already exists; pass --overwrite to replace it, or choose "
                       "another -o or --name")


def _make_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"{out_dir}: cannot create the output folder ({e.strerror or e}); choose a "
                       "writable -o") from None


def _firmware_plan(args, rep_files, stems) -> tuple | None:
    """``(firmware dir, audio [n], audio file name, int8 stem)`` for ``--firmware``, all checked
    before any export work (nothing is written on bad input); None without it."""
    if args.firmware is None:
        if args.firmware_audio is not None:
            raise CliError("--firmware-audio applies with --firmware DIR only")
        return None
    if len(stems) != 1:
        raise CliError("--firmware takes one int8 file: give --int8 once")
    if args.firmware_hops < 1:
        raise CliError("--firmware-hops must be at least 1")
    path = Path(args.firmware_audio) if args.firmware_audio else (
        rep_files[0] if rep_files else None)
    if path is None:
        raise CliError("--firmware needs --firmware-audio FILE: a noisy 16 kHz-or-any-rate "
                       "recording for the program to stream")
    from tinyse_tf.constants import HOP
    from tinyse_tf.data.audio_io import AudioError, load_audio
    from tinyse_tf.export.firmware import firmware_paths

    try:
        audio = load_audio(path)
    except AudioError as e:
        raise CliError(f"--firmware-audio: {one_line(e)}") from None
    if audio.size < args.firmware_hops * HOP:
        raise CliError(f"{path}: {audio.size / 16000:.2f} s is shorter than --firmware-hops "
                       f"{args.firmware_hops} ({args.firmware_hops * HOP / 16000:.2f} s); give a "
                       "longer recording or fewer hops")
    fw_dir = _output_dir(args.firmware)
    _refuse_existing(firmware_paths(fw_dir, stems[0]), args.overwrite)
    return fw_dir, audio, path.name, stems[0]


def _write_firmware(plan, out_dir: Path, hops: int) -> None:
    """Write the firmware harness of ``plan`` (``_firmware_plan``) and print one line."""
    from tinyse_tf.export.firmware import write_firmware

    fw_dir, audio, where, stem = plan
    write_firmware(out_dir, stem, fw_dir, audio, hops, where=where)
    print(f"firmware  {fw_dir}/  ({hops} hops of {where}; build and run: make -C {fw_dir} run "
          "TFLM_TAR=<tflm-src.tar.xz> [TARGET=cortex-m4])")


def _export_micro(tflite_path: Path, out_dir: Path, name: str, margin: float | None) -> None:
    """Write the TFLite Micro artefacts of one int8 file and print one line about them."""
    from tinyse_tf.export.micro import ARENA_MARGIN, MicroExportError, export_micro

    try:
        with native_stderr_captured():
            facts = export_micro(tflite_path, out_dir, name,
                                 ARENA_MARGIN if margin is None else margin)["facts"]
    except MicroExportError as e:
        raise CliError(str(e)) from None
    print(f"micro     {out_dir / name}_model_data.cc  (flash {facts['flash_bytes']:,} B, arena "
          f"{facts['arena_bytes']:,} B reserved / {facts['arena_bytes_measured']:,} B measured, "
          f"{facts['macs_per_hop']:,} MACs per hop, {len(facts['resolver'])} TFLM op types)")


def _compile_edgetpu(tflite_path: Path, out_dir: Path) -> bool:
    """The Edge TPU compile step on one int8 file, into ``out_dir``; True when it passed (every
    op compiled to the Edge TPU, or the static check passed and the compiler is absent)."""
    from tinyse_tf.export.edgetpu import EXIT_BAD_INPUT, EXIT_NO_COMPILER, EXIT_OK, compile_model

    code = compile_model(tflite_path, out_dir, prog=PROG)
    if code == EXIT_BAD_INPUT:
        raise CliError(f"{tflite_path}: not a TFLite file the Edge TPU check can read; give an "
                       "int8 streaming .tflite written by `tinyse export`")
    if code == EXIT_NO_COMPILER:
        say(PROG, "note", f"{tflite_path}: static Edge TPU check passed; not compiled "
                          "(edgetpu_compiler is not installed, see above)")
    return code in (EXIT_OK, EXIT_NO_COMPILER)


def _run_edgetpu_tflite(args, model_path: Path) -> int:
    """``--target edgetpu`` on an exported int8 streaming .tflite: the compile step only."""
    if args.int8 or args.representative:
        raise CliError(f"{model_path}: already a .tflite file; --int8 and --representative "
                       "apply to a Keras model only")
    out_dir = _output_dir(args.output_dir)
    _refuse_existing([out_dir / f"{model_path.stem}_edgetpu.tflite"], args.overwrite)
    _make_dir(out_dir)
    return EXIT_OK if _compile_edgetpu(model_path, out_dir) else EXIT_FAILED


def _run_micro_tflite(args, model_path: Path) -> int:
    """``--target micro`` on an exported int8 streaming .tflite: the C artefacts only."""
    from tinyse_tf.export.micro import MicroExportError, check_micro_model, micro_paths

    if args.int8 or args.representative:
        raise CliError(f"{model_path}: already a .tflite file; --int8 and --representative "
                       "apply to a Keras model only")
    try:
        check_micro_model(model_path.read_bytes(), model_path)
    except MicroExportError as e:
        raise CliError(str(e)) from None
    name = args.name or model_path.stem
    out_dir = _output_dir(args.output_dir)
    _refuse_existing(micro_paths(out_dir, name), args.overwrite)
    firmware = _firmware_plan(args, [], [name])
    _make_dir(out_dir)
    _export_micro(model_path, out_dir, name, args.arena_margin)
    if firmware:
        _write_firmware(firmware, out_dir, args.firmware_hops)
    return EXIT_OK


def run(args) -> int:
    model_path = resolve_model(args.model, lambda text: say(PROG, "note", text))
    micro = args.target == "micro"
    if args.arena_margin is not None and (not micro or args.arena_margin < 0):
        raise CliError("--arena-margin takes a fraction >= 0 and applies to --target micro only")
    if args.firmware is not None and not micro:
        raise CliError("--firmware applies to --target micro only")
    if is_tflite(model_path):
        if micro:
            return _run_micro_tflite(args, model_path)
        if args.target == "edgetpu":
            return _run_edgetpu_tflite(args, model_path)
        raise CliError(f"{model_path}: already a .tflite file; export takes the trained Keras "
                       "model (.keras or .h5), or give --target edgetpu or --target micro")
    int8 = tuple(dict.fromkeys(args.int8)) or (("ptq",) if args.target else ())
    if int8 and not args.representative:
        raise CliError(f"{'--target ' + args.target if args.target and not args.int8 else '--int8 ' + ' '.join(int8)}"
                       " needs --representative DIR: noisy speech to calibrate the int8 ranges")
    if "qat" in int8 and not (args.qat_speech and args.qat_noise):
        raise CliError("--int8 qat needs --qat-speech DIR and --qat-noise DIR (the fine-tuning "
                       "data, mixed at random SNRs)")
    for opt in ("qat_steps", "calibration_frames"):
        if getattr(args, opt) < 1:
            raise CliError(f"--{opt.replace('_', '-')} must be at least 1")
    rep_files = _audio_files(args.representative, "--representative") if int8 else []
    qat_files = ((_audio_files(args.qat_speech, "--qat-speech"),
                  _audio_files(args.qat_noise, "--qat-noise")) if "qat" in int8 else None)
    name = args.name or model_path.stem
    out_dir = _output_dir(args.output_dir)
    stems = [f"{name}_stream_float32"] + [f"{name}_stream_int8_{m}" for m in int8]
    outputs = [out_dir / f"{s}.tflite" for s in stems]
    if micro:
        from tinyse_tf.export.micro import micro_paths

        outputs += [p for s in stems[1:] for p in micro_paths(out_dir, s)]
    if args.target == "edgetpu":
        outputs += [out_dir / f"{s}_edgetpu.tflite" for s in stems[1:]]
    _refuse_existing(outputs, args.overwrite)
    firmware = _firmware_plan(args, rep_files, stems[1:])

    model, config = load_keras_model(model_path)
    try:
        from tinyse_tf.export.quantize import export_model
    except ImportError as e:
        raise CliError(f"the export module is not available ({one_line(e)}); this installation "
                       "of tinyse_tf cannot export", code=1) from None
    from tinyse_tf.models.config import Int8ExportError, check_int8_exportable

    if int8:
        try:
            check_int8_exportable(config)
        except Int8ExportError as e:
            target = "--target micro runs int8 only: " if micro else ""
            raise CliError(f"{model_path}: {target}{e}") from None
    _make_dir(out_dir)
    representative = _load_usable(rep_files, "--representative") if int8 else None
    qat_dataset = None
    if qat_files is not None:
        import numpy as np

        from tinyse_tf.export.calibration import noisy_mixtures

        speech = _load_usable(qat_files[0], "--qat-speech")
        noise = _load_usable(qat_files[1], "--qat-noise")
        pairs = noisy_mixtures(speech, noise, n_clips=32, seconds=2.0, seed=args.seed)
        qat_dataset = [(np.stack([p[0] for p in pairs[i:i + 8]]),
                        np.stack([p[1] for p in pairs[i:i + 8]])) for i in range(0, 32, 8)]
    say(PROG, "note", f"exporting {model_path} ({config.norm}, "
                      f"{int(model.count_params()):,} parameters): float32"
                      + "".join(f" + int8 {m}" for m in int8))
    with native_stderr_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = export_model(model, out_dir, name, int8=int8,
                             representative_audio=representative, qat_dataset=qat_dataset,
                             qat_steps=args.qat_steps, calibration_frames=args.calibration_frames,
                             seed=args.seed)
    from tinyse_tf.export.contract import contract_path

    for kind, path in paths.items():
        line = f"{kind:9s} {path}  ({Path(path).stat().st_size / 1024:.0f} KiB)"
        try:
            import json

            edge = json.loads(contract_path(path).read_text()).get("edgetpu_static_check")
            if edge:
                line += (f"  Edge TPU: {'all ops map' if edge['ok'] else 'NOT OK'}"
                         f" ({edge['cpu_op_count']} of {edge['op_count']} ops on CPU)")
        except (OSError, ValueError, KeyError):
            pass
        print(line)
    if micro:
        for kind in int8:
            path = Path(paths[f"int8_{kind}"])
            _export_micro(path, out_dir, path.stem, args.arena_margin)
    if firmware:
        _write_firmware(firmware, out_dir, args.firmware_hops)
    if args.target == "edgetpu":
        passed = [_compile_edgetpu(Path(paths[f"int8_{kind}"]), out_dir) for kind in int8]
        if not all(passed):
            return EXIT_FAILED
    return EXIT_OK
