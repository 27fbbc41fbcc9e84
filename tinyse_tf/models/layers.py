"""Streaming-aware Keras layers of the CRUSE family: one layer, two modes.

Every layer here runs on whole sequences *and* on single frames with its memory made explicit
(the kws_streaming idea, docs/DESIGN.md part C):

* sequence mode, for training and offline inference: ``y = layer(x)`` with x [b, t, f, c];
* frame mode, for streaming and export: ``y, new_state = layer(x, state=s)`` with x [b, 1, f, c]
  and ``s`` the layer's state (zeros at the start of a stream) of shape
  ``[b, *layer.state_shape(x.shape)]``. Stateless layers return ``state_shape(...) = None`` and
  are called as in sequence mode.

The grouped GRU, whose sequence mode has its own fast kernels, lives in ``tinyse_tf.models.gru``
and follows the same contract.

Frame mode is written only with ops that convert to all-int8 Coral Edge TPU ops (CONV_2D,
FULLY_CONNECTED, CONCATENATION, PAD, RESHAPE, SPLIT, STRIDED_SLICE, ADD, SUB, MUL, PRELU, MEAN,
SQUARED_DIFFERENCE, RSQRT, LOGISTIC, TANH; docs/DESIGN.md part C), so the single-frame graph that
``tinyse_tf.models.streaming.build_streaming_model`` wires from these layers is at once the Keras
streaming graph and the graph converted to float32 / int8 TFLite. Weights are the layers' own:
nothing is copied or rewritten outside the layer that owns them.

Each layer also says how quantization-aware training should simulate it (``qat_kind``:
``"conv"``, ``"conv_transpose"``, ``"output"`` (only the output range) or ``"gru"``), read by
``tinyse_tf.export.qat``; a new layer declares it here and needs no edit there.

All layers are registered as Keras serialisable (package ``tinyse_tf``), so a saved model loads back
with ``keras.models.load_model`` without ``custom_objects``.
"""
from tinyse_tf._tf import keras, tf


def register_layer(cls):
    """Register ``cls`` as ``tinyse_tf>Name`` (.keras format) and as plain ``Name``: the legacy
    .h5 loader looks nested objects, such as an RNN's cell, up by their bare class name."""
    keras.utils.get_custom_objects()[cls.__name__] = cls
    return keras.utils.register_keras_serializable(package="tinyse_tf")(cls)


class StreamingLayer:
    """Mixin of the layers that carry memory from one frame to the next.

    ``state_holds`` says what the state stores: ``"input"`` (the previous input frame),
    ``"output"`` (the previous output) or None (something else, e.g. running statistics).
    """

    state_holds = None

    def state_shape(self, input_shape) -> tuple:
        """Shape (without batch) of the state for a frame input of ``input_shape`` [b, 1, ...]."""
        raise NotImplementedError


class FrameFormLayer:
    """Mixin of the stateless layers that run one function in two forms: ``call(x)`` in fused
    TensorFlow ops (training and offline inference), ``call(x, frame=True)`` in the ops that the
    int8 / Edge TPU export needs. ``tinyse_tf.models.streaming`` builds the frame graph with the
    second; ``tests/models/test_layers.py`` checks that both give the same values and gradients.
    """


# --------------------------------------------------------------------------- causal convolutions
@register_layer
class CausalConv2D(StreamingLayer, keras.layers.Conv2D):
    """Conv2D, causal in time (kernel 2: the current and the previous frame), 'same' in frequency.

    Sequence mode pads one zero frame in front and ``kernel_f - stride_f`` zero bins at the top,
    then runs a 'valid' conv. Frame mode concatenates the state (the previous input frame) with the
    current frame: CONCATENATION + PAD + CONV_2D.

    Args:
        filters: output channels; kernel_size (2, k_f); strides (1, s_f) (CRUSE: (2, 3), (1, 2)).
    Shape:
        sequence: x [b, t, f, c] -> [b, t, f / s_f, filters];
        frame: x [b, 1, f, c], state [b, 1, f, c] -> (y [b, 1, f / s_f, filters], x).
    """

    def __init__(self, filters, kernel_size=(2, 3), strides=(1, 2), **kwargs):
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, strides=strides, padding="valid", **kwargs)
        if self.kernel_size[0] != 2 or self.strides[0] != 1:
            raise ValueError(f"{self.name}: time kernel 2 and time stride 1 expected, got "
                             f"kernel {self.kernel_size}, strides {self.strides}")
        self._freq_pad = self.kernel_size[1] - self.strides[1]

    state_holds = "input"
    qat_kind = "conv"

    def state_shape(self, input_shape):
        return (1,) + tuple(int(d) for d in input_shape[2:])

    def call(self, x, state=None):
        if state is None:
            return super().call(tf.pad(x, [[0, 0], [1, 0], [0, self._freq_pad], [0, 0]]))
        both = tf.concat([state, x], axis=1)
        return super().call(tf.pad(both, [[0, 0], [0, 0], [0, self._freq_pad], [0, 0]])), x


