"""The grouped GRU of the CRUSE bottleneck: one set of weights, three ways to run it.

* **frame mode** (streaming, export): ``GroupedGRUCell`` — per group two Dense layers (input and
  recurrent projection of the gates z, r, n), i.e. FULLY_CONNECTED / ADD / SUB / MUL / LOGISTIC /
  TANH, all int8 Edge TPU ops (docs/DESIGN.md, B.11). Keras' GRU layer would convert to a TFLite
  WHILE loop whose int8 calibration crashes.
* **sequence mode on CPU** (training, offline inference): the same function reorganised for
  speed. The input projections do not depend on the state, so all frames and groups are projected
  at once before the time loop; inside the loop each group's recurrent projection is one MatMul;
  the backward pass through time is written out (``_recurrence``) instead of
  auto-differentiating the loop.
* **sequence mode on a GPU** (outside XLA): one cuDNN GRU per group through Keras' GRU kernel
  (``reset_after=True`` is exactly this cell's function).

All three read the cell's Dense variables (so a QAT wrapper that swaps a kernel for its
fake-quantized copy is seen by each); ``tests/models/test_gru.py`` checks that they agree with each
other and with ``keras.layers.GRU``.
"""
from tinyse_tf._tf import keras, tf
from tinyse_tf.models.layers import StreamingLayer, register_layer


@register_layer
class GroupedGRUCell(keras.layers.Layer):
    """GRU cell split into ``groups`` independent GRUs, written from Dense layers.

    Each group is a GRU in Keras' ``reset_after`` form with gates ordered (z, r, n) as in Keras'
    GRU kernels: ``[xz, xr, xn] = W x + b_x``, ``[hz, hr, hn] = U h + b_h`` (one Dense each, so
    two FULLY_CONNECTED per group and frame), ``z = sig(xz + hz)``, ``r = sig(xr + hr)``,
    ``n = tanh(xn + r * hn)``, ``h' = n + z * (h - n)``.

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
            for side in ("x", "h"):
                setattr(self, f"g{g}_{side}",
                        keras.layers.Dense(3 * self.group_units, name=f"g{g}_{side}"))

    @property
    def gates(self):
        """Per group, ``{"x": Dense [gu -> 3 gu], "h": Dense [gu -> 3 gu]}`` (gates z, r, n)."""
        return [{side: getattr(self, f"g{g}_{side}") for side in ("x", "h")}
                for g in range(self.groups)]

    def build(self, input_shape):
        for layers in self.gates:
            for layer in layers.values():
                with tf.name_scope(layer.name):  # unique weight names, needed by the .h5 format
                    layer.build((None, self.group_units))
        super().build(input_shape)

    def call(self, inputs, states):
        outputs = []
        gu = self.group_units
        for g, (layers, h) in enumerate(zip(self.gates, states)):
            xz, xr, xn = tf.split(layers["x"](inputs[:, g * gu:(g + 1) * gu]), 3, axis=-1)
            hz, hr, hn = tf.split(layers["h"](h), 3, axis=-1)
            z = tf.sigmoid(xz + hz)
            r = tf.sigmoid(xr + hr)
            n = tf.tanh(xn + r * hn)
            outputs.append(n + z * (h - n))
        return tf.concat(outputs, axis=-1), outputs

    def get_config(self):
        return {**super().get_config(), "units": self.units, "groups": self.groups}


# --------------------------------------------------------------------------- sequence kernels
def _stacked(cell, side, attr):
    """The groups' ``side`` ("x" / "h") Dense ``attr`` ("kernel" / "bias") stacked on axis 0."""
    return tf.stack([getattr(gates[side], attr) for gates in cell.gates])


