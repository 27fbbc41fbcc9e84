"""tinyse_tf: tiny causal speech enhancement with two-step knowledge distillation.

Tensors are channels-last: [batch, time, freq, channels]; audio is 16 kHz mono float32 [b, n].
TensorFlow is imported lazily, on first use of a name that needs it, with Keras 2 (``tf_keras``)
selected (``TF_USE_LEGACY_KERAS=1``, see ``tinyse_tf._tf``). So ``StreamingEnhancer`` and the Edge
TPU checker run on a device with only ai-edge-litert and numpy installed.

Public API (each name's docstring states its shapes):

* models: ``build_cruse``, ``CruseConfig``, ``get_config``, ``PRESETS``, ``BLOCK_NAMES``,
  ``block_outputs_model``, ``config_from_model``, ``build_streaming_model``, ``state_specs``,
  ``macs_per_frame`` (counted on the streaming .tflite), ``MACS_RULE``
* signal path: ``stft``, ``istft``, ``mel_features``, ``mel_mask_to_linear``, ``mel_matrix``,
  ``mel_to_linear_matrix``
* losses and training: ``psa_loss``, ``similarity_kd_loss``, ``gram``, ``Distiller``,
  ``PhaseSwitch``
* data (``tinyse_tf.data`` has the rest): ``prepare_data``, ``prepare_corpus``,
  ``load_prepared`` (audio as int16 shards, written once), ``mixture_dataset`` (``(noisy,
  clean)`` float32 ``[batch, clip_samples]`` streamed from them)
* running models (``tinyse_tf.runtime``): ``enhance`` (offline Keras), ``StreamingEnhancer``
  (exported .tflite, frame by frame), ``FrameStream`` (the hop path around any frame model),
  ``TfliteFrameModel``, ``run_frames``
* shipped models (``tinyse_tf.shipped``, cards in docs/models/): ``pretrained("student" |
  "teacher")`` (a Keras model, features [b, t, 80, 1] -> mask [b, t, 80, 1]),
  ``pretrained_file(name, "int8" | "float32" | "keras")`` (the streaming .tflite or weights)
* adaptation: ``adapt(noise, out)`` fine-tunes a model (default the shipped student) to the
  noise of a folder for a wall-clock budget and exports it (``tinyse adapt``, docs/ADAPT.md)
* microcontrollers (``tinyse_tf.export.micro``, needs the ``micro`` extra): ``export_micro``
  (C array + header, TFLM op resolver, front-end tables, ``<name>_micro.json``),
  ``MicroFrameModel`` (an int8 file in the TFLite Micro interpreter), ``compare_with_litert``
"""
import importlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

_LAZY = {
    "adapt": "tinyse_tf.adapt",
    "Distiller": "tinyse_tf.distill",
    "PhaseSwitch": "tinyse_tf.distill",
    "stft": "tinyse_tf.features",
    "istft": "tinyse_tf.features",
    "mel_features": "tinyse_tf.features",
    "mel_mask_to_linear": "tinyse_tf.features",
    "mel_matrix": "tinyse_tf.dsp",
    "mel_to_linear_matrix": "tinyse_tf.dsp",
    "enhance": "tinyse_tf.runtime.offline",
    "StreamingEnhancer": "tinyse_tf.runtime",
    "FrameStream": "tinyse_tf.runtime",
    "TfliteFrameModel": "tinyse_tf.runtime",
    "run_frames": "tinyse_tf.runtime",
    "export_micro": "tinyse_tf.export.micro",
    "MicroFrameModel": "tinyse_tf.export.micro",
    "compare_with_litert": "tinyse_tf.export.micro",
    "load_prepared": "tinyse_tf.data",
    "mixture_dataset": "tinyse_tf.data",
    "prepare_corpus": "tinyse_tf.data",
    "prepare_data": "tinyse_tf.data",
    "gram": "tinyse_tf.losses",
    "psa_loss": "tinyse_tf.losses",
    "similarity_kd_loss": "tinyse_tf.losses",
    "BLOCK_NAMES": "tinyse_tf.models",
    "PRESETS": "tinyse_tf.models",
    "CruseConfig": "tinyse_tf.models",
    "block_outputs_model": "tinyse_tf.models",
    "build_cruse": "tinyse_tf.models",
    "config_from_model": "tinyse_tf.models",
    "get_config": "tinyse_tf.models",
    "MACS_RULE": "tinyse_tf.export.tflite_ops",
    "macs_per_frame": "tinyse_tf.export.complexity",
    "build_streaming_model": "tinyse_tf.models.streaming",
    "pretrained": "tinyse_tf.shipped",
    "pretrained_file": "tinyse_tf.shipped",
    "state_specs": "tinyse_tf.models.streaming",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinyse_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
