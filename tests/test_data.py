"""Tests for tinyse_tf.data: files, built-in corpus, folders, mixing, test sets (shards and the
streaming pipeline: tests/data/)."""
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import (AudioError, AudioSkipWarning, Corpus, DataError, build_corpus,
                            list_audio, load_audio, load_folder, load_test_set, mix_np, mix_tf,
                            split_voices, write_audio, write_test_sets)
from tinyse_tf.data import builtin
from tinyse_tf.data.espeak import VARIANTS
from tinyse_tf.data.noises import NOISE_TYPES, generate_noise
from tinyse_tf.data.sentences import MAX_WORDS, MIN_WORDS, sentence_pool

TINY = {"n_speech": (6, 2, 3), "n_noise": (6, 2, 2), "noise_seconds": 1.5}


def _tree_digest(root: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _sine(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _snr_db(noisy, clean):
    return 10 * np.log10(np.sum(clean ** 2, -1) / np.sum((noisy - clean) ** 2, -1))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", seed=0, progress=False, **TINY)


# ---------------------------------------------------------------- audio files

def test_load_resamples_8k_and_48k(tmp_path):
    for rate in (8000, 48000):
        path = write_audio(tmp_path / f"tone{rate}.wav", _sine(1.0, rate), rate, subtype="FLOAT")
        audio = load_audio(path)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(len(audio) - SAMPLE_RATE) <= 2
        spectrum = np.abs(np.fft.rfft(audio))
        assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(audio) - 440) < 2


def test_load_downmixes_channels(tmp_path):
    stereo = np.stack([np.full(1600, 0.5, np.float32), np.full(1600, -0.1, np.float32)], axis=1)
    write_audio(tmp_path / "st.flac", stereo, SAMPLE_RATE)
    audio = load_audio(tmp_path / "st.flac")
    assert audio.shape == (1600,)
    np.testing.assert_allclose(audio, 0.2, atol=1e-4)


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.wav").write_bytes(b"this is not audio at all \x00\x01\x02" * 50)
    nan = np.zeros(800, np.float32)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / "zero.wav", np.zeros((0, 1), np.float32), SAMPLE_RATE, subtype="PCM_16")
    return {"empty": folder / "empty.wav", "corrupt": folder / "garbage.wav",
            "NaN": folder / "nan.wav", "zero-length": folder / "zero.wav"}


def test_loader_errors_are_one_line(tmp_path):
    for problem, path in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(path)
        message = str(info.value)
        assert "\n" not in message
        assert str(path) in message and problem in message
        assert "; " in message  # ... what is wrong; what to do
    with pytest.raises(DataError, match="not found") as info:
        load_folder(tmp_path / "missing")
    assert "\n" not in str(info.value)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no audio")
    with pytest.raises(DataError, match="no .wav or .flac") as info:
        load_folder(tmp_path / "texts")
    assert "\n" not in str(info.value)


def test_load_folder_skips_bad_files_with_warnings(tmp_path):
    bad = _bad_files(tmp_path / "sub")
    write_audio(tmp_path / "a.WAV", _sine(0.2, SAMPLE_RATE))
    write_audio(tmp_path / "sub" / "b.flac", _sine(0.3, SAMPLE_RATE))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = load_folder(tmp_path)
    assert list(clips) == [tmp_path / "a.WAV", tmp_path / "sub" / "b.flac"]
    messages = [str(w.message) for w in caught if w.category is AudioSkipWarning]
    for path in bad.values():
        assert any(str(path) in m for m in messages)
    assert messages[-1].startswith(f"skipped {len(bad)} of {len(bad) + 2}")
    _bad_files(tmp_path / "only_bad")
    with pytest.raises(DataError, match="no usable audio"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_folder(tmp_path / "only_bad")


def test_list_audio_recursive_sorted_case_insensitive(tmp_path):
    for name in ("b/x.FLAC", "a.wav", "b/c/y.Wav", "notes.txt", "b/z.mp3"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)] == \
        ["a.wav", "b/c/y.Wav", "b/x.FLAC"]


def test_write_audio_is_atomic(tmp_path):
    path = write_audio(tmp_path / "x.wav", _sine(0.1, SAMPLE_RATE))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_audio(path, np.full(10, np.nan))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temp file left


# ---------------------------------------------------------------- built-in corpus

def test_sentences_are_distinct_and_sized():
    pool = sentence_pool(400, seed=3)
    assert len(set(pool)) == 400
    assert all(MIN_WORDS <= len(s.split()) <= MAX_WORDS for s in pool)
    assert pool == sentence_pool(400, seed=3) and pool != sentence_pool(400, seed=4)
    assert sentence_pool(50, seed=3) == pool[:50]


