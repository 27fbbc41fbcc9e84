"""CRUSE models: config, presets, streaming-aware layers, the builder (one graph definition for
sequences and single frames), the streaming graph, complexity counts."""
from tinyse_tf.models.config import (INT8_NORMS, NORMS, PRESETS, CruseConfig, Int8ExportError,
                                     check_int8_exportable, get_config)
from tinyse_tf.models.cruse import (BLOCK_NAMES, block_outputs_model, build_cruse, config_from_model,
                                   float32_copy)
from tinyse_tf.models.gru import GroupedGRU, GroupedGRUCell
from tinyse_tf.models.layers import (CausalConv2D, CausalConv2DTranspose, CumulativeLayerNorm,
                                     FrameLayerNorm, EdgeLeakyReLU)
from tinyse_tf.models.streaming import build_streaming_model, state_specs, zero_states

__all__ = ["INT8_NORMS", "NORMS", "PRESETS", "CruseConfig", "Int8ExportError",
           "check_int8_exportable", "get_config", "BLOCK_NAMES", "block_outputs_model",
           "build_cruse", "config_from_model", "float32_copy", "CausalConv2D",
           "CausalConv2DTranspose",
           "CumulativeLayerNorm", "FrameLayerNorm", "GroupedGRU", "GroupedGRUCell",
           "EdgeLeakyReLU", "build_streaming_model", "state_specs", "zero_states"]
