"""Quantization-aware fine-tuning of a CRUSE *sequence* model (tensorflow-model-optimization 0.8.1).

``qat_finetune(model, dataset, steps)``:

1. annotates every layer for 8-bit QAT; the default registry covers the 1x1 skip convs, Add,
   reshape and the sigmoid; the causal convs get tfmot's conv / transposed-conv configs
   (per-channel / per-tensor int8 kernels and the output range), ``FrameLayerNorm`` and
   ``EdgeLeakyReLU`` an output range, and ``GroupedGRU`` its gate Dense kernels (symmetric
   per-tensor int8) plus the output range (the gate arithmetic inside the cell is simulated in
   float);
2. calibrates every activation range from the float model on real audio before training
   (tfmot starts ranges at +-6 and moves them by an EMA with decay 0.999, far too slowly for a
   short fine-tune, docs/DESIGN.md, part C);
3. fine-tunes with the PSA loss on (noisy, clean) batches;
4. returns the float weights QAT learned, copied into a plain sequence model, and the learned
   ranges per layer, for ``tinyse_tf.export.quantize.qat_tensor_ranges``.

The QAT model itself is never saved (docs/DESIGN.md, part C: with Conv2DTranspose only .h5
saving works) nor
converted: the streaming graph is rebuilt from the returned float model.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from tinyse_tf._tf import keras, tf
from tinyse_tf.export._tf_internals import tfmot_default_8bit_registry, tfmot_quantizers
from tinyse_tf.features import analyze, mel_features, stft
from tinyse_tf.losses import psa_mel_loss
from tinyse_tf.models.config import check_int8_exportable
from tinyse_tf.models.cruse import config_from_model


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras


def _configs():
    """The two custom QuantizeConfig classes (built on first use so tfmot loads lazily)."""
    if hasattr(_configs, "cache"):
        return _configs.cache
    qk, q = _tfmot(), tfmot_quantizers()

    class OutputRange(qk.QuantizeConfig):
        """Quantize only the layer's output (moving-average range); weights stay float in QAT."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [q.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                             narrow_range=False)]

        def get_config(self):
            return {}

    class NamedLastValueQuantizer(q.LastValueQuantizer):
        """LastValueQuantizer whose range variables get a unique name (all the cell's kernels
        are called 'kernel', which would give several 'kernel_min' variables)."""

        def __init__(self, var_name, **kwargs):
            super().__init__(**kwargs)
            self.var_name = var_name

        def build(self, tensor_shape, name, layer):
            return super().build(tensor_shape, self.var_name, layer)

        def get_config(self):
            return {**super().get_config(), "var_name": self.var_name}

    class GroupedGRUConfig(OutputRange):
        """``GroupedGRU``: int8 gate kernels and the output range."""

        def _dense(self, layer):
            cell = layer.cell
            return [(f"g{g}_{k}", d)
                    for g, gates in enumerate(cell.gates) for k, d in gates.items()]

        def get_weights_and_quantizers(self, layer):
            return [(d.kernel, NamedLastValueQuantizer(f"{name}_kernel", num_bits=8,
                                                       per_axis=False, symmetric=True,
                                                       narrow_range=True))
                    for name, d in self._dense(layer)]

        def set_quantize_weights(self, layer, quantize_weights):
            for (_, d), w in zip(self._dense(layer), quantize_weights):
                d.kernel = w

    _configs.cache = {"OutputRange": OutputRange, "GroupedGRUConfig": GroupedGRUConfig,
                      "NamedLastValueQuantizer": NamedLastValueQuantizer}
    return _configs.cache


def _quantize_config(layer):
    """The QuantizeConfig for a layer's ``qat_kind`` (``tinyse_tf.models.layers``), or None for
    the layers tfmot's default registry knows."""
    registry = tfmot_default_8bit_registry()
    kind = getattr(layer, "qat_kind", None)
    if kind is None:
        return None
    c = _configs()
    make = {
        "conv": lambda: registry.Default8BitConvQuantizeConfig(["kernel"], ["activation"], False),
        "conv_transpose": lambda: registry.Default8BitConvTransposeQuantizeConfig(
            ["kernel"], ["activation"], False),
        "output": c["OutputRange"],
        "gru": c["GroupedGRUConfig"],
    }
    if kind not in make:
        raise ValueError(f"layer {layer.name}: unknown qat_kind {kind!r}; choose from {sorted(make)}")
    return make[kind]()


def quantize_aware_model(model: keras.Model) -> keras.Model:
    """An 8-bit QAT copy of a CRUSE sequence model (weights copied; ``model`` untouched).

    Raises ``Int8ExportError`` for cLN models (no bounded int8 range exists).
    """
    check_int8_exportable(config_from_model(model))
    qk = _tfmot()

    def annotate(layer):
        new = layer.__class__.from_config(layer.get_config())
        return qk.quantize_annotate_layer(new, _quantize_config(layer))

    annotated = keras.models.clone_model(model, clone_function=annotate)
    for layer in annotated.layers:
        inner = getattr(layer, "layer", layer)
        if inner.weights:
            inner.set_weights(model.get_layer(inner.name).get_weights())
    with qk.quantize_scope(_configs()):  # the layers are registered Keras objects
        return qk.quantize_apply(annotated)


