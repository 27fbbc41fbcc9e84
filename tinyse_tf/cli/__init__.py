"""The ``tinyse`` command line (``tinyse_tf.cli:main``; also ``python -m tinyse_tf.cli``).

One module per command, each with ``add_parser(subparsers)`` and ``run(args) -> int``; TensorFlow
is imported only inside the commands that need it, so ``tinyse --help`` and ``tinyse evaluate``
start fast. ``train`` and ``edgetpu-check`` forward their arguments unchanged to
``tinyse_tf.recipe.two_step.main`` and ``tinyse_tf.export.edgetpu_check.main``.

Every command reports a problem as one line on stderr, ``tinyse <command>: error: <what>``, and
never a traceback (``TINYSE_DEBUG=1`` shows it). Exit codes: see ``EXIT_CODES``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tinyse_tf.cli._common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError,  # noqa: E402
                                   one_line)
from tinyse_tf.native_stderr import debug  # noqa: E402

__all__ = ["main", "build_parser", "EXIT_CODES"]

#: Command name -> module with ``add_parser(sub)``.
COMMANDS = {
    "adapt": "tinyse_tf.cli.adapt",
    "enhance": "tinyse_tf.cli.enhance",
    "evaluate": "tinyse_tf.cli.evaluate",
    "export": "tinyse_tf.cli.export",
    "info": "tinyse_tf.cli.info",
    "prepare-data": "tinyse_tf.cli.prepare_data",
}
#: Forwarded commands: arguments go verbatim to ``main(argv, prog=...)`` of the module.
FORWARDED = {
    "edgetpu-check": ("tinyse_tf.export.edgetpu_check",
                      "check a .tflite file against the Edge TPU op list (exit 1: some op would "
                      "run on the CPU)"),
    "train": ("tinyse_tf.recipe.two_step",
              "train teacher and students with the two-step KD recipe (arguments of "
              "recipes/two_step.py; see `tinyse train --help`)"),
}

EXIT_CODES = """exit status:
  0    success
  1    some files failed (the others were processed), a check failed (edgetpu-check: an op
       would run on the CPU), some metrics failed (evaluate), or an unexpected internal error
  2    bad usage or bad input: a missing or unusable file, folder or model (nothing written)
  130  interrupted (Ctrl-C)

Errors are one line on stderr: "tinyse <command>: error: <file>: <problem>; <what to do>".
Set TINYSE_DEBUG=1 to see tracebacks and TensorFlow's own log lines. Details: docs/CLI.md."""


def _version() -> str:
    from tinyse_tf import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyse", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tiny causal speech enhancement (CRUSE, two-step knowledge distillation, "
                    "int8 streaming TFLite). Run `tinyse COMMAND --help` for a command's options.",
        epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"tinyse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in ("adapt", "enhance", "evaluate", "export", "edgetpu-check", "info", "prepare-data",
                 "train"):
        if name in FORWARDED:  # listed in the help; parsed by the target itself (see main)
            sub.add_parser(name, add_help=False, help=FORWARDED[name][1])
        else:
            importlib.import_module(COMMANDS[name]).add_parser(sub)
    return parser


def _guard(prog: str, fn) -> int:
    """Run a command; turn every exception into one stderr line and an exit code."""
    try:
        code = fn()
        return 0 if code is None else int(code)
    except CliError as e:
        print(f"{prog}: error: {e.message}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. `tinyse info m.keras | head -1`
        return 0
    except Exception as e:  # the command boundary: never a traceback, unless asked
        if debug():
            raise
        from tinyse_tf.data.audio_io import AudioError, DataError

        if isinstance(e, (AudioError, DataError, FileNotFoundError)):
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        print(f"{prog}: error: unexpected {type(e).__name__}: {one_line(e, 300)}; rerun with "
              "TINYSE_DEBUG=1 for the traceback and report it", file=sys.stderr, flush=True)
        return EXIT_FAILED


def main(argv=None) -> int:
    """Entry point of ``tinyse``; returns the exit status (see ``EXIT_CODES``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        prog = f"tinyse {argv[0]}"
        target = importlib.import_module(FORWARDED[argv[0]][0])
        return _guard(prog, lambda: target.main(argv[1:], prog=prog))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _guard(f"tinyse {args.command}", lambda: args.run(args))
