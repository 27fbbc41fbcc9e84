"""Edge TPU-safe single-frame graph of a CRUSE model, for TFLite export.

``build_edge_streaming_model(model)`` builds the same single-frame computation as
``tinyse_tf.models.streaming.build_streaming_model`` (same inputs, outputs, state names and
shapes; see ``state_specs``), from *copies* of the trained weights, rewritten so that every op is
on the Coral Edge TPU list (shared/docs/EDGE.md):

* **Sub-pixel decoder.** A ``Conv2DTranspose`` with kernel (2, 3), strides (1, 2) followed by the
  causal crop (last frame, last bin) is rewritten as a (2, 2) ``Conv2D`` with ``2 * C_out``
  channels on the frequency-left-padded input, then a ``Reshape`` that interleaves the two
  channel halves into even and odd output bins (depth-to-space along frequency). Stride-2
  ``TRANSPOSE_CONV`` is avoided because it fails in the Edge TPU compiler. Exact (see
  ``subpixel_weights``).
* **LeakyReLU** as ``MAXIMUM(x, alpha * x)`` (MUL + MAXIMUM; LEAKY_RELU is not on the list).
* **Norms.** ``FrameLayerNorm`` as MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, SUB, MUL, ADD;
  batch norm folded into the preceding conv's kernel and bias; cumulative layer norm (cLN) kept
  with its running-sum state, which is exact in float but unbounded, so ``check_int8_exportable``
  refuses it for int8.

Every tensor has at most 3 dimensions larger than 1 (batch 1): frames are [1, 1, F, C].
"""
import numpy as np

from tinyse_tf._tf import keras, tf
from tinyse_tf.models.cruse import config_from_model, decoder_channels
from tinyse_tf.models.layers import CumulativeLayerNorm, FrameLayerNorm, GroupedGRUCell
from tinyse_tf.models.streaming import state_specs

#: Norms whose streaming graph is bounded and so can be quantized to int8.
INT8_NORMS = ("frame_ln", "batch", "none")


class Int8ExportError(ValueError):
    """The model cannot be exported as a full-int8 streaming graph (one-line reason)."""


def check_int8_exportable(config) -> None:
    """Raise ``Int8ExportError`` if a model with this ``CruseConfig`` cannot become int8."""
    if config.norm not in INT8_NORMS:
        raise Int8ExportError(
            f"int8 export refused: norm={config.norm!r} (cumulative layer norm) carries running "
            "sums that grow without bound over a stream and cannot be held in a fixed int8 "
            "range; train the model with norm='frame_ln' (per-frame layer norm, recommended) or "
            "norm='batch' (folded into the convs), or export it as float32 only (int8=())")


# --------------------------------------------------------------------------- Edge-safe layers
class MaxLeakyReLU(keras.layers.Layer):
    """LeakyReLU written as ``maximum(x, alpha * x)`` (0 < alpha < 1): MUL + MAXIMUM in TFLite."""

    def __init__(self, alpha=0.2, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"MaxLeakyReLU needs 0 < alpha < 1, got {alpha}")
        self.alpha = float(alpha)

    def call(self, x):
        return tf.maximum(x, self.alpha * x)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class EdgeFrameLayerNorm(FrameLayerNorm):
    """``FrameLayerNorm`` with the variance as ``mean(squared_difference(x, mean))``.

    Same maths; converts to SQUARED_DIFFERENCE instead of SUB + MUL/SQUARE.
    """

    def call(self, x):
        mean = tf.reduce_mean(x, axis=[2, 3], keepdims=True)
        var = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=[2, 3], keepdims=True)
        return self._normalize(x, mean, var)


