"""Multiply-accumulates per 16 ms frame of a CRUSE configuration, counted on its streaming graph.

There is one counting rule (``tinyse_tf.export.tflite_ops.MACS_RULE``) and one counter
(``weight_macs``, which reads a ``.tflite``): a configuration's count is the count of its float32
streaming file, converted here in memory. So the number is the work a device does per frame, zero
taps of the sub-pixel decoder included, and it follows the architecture without a hand-written
formula to keep in step.
"""
from __future__ import annotations

import functools

from tinyse_tf.export.tflite_ops import weight_macs
from tinyse_tf.models.config import CruseConfig, get_config


def macs_per_frame(config) -> int:
    """Multiply-accumulates for one 16 ms frame under ``MACS_RULE`` of the model built from
    ``config`` (a preset name or ``CruseConfig``). The first call per configuration converts its
    streaming graph to TFLite (seconds); later calls are cached."""
    return _macs(get_config(config) if not isinstance(config, CruseConfig) else config)


@functools.lru_cache(maxsize=None)
def _macs(cfg: CruseConfig) -> int:
    import warnings

    from tinyse_tf.export.quantize import convert_float
    from tinyse_tf.models.cruse import build_cruse
    from tinyse_tf.models.streaming import build_streaming_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = convert_float(build_streaming_model(build_cruse(cfg)))
    return sum(weight_macs(flat).values())
