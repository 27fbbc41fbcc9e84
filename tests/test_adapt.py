"""``tinyse adapt`` / ``tinyse_tf.adapt``: the noise hold-out, bad inputs, and (slow) one real
adaptation through the command line: interrupted, resumed, exported, checked for the Edge TPU and
run in TFLite Micro.

Default run: the hold-out split (numpy only) and the command's one-line errors, which all stop
before TensorFlow is imported (about a second each). The end-to-end run trains for seconds but
exports and scores, so it is ``slow``.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import AudioError, DataError
from tinyse_tf.data.holdout import (BY_FILE_MIN, MIN_NOISE_SECONDS, Segment, load_noise,
                                    segment_audio, split_noise)


def tinyse(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "tinyse_tf.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=kwargs.get("timeout", 120))


def one_line_error(proc, *needles):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("tinyse adapt: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def noise(seconds, seed=0, rate=SAMPLE_RATE, channels=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    hum = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.1 * np.sin(2 * np.pi * 240 * t)
    x = (hum + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


# --------------------------------------------------------------------------- hold-out
@pytest.mark.parametrize("lengths", [[8.0], [5.0, 3.0], [1.5, 1.5, 1.5], [30.0, 0.5]])
def test_time_split_never_shares_a_sample(lengths):
    audio = {Path(f"n{i}.wav"): noise(s, seed=i) for i, s in enumerate(lengths)}
    split = split_noise(audio)
    assert split.by == "time" and split.held_out
    for path, signal_ in audio.items():
        spans = [(s.start, s.stop, "train") for s in split.train if s.file == path]
        spans += [(s.start, s.stop, "held") for s in split.held_out if s.file == path]
        spans.sort()
        # Disjoint, in order, and together the whole file: never the same second in both.
        assert spans[0][0] == 0 and spans[-1][1] == len(signal_)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert len({kind for *_, kind in spans}) == len(spans)
    held = sum(s.seconds for s in split.held_out)
    assert held >= 1.0 and held < sum(lengths) / 2
    segment = split.held_out[0]
    np.testing.assert_array_equal(segment_audio(segment, audio),
                                  audio[segment.file][segment.start:segment.stop])


def test_file_split_holds_out_whole_files():
    audio = {Path(f"n{i}.wav"): noise(2.0, seed=i) for i in range(2 * BY_FILE_MIN + 1)}
    split = split_noise(audio)
    assert split.by == "file"
    train, held = {s.file for s in split.train}, {s.file for s in split.held_out}
    assert not train & held and train | held == set(audio) and len(held) == 2
    assert all(s == Segment(s.file, 0, len(audio[s.file])) for s in split.train + split.held_out)


def test_too_little_noise_is_refused():
    with pytest.raises(DataError, match="only 3.0 s of noise"):
        split_noise({Path("short.wav"): noise(MIN_NOISE_SECONDS - 1)})


def test_other_rates_and_channels_are_resampled(tmp_path):
    sf.write(tmp_path / "stereo44k.wav", noise(6.0, rate=44100, channels=2), 44100)
    (audio,) = load_noise(tmp_path).values()
    assert audio.ndim == 1 and abs(audio.size - 6.0 * SAMPLE_RATE) <= 1


# --------------------------------------------------------------------------- bad input, CLI
@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt_bad")
    (root / "empty").mkdir()
    (root / "short").mkdir()
    sf.write(root / "short" / "fan.wav", noise(2.0), SAMPLE_RATE)
    (root / "corrupt").mkdir()
    sf.write(root / "corrupt" / "good.wav", noise(6.0), SAMPLE_RATE)
    (root / "corrupt" / "broken.wav").write_bytes(b"RIFF\x00\x01\x00\x00WAVEfmt garbage")
    return root


@pytest.mark.parametrize("case, needles", [
    ("missing", ["not found", "missing"]),
    ("empty", ["empty", "no .wav or .flac"]),
    ("short", ["fan.wav", "only 2.0 s of noise"]),
    ("corrupt", ["broken.wav", "not readable as audio"]),
])
def test_bad_noise_stops_with_one_line(bad_inputs, tmp_path, case, needles):
    proc = tinyse("adapt", "--noise", bad_inputs / case, "-o", tmp_path / "out")
    one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()  # nothing written


def test_bad_options_stop_with_one_line(bad_inputs, tmp_path):
    proc = tinyse("adapt", "--noise", bad_inputs / "corrupt" / "good.wav", "-o", tmp_path / "o",
                  "--minutes", "0")
    one_line_error(proc, "minutes must be positive")
    proc = tinyse("adapt", "--noise", bad_inputs / "corrupt" / "good.wav", "-o", tmp_path / "o",
                  "--learning-rate", "-1")
    one_line_error(proc, "learning_rate must be positive")


def test_api_raises_before_writing(bad_inputs, tmp_path):
    import tinyse_tf
    import tinyse_tf.adapt  # the submodule, imported first, must not hide the function

    assert callable(tinyse_tf.adapt) and tinyse_tf.adapt.AdaptConfig().guard in tinyse_tf.adapt.GUARDS

    with pytest.raises(AudioError, match="broken.wav"):
        tinyse_tf.adapt(bad_inputs / "corrupt", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="guard must be one of"):
        tinyse_tf.adapt(bad_inputs / "corrupt", tmp_path / "out", guard="magic")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # TensorFlow and a model build: seconds idle, a minute on a loaded machine
def test_start_model_that_cannot_export_is_refused_before_training(bad_inputs, tmp_path):
    import tinyse_tf

    cln = tinyse_tf.build_cruse("student", norm="cln")
    with pytest.raises(ValueError, match="int8"):
        tinyse_tf.adapt(bad_inputs / "corrupt" / "good.wav", tmp_path / "out", model=cln,
                        progress=False)
    with pytest.raises(ValueError, match="no such model"):
        tinyse_tf.adapt(bad_inputs / "corrupt" / "good.wav", tmp_path / "out",
                        model=tmp_path / "missing.keras", progress=False)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end (slow)
@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """One adaptation through the command line, killed (SIGKILL) after its first checkpoint and
    then rerun: ``{"out", "noise", "first", "second"}`` (stdout of both invocations)."""
    root = tmp_path_factory.mktemp("adapt_e2e")
    (root / "noise").mkdir()
    # 44.1 kHz stereo: resampled; one file, so the hold-out is by time.
    sf.write(root / "noise" / "fan.wav", noise(9.0, rate=44100, channels=2), 44100)
    out = root / "out"
    args = [sys.executable, "-m", "tinyse_tf.cli", "adapt", "--noise", root / "noise", "-o", out,
            # A budget of several epochs even on a loaded machine (an epoch of 20 steps took up
            # to 35 s there): with 1 minute the run could end at its first checkpoint, and
            # finish before the kill, instead of being interrupted during epoch 2.
            "--minutes", "2.0", "--target", "micro"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        checkpoint = out / "work" / "train" / "ckpt" / "checkpoint"
        deadline = time.time() + 600
        while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        # SIGKILL: a crash or a power cut. (SIGINT was not always delivered as
        # KeyboardInterrupt on a loaded machine: 2 of 4 runs then trained on to the end.)
        proc.kill()
        first, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, (first[-1500:], err[-500:])
    assert not (out / "adapted.keras").exists()
    second = tinyse(*args[3:], timeout=900)
    assert second.returncode == 0, second.stderr
    return {"out": out, "noise": root / "noise" / "fan.wav", "first": first,
            "second": second.stdout}


@pytest.mark.slow
def test_interrupted_run_resumes(adapted):
    assert "resuming train after epoch" in adapted["second"], adapted["second"]
    history = (adapted["out"] / "work" / "train" / "history.csv").read_text().splitlines()
    epochs = [int(line.split(",")[0]) for line in history[1:] if line[:1].isdigit()]
    assert epochs == sorted(set(epochs)) and epochs[0] == 0  # continued, not restarted


@pytest.mark.slow
def test_training_and_held_out_segments_are_disjoint_seconds(adapted):
    from tinyse_tf.data import load_audio

    source = load_audio(adapted["noise"])
    parts = {p: sf.read(adapted["out"] / "work" / "noise" / p / "0000.wav", dtype="float32")[0]
             for p in ("train", "valid")}
    # The segments are the head and the tail of the (resampled) recording, nothing shared.
    np.testing.assert_array_equal(np.concatenate([parts["train"], parts["valid"]]), source)


@pytest.mark.slow
def test_exported_files_pass_edgetpu_check_and_run_in_tflm(adapted):
    pytest.importorskip("tflite_micro")
    from tinyse_tf.export.edgetpu_check import check_model
    from tinyse_tf.export.micro import compare_with_litert

    export = adapted["out"] / "export"
    int8 = export / "adapted_stream_int8_ptq.tflite"
    for stem in ("adapted_stream_float32", "adapted_stream_int8_ptq"):
        assert (export / f"{stem}.tflite").is_file()
        assert (export / f"{stem}.io_contract.json").is_file()
    report = check_model(int8)
    assert report.ok and report.cpu_op_count == 0
    assert (export / "adapted_stream_int8_ptq_model_data.cc").is_file()
    # Streamed in TFLM, every hop against LiteRT. Trained weights differ more between the two
    # runtimes than test_micro's random ones (its bound: max 16, mean 8 LSB): on this input the
    # shipped int8 file measured max 27, mean 9.9 LSB (2026-12-06); allowed here: a mean of 16
    # LSB (0.06 of the mask's range).
    from tinyse_tf.data import build_corpus
    from tinyse_tf.data.builtin import CORPUS_SIZES
    from tinyse_tf.export.calibration import noisy_mixtures

    speech, noises = build_corpus(None, progress=False, **CORPUS_SIZES["default"]).split("test")
    audio = noisy_mixtures(speech[:4], noises[:4], 1, 17.0, 5.0, seed=0)[0][0]
    result = compare_with_litert(int8, audio)
    assert result["hops"] == -(-audio.size // 256) and result["mean_lsb"] <= 16, result


@pytest.mark.slow
def test_report_compares_start_and_adapted_per_snr(adapted):
    report = json.loads((adapted["out"] / "report.json").read_text())
    assert set(report["sets"]) == {"held-out noise", "built-in test clips"}
    for entry in report["sets"].values():
        assert set(entry["adapted_vs_start"]) == {"-5.0", "0.0", "5.0"}
        for per_metric in entry["adapted_vs_start"].values():
            assert set(per_metric) == {"si_sdr", "pesq", "estoi"}
            assert all(np.isfinite(s["mean"]) for s in per_metric.values())
    assert "| adapted − start |" in (adapted["out"] / "report.md").read_text()
    timings = json.loads((adapted["out"] / "timings.json").read_text())
    assert timings["total"]["wall_s"] > 0