def _group_matmul(a, w, transpose_a=False):
    """[g, m, k] x [g, k, n] -> [g, m, n]: one MatMul per group in TensorFlow graphs (BatchMatMul
    is 2.5x slower on CPUs for the teacher's 4 x [8, 240] x [240, 720] per frame; equal for the
    students), one batched dot under XLA (the student's GRU forward + backward 6.8 -> 5.2 ms per
    batch of 8 x 126 frames, 2-core Intel Xeon VM)."""
    if _in_xla():
        return tf.matmul(a, w, transpose_a=transpose_a)
    return tf.stack([tf.matmul(a[i], w[i], transpose_a=transpose_a) for i in range(w.shape[0])])


def _in_xla():
    """True while tracing a graph that XLA compiles (``jit_compile=True``)."""
    from tf_keras.src.utils.control_flow_util import GraphOrParentsInXlaContext

    return not tf.executing_eagerly() and GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph())


@tf.custom_gradient
def _recurrence(xp, wh, bhn):
    """The GRU time loop after the input projection, with its backward pass written out.

    Hand-written because auto-differentiating the loop pushes every intermediate through
    TensorLists and roughly doubles the ops per step; the loop here keeps the gates (z, r, n, hn)
    of the forward pass and the backward loop does one matmul per step. The weight gradient is
    one batched matmul over all steps after the loop. Checked against autodiff in
    tests/models/test_gru.py.

    Args:
        xp: [t, g, b, 3 gu] input projections incl. the x biases and the h biases of z and r.
        wh: [g, gu, 3 gu] recurrent kernels (gates z, r, n); bhn: [g, 1, gu] the h bias of n.
    Returns:
        hidden states [t, g, b, gu] (zero initial state).
    """
    gu = wh.shape[1]
    h0 = tf.zeros(tf.stack([tf.shape(xp)[1], tf.shape(xp)[2], gu]), xp.dtype)

    def step(carry, x_t):
        h = carry[0]
        hp = _group_matmul(h, wh)
        zr = tf.sigmoid(x_t[..., :2 * gu] + hp[..., :2 * gu])
        z, r = zr[..., :gu], zr[..., gu:]
        hn = hp[..., 2 * gu:] + bhn
        n = tf.tanh(x_t[..., 2 * gu:] + r * hn)
        return n + z * (h - n), z, r, n, hn

    hs, z, r, n, hn = tf.scan(step, xp, initializer=(h0,) * 5)

    def grad(dhs):
        h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
        wh_t = tf.transpose(wh, [0, 2, 1])

        def back(carry, inputs):
            dh_out, hp_, z_, r_, n_, hn_ = inputs
            dh = dh_out + carry[0]
            dn = dh * (1.0 - z_) * (1.0 - n_ * n_)  # through tanh
            dz = dh * (hp_ - n_) * z_ * (1.0 - z_)  # through sigmoid
            dr = dn * hn_ * r_ * (1.0 - r_)
            dhp = tf.concat([dz, dr, dn * r_], axis=-1)
            return dh * z_ + _group_matmul(dhp, wh_t), dhp, dn

        zeros = tf.zeros_like(h0)
        _, dhp, dn = tf.scan(back, (dhs, h_prev, z, r, n, hn),
                             initializer=(zeros, tf.concat([zeros] * 3, axis=-1), zeros),
                             reverse=True)
        dxp = tf.concat([dhp[..., :2 * gu], dn], axis=-1)
        by_group = lambda v: tf.reshape(tf.transpose(v, [1, 0, 2, 3]),  # noqa: E731
                                        [v.shape[1], -1, v.shape[-1]])  # [g, t * b, ...]
        dwh = _group_matmul(by_group(h_prev), by_group(dhp), transpose_a=True)
        dbhn = tf.reduce_sum(dhp[..., 2 * gu:], axis=[0, 2])[:, None, :]
        return dxp, dwh, dbhn

    return hs, grad


