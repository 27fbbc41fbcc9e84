"""The models shipped in the package: files, hashes, cards, loading, enhancing, CLI default."""
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tinyse_tf import shipped
from tinyse_tf.evaluation.metrics import si_sdr

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_shipped_file_matches_registry_and_card():
    models = shipped.shipped_models()
    assert set(models) == {"student", "teacher"}
    assert set(models["student"]["files"]) == {"keras", "int8", "float32"}
    assert set(models["teacher"]["files"]) == {"keras"}
    assert shipped.verify() == []
    total = 0
    for name, entry in models.items():
        card = (ROOT / entry["card"]).read_text()
        for record in entry["files"].values():
            path = shipped.FOLDER / record["file"]
            assert path.stat().st_size == record["bytes"]
            assert record["sha256"] in card and f"{record['bytes']:,}" in card
            total += record["bytes"]
    assert total < 5 * 2 ** 20  # package data stays a few MB


def test_io_contracts_are_hashed_too(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    shutil.copytree(shipped.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(shipped, "FOLDER", folder)
    monkeypatch.setattr(shipped, "REGISTRY", folder / "models.json")
    record = shipped.shipped_models()["student"]["files"]["int8"]["io_contract"]
    contract = folder / record["file"]
    contract.write_text(contract.read_text().replace('"scale"', '"scale" ', 1))
    (problem,) = shipped.verify("student")
    assert str(contract) in problem and "SHA-256" in problem
    with pytest.raises(OSError, match="io_contract.json: size or SHA-256"):
        shipped.resolve("student:int8")
    assert shipped.resolve("student:float32").is_file()


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    shutil.copytree(shipped.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    weights = folder / shipped.shipped_models()["student"]["files"]["keras"]["file"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "FOLDER", folder)
    monkeypatch.setattr(shipped, "REGISTRY", folder / "models.json")
    assert len(shipped.verify("student")) == 1
    with pytest.raises(OSError, match="SHA-256"):
        shipped.pretrained("student")
    with pytest.raises(ValueError, match="no shipped model 'nope'"):
        shipped.pretrained("nope")


def test_pretrained_builds_the_preset_models_json_names(tmp_path, monkeypatch):
    """A shipped teacher of another CRUSE preset (a flagship run's student_350k) loads as that
    preset, and the recipe takes it as --teacher-checkpoint pretrained when its --teacher is that
    preset; otherwise one clear error each, naming the presets."""
    from tinyse_tf.models import build_cruse
    from tinyse_tf.recipe.presets import get_preset
    from tinyse_tf.recipe.two_step import _load_checkpoint

    folder = tmp_path / "shipped"
    model = build_cruse("student_350k", norm="frame_ln", name="teacher")
    weights = folder / "teacher_350k_flagship_float16.npz"
    shipped.save_weights_npz(model, weights, "float16")
    entry = {"description": "350 k teacher (flagship)", "card": "docs/models/teacher.md",
             "build": {"preset": "student_350k", "norm": "frame_ln"}, "commit": "0000000",
             "files": {"keras": shipped.file_record(weights)}}
    (folder / "models.json").write_text(json.dumps({"models": {"teacher": entry}}))
    monkeypatch.setattr(shipped, "FOLDER", folder)
    monkeypatch.setattr(shipped, "REGISTRY", folder / "models.json")
    teacher = _load_checkpoint("pretrained", get_preset("flagship"))  # its teacher: student_350k
    assert teacher.count_params() == model.count_params()
    for got, want in zip(teacher.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="the shipped teacher is preset 'student_350k' with "
                       "norm 'frame_ln' .*pass --teacher student_350k --norm frame_ln"):
        _load_checkpoint("pretrained", get_preset("flagship", teacher="teacher"))
    entry["build"]["preset"] = "student"  # a models.json whose build does not fit its weights
    (folder / "models.json").write_text(json.dumps({"models": {"teacher": entry}}))
    with pytest.raises(ValueError, match="do not fit the shipped 'teacher' model's build in "
                       "models.json \\(preset 'student', norm 'frame_ln'\\)"):
        shipped.pretrained("teacher")


@pytest.fixture(scope="module")
def student():
    return shipped.pretrained("student")


def test_pretrained_models_load_as_keras(student):
    from tinyse_tf.models import config_from_model
    from tinyse_tf.models.complexity import count_params

    teacher = shipped.pretrained("teacher")
    for model in (student, teacher):
        build = shipped.shipped_models()[model.name]["build"]  # the CRUSE preset and norm
        assert model.count_params() == count_params(build["preset"])
        assert config_from_model(model).norm == build["norm"]
    x = np.random.default_rng(0).standard_normal((1, 20, 80, 1)).astype(np.float32)
    assert student(x).shape == teacher(x).shape == (1, 20, 80, 1)


def _mixture(shared_audio, snr_db=0.0, seconds=4.0):
    """(noisy, clean): a real test-split recording (a speaker and a noise no model trained on)
    at ``snr_db``, after 1 s of the noise alone (as benchmarks/vs_classical.py mixes)."""
    from tinyse_tf.data import load_audio
    from tinyse_tf.data.mixing import mix_np

    speech = load_audio(sorted((shared_audio / "speech" / "test").glob("*.flac"))[0])
    noise = load_audio(sorted((shared_audio / "noise" / "test").glob("*.flac"))[1])
    n = int(seconds * 16000)
    speech = speech[:n]
    noise = np.resize(noise, n + 16000)
    lead = np.zeros(16000, np.float32)  # 1 s of noise alone first, as vs_classical.py does
    noisy, clean = mix_np(np.concatenate([lead, speech]), noise, snr_db, -26.0)
    return noisy, clean


def test_int8_and_float32_files_enhance_a_real_recording(shared_audio, student):
    from tinyse_tf.runtime import StreamingEnhancer
    from tinyse_tf.runtime.offline import enhance

    noisy, clean = _mixture(shared_audio)
    before = si_sdr(clean, noisy)
    outputs = {kind: StreamingEnhancer(shipped.pretrained_file("student", kind)).enhance(noisy)
               for kind in ("int8", "float32")}
    for kind, out in outputs.items():
        assert si_sdr(clean, out) > before + 1.0, kind
    # The float32 streaming file is the Keras model, frame by frame.
    np.testing.assert_allclose(outputs["float32"], enhance(student, noisy), atol=2e-3)


@pytest.fixture(scope="module")
def built_in_mixtures(tmp_path_factory):
    """``[(noisy, clean)]`` at 0 dB from the built-in corpus's test split (synthetic speech,
    every procedural noise type, none trained on): runs everywhere, CI has no ../shared/audio."""
    from tinyse_tf.data import build_corpus, load_audio
    from tinyse_tf.data.mixing import mix_np

    corpus = build_corpus(tmp_path_factory.mktemp("corpus") / "c", seed=0, progress=False,
                          n_speech=(1, 1, 2), n_noise=(1, 1, 6), noise_seconds=4.0)
    speech, noise = corpus.split("test")
    pairs = []
    for s in speech:
        for n in noise:
            clean = load_audio(s)
            pairs.append(mix_np(clean, np.resize(load_audio(n), clean.size), 0.0, -26.0))
    return pairs


def test_shipped_files_enhance_built_in_test_clips(student, built_in_mixtures):
    """The int8 and float32 files and the Keras model raise SI-SDR by more than 2 dB on average
    over the built-in test mixtures. Babble-like noise gains little (about 0-1 dB), so the check
    is on the mean, not on every clip."""
    from tinyse_tf.runtime import StreamingEnhancer
    from tinyse_tf.runtime.offline import enhance

    enhancers = {kind: StreamingEnhancer(shipped.pretrained_file("student", kind)).enhance
                 for kind in ("int8", "float32")}
    enhancers["keras"] = lambda audio: enhance(student, audio)
    gains = {kind: [] for kind in enhancers}
    for noisy, clean in built_in_mixtures:
        for kind, fn in enhancers.items():
            gains[kind].append(si_sdr(clean, fn(noisy)) - si_sdr(clean, noisy))
    for kind, values in gains.items():
        assert np.mean(values) > 2.0, (kind, np.round(values, 2))


def test_cli_default_model_on_built_in_audio(built_in_mixtures, tmp_path):
    """`tinyse enhance` with no --model, as a user runs it (subprocess), on built-in audio, from
    a folder that holds a folder named like the default model: the shipped float32 file is used
    and named; a mean SI-SDR gain over 2 dB. An explicit `--model student` there is the local
    folder, and the CLI says so."""
    from tinyse_tf.data import load_audio, write_audio

    (tmp_path / shipped.DEFAULT_MODEL).mkdir()  # would shadow the shipped model if looked up
    names = []
    for i, (noisy, _) in enumerate(built_in_mixtures[:4]):
        names.append(f"noisy{i}.wav")
        write_audio(tmp_path / names[-1], noisy)
    cli = [sys.executable, "-m", "tinyse_tf.cli", "enhance"]
    proc = subprocess.run(cli + names + ["-o", "out"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    float_file = shipped.pretrained_file(shipped.DEFAULT_MODEL, shipped.HOST_KIND).name
    assert f"note: model: the shipped {shipped.DEFAULT_MODEL} ({float_file};" in proc.stderr
    gains = []
    for name, (noisy, clean) in zip(names, built_in_mixtures):
        out = load_audio(tmp_path / "out" / name)
        assert out.shape == noisy.shape
        gains.append(si_sdr(clean, out) - si_sdr(clean, noisy))
    assert np.mean(gains) > 2.0, np.round(gains, 2)
    shadowed = subprocess.run(cli + names[:1] + ["-o", "o2", "--model", shipped.DEFAULT_MODEL],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    note, error = shadowed.stderr.strip().splitlines()
    assert shadowed.returncode == 2 and "is the local folder ./student, not the shipped" in note
    assert float_file in note and "is a folder, not a model file" in error


def test_cli_enhances_with_the_shipped_model_by_default(shared_audio, tmp_path):
    from tinyse_tf.data import load_audio, write_audio

    noisy, clean = _mixture(shared_audio)
    write_audio(tmp_path / "noisy.wav", noisy)
    proc = subprocess.run([sys.executable, "-m", "tinyse_tf.cli", "enhance",
                           str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = load_audio(tmp_path / "out" / "noisy.wav")
    assert out.shape == noisy.shape and si_sdr(clean, out) > si_sdr(clean, noisy) + 1.0
    bad = subprocess.run([sys.executable, "-m", "tinyse_tf.cli", "enhance",
                          str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "o2"), "-m",
                          "student:fp16"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "student:float32" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_registry_is_the_cards_registry():
    data = json.loads(shipped.REGISTRY.read_text())
    for name, entry in data["models"].items():
        assert (ROOT / entry["card"]).is_file(), name
        assert entry["commit"] in (ROOT / entry["card"]).read_text()
