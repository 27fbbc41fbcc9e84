"""benchmarks/vs_peers.py as users run it: the peers' runners against their stored outputs, and
one tiny side-by-side run. Skips when the peer models (../shared/peers) are absent."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"


@pytest.fixture(scope="module")
def peers_folder():
    if not (PEERS / "gtcrn" / "gtcrn_simple.onnx").is_file():
        pytest.skip("../shared/peers is absent")
    return PEERS


def test_tiny_side_by_side_run(peers_folder, tmp_path):
    from tinyse_tf.data import write_audio

    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    voiced = sum(np.sin(2 * np.pi * 140 * h * t) / h for h in range(1, 10))
    write_audio(tmp_path / "speech" / "s.wav", 0.1 * voiced * (0.6 + 0.4 * np.sin(6 * np.pi * t)))
    for k in range(2):
        write_audio(tmp_path / "noise" / f"n{k}.wav", 0.05 * rng.standard_normal(t.size))
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "vs_peers.py"), "student:int8",
         "float=student:float32", "student:keras", "--against", "float", "--peers",
         str(peers_folder), "--speech", str(tmp_path / "speech"), "--noise",
         str(tmp_path / "noise"), "--snrs", "0", "--seconds", "1", "--json", str(out)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    # The runners reproduce the peers' own outputs (GTCRN: float32 STFT rounding; DTLN exact).
    assert report["peer_reference_max_abs_diff"]["GTCRN"] < 1e-4
    assert report["peer_reference_max_abs_diff"]["DTLN"] < 1e-5
    assert report["mixtures_per_snr"] == 2  # every speech x every noise
    assert set(report["results"]) == {"log-MMSE", "GTCRN", "DTLN", "ours: student int8",
                                      "ours: float", "ours: student keras"}
    ours = report["results"]["ours: student int8"]["0"]
    assert set(ours["vs"]) == {"log-MMSE", "GTCRN", "DTLN", "ours: float"}
    # The shipped Keras model (a shipped name with its kind) scores as its float32 file does.
    keras_row = report["results"]["ours: student keras"]["0"]["si_sdr"]["mean"]
    assert keras_row == pytest.approx(report["results"]["ours: float"]["0"]["si_sdr"]["mean"],
                                      abs=0.05)
    assert ours["si_sdr"]["n"] == 2
    by_noise = ours["si_sdr_by_noise"]  # one mixture per noise here: their mean is the mean
    assert set(by_noise) == {"n0", "n1"}
    assert np.mean(list(by_noise.values())) == pytest.approx(ours["si_sdr"]["mean"])
    assert "| enhancer | n0 | n1 |" in report["tables"]["ΔSI-SDR per noise recording at 0 dB"]
    assert "paired difference to ours: float" in report["tables"]
    assert report["costs"]["GTCRN"]["weights"] == 48228
    assert report["costs"]["ours: student int8"]["macs_per_s"] > 0
    assert "% of GTCRN 0 dB" in proc.stdout


def test_share_of_a_peer_that_does_not_improve_is_not_a_number(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports its neighbours
    spec = importlib.util.spec_from_file_location("vs_peers", ROOT / "benchmarks" / "vs_peers.py")
    vs_peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vs_peers)
    results = {name: {"10": {"si_sdr": {"mean": a}}, "30": {"si_sdr": {"mean": b}}}
               for name, a, b in (("GTCRN", 5.0, -5.9), ("DTLN", 4.0, -1.5), ("ours", 4.0, -7.7))}
    row = vs_peers.share_table(results, ["ours"]).splitlines()[-1]
    assert row == "| ours | 80 % | n/a | 100 % | n/a |"


def test_missing_peers_folder_gives_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_peers.py"), "--peers",
                           str(tmp_path), "--speech", str(tmp_path), "--noise", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "gtcrn_simple.onnx: no such file" in proc.stderr


def test_named_sources_pick_the_recordings():
    from tinyse_tf.export.calibration import noisy_mixtures

    speech = [np.full(8000, 0.1 * (k + 1), np.float32) for k in range(3)]
    noise = [np.full(8000, 0.01 * (k + 1), np.float32) for k in range(2)]
    pairs = noisy_mixtures(speech, noise, seconds=0.25, snr_db=0.0,
                           sources=[(2, 0), (0, 1)])
    assert len(pairs) == 2
    clean_levels = [float(c[0]) / float(c[0] + (n - c)[0]) for n, c in pairs]  # equal energy
    assert clean_levels == pytest.approx([0.5, 0.5], abs=1e-3)
    assert pairs[0][1][0] / pairs[1][1][0] == pytest.approx(3.0, rel=1e-3)
