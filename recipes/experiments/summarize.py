"""Tables and plots of an experiment folder: python recipes/experiments/summarize.py DIR --dest D."""
import sys

from tinyse_tf.recipe.summary import main

if __name__ == "__main__":
    sys.exit(main())
