#!/usr/bin/env python
"""Two-step knowledge distillation, end to end (see tinyse_tf/recipe/two_step.py and README).

    python recipes/two_step.py                         # demo preset on the built-in corpus
    python recipes/two_step.py --preset smoke --out runs/smoke
    python recipes/two_step.py --speech-dir S --noise-dir N --preset paper
"""
import sys

from tinyse_tf.recipe.two_step import main

if __name__ == "__main__":
    sys.exit(main())