def _range_vars(layer) -> tuple | None:
    """(min, max) variables of the activation range a QAT layer applies to its output."""
    short = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
    if not hasattr(layer, "layer"):  # the QuantizeLayer on the model input: '<its name>_min'
        mins = [k for k in short if k.endswith("_min")]
        if len(mins) == 1 and mins[0][:-4] + "_max" in short:
            return short[mins[0]], short[mins[0][:-4] + "_max"]
        return None
    for key in ("output", "post_activation"):
        if f"{key}_min" in short:
            return short[f"{key}_min"], short[f"{key}_max"]
    return None


def _qat_layers(qat_model):
    """``{sequence layer name or 'features': (min var, max var)}`` of a QAT model."""
    out = {}
    for layer in qat_model.layers:
        vars_ = _range_vars(layer)
        if vars_ is None:
            continue
        inner = getattr(layer, "layer", None)
        name = "features" if inner is None else inner.name
        out[name] = vars_
    return out


def calibrate_qat_ranges(qat_model, model: keras.Model, features) -> dict:
    """Set every QAT activation range to the min/max of the float model's layer outputs.

    Args:
        qat_model: from ``quantize_aware_model(model)``.
        features: [b, t, 80, 1] features of real noisy audio.
    Returns:
        the ranges set, ``{layer name or 'features': (min, max)}``.
    """
    targets = _qat_layers(qat_model)
    names = [n for n in targets if n != "features"]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe(features, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    ranges = {n: (float(tf.reduce_min(o)), float(tf.reduce_max(o))) for n, o in zip(names, outs)}
    if "features" in targets:
        f = np.asarray(features)
        ranges["features"] = (float(f.min()), float(f.max()))
    for n, (lo, hi) in ranges.items():
        vmin, vmax = targets[n]
        vmin.assign(min(lo, 0.0))
        vmax.assign(max(hi, 0.0))
    return ranges


def qat_ranges(qat_model) -> dict:
    """The learned ranges, ``{sequence layer name or 'features': (min, max)}``."""
    return {n: (float(a.numpy()), float(b.numpy())) for n, (a, b) in _qat_layers(qat_model).items()}


def float_weights_model(qat_model, model: keras.Model) -> keras.Model:
    """A plain copy of ``model`` carrying the float weights of ``qat_model``'s layers."""
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    strip = lambda v: v.name.split(":")[0]
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is None:
            continue
        # The wrapper tracks the float ("shadow") variables; the inner layer's quantized
        # attributes (e.g. ``kernel``) are tensors. Quantizer variables carry the wrapper's name.
        shadow = [v for v in layer.weights if not v.name.startswith(layer.name + "/")]
        target = out.get_layer(inner.name)
        if len(shadow) != len(target.weights):
            raise RuntimeError(f"QAT layer {layer.name}: {len(shadow)} float weights, expected "
                               f"{len(target.weights)}")
        values = []
        for w in target.weights:
            match = [v for v in shadow if strip(w).endswith(strip(v))]
            if len(match) != 1:
                raise RuntimeError(f"cannot match weight {w.name} in QAT layer {layer.name}")
            values.append(match[0].numpy())
        target.set_weights(values)
    return out


@dataclasses.dataclass
class QatResult:
    model: keras.Model  # plain sequence model with the QAT-fine-tuned float weights
    ranges: dict  # learned activation ranges per sequence layer (and 'features')
    calibrated_ranges: dict  # the ranges QAT started from
    losses: list  # PSA loss per step
    steps: int
    learning_rate: float


def qat_finetune(model: keras.Model, dataset, steps: int = 200, learning_rate: float = 1e-4,
                 calibration_audio=None) -> QatResult:
    """Quantization-aware fine-tuning of ``model`` with the PSA loss (``model`` is not modified).

    Args:
        dataset: iterable of ``(noisy [b, n], clean [b, n])`` float32 batches, cycled.
        steps: optimizer steps (Adam, ``learning_rate``).
        calibration_audio: noisy signals for the initial range calibration; default: the noisy
            half of the first batch.
    """
    qat = quantize_aware_model(model)
    batches = itertools.cycle(dataset) if not isinstance(dataset, tf.data.Dataset) else None
    it = iter(dataset.repeat()) if batches is None else batches
    first = next(it)
    if calibration_audio:
        n = min(len(a) for a in calibration_audio)
        cal = np.stack([np.asarray(a[:n], np.float32) for a in calibration_audio])
    else:
        cal = np.asarray(first[0], np.float32)
    calibrated = calibrate_qat_ranges(qat, model, mel_features(stft(tf.constant(cal))))
    opt = keras.optimizers.Adam(learning_rate)
    variables = qat.trainable_variables

    @tf.function
    def train_step(noisy, clean):
        with tf.GradientTape() as tape:
            (ns, features), cs = analyze(noisy), stft(clean)
            loss = psa_mel_loss(cs, ns, qat(features, training=True))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss

    losses = []
    batch = first
    for step in range(int(steps)):
        if step:
            batch = next(it)
        noisy, clean = (tf.convert_to_tensor(np.asarray(b, np.float32)) for b in batch[:2])
        losses.append(float(train_step(noisy, clean)))
    return QatResult(model=float_weights_model(qat, model), ranges=qat_ranges(qat),
                     calibrated_ranges=calibrated, losses=losses, steps=int(steps),
                     learning_rate=float(learning_rate))
