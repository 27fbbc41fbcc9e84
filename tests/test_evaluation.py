"""Tests for tinyse_tf.evaluation: metrics, parallel runner, summaries, reports and plots.

Default run: synthetic signals plus one real clip when ../shared/audio is present (< 30 s).
``pytest -m slow`` adds DNSMOS on real speech and a full real-clip evaluation with every metric.
"""
import concurrent.futures
import csv
import json
import math
import os
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from tinyse_tf import evaluation as ev
from tinyse_tf.evaluation import metrics as M
from tinyse_tf.evaluation.bench import synthetic_speech

SR = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST_METRICS = ("si_sdr", "sdr", "pesq", "estoi")  # everything but DNSMOS


def speech_like(seconds=3.0, seed=0):
    """Voiced, syllable-rate modulated harmonic signal (f0 90-165 Hz): PESQ detects utterances."""
    return synthetic_speech(seconds, seed)


def at_snr(clean, noise, snr_db):
    """clean + noise scaled to the given SNR (by energy)."""
    return clean + noise * np.sqrt(np.sum(clean ** 2) / np.sum(noise ** 2) / 10 ** (snr_db / 10))


@pytest.fixture
def speech(request):
    """4 s of real speech from ../shared/audio when present, else a synthetic speech-like signal."""
    try:
        root = request.getfixturevalue("shared_audio")
    except pytest.skip.Exception:
        return speech_like(4.0)
    x, sr = sf.read(sorted((root / "speech" / "test").glob("*.flac"))[0], dtype="float64")
    assert sr == SR
    return x[SR: 5 * SR]


@pytest.fixture
def white():
    return np.random.default_rng(7).standard_normal(4 * SR)


# ---------------------------------------------------------------------------------- SI-SDR

def test_si_sdr_of_identical_signals_is_very_large():
    x = speech_like(1.0)
    assert M.si_sdr(x, x) == pytest.approx(156.5, abs=0.1)  # 10 log10(1 / float64 eps)
    assert M.si_sdr(x, 0.5 * x) > 150.0 and M.si_sdr(1e-6 * x, 1e-6 * x) > 150.0


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 20.0])
def test_si_sdr_matches_the_snr_of_added_noise(white, snr):
    ref = speech_like(4.0)
    noise = np.random.default_rng(1).standard_normal(ref.size)
    # Exact: noise orthogonal to the zero-mean reference.
    r0, n0 = ref - ref.mean(), noise - noise.mean()
    n_orth = n0 - np.dot(n0, r0) / np.dot(r0, r0) * r0
    assert M.si_sdr(ref, at_snr(r0, n_orth, snr)) == pytest.approx(snr, abs=1e-6)
    # Approximate: independent white reference and noise, 10 s (chance correlation ~ 1/sqrt(n)).
    ref = np.random.default_rng(2).standard_normal(10 * SR)
    noise = np.random.default_rng(3).standard_normal(10 * SR)
    assert M.si_sdr(ref, at_snr(ref, noise, snr)) == pytest.approx(snr, abs=0.1)


def test_si_sdr_is_invariant_to_gain_and_offset(white):
    ref = speech_like(2.0)
    est = at_snr(ref, white[: ref.size], 3.0)
    base = M.si_sdr(ref, est)
    assert M.si_sdr(ref, 0.1 * est) == pytest.approx(base, abs=1e-9)
    assert M.si_sdr(7.0 * ref, est) == pytest.approx(base, abs=1e-9)
    assert M.si_sdr(ref, est + 0.2) == pytest.approx(base, abs=1e-9)  # zero-mean first
    assert M.si_sdr(ref, -est) == pytest.approx(base, abs=1e-9)  # any non-zero gain, sign too


@pytest.mark.parametrize("ref, est, match", [
    (np.ones(100), np.ones(99), "lengths differ"),
    (np.zeros(100), np.ones(100), "reference is silent"),
    (np.ones(100), np.zeros(100), "estimate is silent"),
    (np.ones((2, 100)), np.ones((2, 100)), "mono"),
    (np.full(100, np.nan), np.ones(100), "NaN"),
])
def test_metrics_reject_bad_input(ref, est, match):
    with pytest.raises(ValueError, match=match):
        M.si_sdr(ref, est)


# ------------------------------------------------------------------------- BSS-eval SDR

