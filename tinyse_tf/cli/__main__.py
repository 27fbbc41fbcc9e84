"""``python -m tinyse_tf.cli`` = ``tinyse``."""
import sys

from tinyse_tf.cli import main

sys.exit(main())
