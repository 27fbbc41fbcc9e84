"""Parameter and MACs-per-frame counts of a CRUSE configuration.

Counting rule (``MACS_RULE``): one multiply-accumulate per weight use in the convolutions,
transposed convolutions, 1x1 skips and GRU Dense layers for one 16 ms frame, ignoring biases,
normalisation, activations and element-wise gate arithmetic. A transposed conv is counted per
input position (each input value meets every kernel weight once), which equals the work of the
equivalent strided conv. This is why the numbers differ from the paper's "MOps", which do not
reproduce from its stated architecture (docs/DESIGN.md, B.14).
"""
from tinyse_tf.models.config import CruseConfig, get_config
from tinyse_tf.models.cruse import decoder_channels

MACS_RULE = ("MACs per frame: weight multiplies of conv, transposed conv, 1x1 skip and GRU Dense "
             "layers; biases, norms, activations and gate element-wise ops not counted")


def macs_per_frame(config) -> int:
    """Multiply-accumulates for one frame under ``MACS_RULE``."""
    cfg = get_config(config) if not isinstance(config, CruseConfig) else config
    k = 2 * 3
    total, f, c_in = 0, cfg.n_mels, 1
    enc = []
    for ch in cfg.channels:
        f //= 2
        total += f * ch * k * c_in  # conv: every output position, every kernel tap
        enc.append((f, ch))
        c_in = ch
    gu = cfg.gru_units // cfg.gru_groups
    total += cfg.gru_groups * 6 * gu * gu  # input and recurrent Dense (3 gates each) per group
    for (f_e, c_e), ch in zip(reversed(enc), decoder_channels(cfg)):
        total += f_e * c_e * c_e  # 1x1 skip
        total += f_e * c_in * k * ch  # transposed conv, per input position
        c_in = ch
    return int(total)


def count_params(config) -> int:
    """All parameters of the CRUSE model built from ``config`` (incl. batch-norm statistics)."""
    from tinyse_tf.models.cruse import build_cruse

    return int(build_cruse(config).count_params())
