"""Data: audio files, the built-in corpus, on-the-fly mixtures and fixed test sets.

All audio is 16 kHz mono float32. Shapes in brief:

- :func:`load_audio` ``(path) -> float32 [n]``; :func:`write_audio` ``(path, [n])``.
- :func:`build_corpus` ``-> Corpus`` (file lists per split), built once into the user cache.
- :func:`prepare_data` / :func:`prepare_corpus` ``-> PreparedData``: the audio as int16 shards
  plus a manifest, written once (``tinyse prepare-data``); :func:`load_prepared` opens one.
- :func:`mixture_dataset` ``(*prepared.split("train"))`` ``-> tf.data.Dataset`` of
  ``(noisy, clean)``, each float32 ``[batch, clip_samples]``, streamed from the shards.
- :func:`write_test_sets` writes ``<out>/<set>/{noisy,clean}/<id>.wav``; :func:`load_test_set`
  lists them.

See docs/DATA.md.
"""
import importlib

from tinyse_tf.data.audio_io import (AudioError, AudioSkipWarning, DataError, list_audio,
                                     load_audio, load_files, load_folder, probe_audio, write_audio)

# Everything else loads on first use: audio I/O must not pull in TensorFlow (the CLI and the
# evaluation workers use it without TF).
_LAZY = {
    "CORPUS_SIZES": "builtin", "CORPUS_VERSION": "builtin", "build_corpus": "builtin",
    "default_data_dir": "builtin", "load_corpus": "builtin", "split_voices": "builtin",
    "SPLITS": "corpus", "Corpus": "corpus", "mix_np": "mixing", "mix_tf": "mixing",
    "mixture_dataset": "pipeline", "worker_input_context": "pipeline",
    "PreparedData": "shards", "Shards": "shards", "load_prepared": "shards",
    "prepare_corpus": "shards", "prepare_data": "shards",
    "load_test_set": "testsets", "write_test_sets": "testsets",
}

__all__ = [
    "AudioError", "AudioSkipWarning", "DataError", "list_audio", "load_audio", "load_files",
    "load_folder", "probe_audio", "write_audio", *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"tinyse_tf.data.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinyse_tf.data' has no attribute {name!r}")
