"""Preparing audio as int16 shards (tinyse_tf.data.shards) and `tinyse prepare-data`."""
import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from _corpora import THREE_TAGGED_MB, tagged_corpus
from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import (AudioSkipWarning, Corpus, DataError, load_audio, load_prepared,
                            prepare_corpus, prepare_data, write_audio)
from tinyse_tf.data import shards as shards_module
from tinyse_tf.data.corpus import SPLITS


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def _utterances(data, kind, split):
    """``{source file: int16 samples}`` read back from the shards through the manifest."""
    out = {}
    sources = data.manifest["files"][kind][split]
    for entry in data.manifest["shards"][kind][split]:
        samples = np.fromfile(data.root / entry["file"], "<i2")
        assert len(samples) == sum(entry["lengths"])
        for source, piece in zip(entry["sources"],
                                 np.split(samples, np.cumsum(entry["lengths"])[:-1])):
            out[sources[source]] = piece
    return out


def _folders(root, n_speech=30, bad=False):
    """Speech (mono 16 kHz, one 48 kHz, one stereo) and noise folders; ``bad``: plus an empty,
    a corrupt and a NaN file."""
    rng = np.random.default_rng(1)
    speech, noise = root / "speech", root / "noise"
    for k in range(n_speech):
        write_audio(speech / f"s{k:02d}.wav", 0.2 * rng.standard_normal(4000 + 100 * k))
    write_audio(speech / "hi_rate.wav", 0.2 * rng.standard_normal(48000), 48000)
    write_audio(speech / "stereo.flac", 0.2 * rng.standard_normal((8000, 2)))
    for k in range(4):
        write_audio(noise / f"n{k}.wav", 0.1 * rng.standard_normal(16000))
    if bad:
        (speech / "empty.wav").write_bytes(b"")
        (speech / "garbage.wav").write_bytes(b"not audio \x00\x01" * 40)
        nan = np.zeros(800, np.float32)
        nan[10] = np.nan
        sf.write(speech / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    return speech, noise


def test_shards_hold_the_sources_exactly_and_are_bounded(tmp_path, tiny_corpus):
    data = prepare_corpus(tiny_corpus, tmp_path / "d", shard_mb=0.25, progress=False)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["kind"] == "tinyse_tf prepared data" and manifest["version"] == 1
    assert not (tmp_path / "d" / "plan.json").exists()
    assert not list((tmp_path / "d").rglob("0*.json"))  # per-shard indices folded into it
    assert data.corpus.split("test") == tuple(
        [p.absolute() for p in files] for files in tiny_corpus.split("test"))
    for kind in ("speech", "noise"):
        for split in SPLITS:
            got = _utterances(data, kind, split)
            assert sorted(got) == sorted(str(p) for p in getattr(tiny_corpus, kind)[split])
            for path, samples in got.items():  # 16-bit WAV in, the same int16 out
                np.testing.assert_array_equal(samples / 32768.0, load_audio(path))
            for entry in manifest["shards"][kind][split]:
                size = (tmp_path / "d" / entry["file"]).stat().st_size
                assert size <= 0.25 * 2 ** 20 or len(entry["lengths"]) == 1
    speech = data.split("train")[0]
    assert len(speech.files) > 1 and speech.utterances == 6


def test_storage_order_is_shuffled_and_fixed(tmp_path):
    corpus = tagged_corpus(tmp_path)
    a = prepare_corpus(corpus, tmp_path / "a", shard_mb=THREE_TAGGED_MB, progress=False)
    b = prepare_corpus(corpus, tmp_path / "b", shard_mb=THREE_TAGGED_MB, progress=False)
    order = [s for e in a.manifest["shards"]["speech"]["train"] for s in e["sources"]]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    assert [len(e["lengths"]) for e in a.manifest["shards"]["speech"]["train"]] == [3] * 4
    assert _digest(a.root / "speech") == _digest(b.root / "speech")


def test_prepared_split_equals_from_folders(tmp_path):
    """The recipe's test set depends on this split: shards must not change it."""
    speech, noise = _folders(tmp_path)
    data = prepare_data(speech, noise, tmp_path / "d", seed=3, progress=False)
    corpus = Corpus.from_folders(speech, noise, seed=3)
    for kind in ("speech", "noise"):
        assert getattr(data.corpus, kind) == {
            s: [p.absolute() for p in files] for s, files in getattr(corpus, kind).items()}
    converted = data.manifest["converted"]
    assert converted["resampled"] == 1 and converted["downmixed"] == 1
    got = {**_utterances(data, "speech", "train"), **_utterances(data, "speech", "valid"),
           **_utterances(data, "speech", "test")}
    for name in ("hi_rate.wav", "stereo.flac"):  # what load_audio makes of them, as int16
        audio = load_audio(speech / name)
        np.testing.assert_allclose(got[str((speech / name).absolute())] / 32768.0, audio,
                                   atol=0.5 / 32768)


def test_second_call_returns_at_once_and_other_settings_are_refused(tmp_path):
    speech, noise = _folders(tmp_path)
    prepare_data(speech, noise, tmp_path / "d", progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*")}
    write_audio(speech / "late.wav", np.full(800, 0.1))  # not listed again: the split is kept
    again = prepare_data(speech, noise, tmp_path / "d", progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*")} == stamps
    assert str((speech / "late.wav").absolute()) not in again.manifest["files"]["speech"]["train"]
    # The same folders spelled through '..': the same source, returned at once.
    detour = tmp_path / "d" / ".."
    prepare_data(detour / speech.name, detour / noise.name, tmp_path / "d", progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*")} == stamps
    with pytest.raises(DataError, match="seed: 0 here, 1 asked") as refused:
        prepare_data(detour / speech.name, noise, tmp_path / "d", seed=1, progress=False)
    assert "speech_dir" not in str(refused.value)  # the same folder is not named as a difference
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to overwrite"):
        prepare_data(speech, noise, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="no prepared data"):
        load_prepared(tmp_path / "mine")


def test_interrupted_preparation_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    corpus = tagged_corpus(tmp_path)
    whole = prepare_corpus(corpus, tmp_path / "whole", shard_mb=THREE_TAGGED_MB, progress=False)

    real_flush, calls = shards_module._SplitWriter.flush, []

    def flush_then_stop(self, next_position):
        real_flush(self, next_position)
        calls.append(self.prefix)
        if len(calls) == 3:  # speech/train: 3 of its 4 shards committed, then Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(shards_module._SplitWriter, "flush", flush_then_stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(corpus, tmp_path / "cut", shard_mb=THREE_TAGGED_MB, progress=False)
    monkeypatch.setattr(shards_module._SplitWriter, "flush", real_flush)
    cut = tmp_path / "cut"
    assert (cut / "plan.json").is_file() and not (cut / "manifest.json").exists()
    with pytest.raises(DataError, match="interrupted"):
        load_prepared(cut)
    kept = {p: p.stat().st_mtime_ns for p in (cut / "speech" / "train").iterdir()}
    resumed = prepare_corpus(corpus, cut, shard_mb=THREE_TAGGED_MB, progress=False)
    for p, stamp in kept.items():
        if p.exists():  # committed shards are not written again
            assert p.stat().st_mtime_ns == stamp
    assert _digest(cut / "speech") == _digest(whole.root / "speech")
    assert _digest(cut / "noise") == _digest(whole.root / "noise")
    assert resumed.manifest == whole.manifest


def test_bad_files_are_skipped_named_and_counted(tmp_path):
    speech, noise = _folders(tmp_path, bad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = prepare_data(speech, noise, tmp_path / "d", progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, AudioSkipWarning)]
    for name in ("empty.wav", "garbage.wav", "nan.wav"):
        assert sum(name in m for m in messages) == 1
    assert all("\n" not in m for m in messages)
    skipped = {os.path.basename(s["file"]): s["problem"] for s in data.skipped}
    assert set(skipped) == {"empty.wav", "garbage.wav", "nan.wav"}
    assert "NaN" in skipped["nan.wav"]  # found while reading, not from the header
    total = sum(data.split(s)[0].utterances for s in SPLITS)
    assert total == 32  # 30 + hi_rate + stereo


def test_empty_split_of_bad_files_is_one_line_error(tmp_path):
    speech, noise = _folders(tmp_path)
    bad_noise = tmp_path / "bad_noise"
    bad_noise.mkdir()
    nan = np.full(800, np.nan, np.float32)
    for k in range(3):
        sf.write(bad_noise / f"n{k}.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="no usable audio in noise") as err:
            prepare_data(speech, bad_noise, tmp_path / "d", progress=False)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- tinyse prepare-data

def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tinyse_tf.cli", "prepare-data", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_help_names_the_options_without_tensorflow():
    proc = _cli("--help")
    assert proc.returncode == 0 and "--shard-mb" in proc.stdout and "--seed" in proc.stdout
    code = ("import sys; from tinyse_tf.cli import prepare_data; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'tensorflow']")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_prepares_reports_and_reruns(tmp_path):
    speech, noise = _folders(tmp_path)
    proc = _cli(str(speech), str(noise), "-o", str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert "speech train" in proc.stdout and "1 downmixed, 1 resampled" in proc.stdout
    assert "preparing d" in proc.stderr  # the progress bar
    data = load_prepared(tmp_path / "d")
    assert sum(data.split(s)[0].utterances for s in SPLITS) == 32
    again = _cli(str(speech), str(noise), "-o", str(tmp_path / "d"), "--quiet")
    assert again.returncode == 0 and again.stdout == proc.stdout and again.stderr == ""


def test_cli_bad_input_is_one_line_and_exit_codes(tmp_path):
    speech, noise = _folders(tmp_path, bad=True)
    proc = _cli(str(speech), str(noise), "-o", str(tmp_path / "d"), "-q")
    assert proc.returncode == 1  # prepared, but files were skipped
    lines = proc.stderr.strip().splitlines()
    assert sum(line.startswith("tinyse prepare-data: warning: skipping: ") for line in lines) == 3
    assert "skipped 3 unreadable files" in lines[-1] and "Traceback" not in proc.stderr
    assert _cli(str(speech), str(noise), "-o", str(tmp_path / "d"), "-q").returncode == 1

    (tmp_path / "empty").mkdir()
    for args, message in (
            ((tmp_path / "empty", noise), "no .wav or .flac files under"),
            ((tmp_path / "missing", noise), "audio folder not found"),
            ((speech, noise, "--seed", "4"), "other settings (seed: 0 here, 4 asked)"),
            ((speech, noise, "--test-fraction", "1.5"), "valid_fraction and test_fraction")):
        out = tmp_path / "d" if "--seed" in args else tmp_path / "new"
        proc = _cli(*map(str, args), "-o", str(out), "-q")
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("tinyse prepare-data: error: ") and message in last, last
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()
