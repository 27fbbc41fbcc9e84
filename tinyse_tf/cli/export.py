"""``tinyse export MODEL -o DIR [--int8 ptq|qat] [--representative DIR]``: streaming TFLite files.

Forwards to ``tinyse_tf.export.quantize.export_model``: always ``<name>_stream_float32.tflite``,
plus ``<name>_stream_int8_ptq.tflite`` / ``<name>_stream_int8_qat.tflite``, each with its
``<stem>.io_contract.json`` (atomic writes).
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from tinyse_tf.cli._common import (EXIT_OK, CliError, check_model_path, is_tflite,
                                   load_keras_model, native_stderr_captured, one_line,
                                   say)

PROG = "tinyse export"
INT8_METHODS = ("ptq", "qat")


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
               "Exit status: 0 exported; 2 bad usage or bad input (nothing written).")
    p.add_argument("model", metavar="MODEL", help="trained Keras model (.keras or .h5)")
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


def run(args) -> int:
    model_path = check_model_path(args.model)
    if is_tflite(model_path):
        raise CliError(f"{model_path}: already a .tflite file; export takes the trained Keras "
                       "model (.keras or .h5)")
    int8 = tuple(dict.fromkeys(args.int8))
    if int8 and not args.representative:
        raise CliError(f"--int8 {' '.join(int8)} needs --representative DIR: noisy speech to "
                       "calibrate the int8 ranges")
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
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"{out_dir}: exists and is not a folder; choose another -o")
    stems = [f"{name}_stream_float32"] + [f"{name}_stream_int8_{m}" for m in int8]
    existing = [out_dir / f"{s}.tflite" for s in stems if (out_dir / f"{s}.tflite").exists()]
    if existing and not args.overwrite:
        raise CliError(f"{existing[0]}: already exists; pass --overwrite to replace it, or choose "
                       "another -o or --name")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"{out_dir}: cannot create the output folder ({e.strerror or e}); choose a "
                       "writable -o") from None

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
            raise CliError(f"{model_path}: {e}") from None
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
    return EXIT_OK