def test_sdr_is_labelled_bss_eval_and_sane(white):
    assert "BSS-eval" in ev.METRIC_NAMES["sdr"] and "SI-SDR" in ev.METRIC_NAMES["si_sdr"]
    ref = speech_like(2.0)
    noisy = at_snr(ref, white[: ref.size], 10.0)
    # BSS-eval allows a 512-tap distortion filter, so it is at least about SI-SDR on additive noise.
    assert M.sdr(ref, noisy) == pytest.approx(M.si_sdr(ref, noisy), abs=0.5)
    assert M.sdr(ref, 0.5 * ref + 1e-4 * white[: ref.size]) > 40.0
    assert M.sdr(ref, at_snr(ref, white[: ref.size], 0.0)) < M.sdr(ref, noisy)


# ------------------------------------------------------------------------- PESQ, eSTOI

def test_pesq_and_estoi_ranges(speech, white):
    noisy = at_snr(speech, white[: speech.size], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.NoUtterancesWarning)  # speech has utterances: no NaN
        clean_pesq = M.pesq_wb(speech, speech)
        noisy_pesq = M.pesq_wb(speech, noisy)
    assert 4.4 < clean_pesq <= 4.65
    assert 1.0 <= noisy_pesq < 2.5 and noisy_pesq < clean_pesq
    assert M.estoi(speech, speech) == pytest.approx(100.0, abs=1e-6)
    assert 10.0 < M.estoi(speech, noisy) < 90.0


def test_pesq_without_utterances_is_nan_with_a_warning(white):
    # Not all zeros (that is refused as "silent"), but 500 dB below the estimate: P.862's VAD
    # finds no utterance and pesq raises NoUtterancesError, the one pesq condition tolerated.
    ref = 1e-25 * np.random.default_rng(8).standard_normal(white.size)
    with pytest.warns(M.NoUtterancesWarning, match="no utterance.*NaN"):
        assert math.isnan(M.pesq_wb(ref, white))
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.NoUtterancesWarning)  # recorded, not warned
        out = ev.compute_metrics(ref, white, 0.5 * white, ("pesq",))
    assert math.isnan(out["noisy"]["pesq"]) and math.isnan(out["enhanced"]["pesq"])
    assert set(out["errors"]) == {"noisy.pesq", "enhanced.pesq"}
    assert all(msg.startswith("NoUtterancesError: ") for msg in out["errors"].values())


def test_pesq_errors_other_than_no_utterances_propagate(speech, monkeypatch):
    import pesq

    with pytest.raises(pesq.BufferTooShortError):  # real: under 0.25 s
        M.pesq_wb(speech[:3200], speech[:3200])
    for exc in (pesq.PesqError("Unknown"), pesq.OutOfMemoryError("no memory"),
                pesq.InvalidSampleRateError("rate"), RuntimeError("inside pesq")):
        def fake(*args, exc=exc, **kwargs):
            raise exc
        monkeypatch.setattr(pesq, "pesq", fake)
        with pytest.raises(type(exc)) as info:
            M.pesq_wb(speech, speech)
        assert info.value is exc


# -------------------------------------------------------------------- compute_metrics

def test_compute_metrics_records_failures_without_raising(speech, white):
    noisy = at_snr(speech, white[: speech.size], 0.0)
    out = ev.compute_metrics(speech, noisy, np.zeros_like(speech), FAST_METRICS)
    keys = ev.metric_keys(FAST_METRICS)
    assert all(math.isfinite(out["noisy"][k]) for k in keys)
    assert all(math.isnan(out["enhanced"][k]) and math.isnan(out["delta"][k]) for k in keys)
    assert set(out["errors"]) == {f"enhanced.{m}" for m in FAST_METRICS}
    assert all("silent" in msg for msg in out["errors"].values())


def test_compute_metrics_delta_and_length_trim(speech, white):
    noisy = at_snr(speech, white[: speech.size], 0.0)
    enhanced = at_snr(speech, white[: speech.size], 10.0)[:-100]  # iSTFT may drop a few samples
    out = ev.compute_metrics(speech, noisy, enhanced, ("si_sdr", "estoi"))
    assert out["errors"] == {} and out["n_samples"] == speech.size - 100
    for k in ("si_sdr", "estoi"):
        assert out["delta"][k] == pytest.approx(out["enhanced"][k] - out["noisy"][k])
    assert out["delta"]["si_sdr"] == pytest.approx(10.0, abs=0.2)
    bad = ev.compute_metrics(speech, noisy, enhanced[:-2000], ("si_sdr",))
    assert "input" in bad["errors"] and math.isnan(bad["enhanced"]["si_sdr"])
    with pytest.raises(ValueError, match="unknown metric"):
        ev.compute_metrics(speech, noisy, enhanced, ("stoi",))


