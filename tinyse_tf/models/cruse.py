"""CRUSE: causal conv encoder, grouped-GRU bottleneck, transposed-conv decoder, written once.

``cruse_graph`` is the only description of the architecture. It wires the streaming-aware layers
of ``tinyse_tf.models.layers`` and is called twice:

* by ``build_cruse`` in sequence mode (the training / offline model), which creates the layers;
* by ``tinyse_tf.models.streaming.build_streaming_model`` in frame mode, which reuses the trained
  layers of a model and turns every layer's memory into an explicit state input and output.

Adding a layer to CRUSE means adding it here (and, if it keeps memory across frames, giving it a
frame mode in ``layers.py``); the streaming graph, its states and the TFLite export follow.

The sequence model maps compressed mel features to a mel mask:

    features [b, t, 80, 1] -> mask [b, t, 80, 1] in (0, 1)

Layer names are part of the API: the distillation view (``block_outputs_model``) and the export
find layers by name, so both also work on a model loaded from disk.
"""
from tinyse_tf._tf import keras
from tinyse_tf.models.config import CruseConfig, get_config
from tinyse_tf.models.gru import GroupedGRU
from tinyse_tf.models.layers import (CausalConv2D, CausalConv2DTranspose, CumulativeLayerNorm,
                                     FrameLayerNorm, EdgeLeakyReLU, make_norm)

#: The 9 distilled block outputs: 4 encoder blocks, the bottleneck reshaped to [t, 5, C_L], the
#: first 3 decoder blocks and the last decoder block (the sigmoid mask).
BLOCK_NAMES = ("enc_1", "enc_2", "enc_3", "enc_4", "bottleneck", "dec_1", "dec_2", "dec_3", "mask")


def decoder_channels(config: CruseConfig):
    """Output channels of the 4 decoder blocks: the encoder mirrored, ending in 1."""
    c = config.channels
    return (c[2], c[1], c[0], 1)


def cruse_graph(features, cfg: CruseConfig, layer, apply):
    """The CRUSE computation on a Keras tensor, in whichever mode ``layer``/``apply`` implement.

    Args:
        features: Keras tensor [b, t, n_mels, 1] (t = 1 in frame mode).
        layer: ``layer(name, make)`` -> the layer called ``name`` (``make(name)`` creates it in
            sequence mode; frame mode looks it up in the trained model). ``make`` may return
            None (no norm), and then the step is skipped.
        apply: ``apply(layer, x)`` -> the layer's output (frame mode feeds and collects states).
    Returns:
        the mask tensor [b, t, n_mels, 1].
    """
    L = keras.layers

    def norm_act(x, prefix, out_name):
        x = apply(layer(f"{prefix}_norm", lambda n: make_norm(cfg.norm, n)), x)
        return apply(layer(out_name, lambda n: EdgeLeakyReLU(cfg.leaky_alpha, name=n)), x)

    x, skips = features, []
    for i, ch in enumerate(cfg.channels, 1):
        x = apply(layer(f"enc{i}_conv", lambda n: CausalConv2D(ch, name=n)), x)
        x = norm_act(x, f"enc{i}", f"enc_{i}")
        skips.append(x)

    f5, c4 = cfg.bottleneck_freq, cfg.channels[-1]
    x = apply(layer("gru_in", lambda n: L.Reshape((-1, f5 * c4), name=n)), x)
    x = apply(layer("gru", lambda n: GroupedGRU(cfg.gru_units, cfg.gru_groups, name=n)), x)
    x = apply(layer("bottleneck", lambda n: L.Reshape((-1, f5, c4), name=n)), x)

    for j, ch in enumerate(decoder_channels(cfg), 1):
        enc = skips[4 - j]
        skip = apply(layer(f"skip{5 - j}", lambda n: L.Conv2D(enc.shape[-1], 1, name=n)), enc)
        x = apply(layer(f"dec{j}_in", lambda n: L.Add(name=n)), [x, skip])
        x = apply(layer(f"dec{j}_deconv", lambda n: CausalConv2DTranspose(ch, name=n)), x)
        if j < 4:
            x = norm_act(x, f"dec{j}", f"dec_{j}")
        else:
            # float32 also under mixed precision: a float16 sigmoid saturates near 1.
            x = apply(layer("mask", lambda n: L.Activation("sigmoid", name=n, dtype="float32")), x)
    return x


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
    inp = keras.Input((None, cfg.n_mels, 1), name="features")
    out = cruse_graph(inp, cfg, layer=lambda n, make: make(n),
                      apply=lambda lay, x: x if lay is None else lay(x))
    return keras.Model(inp, out, name=name)


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
    layers = {layer.name: layer for layer in model.layers}
    norm_layer = layers.get("enc1_norm")
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
    return CruseConfig(channels=channels, gru_groups=model.get_layer("gru").cell.groups, norm=norm,
                       leaky_alpha=alpha, n_mels=n_mels)


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt with float32 layers and its weights (e.g. after mixed-precision training,
    so the saved model, the streaming graph and the TFLite files compute in float32)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clone = build_cruse(config_from_model(model), name=model.name)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    clone.set_weights(model.get_weights())
    return clone
