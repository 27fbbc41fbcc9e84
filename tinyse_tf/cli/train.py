"""``tinyse train ...``: the two-step KD recipe; arguments go unchanged to
``tinyse_tf.recipe.two_step.main`` (``tinyse train --help`` lists them)."""
from __future__ import annotations

PROG = "tinyse train"


def add_parser(sub):
    p = sub.add_parser("train", add_help=False,
                       help="train teacher and students with the two-step KD recipe "
                            "(arguments of recipes/two_step.py; see `tinyse train --help`)")
    p.set_defaults(run=lambda args: forward([]))
    return p


def forward(argv) -> int:
    from tinyse_tf.recipe.two_step import main

    return main(list(argv), prog="tinyse train")