def loop_sequence(cell, inputs):
    """``cell`` over time on any device: hoisted input projection + ``_recurrence``.

    Shape: inputs [b, t, units] -> [b, t, units] (zero initial state).
    """
    g, gu = cell.groups, cell.group_units
    b, t = tf.shape(inputs)[0], tf.shape(inputs)[1]
    wx, bx = _stacked(cell, "x", "kernel"), _stacked(cell, "x", "bias")
    wh, bh = _stacked(cell, "h", "kernel"), _stacked(cell, "h", "bias")
    # z and r add both biases outside the loop; n's recurrent bias is scaled by r, so stays in.
    bias = bx + tf.concat([bh[:, :2 * gu], tf.zeros_like(bh[:, 2 * gu:])], axis=-1)
    x = tf.transpose(tf.reshape(inputs, [b * t, g, gu]), [1, 0, 2])  # [g, b * t, gu]
    xp = tf.reshape(_group_matmul(x, wx) + bias[:, None, :], [g, b, t, 3 * gu])
    hs = _recurrence(tf.transpose(xp, [2, 0, 1, 3]), wh, bh[:, None, 2 * gu:])
    return tf.reshape(tf.transpose(hs, [2, 0, 1, 3]), [b, t, cell.units])


def keras_gru_sequence(cell, inputs):
    """``cell`` over time as one Keras GRU kernel per group: cuDNN on a GPU (Keras swaps it in by
    device), Keras' standard loop elsewhere. Graph mode only (call it inside a ``tf.function``);
    not usable inside XLA (cuDNN is no XLA op).

    Shape: inputs [b, t, units] -> [b, t, units] (zero initial state).
    """
    from tf_keras.src.layers.rnn.gru import gru_with_backend_selection

    gu = cell.group_units
    outputs = []
    for g, gates in enumerate(cell.gates):
        x = inputs[..., g * gu:(g + 1) * gu]
        _, y, _, _ = gru_with_backend_selection(
            inputs=x, init_h=tf.zeros_like(x[:, 0]), kernel=gates["x"].kernel,
            recurrent_kernel=gates["h"].kernel, bias=tf.stack([gates["x"].bias, gates["h"].bias]),
            mask=None, time_major=False, go_backwards=False, sequence_lengths=None,
            zero_output_for_mask=False, return_sequences=True)
        outputs.append(y)
    return tf.concat(outputs, axis=-1)


def _use_cudnn():
    """True while tracing a graph on a GPU machine, outside XLA. (Keras' device-selected kernel
    exists only in graphs; eager calls take the loop.)"""
    if tf.executing_eagerly() or not tf.config.list_logical_devices("GPU"):
        return False
    return not _in_xla()


@register_layer
class GroupedGRU(StreamingLayer, keras.layers.RNN):
    """A ``GroupedGRUCell`` over time (sequences returned), with fast sequence kernels.

    Sequence mode runs ``keras_gru_sequence`` (cuDNN) on a GPU outside XLA and
    ``loop_sequence`` otherwise; frame mode runs the cell once and carries the whole hidden state
    as one tensor (the concatenated group states, which is also the output), split into groups
    inside the graph. It stays a ``keras.layers.RNN`` so saved models keep their weight layout.

    Shape:
        sequence: x [b, t, units] -> [b, t, units];
        frame: x [b, 1, units], state [b, units] -> (y [b, 1, units], new state [b, units]).
    """

    _RNN_KEYS = ("cell", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                 "time_major", "num_constants", "zero_output_for_mask")
    state_holds = "output"
    qat_kind = "gru"

    def __init__(self, units, groups=4, **kwargs):
        super().__init__(GroupedGRUCell(units, groups, name="gru_cell"), return_sequences=True,
                         **kwargs)

    def state_shape(self, input_shape):
        return (self.cell.units,)

    def call(self, inputs, state=None, **kwargs):
        cell = self.cell
        if state is None:
            return (keras_gru_sequence if _use_cudnn() else loop_sequence)(cell, inputs)
        h, _ = cell(tf.reshape(inputs, [-1, cell.units]), tf.split(state, cell.groups, axis=-1))
        return tf.reshape(h, [-1, 1, cell.units]), h

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k not in self._RNN_KEYS}
        return {**config, "units": self.cell.units, "groups": self.cell.groups}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**{k: v for k, v in config.items() if k not in cls._RNN_KEYS})
