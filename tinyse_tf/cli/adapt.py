"""``tinyse adapt --noise DIR [--speech DIR] -o OUT [--minutes N] [--model student]``: fine-tune a
model to one noise and export it.

Forwards to ``tinyse_tf.adapt.adapt`` (the shipped student by default; part of the noise held out;
forgetting guarded; streaming float32 + int8 files with the Edge TPU check, the TFLite Micro
sources with ``--target micro``; a before/after report). Rerun the same command to resume.
"""
from __future__ import annotations

import argparse

from tinyse_tf.cli._common import EXIT_OK, CliError, native_stderr_captured

PROG = "tinyse adapt"


def add_parser(sub):
    from tinyse_tf.adapt import GUARDS, TARGETS, AdaptConfig

    d = AdaptConfig()
    p = sub.add_parser(
        "adapt", prog=PROG, help="fine-tune the shipped model to your noise in minutes, then "
                                 "export it (int8, Edge TPU, microcontrollers)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune a CRUSE model (default: the shipped 62 k student) to the noise "
                    "recorded in --noise, mixed with clean speech (--speech, else the built-in "
                    "corpus) at -5..15 dB SNR, for a wall-clock budget. Part of the noise is held "
                    "out (whole files when there are 4 or more, else the last quarter of each), "
                    "and the epoch kept is the best on it (the start included). Writes OUT/"
                    "adapted.keras, OUT/export/ (streaming float32 and int8 .tflite with I/O "
                    "contracts, checked for the Edge TPU) and OUT/report.md (before/after per "
                    "input SNR on the held-out noise and on built-in test clips).",
        epilog="Interrupted? Run the same command again: it resumes (the budget counts the time "
               "already spent). Details and measurements: docs/ADAPT.md.\n"
               "Exit status: 0 adapted; 2 bad usage or bad input (one line naming the file or "
               "folder); 130 interrupted.")
    p.add_argument("--noise", required=True, metavar="DIR",
                   help="recordings of your noise (.wav/.flac, any rate; a folder or one file; "
                        "at least a few seconds)")
    p.add_argument("--speech", metavar="DIR",
                   help="clean speech recordings (default: the built-in corpus)")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUT", help="output folder")
    p.add_argument("--minutes", type=float, default=d.minutes,
                   help=f"wall-clock budget of the fine-tuning (default {d.minutes:g}; export "
                        "and report add about two minutes)")
    p.add_argument("--model", default="student",
                   help="start: 'student' (shipped, default), a .keras/.h5 file or a run folder")
    p.add_argument("--target", choices=TARGETS, default="edgetpu",
                   help="edgetpu (default) or micro (also TFLite Micro C sources)")
    p.add_argument("--guard", choices=GUARDS, default=d.guard,
                   help=f"forgetting guard (default {d.guard}; docs/ADAPT.md)")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, metavar="LR",
                   help=f"Adam's learning rate (default {d.learning_rate:g})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from tinyse_tf.adapt import adapt
    from tinyse_tf.data.audio_io import AudioError, DataError

    try:
        with native_stderr_captured():  # TensorFlow's C++ log lines
            result = adapt(args.noise, args.output_dir, speech=args.speech, model=args.model,
                           target=args.target, progress=not args.quiet, minutes=args.minutes,
                           guard=args.guard, seed=args.seed, learning_rate=args.learning_rate)
    except (AudioError, DataError):
        raise
    except ValueError as e:
        raise CliError(str(e)) from None
    for kind, path in result.files.items():
        print(f"{kind:9s} {path}")
    print(f"report    {result.out / 'report.md'}")
    return EXIT_OK
