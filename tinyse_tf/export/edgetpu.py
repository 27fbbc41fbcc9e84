"""Edge TPU compile step: the static check, then Coral's ``edgetpu_compiler`` when installed.

``compile_model(MODEL_int8.tflite, OUTDIR)`` (also ``tinyse export --target edgetpu`` and
``python edge/compile.py``):

1. Runs the static checker (``tinyse_tf.export.edgetpu_check``) and reports its table.
2. If ``edgetpu_compiler`` is on PATH (or given), runs ``edgetpu_compiler -s -o OUTDIR MODEL``,
   echoes its output and parses its operation table. The compiler's verdict is final: it decides
   the exit status even when the static check disagrees.
3. If the compiler is absent, says how to install it and returns 3 (static check passed: the
   file is expected to map, but nothing was compiled) or 1 (static check failed).

Exit status (``EXIT_*`` below):

    0  compiled, and the compiler mapped every operation to the Edge TPU (OUTDIR holds
       MODEL_edgetpu.tflite and its .log)
    1  not deployable as is: the static check failed and no compiler was found, the compiler
       could not run or failed, its output could not be read, or it put operations on the CPU
    2  the input is missing, unreadable or not a TFLite file
    3  edgetpu_compiler is not installed; the static check passed (nothing was compiled)

A script that needs a compiled model must test for 0; one that accepts "checked, not compiled"
on a machine without the compiler may accept 3 as well.

The compiler's summary format (parsed by ``parse_compiler_log``) as printed by edgetpu_compiler
15/16 (examples in google-coral/edgetpu issues 342, 393, 490, 671)::

    Edge TPU Compiler version 16.0.384591198
    ...
    Model compiled successfully in 1354 ms.
    ...
    Number of Edge TPU subgraphs: 1
    Total number of operations: 143
    Operation log: model_edgetpu.log
    ...
    Number of operations that will run on Edge TPU: 139
    Number of operations that will run on CPU: 4

    Operator                       Count      Status

    CONV_2D                        11         Mapped to Edge TPU
    QUANTIZE                       1          Operation is otherwise supported, but not mapped ...

The two "Number of operations that will run on ..." lines only appear when something runs on the
CPU; when they are absent the CPU count is the sum of the table rows whose status is not
"Mapped to Edge TPU". The ``OUTDIR/<model>_edgetpu.log`` file holds the same table.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tinyse_tf.export.edgetpu_check import NotATfliteFile, check_model, format_table

MAPPED = "Mapped to Edge TPU"
COMPILER = "edgetpu_compiler"

EXIT_OK = 0  # compiled, every operation on the Edge TPU
EXIT_FAIL = 1  # static check failed without a compiler, compiler failed, or ops on the CPU
EXIT_BAD_INPUT = 2  # missing, unreadable or non-TFLite input
EXIT_NO_COMPILER = 3  # compiler absent, static check passed

EPILOG = f"""\
exit status:
  {EXIT_OK}  compiled, and every operation is mapped to the Edge TPU
  {EXIT_FAIL}  static check failed (no compiler), compiler failed, or operations on the CPU
  {EXIT_BAD_INPUT}  missing, unreadable or non-TFLite input
  {EXIT_NO_COMPILER}  edgetpu_compiler not installed, static check passed (nothing compiled)"""

INSTALL_HELP = """\
edgetpu_compiler is not on PATH, so only the static check above was run (nothing compiled).
The compiler comes from Coral's apt repository (x86-64 Debian/Ubuntu only; nothing on PyPI provides it):

    curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -
    echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list
    sudo apt-get update && sudo apt-get install edgetpu-compiler

