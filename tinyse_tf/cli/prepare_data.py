"""``tinyse prepare-data SPEECH_DIR NOISE_DIR -o DATA_DIR``: audio as int16 shards, once.

Forwards to ``tinyse_tf.data.prepare_data``: the same train/valid/test split as the recipe's
``--speech-dir/--noise-dir``, every file resampled to 16 kHz mono and written into fixed-size
shards plus ``manifest.json``. Resumable (rerun the same command), atomic, no TensorFlow.
"""
from __future__ import annotations

import argparse
import warnings

from tinyse_tf.cli._common import EXIT_FAILED, EXIT_OK, CliError, say

PROG = "tinyse prepare-data"


def add_parser(sub):
    p = sub.add_parser(
        "prepare-data", prog=PROG, help="write speech and noise folders as int16 shards for "
                                        "training (once; resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Split SPEECH_DIR and NOISE_DIR into train/valid/test exactly as the recipe's "
                    "--speech-dir/--noise-dir does for the same --seed, and write their audio "
                    "(resampled to 16 kHz, downmixed to mono) as fixed-size int16 shards plus a "
                    "manifest.json into DATA_DIR. Training then streams the shards, so its memory "
                    "does not grow with the corpus. Unreadable files are named and skipped.",
        epilog="Then: python recipes/two_step.py --speech-dir SPEECH_DIR --noise-dir NOISE_DIR "
               "--data-dir DATA_DIR (the same command on every worker of a multi-worker run).\n"
               "Interrupted? Run the same command again: it continues after the last finished "
               "shard. Exit status: 0 prepared; 1 prepared, but some files were skipped (named "
               "above); 2 bad usage or bad input; 130 interrupted.")
    p.add_argument("speech_dir", metavar="SPEECH_DIR", help="tree of clean speech .wav/.flac")
    p.add_argument("noise_dir", metavar="NOISE_DIR", help="tree of noise .wav/.flac")
    p.add_argument("-o", "--output-dir", required=True, metavar="DATA_DIR",
                   help="output folder: new, empty, or an earlier run of this same command")
    p.add_argument("--seed", type=int, default=0,
                   help="split seed; use the recipe's --seed (default 0)")
    p.add_argument("--valid-fraction", type=float, default=0.05,
                   help="share of files (or speaker folders) for valid (default 0.05)")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of files (or speaker folders) for test (default 0.1)")
    p.add_argument("--shard-mb", type=float, default=None,
                   help="shard size in MB (default 16, about 8.7 min of audio)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from tqdm.auto import tqdm

    from tinyse_tf.data.audio_io import AudioSkipWarning, DataError
    from tinyse_tf.data.shards import SHARD_MB, prepare_data

    shard_mb = SHARD_MB if args.shard_mb is None else args.shard_mb
    if not shard_mb > 0:
        raise CliError("--shard-mb must be positive")
    skipped = 0
    with warnings.catch_warnings():  # restores showwarning at the end
        previous = warnings.showwarning

        def show(message, category, *rest, **kwargs):
            nonlocal skipped
            if not issubclass(category, AudioSkipWarning):
                return previous(message, category, *rest, **kwargs)
            text = str(message)
            skipped += text.startswith("skipping: ")
            say(PROG, "warning" if text.startswith("skipping: ") else "note", text,
                write=tqdm.write)
            return None

        warnings.simplefilter("always", AudioSkipWarning)
        warnings.showwarning = show
        try:
            data = prepare_data(args.speech_dir, args.noise_dir, args.output_dir, seed=args.seed,
                                valid_fraction=args.valid_fraction,
                                test_fraction=args.test_fraction, shard_mb=shard_mb,
                                progress=not args.quiet)
        except DataError:
            raise
        except ValueError as e:  # fractions out of range
            raise CliError(str(e)) from None
    for kind, splits in data.counts().items():
        print(f"{kind:6s} " + "; ".join(
            f"{split} {c['utterances']} files, {c['hours']:.2f} h in {c['shards']} shards"
            for split, c in splits.items()))
    notes = [f"{n} {what}" for what, n in data.manifest["converted"].items() if n]
    print(f"{data.root}: prepared" + (f" ({', '.join(notes)})" if notes else ""))
    if data.skipped:
        say(PROG, "warning", f"skipped {len(data.skipped)} unreadable files"
                             f"{' (named above)' if skipped else ''}; "
                             f"they are listed under 'skipped' in {data.root / 'manifest.json'}")
        return EXIT_FAILED
    return EXIT_OK
