"""The one MAC counter (tinyse_tf.export.tflite_ops.weight_macs) and macs_per_frame, by hand."""
from tinyse_tf.export.complexity import macs_per_frame
from tinyse_tf.export.tflite_ops import weight_macs


def test_macs_per_frame_counts_the_streaming_graph_by_hand():
    """student: channels 8, 16, 32, 32, GRU 160 units in 4 groups. The decoder's transposed convs
    run as sub-pixel convs (a 2 x 2 kernel with 2 x filters outputs per input position,
    tinyse_tf.models.layers.CausalConv2DTranspose): 8 weight taps per position and output
    channel pair where the transposed conv has 6 (2 of them are zeros)."""
    enc = 40 * 8 * 6 * 1 + 20 * 16 * 6 * 8 + 10 * 32 * 6 * 16 + 5 * 32 * 6 * 32
    gru = 4 * 2 * 3 * 40 * 40  # per group: input and recurrent Dense, 3 gates of 40 units
    skips = 5 * 32 * 32 + 10 * 32 * 32 + 20 * 16 * 16 + 40 * 8 * 8
    dec = 5 * (2 * 32) * 4 * 32 + 10 * (2 * 16) * 4 * 32 + 20 * (2 * 8) * 4 * 16 + 40 * 2 * 4 * 8
    assert macs_per_frame("student") == enc + gru + skips + dec


def test_weight_macs_of_a_transposed_conv_and_a_depthwise_conv():
    """Operators CRUSE does not emit, counted by the same rule (input elements x kernel taps x
    output channels for TRANSPOSE_CONV; output elements x taps for DEPTHWISE_CONV_2D)."""
    from tinyse_tf._tf import keras, tf

    inp = keras.Input((4, 6, 3), batch_size=1)
    x = keras.layers.Conv2DTranspose(5, (2, 3), strides=(1, 2), padding="same")(inp)
    x = keras.layers.DepthwiseConv2D((3, 3), padding="same")(x)
    flat = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, x)).convert()
    macs = weight_macs(flat)
    assert macs["TRANSPOSE_CONV"] == (4 * 6 * 3) * (2 * 3) * 5
    assert macs["DEPTHWISE_CONV_2D"] == (4 * 12 * 5) * 9