@pytest.mark.parametrize("kind", NOISE_TYPES)
def test_noise_generators(kind):
    def utterance(rng):  # stand-in talker: a random chirp, keeps this test free of espeak
        t = np.arange(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)) / SAMPLE_RATE
        return np.sin(2 * np.pi * (200 + 300 * t) * t).astype(np.float32)

    n = SAMPLE_RATE
    a, info = generate_noise(kind, np.random.default_rng(1), n, utterance)
    b, _ = generate_noise(kind, np.random.default_rng(1), n, utterance)
    assert a.shape == (n,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert info["type"] == kind
    assert np.max(np.abs(a)) <= 0.95 + 1e-6 and np.sqrt(np.mean(a ** 2)) > 1e-3
    np.testing.assert_array_equal(a, b)


def test_corpus_is_deterministic_and_cached(tmp_path, tiny_corpus):
    again = build_corpus(tmp_path / "again", seed=0, progress=False, **TINY)
    assert _tree_digest(again.root) == _tree_digest(tiny_corpus.root)  # byte-identical
    other = build_corpus(tmp_path / "other", seed=1, progress=False, **TINY)
    assert _tree_digest(other.root) != _tree_digest(tiny_corpus.root)

    stamp = (again.root / "manifest.json").stat().st_mtime_ns
    cached = build_corpus(again.root, seed=0, progress=False, **TINY)
    assert (again.root / "manifest.json").stat().st_mtime_ns == stamp
    assert cached.speech == again.speech and cached.noise == again.noise


def test_corpus_layout_and_manifest(tiny_corpus):
    root, manifest = tiny_corpus.root, tiny_corpus.manifest
    splits = ("train", "valid", "test")
    assert tiny_corpus.counts() == {"speech": dict(zip(splits, TINY["n_speech"])),
                                    "noise": dict(zip(splits, TINY["n_noise"]))}
    assert json.loads((root / "manifest.json").read_text())["params"]["seed"] == 0
    for kind in ("speech", "noise"):
        for split, files in getattr(tiny_corpus, kind).items():
            assert all(f.parent == root / kind / split for f in files)
    info = sf.info(tiny_corpus.speech["train"][0])
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert sorted(e["info"]["type"] for e in manifest["noise"]["train"]) == sorted(NOISE_TYPES)
    assert sf.info(tiny_corpus.noise["test"][0]).frames == int(TINY["noise_seconds"] * SAMPLE_RATE)


def test_splits_share_no_sentence_and_no_voice(tiny_corpus):
    manifest = tiny_corpus.manifest
    ids = {s: set(manifest["sentence_ids"][s]) for s in ("train", "valid", "test")}
    texts = {s: {manifest["sentences"][i] for i in ids[s]} for s in ids}
    for a, b in (("train", "test"), ("train", "valid"), ("valid", "test")):
        assert not ids[a] & ids[b] and not texts[a] & texts[b]
    for split, entries in manifest["speech"].items():
        for e in entries:
            assert e["voice"] in manifest["voices"][split]
            assert set(e["sentence_ids"]) <= ids[split]
    for seed in (0, 1, 2):
        voices = split_voices(seed)
        variants = {s: {v.split("+")[1] for v in voices[s]} for s in voices}
        assert not variants["train"] & variants["test"]
        assert not variants["train"] & variants["valid"]
        assert not variants["valid"] & variants["test"]
        for group in VARIANTS.values():  # every split has male, female and klatt voices
            assert all(variants[s] & set(group) for s in variants)
    assert split_voices(0) != split_voices(1)


def test_interrupted_build_leaves_no_corpus(tmp_path, monkeypatch):
    real_write, calls = builtin.write_audio, []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(builtin, "write_audio", failing_write)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path / "c", seed=0, progress=False, **TINY)
    assert list(tmp_path.iterdir()) == []  # neither the corpus nor the staging folder
    monkeypatch.setattr(builtin, "write_audio", real_write)
    rebuilt = build_corpus(tmp_path / "c", seed=0, progress=False, **TINY)
    assert rebuilt.counts()["speech"]["train"] == 6