@register_layer
class CausalConv2DTranspose(StreamingLayer, keras.layers.Conv2DTranspose):
    """Transposed conv (kernel (2, 3), strides (1, 2)) cropped to be causal: t frames, 2f bins.

    Sequence mode: Conv2DTranspose, then the last frame and the last bin are dropped.
    Frame mode runs the same function as a **sub-pixel conv**, because stride-2 TRANSPOSE_CONV does
    not compile for the Edge TPU (docs/DESIGN.md, B.10): a 'valid' (2, 2) conv over
    ``[x[t-1], x[t]]`` in time and ``[x[m-1], x[m]]`` in frequency with ``2 * filters`` output
    channels, whose two channel halves are the even and odd output bins (a reshape interleaves
    them)::

        y[t, 2m]   = b + x[t,m] K[0,0] + x[t,m-1] K[0,2] + x[t-1,m] K[1,0] + x[t-1,m-1] K[1,2]
        y[t, 2m+1] = b + x[t,m] K[0,1] + x[t-1,m] K[1,1]

    The sub-pixel kernel is computed from the layer's own kernel with constant-foldable ops, so
    the converter stores it as a constant. Frame mode: CONCATENATION + PAD + CONV_2D + RESHAPE.

    Shape:
        sequence: x [b, t, f, c] -> [b, t, 2f, filters];
        frame: x [b, 1, f, c], state [b, 1, f, c] -> (y [b, 1, 2f, filters], x).
    """

    def __init__(self, filters, kernel_size=(2, 3), strides=(1, 2), **kwargs):
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, strides=strides, padding="valid", **kwargs)
        if tuple(self.kernel_size) != (2, 3) or tuple(self.strides) != (1, 2):
            raise ValueError(f"{self.name}: kernel (2, 3) and strides (1, 2) expected, got "
                             f"{self.kernel_size}, {self.strides}")

    state_holds = "input"
    qat_kind = "conv_transpose"

    def state_shape(self, input_shape):
        return (1,) + tuple(int(d) for d in input_shape[2:])

    def subpixel_kernel(self):
        """(kernel [2, 2, c_in, 2 * filters], bias [2 * filters]) of the equivalent sub-pixel conv."""
        k = tf.transpose(self.kernel, [0, 1, 3, 2])[::-1]  # [conv time tap, k_f, c_in, c_out]
        even = tf.stack([k[:, 2], k[:, 0]], axis=1)  # freq tap 0 = x[m-1], tap 1 = x[m]
        odd = tf.stack([tf.zeros_like(k[:, 1]), k[:, 1]], axis=1)
        return tf.concat([even, odd], axis=-1), tf.concat([self.bias, self.bias], axis=0)

    def call(self, x, state=None):
        if state is None:
            return super().call(x)[:, :-1, :-1]
        kernel, bias = self.subpixel_kernel()
        both = tf.pad(tf.concat([state, x], axis=1), [[0, 0], [0, 0], [1, 0], [0, 0]])
        y = tf.nn.conv2d(both, kernel, strides=1, padding="VALID") + bias  # [b, 1, f, 2 c_out]
        return tf.reshape(y, [-1, 1, 2 * int(x.shape[2]), self.filters]), x