# --------------------------------------------------------------------------- weight rewrites
def subpixel_weights(kernel, bias):
    """Conv2D weights equivalent to a causal (2, 3)/(1, 2) transposed conv plus its crop.

    The sequence model computes ``y = crop(conv2d_transpose(x, K, strides=(1, 2)))``, keeping
    output frames ``0..T-1`` and bins ``0..2F-1``:

        y[t, 2m]   = b + x[t,m] K[0,0] + x[t,m-1] K[0,2] + x[t-1,m] K[1,0] + x[t-1,m-1] K[1,2]
        y[t, 2m+1] = b + x[t,m] K[0,1] + x[t-1,m] K[1,1]

    (``x[-1] = 0``, ``x[:, -1] = 0``). A 'valid' (2, 2) conv over ``[x[t-1], x[t]]`` in time and
    ``[x[m-1], x[m]]`` in frequency (one zero bin padded on the left) with ``2 * C_out`` output
    channels gives ``[y[t, 2m], y[t, 2m+1]]`` at position m; reshaping ``[F, 2 C_out]`` to
    ``[2F, C_out]`` puts them at bins 2m and 2m+1.

    Args:
        kernel: Conv2DTranspose kernel [2, 3, C_out, C_in]; bias [C_out].
    Returns:
        (conv kernel [2, 2, C_in, 2 * C_out], conv bias [2 * C_out]).
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.shape[:2] != (2, 3):
        raise ValueError(f"expected a (2, 3) transposed-conv kernel, got shape {kernel.shape}")
    k = np.transpose(kernel, (0, 1, 3, 2))  # [kt, kf, C_in, C_out]
    c_in, c_out = k.shape[2:]
    w = np.zeros((2, 2, c_in, 2 * c_out), np.float32)
    for dt in range(2):  # conv time tap 0 = previous frame (K[1]), tap 1 = current frame (K[0])
        kt = 1 - dt
        w[dt, 0, :, :c_out] = k[kt, 2]  # even bin 2m from x[m-1]
        w[dt, 1, :, :c_out] = k[kt, 0]  # even bin 2m from x[m]
        w[dt, 1, :, c_out:] = k[kt, 1]  # odd bin 2m+1 from x[m]
    b = np.asarray(bias, np.float32)
    return w, np.concatenate([b, b])


def fold_batch_norm(kernel, bias, bn: keras.layers.BatchNormalization, repeat: int = 1):
    """Fold an inference-mode batch norm that follows a conv into the conv's kernel and bias.

    ``bn(conv(x)) = conv'(x)`` with ``K'[..., o] = K[..., o] * s[o]``, ``b' = b * s + shift``,
    ``s = gamma / sqrt(var + eps)``, ``shift = beta - mean * s``. ``repeat`` tiles the per-channel
    affine over output-channel groups (2 for the sub-pixel conv, whose channels are
    ``[even bins, odd bins]``).
    """
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    s = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    shift = beta - bn.moving_mean.numpy() * s
    s, shift = np.tile(s, repeat), np.tile(shift, repeat)
    return (kernel * s).astype(np.float32), (bias * s + shift).astype(np.float32)


# --------------------------------------------------------------------------- the graph
def build_edge_streaming_model(model: keras.Model) -> keras.Model:
    """The Edge TPU-safe single-frame graph of a CRUSE sequence model (see module docstring).

    Weights are copied from ``model`` (never shared, never retrained), so later changes to
    ``model`` do not affect the returned graph.

    Shape:
        inputs ``[features [1,1,80,1], *states]`` -> outputs ``[mask [1,1,80,1], *new_states]``;
        states ordered and shaped as ``state_specs(config_from_model(model))``; output names
        ``mask`` and ``<state>_out``.
    """
    cfg = config_from_model(model)
    specs = state_specs(cfg)
    L = keras.layers
    feat = keras.Input((1, cfg.n_mels, 1), batch_size=1, name="features")
    states = {n: keras.Input(s, batch_size=1, name=n) for n, s in specs.items()}
    new = {}
    pending = []  # (new layer, weights) set after the graph is built

    def conv_copy(src, name, kernel=None, bias=None, norm_prefix=None, repeat=1, **conv_kwargs):
        kernel = src.kernel.numpy() if kernel is None else kernel
        bias = src.bias.numpy() if bias is None else bias
        if norm_prefix and cfg.norm == "batch":
            kernel, bias = fold_batch_norm(kernel, bias, model.get_layer(f"{norm_prefix}_norm"),
                                           repeat)
        layer = L.Conv2D(kernel.shape[-1], kernel.shape[:2], name=name, **conv_kwargs)
        pending.append((layer, [kernel, bias]))
        return layer

    def norm_act(x, prefix, out_name):
        if cfg.norm in ("frame_ln", "cln"):
            src = model.get_layer(f"{prefix}_norm")
            if isinstance(src, CumulativeLayerNorm):
                norm = CumulativeLayerNorm(epsilon=src.epsilon, name=f"{prefix}_norm")
                x, new[f"{prefix}_norm_state"] = norm(x, state=states[f"{prefix}_norm_state"])
            else:
                assert isinstance(src, FrameLayerNorm)
                norm = EdgeFrameLayerNorm(epsilon=src.epsilon, name=f"{prefix}_norm")
                x = norm(x)
            pending.append((norm, src.get_weights()))
        return MaxLeakyReLU(cfg.leaky_alpha, name=out_name)(x)

    x, skips = feat, []
    for i in range(1, 5):
        new[f"enc{i}_buf"] = x
        x = L.Concatenate(axis=1, name=f"enc{i}_cat")([states[f"enc{i}_buf"], x])
        x = L.ZeroPadding2D(((0, 0), (0, 1)), name=f"enc{i}_fpad")(x)
        src = model.get_layer(f"enc{i}_conv")
        x = conv_copy(src, f"enc{i}_conv", norm_prefix=f"enc{i}", strides=(1, 2))(x)
        x = norm_act(x, f"enc{i}", f"enc_{i}")
        skips.append(x)

    f5, c4 = cfg.bottleneck_freq, cfg.channels[-1]
    x = L.Reshape((f5 * c4,), name="gru_in")(x)
    src_cell = model.get_layer("gru").cell
    cell = GroupedGRUCell(src_cell.units, src_cell.groups, name="gru_cell")
    x, gru_new = cell(x, [states[f"gru_state{g}"] for g in range(cfg.gru_groups)])
    pending.append((cell, src_cell.get_weights()))
    for g, s in enumerate(gru_new):
        new[f"gru_state{g}"] = s
    x = L.Reshape((1, f5, c4), name="bottleneck")(x)

    f = f5
    for j, ch in enumerate(decoder_channels(cfg), 1):
        skip = conv_copy(model.get_layer(f"skip{5 - j}"), f"skip{5 - j}")(skips[4 - j])
        x = L.Add(name=f"dec{j}_in")([x, skip])
        new[f"dec{j}_buf"] = x
        x = L.Concatenate(axis=1, name=f"dec{j}_cat")([states[f"dec{j}_buf"], x])
        x = L.ZeroPadding2D(((0, 0), (1, 0)), name=f"dec{j}_fpad")(x)  # x[m-1] for bin 2m
        src = model.get_layer(f"dec{j}_deconv")
        w, b = subpixel_weights(src.kernel.numpy(), src.bias.numpy())
        x = conv_copy(src, f"dec{j}_subpixel", w, b,
                      norm_prefix=f"dec{j}" if j < 4 else None, repeat=2)(x)  # [1, 1, F, 2C]
        f *= 2
        x = L.Reshape((1, f, ch), name=f"dec{j}_d2s")(x)  # depth-to-space along frequency
        if j < 4:
            x = norm_act(x, f"dec{j}", f"dec_{j}")
        else:
            x = L.Activation("sigmoid", name="mask")(x)

    outs = [x] + [L.Activation("linear", name=f"{n}_out")(new[n]) for n in specs]
    edge = keras.Model([feat] + list(states.values()), outs, name=f"{model.name}_edge_stream")
    for layer, weights in pending:
        layer.set_weights(weights)
    return edge


def sequence_subpixel_decoder(deconv: keras.layers.Conv2DTranspose):
    """A function applying ``deconv`` + the causal crop to a whole sequence via the sub-pixel conv.

    For tests and checks: ``f(x)`` with x [b, t, F, C_in] -> [b, t, 2F, C_out], equal to
    ``Cropping2D(((0, 1), (0, 1)))(deconv(x))``.
    """
    w, b = subpixel_weights(deconv.kernel.numpy(), deconv.bias.numpy())
    c_out = w.shape[-1] // 2

    def apply(x):
        x = tf.pad(x, [[0, 0], [1, 0], [1, 0], [0, 0]])  # causal frame, x[m-1] bin
        y = tf.nn.conv2d(x, w, strides=1, padding="VALID") + b  # [b, t, F, 2 C_out]
        s = tf.shape(y)
        return tf.reshape(y, [s[0], s[1], 2 * s[2], c_out])

    return apply
