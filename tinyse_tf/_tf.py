"""Single import point for TensorFlow and Keras 2 (tf_keras).

tensorflow-model-optimization only accepts tf_keras models, so the legacy Keras must be selected
before TensorFlow is first imported. Every module of the package imports ``tf`` and ``keras`` from
here, never directly.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
