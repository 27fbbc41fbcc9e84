import os
import pathlib

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_AUDIO = pathlib.Path(__file__).resolve().parents[2] / "shared" / "audio"


@pytest.fixture
def shared_audio():
    """The real recordings in ../shared/audio; tests that use them skip when it is absent."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip("../shared/audio is absent")
    return SHARED_AUDIO


@pytest.fixture
def randomise_norms():
    """``randomise_norms(model, seed=0)``: give every norm layer's weights non-trivial values,
    so tests can see them (gains and biases start at 1 and 0)."""
    import numpy as np

    from tinyse_tf._tf import keras
    from tinyse_tf.models import CumulativeLayerNorm, FrameLayerNorm

    def randomise(model, seed=0):
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            if isinstance(layer, (CumulativeLayerNorm, FrameLayerNorm,
                                  keras.layers.BatchNormalization)):
                layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                                   for w in layer.get_weights()])
        return model

    return randomise
