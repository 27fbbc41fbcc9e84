"""Speech synthesis with libespeak-ng from the ``espeakng-loader`` wheel, through ctypes.

libespeak-ng keeps synthesis state in static variables that survive ``espeak_Terminate`` (the
output of one call depends on every earlier call in the process). To make a corpus byte-identical
for a seed, each :class:`Synthesizer` loads its own private copy of the shared library, so its
state starts fresh and depends only on the calls it makes itself, in order.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import tempfile

import numpy as np
import soxr

from tinyse_tf.constants import SAMPLE_RATE

ESPEAK_RATE = 22050  # libespeak-ng output rate

# English accents shipped in espeakng-loader 0.2.4 (voice names accepted by SetVoiceByName).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")

# Voice variants (files in espeak-ng-data/voices/!v) that sound like a human talker: robots, long
# echoes, whisper and novelty voices are left out. Grouped so every split gets both genders.
VARIANTS = {
    "male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Gene",
             "Jacky", "Lee", "Mario", "Michael", "Mike", "adam", "benjamin", "boris", "david",
             "ed", "edward", "grandpa", "gustave", "iven3", "marcelo", "max", "mike2", "paul",
             "quincy", "rob", "robert", "travis", "victor"),
    "female": ("f1", "f2", "f3", "f4", "f5", "Andrea", "Annie", "anika", "aunty", "belinda",
               "grandma", "linda", "shelby", "steph"),
    "klatt": ("klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6"),
}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_VOLUME = 60  # at the default 100 some klatt voices saturate int16
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class Synthesizer:
    """A private libespeak-ng instance that returns 16 kHz float32 speech.

    Use as a context manager (or call :meth:`close`). Not thread-safe; two instances are
    independent.

    Example::

        with Synthesizer() as tts:
            audio = tts.say("Seven green boats left early.", "en-us+f3", rate=160, pitch=55)
    """

    def __init__(self, seed: int = 0):
        import espeakng_loader  # optional at import time of the package

        tmpdir = tempfile.mkdtemp(prefix="tinyse-espeak-")
        original = espeakng_loader.get_library_path()
        private = os.path.join(tmpdir, "private-" + os.path.basename(original))
        try:
            shutil.copyfile(original, private)
            self._lib = ctypes.CDLL(private)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)  # on POSIX the mapping outlives the file
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"libespeak-ng initialisation failed (returned {rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_ng_SetRandSeed(int(seed))
        self._closed = False

    def _collect(self, wav, n, _events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
            pitch_range: int = 50) -> np.ndarray:
        """Synthesise ``text``.

        Args:
            text: UTF-8 text.
            voice: ``accent`` or ``accent+variant``, e.g. ``"en-gb-scotland+m3"``.
            rate: words per minute (80..450).
            pitch: base pitch, 0..100.
            pitch_range: intonation range, 0..100.

        Returns:
            float32 [n] at 16 kHz in [-1, 1].
        """
        if self._closed:
            raise RuntimeError("Synthesizer is closed")
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_VOLUME, _VOLUME), (_PARAM_PITCH, pitch),
                             (_PARAM_RANGE, pitch_range)):
            lib.espeak_SetParameter(param, int(value), 0)
        self._chunks.clear()
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for voice {voice!r}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(1, np.int16)
        self._chunks.clear()
        audio = pcm.astype(np.float32) / 32768.0
        return soxr.resample(audio, ESPEAK_RATE, SAMPLE_RATE, quality="HQ").astype(np.float32)

    def close(self) -> None:
        if not self._closed:
            self._lib.espeak_Terminate()
            self._closed = True
            import _ctypes

            unload = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
            if unload is not None:
                unload(self._lib._handle)

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def all_voices() -> list[str]:
    """Every ``accent+variant`` voice name used by the built-in corpus, sorted."""
    return sorted(f"{a}+{v}" for a in ACCENTS for group in VARIANTS.values() for v in group)
