"""The private TensorFlow / tfmot APIs of the int8 export (tinyse_tf.export._tf_internals).

Checked with the versions in ``_tf_internals.CHECKED_WITH`` (TensorFlow 2.21.0,
tensorflow-model-optimization 0.8.1). On another version this test is what fails first, naming
the API that moved, instead of an AttributeError deep inside an export.
"""
from importlib import metadata

import pytest

from tinyse_tf.export import _tf_internals as internals


def test_every_private_api_of_the_int8_export_is_present():
    versions = {name: metadata.version(name) for name in internals.CHECKED_WITH}
    problems = internals.missing_apis()
    assert not problems, (f"installed {versions}; checked with {internals.CHECKED_WITH}:\n"
                          + "\n".join(problems))


@pytest.mark.parametrize("api", ["calibrate_only", "mlir_quantize", "tfmot"])
def test_a_missing_api_is_named_in_one_clear_line(api, monkeypatch):
    from importlib import import_module

    from tinyse_tf._tf import tf

    if api == "calibrate_only":
        class WithoutCalibrateOnly(tf.lite.TFLiteConverter):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                del self._experimental_calibrate_only

        monkeypatch.setattr(tf.lite, "TFLiteConverter", WithoutCalibrateOnly)
        converter = tf.lite.TFLiteConverter([], None)
        call, name = lambda: internals.calibrate_only(converter), internals.CALIBRATE_ONLY
    elif api == "mlir_quantize":
        monkeypatch.delattr(import_module("tensorflow.lite.python.convert"), "mlir_quantize")
        call, name = lambda: internals.mlir_quantize(b"", tf.int8, tf.int8), internals.MLIR_QUANTIZE
    else:
        registry = import_module("tensorflow_model_optimization.python.core.quantization.keras"
                                 ".default_8bit.default_8bit_quantize_registry")
        monkeypatch.delattr(registry, "Default8BitConvTransposeQuantizeConfig")
        call, name = internals.tfmot_default_8bit_registry, internals.TFMOT_REGISTRY
    with pytest.raises(internals.TfInternalsError) as err:
        call()
    message = str(err.value)
    assert message.startswith(name) and "\n" not in message
    assert "tensorflow 2.21.0" in message and "tensorflow-model-optimization 0.8.1" in message
    assert name in "\n".join(internals.missing_apis())