# ------------------------------------------------------------------------------ runner

@pytest.fixture
def test_set(tmp_path, speech, white):
    """Four items on disk: two SNR labels, one silent enhanced file, one missing file."""
    items = []
    for i, (label, snr) in enumerate([("-5", -5.0), ("5", 5.0), ("5", 5.0), ("-5", -5.0)]):
        clean = speech
        noise = np.roll(white, 3000 * i)[: clean.size]
        noisy = at_snr(clean, noise, snr)
        enhanced = at_snr(clean, noise, snr + 6.0)
        if i == 2:
            enhanced = np.zeros_like(clean)
        paths = {}
        for name, x in (("clean", clean), ("noisy", noisy), ("enhanced", enhanced)):
            paths[f"{name}_path"] = tmp_path / f"{i}_{name}.wav"
            sf.write(paths[f"{name}_path"], (x / 4).astype(np.float32), SR, subtype="FLOAT")
        items.append({"id": f"clip{i}", "snr_label": label, **paths})
    items[3]["enhanced_path"] = tmp_path / "missing.wav"
    return items


def test_evaluate_files_parallel_matches_serial_and_survives_bad_files(test_set):
    metrics = ("si_sdr", "estoi")
    parallel = ev.evaluate_files(test_set, metrics=metrics, workers=2, progress=False)
    serial = ev.evaluate_files(test_set, metrics=metrics, workers=0, progress=False)
    assert [r["id"] for r in parallel] == ["clip0", "clip1", "clip2", "clip3"]
    _assert_same_records(parallel, serial)
    good, silent, missing = parallel[0], parallel[2], parallel[3]
    assert good["errors"] == {} and good["delta"]["si_sdr"] == pytest.approx(6.0, abs=0.2)
    assert good["snr_label"] == "-5" and isinstance(good["clean_path"], str)
    assert set(silent["errors"]) == {"enhanced.si_sdr", "enhanced.estoi"}
    assert math.isfinite(silent["noisy"]["si_sdr"]) and math.isnan(silent["delta"]["si_sdr"])
    assert "input" in missing["errors"] and math.isnan(missing["noisy"]["si_sdr"])


def _assert_same_records(got, want):
    """Same ids, paths, errors and metric keys in the same order, values equal to 1e-12: eSTOI
    differs in the last bit between two calls on the same arrays, even in one process (numpy's
    SIMD sums depend on how the buffers are aligned); the other metrics are bit-exact."""
    def skeleton(r):
        return {k: sorted(v) if k in ev.runner.SIDES else v for k, v in r.items() if k != "seconds"}
    assert [skeleton(r) for r in got] == [skeleton(r) for r in want]
    for side in ev.runner.SIDES:
        np.testing.assert_allclose([list(r[side].values()) for r in got],
                                   [list(r[side].values()) for r in want], rtol=1e-12)


def test_scoring_pool_serves_several_calls_and_recovers_from_a_crash(test_set):
    with ev.ScoringPool(2) as pool:
        first = ev.evaluate_files(test_set, ("sdr", "pesq"), pool=pool, progress=False)
        with pytest.raises(concurrent.futures.BrokenExecutor):  # a worker dies (as in a segfault)
            pool.submit(os._exit, 1).result()
        second = ev.evaluate_files(test_set[::-1], FAST_METRICS, pool=pool, progress=False)
    _assert_same_records(first, ev.evaluate_files(test_set, ("sdr", "pesq"), workers=0,
                                                  progress=False))
    _assert_same_records(second, ev.evaluate_files(test_set[::-1], FAST_METRICS, workers=0,
                                                   progress=False))
    assert not any("worker" in r["errors"] for r in second)


