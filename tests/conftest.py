import os
import pathlib

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_AUDIO = pathlib.Path(__file__).resolve().parents[2] / "shared" / "audio"


@pytest.fixture
def shared_audio():
    """The real recordings in ../shared/audio; tests that use them skip when it is absent."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip("../shared/audio is absent")
    return SHARED_AUDIO