then run this script again (or: edgetpu_compiler -s -o OUTDIR MODEL_int8.tflite)."""

_RE_EDGETPU = re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)")
_RE_CPU = re.compile(r"Number of operations that will run on CPU:\s*(\d+)")
_RE_TOTAL = re.compile(r"Total number of operations:\s*(\d+)")
_RE_SUBGRAPHS = re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)")
_RE_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_RE_OUTPUT = re.compile(r"Output model:\s*(.+?)\s*$", re.M)
_RE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$")
_RE_ROW = re.compile(r"^\s*(\S+)\s+(\d+)\s+(\S.*?)\s*$")


@dataclass
class CompilerLog:
    """What edgetpu_compiler said about one model."""
    compiled: bool  # "Model compiled successfully" seen and no error line
    version: str | None = None
    output_model: str | None = None
    edgetpu_subgraphs: int | None = None
    total_ops: int | None = None
    edgetpu_ops: int | None = None  # from the summary line, when printed
    cpu_ops_summary: int | None = None  # from the summary line, when printed
    rows: list[tuple[str, int, str]] = field(default_factory=list)  # (operator, count, status)
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_ops(self) -> int | None:
        """Operations on the CPU: the summary line if printed, else the table; None if unknown."""
        if self.cpu_ops_summary is not None:
            return self.cpu_ops_summary
        if self.rows:
            return sum(n for _, n, status in self.rows if status != MAPPED)
        if self.edgetpu_ops is not None and self.total_ops is not None:
            return self.total_ops - self.edgetpu_ops
        return None

    @property
    def all_on_edgetpu(self) -> bool:
        return self.compiled and self.cpu_ops == 0


def parse_compiler_log(text: str) -> CompilerLog:
    """Parse edgetpu_compiler's stdout and/or its ``*_edgetpu.log`` (concatenated is fine).

    The operator table is read from the first "Operator  Count  Status" header only, so passing
    stdout (which repeats the table with -s) followed by the log file does not double count.
    """
    def num(rx):
        m = rx.search(text)
        return int(m.group(1)) if m else None

    errors = [ln.strip() for ln in text.splitlines()
              if re.search(r"\b(ERROR|Error|error:|Internal compiler error|Compilation failed"
                           r"|Aborting)", ln)]
    log = CompilerLog(compiled="compiled successfully" in text and not errors)
    m = _RE_VERSION.search(text)
    log.version = m.group(1) if m else None
    m = _RE_OUTPUT.search(text)
    log.output_model = m.group(1) if m else None
    log.edgetpu_subgraphs = num(_RE_SUBGRAPHS)
    log.total_ops = num(_RE_TOTAL)
    log.edgetpu_ops = num(_RE_EDGETPU)
    log.cpu_ops_summary = num(_RE_CPU)
    log.errors = errors

    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _RE_HEADER.match(ln)), None)
    if start is not None:
        seen_row = False
        for ln in lines[start + 1:]:
            if not ln.strip():
                if seen_row:
                    break  # blank line after the rows ends the table
                continue
            m = _RE_ROW.match(ln)
            if not m:
                break
            log.rows.append((m.group(1), int(m.group(2)), m.group(3)))
            seen_row = True
    return log


def format_compiler_rows(log: CompilerLog) -> str:
    if not log.rows:
        return "(no operator table found in the compiler output)"
    w = max(len(op) for op, _, _ in log.rows)
    return "\n".join(f"  {op.ljust(w)}  {n:>5}  {'yes' if st == MAPPED else 'CPU: ' + st}"
                     for op, n, st in log.rows)


def run_compiler(compiler: str, model: Path, outdir: Path, timeout_s: float = 600) -> tuple[int, str]:
    """Run ``edgetpu_compiler -s -o OUTDIR MODEL``; returns (returncode, stdout+stderr)."""
    proc = subprocess.run([compiler, "-s", "-o", str(outdir), str(model)], capture_output=True,
                          text=True, timeout=timeout_s)
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def find_compiler(compiler: str | None = None) -> str | None:
    """``compiler`` if given, else ``edgetpu_compiler`` on PATH, else None."""
    return compiler or shutil.which(COMPILER)


def compile_model(model, outdir=None, compiler: str | None = None, echo=print,
                  prog: str = "tinyse export") -> int:
    """Static Edge TPU check of ``model`` (a full-int8 .tflite), then ``edgetpu_compiler -s -o
    OUTDIR MODEL`` when the compiler is found (``find_compiler``); returns an ``EXIT_*`` status
    (module docstring). ``echo(text)`` receives the report (check table, compiler output,
    verdict); a bad input is one line on stderr, prefixed with ``prog``.

    Writes (compiler only) ``OUTDIR/<stem>_edgetpu.tflite`` and ``<stem>_edgetpu.log``; OUTDIR
    defaults to the model's folder."""
    model = Path(model)
    try:
        report = check_model(model)
    except (OSError, NotATfliteFile) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"{prog}: error: {model}: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    echo("== static Edge TPU check ==")
    echo(format_table(report))
    echo("")

    compiler = find_compiler(compiler)
    if not compiler:
        echo(INSTALL_HELP)
        if report.ok:
            echo(f"static check passed, not compiled: exit {EXIT_NO_COMPILER}")
            return EXIT_NO_COMPILER
        echo(f"static check FAILED and no compiler to overrule it: exit {EXIT_FAIL}")
        return EXIT_FAIL

    outdir = Path(outdir) if outdir else (model.parent if str(model.parent) else Path("."))
    log_file = outdir / f"{model.stem}_edgetpu.log"
    echo(f"== {compiler} -s -o {outdir} {model} ==")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        log_file.unlink(missing_ok=True)  # never judge this run by an earlier run's log
        rc, out = run_compiler(compiler, model, outdir)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"{prog}: edgetpu_compiler could not run: {e}", file=sys.stderr)
        return EXIT_FAIL
    echo(out.rstrip())
    text = out
    if log_file.is_file():
        text += "\n" + log_file.read_text(errors="replace")
    log = parse_compiler_log(text)
    echo("")
    echo("== compiler verdict ==")
    echo(format_compiler_rows(log))
    if rc != 0 or not log.compiled:
        why = "; ".join(log.errors) or f"exit status {rc}"
        echo(f"edgetpu_compiler FAILED: {why}")
        return EXIT_FAIL
    cpu = log.cpu_ops
    if cpu is None:
        echo("could not find the operation counts in the compiler output: treating as a failure")
        return EXIT_FAIL
    out_model = outdir / f"{model.stem}_edgetpu.tflite"
    if cpu == 0:
        echo(f"OK: every operation runs on the Edge TPU -> {out_model}")
        if not report.ok:
            echo("note: the static check disagreed; the compiler's verdict wins. Please report "
                 "the model so the checker's rules can be fixed.")
        return EXIT_OK
    echo(f"NOT OK: {cpu} operation(s) will run on the CPU (see {log_file})")
    return EXIT_FAIL


def main(argv: list[str] | None = None, prog: str = "edge/compile.py") -> int:
    """Command line of ``edge/compile.py``: ``MODEL [-o OUTDIR] [--compiler PATH]``; returns the
    exit status of ``compile_model``."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Static Edge TPU check, then edgetpu_compiler (when installed). Exit 0 only "
                    "when the compiler ran and mapped every operation to the Edge TPU.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="full-int8 .tflite file")
    ap.add_argument("-o", "--outdir", default=None,
                    help="output folder for *_edgetpu.tflite and the .log (default: the model's folder)")
    ap.add_argument("--compiler", default=None,
                    help="path of edgetpu_compiler (default: looked up on PATH)")
    args = ap.parse_args(argv)
    return compile_model(args.model, args.outdir, args.compiler, prog=prog)