def test_evaluate_files_validates_items():
    with pytest.raises(ValueError, match="missing"):
        ev.evaluate_files([{"id": "a"}], progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        ev.evaluate_files([], metrics=("mos",))
    assert ev.evaluate_files([], progress=False) == []


def test_default_start_method_is_forkserver_and_fork_warns_after_dnsmos(monkeypatch):
    from tinyse_tf.evaluation import runner

    assert runner._start_method(None) == ("forkserver" if sys.platform.startswith("linux") else None)
    monkeypatch.setattr(M, "_dnsmos_model", object())  # as if DNSMOS ran in this process
    with pytest.warns(RuntimeWarning, match="hang"):
        assert runner._start_method("fork") == "fork"


def _fake_records(n_per_label=6, seed=0, offset=0.0, labels=("-5", "0", "5", "mixed")):
    rng = np.random.default_rng(seed)
    records = []
    for label in labels:
        for i in range(n_per_label):
            noisy = {k: float(rng.normal(2.0, 1.0)) for k in ev.metric_keys()}
            enhanced = {k: v + offset + float(rng.normal(1.0, 0.5)) for k, v in noisy.items()}
            records.append({"id": f"{label}_{i}", "snr_label": label, "noisy": noisy,
                            "enhanced": enhanced,
                            "delta": {k: enhanced[k] - noisy[k] for k in noisy},
                            "errors": {}, "seconds": {}, "n_samples": 16000})
    records[1]["enhanced"]["pesq"] = records[1]["delta"]["pesq"] = math.nan
    records[1]["errors"] = {"enhanced.pesq": "NoUtterancesError: b'No utterances detected'"}
    return records


def test_summarize_matches_numpy():
    records = _fake_records()
    summary = ev.summarize(records)
    assert list(summary) == ["-5", "0", "5", "mixed", "all"]
    for label in summary:
        group = [r for r in records if label in ("all", r["snr_label"])]
        for side in ("noisy", "enhanced", "delta"):
            for k in ev.metric_keys():
                v = np.array([r[side][k] for r in group])
                s = summary[label][side][k]
                assert s["n"] == np.isfinite(v).sum()
                assert s["mean"] == pytest.approx(np.nanmean(v))
                assert s["std"] == pytest.approx(np.nanstd(v))
    assert summary["-5"]["delta"]["pesq"]["n"] == 5 and summary["all"]["noisy"]["pesq"]["n"] == 24


def test_write_records_csv(tmp_path):
    records = _fake_records(n_per_label=2)
    path = tmp_path / "out" / "records.csv"
    ev.write_records_csv(records, path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(records)
    assert {"id", "snr_label", "noisy.si_sdr", "enhanced.pesq", "delta.dnsmos_ovrl", "errors"} <= set(rows[0])
    assert float(rows[0]["delta.si_sdr"]) == records[0]["delta"]["si_sdr"]
    assert rows[1]["enhanced.pesq"] == "nan" and "NoUtterancesError" in rows[1]["errors"]
    assert [p.name for p in path.parent.iterdir()] == ["records.csv"]  # no temp file left


# ----------------------------------------------------------------------- report, plots

def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_write_report(tmp_path):
    models = ["teacher", "student", "one-step KD", "two-step KD"]
    results = {m: _fake_records(seed=1, offset=i * 0.5) for i, m in enumerate(models)}
    clean = speech_like(2.0)
    noisy = at_snr(clean, np.random.default_rng(3).standard_normal(clean.size), 0.0)
    written = ev.write_report(
        results, tmp_path / "rep", title="KD test", metadata={"commit": "abc", "steps": 10},
        extra_rows={"paper two-step KD": {-5: {"si_sdr": 11.73}, "0": {"si_sdr": 10.23}}},
        spectrogram={"noisy": noisy, "enhanced": 0.5 * (noisy + clean), "clean": clean},
        size_results={"30k": {"baseline": results["student"], "two-step KD": results["two-step KD"]}})
    for key in ("json", "markdown", "gain_vs_snr_si_sdr", "gain_vs_snr_pesq", "spectrogram"):
        assert written[key].is_file(), key
    for key in ("gain_vs_snr_si_sdr", "gain_vs_snr_pesq", "spectrogram"):
        assert _is_png(written[key])
    assert not [p for p in (tmp_path / "rep").iterdir() if p.name.endswith(".tmp")]

    md = written["markdown"].read_text()
    for heading in ("### input SNR -5 dB", "### input SNR 0 dB", "### input SNR 5 dB", "### mixed",
                    "### all files", "Table 4 layout", "## Failures"):
        assert heading in md, heading
    header = ("| model | ΔSI-SDR (dB) | ΔSDR, BSS-eval (dB) | ΔPESQ-WB | ΔeSTOI (%) | ΔDNSMOS SIG"
              " | ΔDNSMOS BAK | ΔDNSMOS OVRL | files |")
    assert md.count(header) == 5
    all_table = md.split("### all files")[1].split("##")[0]
    rows = [line for line in all_table.splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == ["noisy input (absolute)", *models, "paper two-step KD"]
    assert all(r.count("±") == 7 for r in rows[:-1]) and rows[-1].count("—") == 8
    s = ev.summarize(results["two-step KD"])["all"]["delta"]["si_sdr"]
    assert f"{s['mean']:.2f} ± {s['std']:.2f}" in rows[4]
    assert "| paper two-step KD | 11.73 |" in md.split("### input SNR -5 dB")[1]

    with open(written["json"]) as f:  # strict JSON: NaN stored as null
        raw = json.load(f, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert raw["metadata"] == {"commit": "abc", "steps": 10} and raw["labels"][-1] == "all"
    back = ev.read_report(written["json"])
    for m in models:
        got, want = back["models"][m]["records"], results[m]
        assert [r["id"] for r in got] == [r["id"] for r in want]
        np.testing.assert_equal(got, want)  # NaN == NaN here: nulls came back as NaN
        np.testing.assert_equal(back["models"][m]["summary"], ev.summarize(want))
    assert back["extra_rows"]["paper two-step KD"]["-5"]["si_sdr"] == 11.73  # int label -> "-5"


def test_write_report_without_dnsmos_or_numeric_snr(tmp_path):
    recs = [r for r in _fake_records(labels=("mixed",))]
    for r in recs:
        for side in ("noisy", "enhanced", "delta"):
            r[side] = {k: v for k, v in r[side].items() if not k.startswith("dnsmos")}
    written = ev.write_report({"student": recs}, tmp_path)
    md = written["markdown"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    assert "ΔSI-SDR (dB)" in header and "ΔeSTOI (%)" in header and "DNSMOS" not in header
    assert "gain_vs_snr_si_sdr" not in written  # no numeric SNR label: nothing to plot


def test_size_table_gain_column():
    base, kd = _fake_records(seed=2), _fake_records(seed=2, offset=1.25)
    table = ev.size_table({"30k": {"baseline": base, "two-step KD": kd}, "62k": {"baseline": base}},
                          labels=["-5", "all"])
    lines = table.splitlines()
    assert lines[2].startswith("| student size | baseline -5 | two-step KD -5 | gain -5 | baseline all")
    row30 = lines[4].split(" | ")
    assert float(row30[3]) == pytest.approx(1.25, abs=0.006)
    assert lines[5].split(" | ")[2] == "—"  # 62k has no two-step result


def test_plots_are_png(tmp_path):
    summaries = {"student": ev.summarize(_fake_records()),
                 "two-step KD": ev.summarize(_fake_records(offset=1))}
    assert ev.plot_gain_vs_snr(summaries, "si_sdr", tmp_path / "g.png")
    x = speech_like(1.0)
    ev.plot_spectrograms(x + 0.1, x, x, tmp_path / "s.png")
    assert _is_png(tmp_path / "g.png") and _is_png(tmp_path / "s.png")
    from matplotlib.image import imread

    assert imread(tmp_path / "s.png").shape[0] > 500  # three stacked panels


# ------------------------------------------------------------------------------ DNSMOS

def test_dnsmos_wrapper_keys_on_one_second():
    out = ev.dnsmos(speech_like(1.0))  # (no wall-time check: it failed on loaded machines)
    assert set(out) == {"SIG", "BAK", "OVRL"}
    assert all(0.5 <= v <= 5.0 for v in out.values())
    loud = ev.dnsmos(3.0 * speech_like(1.0))  # out of [-1, 1]: scaled by its peak, not an error
    assert set(loud) == {"SIG", "BAK", "OVRL"}


def test_dnsmos_equals_speechmos_with_each_distinct_window_scored_once(monkeypatch):
    from speechmos.dnsmos import DNSMOS

    reference = object.__new__(DNSMOS)  # speechmos's own loop, on the same one-thread sessions
    reference.onnx_sess = M._dnsmos_session("sig_bak_ovr.onnx")
    reference.p808_onnx_sess = M._dnsmos_session("model_v8.onnx")
    runs = []
    model = M._load_dnsmos()
    session = model.onnx_sess
    monkeypatch.setattr(model, "onnx_sess", type("Counting", (), {
        "run": lambda self, *a: runs.append(1) or session.run(*a)})())
    for seconds, distinct in ((4.0, 4), (9.5, 1)):  # 4 s: tiled to 16 s, 7 windows
        audio = M._dnsmos_input(at_snr(speech_like(seconds, 3), np.random.default_rng(5)
                                       .standard_normal(int(seconds * SR)), 10.0))
        want = reference(audio, SR, False)
        runs.clear()
        got = ev.dnsmos(audio)
        assert got == {"SIG": want["sig_mos"], "BAK": want["bak_mos"], "OVRL": want["ovrl_mos"]}
        assert len(runs) == distinct


@pytest.mark.slow
def test_dnsmos_on_real_speech_prefers_clean(shared_audio):
    root = shared_audio
    clean, _ = sf.read(sorted((root / "speech" / "test").glob("*.flac"))[0], dtype="float64")
    noise, _ = sf.read(root / "noise" / "test" / "felixchenfy_rain.flac", dtype="float64")
    clean = clean[: 10 * SR]
    noisy = at_snr(clean, noise[: clean.size], 0.0)
    noisy *= 0.9 / np.abs(noisy).max()
    c, n = ev.dnsmos(clean), ev.dnsmos(noisy)
    # The P.835 polynomial mapping can fall a little outside 1-5 (BAK 0.97 on this 0 dB mix).
    assert all(0.5 <= v <= 5.0 for v in (*c.values(), *n.values()))
    assert c["BAK"] > n["BAK"] + 0.5 and c["OVRL"] > n["OVRL"]


@pytest.mark.slow
def test_full_evaluation_on_real_clips(shared_audio, tmp_path):
    """Every metric, two workers, report: the path a real evaluation takes."""
    root = shared_audio
    speech_files = sorted((root / "speech" / "test").glob("*.flac"))[:4]
    noise, _ = sf.read(root / "noise" / "test" / "freesound_typing.flac", dtype="float64")
    items = []
    for i, path in enumerate(speech_files):
        clean, _ = sf.read(path, dtype="float64")
        clean = clean[: 6 * SR]
        label, snr = [("-5", -5.0), ("0", 0.0), ("5", 5.0), ("mixed", 12.0)][i]
        noisy = at_snr(clean, np.resize(noise, clean.size), snr)
        scale = 0.9 / np.abs(noisy).max()
        enhanced = 0.5 * (noisy + clean)  # a stand-in "model"
        paths = {}
        for name, x in (("clean", clean), ("noisy", noisy), ("enhanced", enhanced)):
            paths[f"{name}_path"] = tmp_path / f"{i}_{name}.flac"
            sf.write(paths[f"{name}_path"], x * scale, SR)
        items.append({"id": path.stem, "snr_label": label, **paths})
    records = ev.evaluate_files(items, workers=2, progress=False)
    assert all(r["errors"] == {} for r in records), [r["errors"] for r in records]
    assert all(r["delta"]["si_sdr"] > 0 and r["delta"]["pesq"] > 0 for r in records)
    written = ev.write_report({"stand-in": records}, tmp_path / "report")
    assert "### input SNR -5 dB" in written["markdown"].read_text()


@pytest.mark.slow
def test_dnsmos_in_workers_after_dnsmos_in_parent(test_set):
    """Regression: with fork, workers hung in onnxruntime once DNSMOS had run in the parent."""
    ev.dnsmos(speech_like(1.0))
    records = ev.evaluate_files(test_set[:2], metrics=("dnsmos",), workers=2, progress=False)
    assert all(r["errors"] == {} and 0.5 <= r["enhanced"]["dnsmos_ovrl"] <= 5.0 for r in records)


def test_compute_metrics_reuses_given_noisy_values(speech, white, monkeypatch):
    noisy, enhanced = speech + 0.3 * white, speech + 0.1 * white
    full = M.compute_metrics(speech, noisy, enhanced, ("si_sdr", "estoi"))
    calls = []
    real = M._one_group
    monkeypatch.setattr(M, "_one_group", lambda g, c, x: calls.append(g) or real(g, c, x))
    reused = M.compute_metrics(speech, noisy, enhanced, ("si_sdr", "estoi"),
                               noisy_values=full["noisy"])
    assert calls == ["si_sdr", "estoi"]  # the enhanced side only
    assert reused["noisy"] == full["noisy"]
    assert reused["delta"] == pytest.approx(full["delta"], abs=1e-6)


def test_compute_metrics_recomputes_noisy_values_that_lack_a_metric(speech, white):
    noisy, enhanced = speech + 0.3 * white, speech + 0.1 * white
    partial = M.compute_metrics(speech, noisy, enhanced, ("si_sdr",))
    both = M.compute_metrics(speech, noisy, enhanced, ("si_sdr", "estoi"),
                             noisy_values=partial["noisy"])
    assert both["errors"] == {} and np.isfinite(both["noisy"]["estoi"])
    assert both["noisy"]["si_sdr"] == pytest.approx(partial["noisy"]["si_sdr"])
