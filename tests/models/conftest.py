"""Shared helpers of the model tests."""
import numpy as np
import pytest


@pytest.fixture
def run_frames():
    """``run_frames(layer, x)``: a layer's frame mode over a sequence, states carried:
    x [b, t, ...] -> [b, t, ...] (numpy)."""

    def run(layer, x):
        state = np.zeros((x.shape[0],) + layer.state_shape(x[:, :1].shape), np.float32)
        out = []
        for t in range(x.shape[1]):
            y, state = layer(x[:, t:t + 1], state=state)
            out.append(y.numpy())
        return np.concatenate(out, axis=1)

    return run
