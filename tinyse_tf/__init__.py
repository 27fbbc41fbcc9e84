"""tinyse_tf: tiny causal speech enhancement with two-step knowledge distillation.

Importing the package selects Keras 2 (``tf_keras``) for TensorFlow; see ``tinyse_tf._tf``.
Tensors are channels-last: [batch, time, freq, channels]; audio is 16 kHz mono float32 [b, n].
"""
from tinyse_tf import _tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tinyse_tf.distill import Distiller, PhaseSwitch
from tinyse_tf.features import (istft, mel_features, mel_mask_to_linear, mel_matrix,
                                mel_to_linear_matrix, stft)
from tinyse_tf.inference import enhance
from tinyse_tf.losses import gram, psa_loss, similarity_kd_loss
from tinyse_tf.models import (BLOCK_NAMES, PRESETS, CruseConfig, block_outputs_model, build_cruse,
                              config_from_model, get_config)
from tinyse_tf.models.complexity import MACS_RULE, macs_per_frame
from tinyse_tf.models.streaming import build_streaming_model, state_specs

__version__ = "0.1.0"

__all__ = [
    "Distiller", "PhaseSwitch", "istft", "mel_features", "mel_mask_to_linear", "mel_matrix",
    "mel_to_linear_matrix", "stft", "enhance", "gram", "psa_loss", "similarity_kd_loss",
    "BLOCK_NAMES", "PRESETS", "CruseConfig", "block_outputs_model", "build_cruse",
    "config_from_model", "get_config", "MACS_RULE", "macs_per_frame", "build_streaming_model",
    "state_specs",
]