# --------------------------------------------------------------------------- activations, norms
@register_layer
class EdgeLeakyReLU(FrameFormLayer, keras.layers.Layer):
    """LeakyReLU (0 < alpha < 1). Frame form (export): ``relu(x) + relu(-x) * (-alpha)``, the
    pattern the TFLite converter turns into one PRELU op: on the Edge TPU list, a TFLite Micro
    kernel, and in int8 its input and output carry independent scales. Training form:
    ``tf.nn.leaky_relu``, one fused op instead of five (with the norm's fused form: G_tf KD step
    1.12x, teacher step 1.14x faster, ``benchmarks/training_step.py`` side by side with bab2329,
    2-core Intel Xeon VM).
    Stateless; any shape [..., c].

    Why not ``maximum(x, alpha * x)`` (MUL + MAXIMUM, the form used before): int8 MAXIMUM requires
    its inputs on its output's scale, so the converter gave the preceding norm's output the
    activation's range [alpha * min, max] and clipped the norm's negative tail (6-16 % of the
    values per frame, on real audio), the largest int8 error in the model (docs/RESULTS.md,
    "Where the int8 error enters"). LEAKY_RELU is not an Edge TPU op.
    """

    qat_kind = "output"

    def __init__(self, alpha=0.2, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"EdgeLeakyReLU needs 0 < alpha < 1, got {alpha}")
        self.alpha = float(alpha)

    def call(self, x, frame=False):
        if not frame:
            return tf.nn.leaky_relu(x, alpha=self.alpha)
        # The converter's PReLU pattern wants alpha as a constant of rank(x) - 1.
        neg_alpha = tf.constant(-self.alpha, dtype=x.dtype, shape=[1] * (x.shape.rank - 1))
        return tf.nn.relu(x) + tf.nn.relu(-x) * neg_alpha

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


# Models saved before the PRELU form name the layer MaxLeakyReLU; same function, same config.
keras.utils.get_custom_objects().update({"MaxLeakyReLU": EdgeLeakyReLU,
                                          "tinyse_tf>MaxLeakyReLU": EdgeLeakyReLU})


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


@register_layer
class CumulativeLayerNorm(StreamingLayer, _ChannelAffine):
    """Causal cumulative layer norm (cLN, the paper's norm).

    Frame ``t`` is normalised with the mean and variance over (freq, channels) of frames 0..t.

    Shape:
        sequence: x [b, t, f, c] -> [b, t, f, c];
        frame: x [b, 1, f, c], state [b, 3] = (running sum, running sum of squares, element
        count) -> (y [b, 1, f, c], new state [b, 3]).
    Note: the running sums grow without bound, so cLN is exact in float but does not fit a fixed
    int8 range (docs/DESIGN.md, B.9); use ``FrameLayerNorm`` for int8 export.
    """

    def state_shape(self, input_shape):
        return (3,)

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


@register_layer
class FrameLayerNorm(FrameFormLayer, _ChannelAffine):
    """Per-frame layer norm over (freq, channels) with per-channel gain and bias.

    Stateless and bounded: the int8-friendly alternative to ``CumulativeLayerNorm``. Frame form
    (export): ``d = x - mean``, ``var = mean(d * d)``, ``d * rsqrt(var + eps) * gain + bias``:
    MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD in TFLite. Training form: ``tf.nn.moments``
    and ``tf.nn.batch_normalization`` (fused kernels, same function). (In the frame form,
    SQUARED_DIFFERENCE has the same maths but its int8 kernel is slow: about 40 us per frame on
    an x86 CPU; docs/EXPORT.md, "Measured".)

    Shape: x [b, t, f, c] -> [b, t, f, c] (t = 1 in frame mode).
    """

    qat_kind = "output"

    def call(self, x, frame=False):
        if not frame:
            mean, var = tf.nn.moments(x, axes=[2, 3], keepdims=True)
            return tf.nn.batch_normalization(x, mean, var, self.bias, self.gain, self.epsilon)
        d = x - tf.reduce_mean(x, axis=[2, 3], keepdims=True)
        var = tf.reduce_mean(d * d, axis=[2, 3], keepdims=True)
        return d * tf.math.rsqrt(var + self.epsilon) * self.gain + self.bias


def make_norm(kind, name):
    """The normalisation layer for a ``CruseConfig.norm`` value, or None for ``"none"``.

    Norms compute in float32 also under a ``mixed_float16`` policy (their sums of squares overflow
    float16); Keras casts their inputs up and the next layer casts back down."""
    if kind == "cln":
        return CumulativeLayerNorm(name=name, dtype="float32")
    if kind == "frame_ln":
        return FrameLayerNorm(name=name, dtype="float32")
    if kind == "batch":
        return keras.layers.BatchNormalization(name=name, dtype="float32")
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")
