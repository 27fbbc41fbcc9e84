"""Export of trained models: streaming graphs, float/int8 TFLite conversion and Edge TPU checks.

The graph converted is the model's own single-frame graph (``tinyse_tf.models.streaming``, Edge
TPU ops only); the int8 norm rule is ``tinyse_tf.models.check_int8_exportable``.

Modules (docs/EXPORT.md, docs/EDGETPU.md):

* ``quantize``: ``export_model`` (float32 / int8 PTQ / int8 QAT files), conversion helpers;
* ``qat``: quantization-aware fine-tuning of the sequence model (tensorflow-model-optimization);
* ``calibration``: representative frames from real noisy audio, run in closed loop through the
  runtime's frame loop (``tinyse_tf.runtime``);
* ``contract``: the ``<stem>.io_contract.json`` contents and the full-int8 verification;
* ``edgetpu_check`` / ``tflite_ops``: static Edge TPU check of a ``.tflite`` file; ``tflite_ops``
  is also the one flatbuffer reader (and writer) and the one MAC counter (``weight_macs``);
* ``edgetpu``: the compile step (static check, then ``edgetpu_compiler`` when installed);
* ``complexity``: ``macs_per_frame`` of a configuration, counted on its streaming file;
* ``fidelity``: int8 against float32 (``int8_criterion``, the one acceptance criterion);
* ``_tf_internals``: every private TensorFlow / tfmot API the int8 export uses.

Submodules are imported explicitly (``from tinyse_tf.export.quantize import export_model``) so
that the numpy-only parts (``contract``, ``edgetpu_check``) do not pull in TensorFlow.
"""
