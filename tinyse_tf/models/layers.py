"""Custom Keras layers of the CRUSE family, each usable on whole sequences and on single frames.

All are registered as Keras serialisable (package ``tinyse_tf``), so a saved model loads back with
``keras.models.load_model`` without ``custom_objects``.
"""
from tinyse_tf._tf import keras, tf



def _register(cls):
    """Register ``cls`` as ``tinyse_tf>Name`` (.keras format) and as plain ``Name``: the legacy
    .h5 loader looks nested objects, such as an RNN's cell, up by their bare class name."""
    keras.utils.get_custom_objects()[cls.__name__] = cls
    return keras.utils.register_keras_serializable(package="tinyse_tf")(cls)

_GATES = ("xz", "xr", "xn", "hz", "hr", "hn")


@_register
class GroupedGRUCell(keras.layers.Layer):
    """GRU cell split into ``groups`` independent GRUs, written from Dense layers.

    Keras' GRU layer converts to a TFLite WHILE loop and its int8 calibration crashes
    (docs EDGE.md); this cell uses only FULLY_CONNECTED / ADD / MUL / SUB / LOGISTIC / TANH, wraps in
    ``keras.layers.RNN`` for sequences, and is called directly for one frame with explicit states.

    Each group is a GRU in Keras' ``reset_after`` form (input and recurrent biases):
    ``z = sig(Wz x + Uz h)``, ``r = sig(Wr x + Ur h)``, ``n = tanh(Wn x + r * (Un h))``,
    ``h' = n + z * (h - n)``. Each gate has its own Dense layer so that int8 quantization gives
    each gate its own range.

    Args:
        units: total hidden width (sum over groups); also the input width.
        groups: number of groups; ``units`` must be divisible by it.
    Shape:
        inputs [b, units]; states: list of ``groups`` tensors [b, units // groups];
        returns (output [b, units], new states).
    """

    def __init__(self, units, groups=4, **kwargs):
        super().__init__(**kwargs)
        if units % groups:
            raise ValueError(f"GRU units {units} not divisible by groups {groups}")
        self.units = int(units)
        self.groups = int(groups)
        self.group_units = self.units // self.groups
        self.state_size = [self.group_units] * self.groups
        self.output_size = self.units
        # One attribute per Dense layer (not a nested container): the .keras saver restores
        # weights by attribute path and misses layers kept in lists of dicts.
        for g in range(self.groups):
            for key in _GATES:
                setattr(self, f"g{g}_{key}", keras.layers.Dense(self.group_units, name=f"g{g}_{key}"))

    @property
    def gates(self):
        """Per group, a dict gate name (xz, xr, xn, hz, hr, hn) -> Dense layer."""
        return [{key: getattr(self, f"g{g}_{key}") for key in _GATES} for g in range(self.groups)]

    def build(self, input_shape):
        for layers in self.gates:
            for layer in layers.values():
                with tf.name_scope(layer.name):  # unique weight names, needed by the .h5 format
                    layer.build((None, self.group_units))
        super().build(input_shape)

    def call(self, inputs, states):
        outputs, new_states = [], []
        gu = self.group_units
        for g, (layers, h) in enumerate(zip(self.gates, states)):
            x = inputs[:, g * gu:(g + 1) * gu]
            z = tf.sigmoid(layers["xz"](x) + layers["hz"](h))
            r = tf.sigmoid(layers["xr"](x) + layers["hr"](h))
            n = tf.tanh(layers["xn"](x) + r * layers["hn"](h))
            h_new = n + z * (h - n)
            outputs.append(h_new)
            new_states.append(h_new)
        return tf.concat(outputs, axis=-1), new_states

    def get_config(self):
        return {**super().get_config(), "units": self.units, "groups": self.groups}


class _ChannelAffine(keras.layers.Layer):
    """Base: per-channel gain and bias over the last axis (2 * C parameters)."""

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.gain = self.add_weight(name="gain", shape=(c,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(c,), initializer="zeros")
        super().build(input_shape)

    def _normalize(self, x, mean, var):
        return (x - mean) * tf.math.rsqrt(var + self.epsilon) * self.gain + self.bias

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@_register
class CumulativeLayerNorm(_ChannelAffine):
    """Causal cumulative layer norm (cLN, the paper's norm).

    Frame ``t`` is normalised with the mean and variance over (freq, channels) of frames 0..t.

    Sequence mode: ``layer(x)`` with x [b, t, f, c] -> [b, t, f, c].
    Frame mode: ``layer(x, state)`` with x [b, 1, f, c] and state [b, 3] = (running sum, running
    sum of squares, element count) -> (y [b, 1, f, c], new state [b, 3]). Start from zeros.
    Note: the running sums grow without bound, so cLN is exact in float but does not fit a fixed
    int8 range (EDGE.md); use ``FrameLayerNorm`` for int8 export.
    """

    def call(self, x, state=None):
        s = tf.reduce_sum(x, axis=[2, 3])
        s2 = tf.reduce_sum(tf.square(x), axis=[2, 3])
        per_frame = tf.cast(tf.shape(x)[2] * tf.shape(x)[3], x.dtype)
        if state is None:
            count = tf.cumsum(tf.ones_like(s), axis=1) * per_frame
            s, s2 = tf.cumsum(s, axis=1), tf.cumsum(s2, axis=1)
        else:
            s = state[:, 0:1] + s
            s2 = state[:, 1:2] + s2
            count = state[:, 2:3] + per_frame
        mean = s / count
        var = tf.maximum(s2 / count - tf.square(mean), 0.0)
        y = self._normalize(x, mean[:, :, None, None], var[:, :, None, None])
        if state is None:
            return y
        return y, tf.concat([s, s2, count], axis=-1)


@_register
class FrameLayerNorm(_ChannelAffine):
    """Per-frame layer norm over (freq, channels) with per-channel gain and bias.

    Stateless and bounded: the int8-friendly alternative to ``CumulativeLayerNorm``.

    Shape: x [b, t, f, c] -> [b, t, f, c].
    """

    def call(self, x):
        mean = tf.reduce_mean(x, axis=[2, 3], keepdims=True)
        var = tf.reduce_mean(tf.square(x - mean), axis=[2, 3], keepdims=True)
        return self._normalize(x, mean, var)


def make_norm(kind, name):
    """The normalisation layer for a ``CruseConfig.norm`` value, or None for ``"none"``."""
    if kind == "cln":
        return CumulativeLayerNorm(name=name)
    if kind == "frame_ln":
        return FrameLayerNorm(name=name)
    if kind == "batch":
        return keras.layers.BatchNormalization(name=name)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")
