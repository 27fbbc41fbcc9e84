"""Experiment grid: python recipes/experiments/run.py GROUP[:SEEDS] ... --out DIR (see --help)."""
import sys

from tinyse_tf.recipe.experiments import main

if __name__ == "__main__":
    sys.exit(main())
