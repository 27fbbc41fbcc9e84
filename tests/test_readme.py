"""The Python examples of README.md (the shipped model) and docs/API.md (the Keras API) run as
written, in one fresh interpreter."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_block(path, heading):
    """The first ```python block after ``heading`` in ``path``."""
    text = path.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_and_api_examples_run(tmp_path):
    readme = python_block(ROOT / "README.md", "## Enhance a file with the shipped model")
    keras = python_block(ROOT / "docs" / "API.md", "## Keras API")
    assert len(keras.strip().splitlines()) <= 12
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "noisy.wav", 0.1 * rng.standard_normal(24000), 16000)  # README reads it
    code = (readme + "\nprint('readme', enhanced.shape, live.size % 256)\n"
            + keras + "\nprint('keras', enhanced.shape)\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "readme (24000,) 0" in proc.stdout
    assert "keras (4, 16000)" in proc.stdout
