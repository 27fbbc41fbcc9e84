"""Single-frame (streaming) graph of a CRUSE model: same layer objects, every state explicit.

``build_streaming_model(model)`` rewires the trained layers of a sequence model for one frame:

    inputs:  features [1, 1, 80, 1] plus every state tensor (see ``state_specs``)
    outputs: mask [1, 1, 80, 1] plus the new value of every state, in the same order

States: the previous input frame of each causal conv and transposed conv (``enc{i}_buf``,
``dec{j}_buf``), the GRU group states (``gru_state{g}``) and, for cLN models, the running
statistics of each norm (``enc{i}_norm_state``, ``dec{j}_norm_state``: sum, sum of squares,
count). All start at zero. Weights are shared with ``model``, never copied or retrained, and the
graph has no WHILE loop or resource variable, so it converts to a one-subgraph TFLite model.
"""
import numpy as np

from tinyse_tf._tf import keras, tf
from tinyse_tf.models.cruse import config_from_model, decoder_channels
from tinyse_tf.models.layers import CumulativeLayerNorm


def state_specs(config):
    """Ordered ``{state name: shape without batch}`` of the streaming graph for a ``CruseConfig``."""
    specs = {}
    f, c_in = config.n_mels, 1
    for i, ch in enumerate(config.channels, 1):
        specs[f"enc{i}_buf"] = (1, f, c_in)
        if config.norm == "cln":
            specs[f"enc{i}_norm_state"] = (3,)
        f, c_in = f // 2, ch
    for g in range(config.gru_groups):
        specs[f"gru_state{g}"] = (config.gru_units // config.gru_groups,)
    for j, ch in enumerate(decoder_channels(config), 1):
        specs[f"dec{j}_buf"] = (1, f, c_in)
        if config.norm == "cln" and j < 4:
            specs[f"dec{j}_norm_state"] = (3,)
        f, c_in = f * 2, ch
    return specs


def build_streaming_model(model: keras.Model, batch_size: int = 1,
                          edge: bool = False) -> keras.Model:
    """The single-frame graph of ``model`` (see module docstring).

    Args:
        edge: build the Edge TPU-safe export graph instead
            (``tinyse_tf.export.streaming_graph.build_edge_streaming_model``: sub-pixel decoder,
            LeakyReLU as MAXIMUM, batch norm folded; weights copied, not shared; batch 1 only).
    Shape:
        inputs ``[features [B,1,80,1], *states]`` -> outputs ``[mask [B,1,80,1], *new_states]``
        with states ordered as ``state_specs(config_from_model(model))`` and B = ``batch_size``.
    """
    if edge:
        if batch_size != 1:
            raise ValueError(f"the Edge TPU graph has batch size 1, got batch_size={batch_size}")
        from tinyse_tf.export.streaming_graph import build_edge_streaming_model

        return build_edge_streaming_model(model)
    cfg = config_from_model(model)
    specs = state_specs(cfg)
    L = keras.layers
    feat = keras.Input((1, cfg.n_mels, 1), batch_size=batch_size, name="features")
    states = {n: keras.Input(s, batch_size=batch_size, name=n) for n, s in specs.items()}
    new = {}

    def norm_act(x, prefix, out_name):
        if cfg.norm != "none":
            norm = model.get_layer(f"{prefix}_norm")
            if isinstance(norm, CumulativeLayerNorm):
                x, new[f"{prefix}_norm_state"] = norm(x, state=states[f"{prefix}_norm_state"])
            else:
                x = norm(x)
        return model.get_layer(out_name)(x)

    x, skips = feat, []
    for i in range(1, 5):
        buf = states[f"enc{i}_buf"]
        new[f"enc{i}_buf"] = x
        x = L.Concatenate(axis=1, name=f"enc{i}_cat")([buf, x])
        x = L.ZeroPadding2D(((0, 0), (0, 1)), name=f"enc{i}_fpad")(x)
        x = model.get_layer(f"enc{i}_conv")(x)
        x = norm_act(x, f"enc{i}", f"enc_{i}")
        skips.append(x)

    f5, c4 = cfg.bottleneck_freq, cfg.channels[-1]
    x = L.Reshape((f5 * c4,), name="gru_in")(x)
    gru_states = [states[f"gru_state{g}"] for g in range(cfg.gru_groups)]
    x, gru_new = model.get_layer("gru").cell(x, gru_states)
    for g, s in enumerate(gru_new):
        new[f"gru_state{g}"] = s
    x = L.Reshape((1, f5, c4), name="bottleneck")(x)

    for j in range(1, 5):
        x = model.get_layer(f"dec{j}_in")([x, model.get_layer(f"skip{5 - j}")(skips[4 - j])])
        buf = states[f"dec{j}_buf"]
        new[f"dec{j}_buf"] = x
        x = L.Concatenate(axis=1, name=f"dec{j}_cat")([buf, x])
        x = model.get_layer(f"dec{j}_deconv")(x)  # [B, 3, 2F+1, C]: frame 1 = W0 x_t + W1 x_{t-1}
        x = L.Cropping2D(((1, 1), (0, 1)), name=f"dec{j}_crop")(x)
        x = norm_act(x, f"dec{j}", f"dec_{j}") if j < 4 else model.get_layer("mask")(x)

    # Name every new state "<state>_out" so signatures are addressable by name.
    outs = [x] + [L.Activation("linear", name=f"{n}_out")(new[n]) for n in specs]
    return keras.Model([feat] + list(states.values()), outs, name=f"{model.name}_stream")


def zero_states(model_or_config, batch_size: int = 1):
    """A dict of zero numpy arrays, one per state, for starting a stream."""
    cfg = (config_from_model(model_or_config) if isinstance(model_or_config, keras.Model)
           else model_or_config)
    return {n: np.zeros((batch_size,) + s, np.float32) for n, s in state_specs(cfg).items()}


def run_streaming(stream_model: keras.Model, features):
    """Run a streaming Keras graph frame by frame over a sequence (for tests and checks).

    Shape: features [1, t, 80, 1] -> mask [1, t, 80, 1].
    """
    states = [tf.zeros([1] + list(i.shape[1:])) for i in stream_model.inputs[1:]]
    fn = tf.function(lambda f, s: stream_model([f] + s))
    masks = []
    for t in range(features.shape[1]):
        out = fn(features[:, t:t + 1], states)
        masks.append(out[0])
        states = list(out[1:])
    return tf.concat(masks, axis=1)
