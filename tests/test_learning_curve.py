"""benchmarks/learning_curve.py: best validation SI-SDR within CPU-hour budgets, resumes removed."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py"
HEADER = "epoch,cpu_hours,loss,val_si_sdr,wall_hours"


def _history(folder, rows):
    folder.mkdir(parents=True)
    lines = [HEADER] + [f"{i},{h},0.1,{v},{2 * h}" for i, (h, v) in enumerate(rows)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_table_json_and_resume_overhead(tmp_path):
    # 0.1 CPU h per epoch, but epoch 3 resumed and took 0.5 h: counted as 0.1 h.
    steady = _history(tmp_path / "a", [(0.1, 5.0), (0.2, 6.0), (0.3, 6.5), (0.8, 7.0), (0.9, 6.9)])
    proc = subprocess.run([sys.executable, str(SCRIPT), f"A={steady}", "--budgets", "0.25", "0.45",
                           "--json", str(tmp_path / "c.json")],
                          capture_output=True, text=True, check=True)
    curve = json.loads((tmp_path / "c.json").read_text())["curves"]["A"]
    assert [round(h, 3) for h in curve["cpu_hours"]] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert round(curve["resume_overhead_hours"], 3) == 0.4
    assert curve["cpu_hours_raw"][-1] == 0.9
    row = [line for line in proc.stdout.splitlines() if line.startswith("| A |")][0]
    # epochs, CPU h, overhead, wall h, best, best by 0.25 h, best by 0.45 h
    assert row == "| A | 5 | 0.50 | 0.40 | 1.80 | 7.00 dB | 6.00 | 7.00 |"


def test_missing_history_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("learning_curve.py: error:")
