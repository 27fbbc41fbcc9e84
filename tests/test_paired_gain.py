"""benchmarks/paired_gain.py: paired per-file differences, with rows added from eval files."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_gain.py"


def _records(deltas):
    return [{"id": f"{i:05d}", "snr_label": "snr_0", "delta": {"si_sdr": d}}
            for i, d in enumerate(deltas)]


def test_rows_from_the_report_and_from_eval_files(tmp_path):
    report = {"models": {"student": {"records": _records([1.0, 2.0, 3.0])},
                         "two-step KD": {"records": _records([2.0, 2.0, 4.0])}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "extra.json").write_text(json.dumps(_records([0.0, 2.0, 3.5])))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "report.json"),
                           "--add", f"loudness={tmp_path / 'extra.json'}"],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.splitlines()[0])
    assert result["two-step KD"]["all"] == {"mean": 0.667, "se": 0.333, "better": 2, "n": 3}
    assert result["loudness"]["all"]["mean"] == -0.167 and result["loudness"]["all"]["better"] == 1
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "report.json"), "--add",
                          f"x={tmp_path / 'missing.json'}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.json" in bad.stderr.splitlines()[-1]
