"""Single-frame (streaming) graph of a CRUSE model: the same layers, every state explicit.

``build_streaming_model(model)`` calls ``tinyse_tf.models.cruse.cruse_graph`` in frame mode on
the trained layers of a sequence model:

    inputs:  features [B, 1, 80, 1] plus one state per streaming layer (``state_specs``)
    outputs: mask [B, 1, 80, 1] plus the new value of every state, named ``<state>_out``

A state is named after its layer, ``<layer>_state``: the previous input frame of each causal conv
and transposed conv (``enc{i}_conv_state``, ``dec{j}_deconv_state``), the GRU hidden state
(``gru_state``) and, for cLN models, the running statistics of each norm (``enc{i}_norm_state``,
``dec{j}_norm_state``). All start at zero. Weights are shared with ``model``, never copied, and
every op converts to an all-int8 Edge TPU op, so this one graph is the Keras streaming model and
the graph converted to float32 and int8 TFLite files (``tinyse_tf.export``).
"""
import numpy as np

from tinyse_tf._tf import keras
from tinyse_tf.models.cruse import build_cruse, config_from_model, cruse_graph
from tinyse_tf.models.layers import FrameFormLayer, StreamingLayer

STATE_SUFFIX = "_state"
OUTPUT_SUFFIX = "_out"


def build_streaming_model(model: keras.Model, batch_size: int = 1) -> keras.Model:
    """The single-frame graph of ``model`` (see module docstring).

    The returned model has an attribute ``state_sources``: ``{state name: name of the sequence
    layer whose output the state holds}`` (e.g. ``enc2_conv_state -> enc_1``) for the states that
    store a layer output (frame buffers and the GRU state), used to carry ranges learned on the
    sequence model over to the streaming graph.

    Shape:
        inputs ``[features [B,1,80,1], *states]`` -> outputs ``[mask [B,1,80,1], *new_states]``
        with states ordered as ``state_specs(model)`` and B = ``batch_size``.
    """
    cfg = config_from_model(model)
    layers = {layer.name: layer for layer in model.layers}
    feat = keras.Input((1, cfg.n_mels, 1), batch_size=batch_size, name="features")
    states, new, sources = {}, {}, {}
    made_by = {id(feat): "features"}  # Keras tensor -> the layer that produced it

    def apply(layer, x):
        if layer is None:
            return x
        if not isinstance(layer, StreamingLayer):
            y = layer(x, frame=True) if isinstance(layer, FrameFormLayer) else layer(x)
            made_by[id(y)] = layer.name
            return y
        name = layer.name + STATE_SUFFIX
        states[name] = keras.Input(layer.state_shape(x.shape), batch_size=batch_size, name=name)
        y, new[name] = layer(x, state=states[name])
        made_by[id(y)] = layer.name
        if layer.state_holds is not None:
            sources[name] = made_by[id(x if layer.state_holds == "input" else y)]
        return y

    mask = cruse_graph(feat, cfg, layer=lambda name, make: layers.get(name), apply=apply)
    # Name every new state "<state>_out" so signatures are addressable by name.
    outs = [mask] + [keras.layers.Activation("linear", name=n + OUTPUT_SUFFIX)(new[n])
                     for n in states]
    stream = keras.Model([feat] + list(states.values()), outs, name=f"{model.name}_stream")
    stream.state_sources = sources
    return stream


def state_specs(model_or_config) -> dict:
    """Ordered ``{state name: shape without batch}`` of the streaming graph of a model, or of the
    model a ``CruseConfig`` / preset name builds."""
    model = (model_or_config if isinstance(model_or_config, keras.Model)
             else build_cruse(model_or_config))
    stream = build_streaming_model(model)
    return {i.name.split(":")[0]: tuple(int(d) for d in i.shape[1:]) for i in stream.inputs[1:]}


def zero_states(stream_model: keras.Model) -> dict:
    """A dict of zero numpy arrays, one per state input of a streaming graph."""
    return {i.name.split(":")[0]: np.zeros(i.shape, np.float32) for i in stream_model.inputs[1:]}
