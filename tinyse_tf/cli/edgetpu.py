"""``tinyse edgetpu-check FILE [--json]``: static Coral Edge TPU check of a .tflite file;
arguments go unchanged to ``tinyse_tf.export.edgetpu_check.main`` (no TensorFlow needed)."""
from __future__ import annotations

PROG = "tinyse edgetpu-check"


def add_parser(sub):
    p = sub.add_parser("edgetpu-check", add_help=False,
                       help="check a .tflite file against the Edge TPU op list (exit 1: some op "
                            "would run on the CPU)")
    p.set_defaults(run=lambda args: forward([]))
    return p


def forward(argv) -> int:
    from tinyse_tf.export.edgetpu_check import main

    return main(list(argv), prog=PROG)
