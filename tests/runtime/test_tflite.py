"""tinyse_tf.runtime: StreamingEnhancer / TfliteFrameModel on exported files (chunking, latency,
flush, int8 I/O, contract errors) and the one signal path (FrameStream, run_frames)."""
import numpy as np
import pytest

from tinyse_tf._tf import keras
from tinyse_tf.constants import HOP, N_FFT, SAMPLE_RATE
from tinyse_tf.export.quantize import export_model
from tinyse_tf.runtime.offline import enhance
from tinyse_tf.models import FrameLayerNorm, build_cruse
from tinyse_tf.runtime import EDGETPU_LIBRARY, EdgeTPUUnavailable, StreamingEnhancer

IRREGULAR = (100, 333, 256, 1000)


def _noisy(seconds=1.3, seed=0):
    """Speech-like harmonics in noise; length deliberately not a multiple of the hop."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE) + 77
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.1 * np.sin(2 * np.pi * t))) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    speech = envelope * sum(np.sin(k * phase) / k for k in range(1, 10))
    return (0.2 * speech + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _gained(audio, mel_gain):
    """``audio`` through the frame path with a constant mel mask ``mel_gain`` (mapped to the
    linear bins as the runtime maps it: DC gets 0), delayed by 256 samples (so 256 samples
    longer than ``audio``): what a model with that constant mask streams."""
    from tinyse_tf.dsp import FrameAnalyzer, FrameSynthesizer, mel_to_linear_matrix

    padded = np.concatenate([audio, np.zeros(-len(audio) % HOP + HOP, np.float32)])
    gain = np.full(80, mel_gain, np.float32) @ mel_to_linear_matrix()
    out = FrameSynthesizer().push(FrameAnalyzer().push(padded) * gain)
    return out[:len(audio) + 256]


def _stream(enhancer, audio, sizes=IRREGULAR):
    outs, i, k = [], 0, 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        outs.append(enhancer.process(audio[i:i + n]))
        assert outs[-1].size % HOP == 0
        i, k = i + n, k + 1
    outs.append(enhancer.flush())
    return np.concatenate(outs)


@pytest.fixture(scope="module")
def student():
    model = build_cruse("student", norm="frame_ln", seed=5)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, FrameLayerNorm):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def files(student, tmp_path_factory):
    out = tmp_path_factory.mktemp("stream")
    return export_model(student, out, "student", int8=("ptq",),
                        representative_audio=[_noisy(2.0, s) for s in range(3)],
                        calibration_frames=300)


def test_float_stream_equals_offline_enhance(student, files):
    audio = _noisy()
    se = StreamingEnhancer(files["float32"])
    out = _stream(se, audio)
    assert out.size == audio.size + se.latency_samples
    ref = enhance(student, audio)
    err = np.abs(out[se.latency_samples:] - ref).max()
    assert err <= 1e-4, err


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 3000])
def test_flush_emits_exactly_the_remaining_samples(files, n):
    se = StreamingEnhancer(files["int8_ptq"])
    audio = _noisy()[:n]
    assert _stream(se, audio).size == n + se.latency_samples
    assert se.enhance(audio).size == n


def test_output_does_not_depend_on_chunk_sizes(files):
    audio = _noisy(seed=3)
    for kind in ("float32", "int8_ptq"):
        se = StreamingEnhancer(files[kind])
        a, b = _stream(se, audio, IRREGULAR), _stream(se, audio, (HOP,))
        c = _stream(se, audio, (7, 4096))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_reset_restarts_the_stream(files):
    se = StreamingEnhancer(files["int8_ptq"])
    audio = _noisy(seed=4)
    first = se.process(audio)
    se.process(_noisy(seed=9))  # different state
    se.reset()
    np.testing.assert_array_equal(se.process(audio), first)


def test_int8_io_quantized_states_stay_int8(files):
    se = StreamingEnhancer(files["int8_ptq"])
    model = se.frame_model
    assert se.dtype == np.int8
    assert all(v.dtype == np.int8 for v in model._states)  # zero points, not float zeros
    se.process(_noisy(0.2))
    assert all(v.dtype == np.int8 for v in model._states)
    assert not any(model._requant)  # states fed back as bytes, no requantization
    mask = se.run_frame(np.ones(80, np.float32))
    assert mask.dtype == np.float32 and mask.shape == (80,) and ((mask >= 0) & (mask <= 1)).all()


def test_int8_output_close_to_float(files):
    audio = _noisy(seed=6)
    f = StreamingEnhancer(files["float32"]).enhance(audio)
    q = StreamingEnhancer(files["int8_ptq"]).enhance(audio)
    assert np.sqrt(np.mean((f - q) ** 2)) < 0.1 * np.sqrt(np.mean(f ** 2))


def test_latency_is_256_samples_with_a_pass_through_model(tmp_path):
    """A model whose mask is sigmoid(30) = 1: the stream is the input delayed by 256 samples,
    less its DC bin (below 50 Hz, which the mel mask does not reach)."""
    model = build_cruse("student_30k", norm="frame_ln")
    deconv = model.get_layer("dec4_deconv")
    deconv.set_weights([np.zeros_like(deconv.kernel.numpy()), np.full((1,), 30.0, np.float32)])
    se = StreamingEnhancer(export_model(model, tmp_path, "id", int8=())["float32"])
    assert se.latency_samples == N_FFT - HOP == 256 and se.algorithmic_latency_samples == 512
    audio = _noisy(0.5, seed=1)
    out = _stream(se, audio)
    np.testing.assert_allclose(out, _gained(audio, 1.0)[:len(out)], atol=1e-5)
    # Aligned 256 samples late: the input less its DC bin, a small difference (a wrong delay
    # would leave the full signal's size).
    assert np.abs(out[:256]).max() < 0.02 and 0 < np.abs(out[256:] - audio).max() < 0.02
    assert np.abs(audio).max() > 0.2


def test_edgetpu_without_runtime_fails_with_one_line(files):
    import ctypes

    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
        pytest.skip("an Edge TPU runtime is installed here")
    except OSError:
        pass
    with pytest.raises(EdgeTPUUnavailable, match="libedgetpu.so.1") as info:
        StreamingEnhancer(files["int8_ptq"], edgetpu=True)
    assert "\n" not in str(info.value) and "edgetpu=False" in str(info.value)


def test_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        StreamingEnhancer(tmp_path / "nope.tflite")
    from tinyse_tf._tf import tf

    inp = keras.Input((4,), batch_size=1, name="x")
    dense = keras.Model(inp, keras.layers.Dense(2)(inp))
    flat = tf.lite.TFLiteConverter.from_keras_model(dense).convert()
    (tmp_path / "other.tflite").write_bytes(flat)
    with pytest.raises(ValueError, match="does not match a tinyse_tf streaming model"):
        StreamingEnhancer(tmp_path / "other.tflite")


def test_names_resolve_through_the_contract_without_a_signature(files, tmp_path, monkeypatch):
    """A compiled *_edgetpu.tflite may lose its signature: names then come from the JSON."""
    import shutil

    from ai_edge_litert.interpreter import Interpreter

    from tinyse_tf.export.contract import contract_path

    src = files["int8_ptq"]
    shutil.copy(src, tmp_path / "m_edgetpu.tflite")
    shutil.copy(contract_path(src), tmp_path / "m.io_contract.json")
    audio = _noisy(0.5, seed=2)
    expected = StreamingEnhancer(src).enhance(audio)
    monkeypatch.setattr(Interpreter, "get_signature_list", lambda self: {})
    se = StreamingEnhancer(tmp_path / "m_edgetpu.tflite")
    np.testing.assert_array_equal(se.enhance(audio), expected)


# --------------------------------------------------------------------------- the one signal path
def test_keras_stream_equals_float_file_and_offline(student, files):
    from tinyse_tf.runtime.keras import keras_stream

    audio = _noisy(0.8, seed=8)
    ks = keras_stream(student)
    assert ks.latency == ks.latency_samples == 256 and ks.name == "Keras streaming graph"
    k = _stream(ks, audio)
    f = _stream(StreamingEnhancer(files["float32"]), audio)
    np.testing.assert_allclose(k, f, atol=1e-5)
    np.testing.assert_allclose(k[256:], enhance(student, audio), atol=1e-4)


class _Halver:
    """A frame model with mask 1/2 everywhere that counts its steps."""

    name = "halver"

    def __init__(self):
        self.steps = 0

    def reset(self):
        self.steps = 0

    def step(self, features):
        assert features.shape == (80,) and features.dtype == np.float32
        self.steps += 1
        return np.full(80, 0.5, np.float32)


def test_frame_stream_runs_any_frame_model():
    from tinyse_tf.runtime import FrameStream

    audio = _noisy(0.7, seed=11)
    stream = FrameStream(_Halver())
    out = _stream(stream, audio)
    np.testing.assert_allclose(out, _gained(audio, 0.5)[:len(out)], atol=1e-5)
    assert stream.frame_model.steps == 0  # flush resets
    stream.process(audio[:1000])
    assert stream.frame_model.steps == 1000 // HOP


def test_signal_features_are_the_streams_features_and_the_tf_ones():
    from tinyse_tf.features import analyze
    from tinyse_tf.runtime import FrameStream, run_frames, signal_features

    audio = _noisy(0.6, seed=12)
    seen = []
    model = _Halver()
    run_frames(model, signal_features(audio), observe=lambda m, f: seen.append(f.copy()))
    streamed = []
    model.step = lambda f: streamed.append(f.copy()) or np.ones(80, np.float32)
    FrameStream(model).process(audio)
    n = audio.size // HOP
    np.testing.assert_array_equal(np.stack(seen)[:n], np.stack(streamed))
    _, tf_features = analyze(audio[None])
    np.testing.assert_allclose(np.stack(seen), tf_features[0, :len(seen), :, 0].numpy(),
                               rtol=1e-4, atol=1e-4)
