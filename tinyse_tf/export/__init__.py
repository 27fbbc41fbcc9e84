"""Export of trained models: streaming graphs, float/int8 TFLite conversion and Edge TPU checks.

Modules (docs/EXPORT.md, docs/EDGETPU.md):

* ``streaming_graph``: Edge TPU-safe single-frame graph (sub-pixel decoder, LeakyReLU as MAXIMUM,
  batch norm folded), the int8 norm rule (``check_int8_exportable``, ``Int8ExportError``);
* ``quantize``: ``export_model`` (float32 / int8 PTQ / int8 QAT files), conversion helpers;
* ``qat``: quantization-aware fine-tuning of the sequence model (tensorflow-model-optimization);
* ``calibration``: representative frames from real noisy audio, run in closed loop;
* ``contract``: the ``<stem>.io_contract.json`` contents and the full-int8 verification;
* ``edgetpu_check`` / ``tflite_ops``: static Edge TPU check of a ``.tflite`` file.

Submodules are imported explicitly (``from tinyse_tf.export.quantize import export_model``) so
that the numpy-only parts (``contract``, ``edgetpu_check``) do not pull in TensorFlow.
"""
