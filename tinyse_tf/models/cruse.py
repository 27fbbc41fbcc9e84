"""CRUSE builder: causal conv encoder, grouped-GRU bottleneck, transposed-conv decoder.

The sequence model maps compressed mel features to a mel mask:

    features [b, t, 80, 1] -> mask [b, t, 80, 1] in (0, 1)

Layer names are part of the API: the streaming graph (``tinyse_tf.models.streaming``) and the
distillation view (``block_outputs_model``) find layers by name, so both also work on a model
loaded from disk.
"""
from tinyse_tf._tf import keras
from tinyse_tf.models.config import CruseConfig, get_config
from tinyse_tf.models.layers import CumulativeLayerNorm, FrameLayerNorm, GroupedGRUCell, make_norm

#: The 9 distilled block outputs: 4 encoder blocks, the bottleneck reshaped to [t, 5, C_L], the
#: first 3 decoder blocks and the last decoder block (the sigmoid mask).
BLOCK_NAMES = ("enc_1", "enc_2", "enc_3", "enc_4", "bottleneck", "dec_1", "dec_2", "dec_3", "mask")


def decoder_channels(config: CruseConfig):
    """Output channels of the 4 decoder blocks: the encoder mirrored, ending in 1."""
    c = config.channels
    return (c[2], c[1], c[0], 1)


def build_cruse(config="student", name=None, seed=None, **overrides) -> keras.Model:
    """Build a causal CRUSE sequence model.

    Args:
        config: a preset name (see ``tinyse_tf.models.PRESETS``) or a ``CruseConfig``.
        name: Keras model name (default: the preset name, or ``"cruse"``).
        seed: if given, ``keras.utils.set_random_seed(seed)`` is called first (this resets the
            global Python, numpy and TF seeds), so the same seed gives the same initial weights.
        **overrides: ``CruseConfig`` fields to change, e.g. ``norm="frame_ln"``.
    Shape:
        input ``features`` [b, t, 80, 1] -> output ``mask`` [b, t, 80, 1]. Any t (causal: the
        output at frame t depends only on frames <= t).
    """
    cfg = get_config(config, **overrides)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if name is None:
        name = config if isinstance(config, str) else "cruse"
    L = keras.layers
    inp = keras.Input((None, cfg.n_mels, 1), name="features")

    x, skips = inp, []
    for i, ch in enumerate(cfg.channels, 1):
        x = L.ZeroPadding2D(((1, 0), (0, 1)), name=f"enc{i}_pad")(x)  # one past frame; 'same' freq
        x = L.Conv2D(ch, (2, 3), strides=(1, 2), name=f"enc{i}_conv")(x)
        x = _norm_act(x, cfg, f"enc{i}", f"enc_{i}")
        skips.append(x)

    f5, c4 = cfg.bottleneck_freq, cfg.channels[-1]
    x = L.Reshape((-1, f5 * c4), name="gru_in")(x)
    x = L.RNN(GroupedGRUCell(cfg.gru_units, cfg.gru_groups, name="gru_cell"),
              return_sequences=True, name="gru")(x)
    x = L.Reshape((-1, f5, c4), name="bottleneck")(x)

    for j, ch in enumerate(decoder_channels(cfg), 1):
        enc = skips[4 - j]
        skip = L.Conv2D(enc.shape[-1], 1, name=f"skip{5 - j}")(enc)
        x = L.Add(name=f"dec{j}_in")([x, skip])
        x = L.Conv2DTranspose(ch, (2, 3), strides=(1, 2), name=f"dec{j}_deconv")(x)
        x = L.Cropping2D(((0, 1), (0, 1)), name=f"dec{j}_crop")(x)  # causal in time; 2F bins
        if j < 4:
            x = _norm_act(x, cfg, f"dec{j}", f"dec_{j}")
        else:
            x = L.Activation("sigmoid", name="mask")(x)
    return keras.Model(inp, x, name=name)


def _norm_act(x, cfg, prefix, out_name):
    norm = make_norm(cfg.norm, f"{prefix}_norm")
    if norm is not None:
        x = norm(x)
    return keras.layers.LeakyReLU(cfg.leaky_alpha, name=out_name)(x)


def block_outputs_model(model: keras.Model) -> keras.Model:
    """A view of ``model`` (same layers and weights) that returns the 9 ``BLOCK_NAMES`` outputs.

    Shape:
        features [b, t, 80, 1] -> list of 9 tensors: enc_1 [b,t,40,C1], enc_2 [b,t,20,C2],
        enc_3 [b,t,10,C3], enc_4 [b,t,5,C4], bottleneck [b,t,5,C4], dec_1 [b,t,10,C3],
        dec_2 [b,t,20,C2], dec_3 [b,t,40,C1], mask [b,t,80,1] (the last one is the model output).
    """
    outs = [model.get_layer(n).output for n in BLOCK_NAMES]
    return keras.Model(model.inputs, outs, name=f"{model.name}_blocks")


def config_from_model(model: keras.Model) -> CruseConfig:
    """Recover the ``CruseConfig`` of a built or loaded CRUSE model from its layers."""
    channels = tuple(model.get_layer(f"enc{i}_conv").filters for i in range(1, 5))
    cell = model.get_layer("gru").cell
    norm_layer = next((l for l in model.layers if l.name == "enc1_norm"), None)
    if norm_layer is None:
        norm = "none"
    elif isinstance(norm_layer, CumulativeLayerNorm):
        norm = "cln"
    elif isinstance(norm_layer, FrameLayerNorm):
        norm = "frame_ln"
    else:
        norm = "batch"
    alpha = round(float(model.get_layer("enc_1").alpha), 6)
    n_mels = int(model.input_shape[2])
    return CruseConfig(channels=channels, gru_groups=cell.groups, norm=norm, leaky_alpha=alpha,
                       n_mels=n_mels)
