"""CRUSE models: config, presets, builder, streaming graph, complexity counts."""
from tinyse_tf.models.config import NORMS, PRESETS, CruseConfig, get_config
from tinyse_tf.models.cruse import BLOCK_NAMES, block_outputs_model, build_cruse, config_from_model
from tinyse_tf.models.layers import CumulativeLayerNorm, FrameLayerNorm, GroupedGRUCell

__all__ = ["NORMS", "PRESETS", "CruseConfig", "get_config", "BLOCK_NAMES", "block_outputs_model",
           "build_cruse", "config_from_model", "CumulativeLayerNorm", "FrameLayerNorm",
           "GroupedGRUCell"]