def test_build_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to overwrite"):
        build_corpus(tmp_path, seed=0, progress=False, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_default_data_dir_names():
    assert builtin.default_data_dir(3).name == f"builtin-{builtin.CORPUS_VERSION}-seed3"
    assert builtin.default_data_dir(0, builtin.CORPUS_SIZES["smoke"]).name.endswith("-smoke")
    assert builtin.default_data_dir(0, TINY).name != builtin.default_data_dir(0).name


# ---------------------------------------------------------------- real folders

def _folder_tree(root: Path, names):
    for name in names:
        write_audio(root / name, _sine(0.1, SAMPLE_RATE))
    return root


def test_from_folders_flat_split_is_deterministic(tmp_path):
    speech = _folder_tree(tmp_path / "speech", [f"s{i:02d}.wav" for i in range(40)])
    noise = _folder_tree(tmp_path / "noise", [f"n{i}.flac" for i in range(10)])
    a = Corpus.from_folders(speech, noise, seed=0, valid_fraction=0.1, test_fraction=0.2)
    assert a == Corpus.from_folders(speech, noise, seed=0, valid_fraction=0.1, test_fraction=0.2)
    assert a != Corpus.from_folders(speech, noise, seed=1, valid_fraction=0.1, test_fraction=0.2)
    assert a.counts()["speech"] == {"train": 28, "valid": 4, "test": 8}
    assert sorted(f for files in a.speech.values() for f in files) == list_audio(speech)
    assert min(a.counts()["noise"].values()) >= 1


def test_from_folders_groups_speaker_folders_and_uses_split_folders(tmp_path):
    speech = _folder_tree(tmp_path / "libri",
                          [f"spk{k}/ch/{i}.flac" for k in range(12) for i in range(3)])
    noise = _folder_tree(tmp_path / "noise", ["train/a.wav", "train/b.wav", "TEST/c.wav"])
    (tmp_path / "noise" / "train" / "broken.wav").write_bytes(b"RIFF")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = Corpus.from_folders(speech, noise, seed=0)
    messages = [str(w.message) for w in caught if w.category is AudioSkipWarning]
    assert len(messages) == 2 and "broken.wav" in messages[0] and "skipped 1 of 3" in messages[1]
    speakers = {s: {f.relative_to(speech).parts[0] for f in files} for s, files in c.speech.items()}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["valid"]
    assert [f.name for f in c.noise["test"]] == ["c.wav"]
    assert sorted(f.name for f in c.noise["train"] + c.noise["valid"]) == ["a.wav", "b.wav"]


def test_from_folders_on_shared_audio_uses_its_split(shared_audio):
    c = Corpus.from_folders(shared_audio / "speech", shared_audio / "noise", seed=0)
    for kind in ("speech", "noise"):
        files = getattr(c, kind)
        assert files["test"] == list_audio(shared_audio / kind / "test")
        assert sorted(files["train"] + files["valid"]) == list_audio(shared_audio / kind / "train")
        assert files["valid"]


# ---------------------------------------------------------------- mixing (the pipeline: tests/data)

def test_mix_np_and_tf_agree():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    for snr, level in ((-5.0, -25.0), (10.0, -3.0)):  # the second hits the peak limit
        n_np, c_np = mix_np(clean, noise, snr, level)
        n_tf, c_tf = (t.numpy() for t in mix_tf(clean, noise, snr, level))
        np.testing.assert_allclose(n_tf, n_np, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c_tf, c_np, rtol=1e-4, atol=1e-6)
        assert abs(_snr_db(n_np, c_np) - snr) < 1e-3
        assert max(np.abs(n_np).max(), np.abs(c_np).max()) <= 0.99 + 1e-6
    noisy, target = mix_np(np.zeros(4000), noise, 0.0, -30.0)  # silent speech: noise only
    assert not target.any() and abs(10 * np.log10(np.mean(noisy ** 2)) + 30) < 1e-3
    # A batch [b, n] with per-row dB mixes every row on its own.
    cleans = np.stack([clean, np.zeros_like(clean), clean * 3])
    noises = np.stack([noise, noise, noise[::-1]])
    snrs = np.array([-5.0, 0.0, 10.0], np.float32)
    levels = np.array([-25.0, -30.0, -3.0], np.float32)
    n_tf, c_tf = (t.numpy() for t in mix_tf(cleans, noises, snrs, levels))
    for row in range(3):
        n_np, c_np = mix_np(cleans[row], noises[row], snrs[row], levels[row])
        np.testing.assert_allclose(n_tf[row], n_np, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c_tf[row], c_np, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- test sets

def test_test_sets_layout_snr_and_idempotence(tmp_path, tiny_corpus):
    speech, noise = tiny_corpus.split("test")
    out = write_test_sets(speech, noise, tmp_path / "ts", snrs=(-5, 0, 5), seed=0)
    assert sorted(p.name for p in out.iterdir()) == \
        ["manifest.json", "mixed", "snr_-5", "snr_0", "snr_5"]
    entries = load_test_set(out)
    assert len(entries) == 4 * len(speech)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["items"][0]) >= {"id", "speech", "noise", "noise_offset", "level_db",
                                         "snr_mixed"}
    for e in entries:
        noisy, _ = sf.read(e["noisy_path"], dtype="float32")
        clean, _ = sf.read(e["clean_path"], dtype="float32")
        assert abs(_snr_db(noisy, clean) - e["snr"]) < 0.05
    assert 0 <= entries[-1]["snr"] <= 20 and entries[-1]["snr_label"] == "mixed"
    # the same speech in every set (up to the level gain)
    c0, _ = sf.read(out / "snr_0" / "clean" / "00000.wav")
    c5, _ = sf.read(out / "snr_5" / "clean" / "00000.wav")
    assert np.corrcoef(c0, c5)[0, 1] > 0.999

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    write_test_sets(speech, noise, tmp_path / "ts", snrs=(-5, 0, 5), seed=0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    write_test_sets(speech, noise, tmp_path / "ts", snrs=(0, 10), seed=0, clip_seconds=1.0)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "mixed", "snr_0", "snr_10"]
    assert sf.info(out / "snr_10" / "noisy" / "00000.wav").frames == SAMPLE_RATE
