"""Parameter count of a CRUSE configuration. (Multiply-accumulates per frame are counted on the
exported streaming graph: ``tinyse_tf.export.complexity.macs_per_frame``.)"""


def count_params(config) -> int:
    """All parameters of the CRUSE model built from ``config`` (incl. batch-norm statistics)."""
    from tinyse_tf.models.cruse import build_cruse

    return int(build_cruse(config).count_params())
